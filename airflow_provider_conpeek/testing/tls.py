"""TLS for the sandbox: a self-signed certificate, the server side of a handshake, and the
handshake faults (``handshake_eof``, ``handshake_reset``) that cut one short.

The certificate is made with ``cryptography`` (an Airflow dependency), imported only when a
certificate is made.

Example::

    cert, key = self_signed_cert(tmp_path, names=("127.0.0.1", "localhost"))
    server = SandboxServer(tls=(cert, key))  # or tls=True: a certificate is made for you

.. seealso:: :doc:`/sandbox`, section *TLS*.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import socket
import ssl
import struct
from collections.abc import Sequence
from pathlib import Path

HANDSHAKE_FAULTS = ("handshake_eof", "handshake_reset")
"""Fault kinds that hit a TLS connection before its handshake completes."""

HANDSHAKE_TIMEOUT = 10.0
"""Seconds the server waits for a client's part of the handshake."""

DEFAULT_NAMES = ("127.0.0.1", "localhost", "::1")
"""Host names and addresses the generated certificate is valid for."""


def self_signed_cert(
    directory: str | Path, names: Sequence[str] = DEFAULT_NAMES
) -> tuple[str, str]:
    """Write ``cert.pem`` and ``key.pem`` into ``directory``: a self-signed certificate
    (its own CA, valid one day either side of now) for ``names``.

    :param directory: an existing directory.
    :param names: DNS names or IP addresses; the first is also the subject's common name.
    :return: the paths of the certificate (also the CA bundle to trust) and of its key.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    sans: list[x509.GeneralName] = []
    for name in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            sans.append(x509.DNSName(name))
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = Path(directory, "cert.pem"), Path(directory, "key.pem")
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)


def server_context(certfile: str, keyfile: str) -> ssl.SSLContext:
    """A server-side TLS context with this certificate and key."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile, keyfile)
    return context


def accept(context: ssl.SSLContext, sock: socket.socket) -> ssl.SSLSocket | None:
    """The server side of the handshake on an accepted connection; None if it failed (the
    client refused the certificate, left, or was not speaking TLS), the socket closed."""
    sock.settimeout(HANDSHAKE_TIMEOUT)
    try:
        return context.wrap_socket(sock, server_side=True)
    except (OSError, ValueError):
        sock.close()
        return None


def cut_handshake(sock: socket.socket, kind: str) -> None:
    """Read the client's first handshake record, then close (``handshake_eof``: the client
    sees an EOF) or reset (``handshake_reset``) the connection without answering."""
    sock.settimeout(HANDSHAKE_TIMEOUT)
    with contextlib.suppress(OSError):
        header = _read(sock, 5)  # TLS record: type, version, length
        if len(header) == 5:
            _read(sock, struct.unpack("!H", header[3:5])[0])
        if kind == "handshake_reset":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _read(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


__all__ = [
    "DEFAULT_NAMES",
    "HANDSHAKE_FAULTS",
    "HANDSHAKE_TIMEOUT",
    "accept",
    "cut_handshake",
    "self_signed_cert",
    "server_context",
]
