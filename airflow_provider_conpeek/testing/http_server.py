"""The sandbox's HTTP/1.1 plumbing: a threading server and its request handler.

The handler speaks HTTP (keep-alive, one write per answer), routes ``/_sandbox/...`` to
the admin endpoints and every other request to the :class:`~.sandbox.SandboxServer`,
whose :class:`~.endpoint.Reply` it sends. With an ``ssl_context`` the server speaks HTTPS:
each connection's handshake (or its handshake fault) runs on the connection's thread. Admin
endpoints need no key, are never faulted and are not logged:

* ``POST /_sandbox/faults`` (body: FaultConfig JSON), ``GET /_sandbox/faults``
* ``GET /_sandbox/requests`` (request log), ``POST /_sandbox/reset`` (log and faults)
* ``POST /_sandbox/records`` (body: list of records, or ``{"records": [...]}``)

.. seealso:: :doc:`/sandbox`, section *Admin endpoints*.
"""

from __future__ import annotations

import contextlib
import json
import socket
import socketserver
import ssl
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

from airflow_provider_conpeek.testing.endpoint import Reply
from airflow_provider_conpeek.testing.faults import FaultConfig
from airflow_provider_conpeek.testing.tls import accept, cut_handshake

if TYPE_CHECKING:
    from airflow_provider_conpeek.testing.sandbox import SandboxServer


class SandboxHTTPServer(ThreadingHTTPServer):
    """A thread per connection; ``sandbox`` answers the API requests.

    Example (what :meth:`~.sandbox.SandboxServer.start` does)::

        httpd = SandboxHTTPServer(("127.0.0.1", 0), SandboxHandler)
        httpd.sandbox = sandbox_server
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
    """

    daemon_threads = True
    request_queue_size = 128
    sandbox: SandboxServer
    ssl_context: ssl.SSLContext | None = None
    """Set for HTTPS."""

    def server_bind(self) -> None:
        # Skip HTTPServer's getfqdn() (a DNS lookup that can take seconds).
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Serve one connection; over TLS, after the handshake or a handshake fault."""
        if self.ssl_context is None:
            super().finish_request(request, client_address)
            return
        fault = self.sandbox.connection_fault()
        if fault is not None:
            cut_handshake(request, fault)
            return
        tls = accept(self.ssl_context, request)
        if tls is None:
            return
        try:
            super().finish_request(tls, client_address)
        finally:
            with contextlib.suppress(OSError):
                tls.shutdown(socket.SHUT_WR)
            tls.close()


class SandboxHTTPServer6(SandboxHTTPServer):
    """:class:`SandboxHTTPServer` on IPv6.

    Example::

        httpd = SandboxHTTPServer6(("::1", 0), SandboxHandler)
    """

    address_family = socket.AF_INET6


class SandboxHandler(BaseHTTPRequestHandler):
    """Handles the requests of one connection (keep-alive) for a :class:`SandboxHTTPServer`.

    Example: the server makes one per accepted connection, as in :class:`SandboxHTTPServer`.
    """

    protocol_version = "HTTP/1.1"
    server_version = "ConpeekSandbox/1.0"
    timeout = 120

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sb.track(self.connection, True)

    def finish(self) -> None:
        self.sb.track(self.connection, False)
        super().finish()

    @property
    def sb(self) -> SandboxServer:
        return cast(SandboxHTTPServer, self.server).sandbox

    def log_message(self, format: str, *args: Any) -> None:
        if self.sb.verbose:
            super().log_message(format, *args)

    def send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        """Write status line, headers and body in ONE write (no Nagle/delayed-ACK stall)."""
        lines = [
            f"{self.protocol_version} {status} {self.responses.get(status, ('',))[0]}",
            f"Server: {self.server_version}",
            "Content-Type: application/json; charset=utf-8",
            f"Content-Length: {len(body)}",
        ]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.log_request(status, len(body))
        try:
            self.wfile.write(head + body)
        except OSError:
            self.close_connection = True

    def send_reply(self, reply: Reply) -> None:
        """Send ``reply``, or drop the connection if its ``status`` is None."""
        if reply.status is not None:
            self.send(reply.status, reply.body, reply.headers)
            return
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _json(self, status: int, obj: Any) -> None:
        self.send(status, json.dumps(obj, ensure_ascii=False).encode())

    def _read_body(self) -> bytes | None:
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            return None
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.close_connection = True
            return None
        return self.rfile.read(length) if length > 0 else b""

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        body = self._read_body()
        if body is None:
            self.send_reply(Reply.error(400, "bad_request", "unsupported request body"))
        elif parts.path.startswith("/_sandbox/"):
            self._admin(method, parts.path, body)
        else:
            self.send_reply(self.sb._api_reply(method, parts.path, parts.query, self.headers))

    def _admin(self, method: str, path: str, body: bytes) -> None:
        sb = self.sb
        try:
            data = json.loads(body) if body else None
            if (method, path) == ("POST", "/_sandbox/faults"):
                sb.set_faults(FaultConfig.from_dict(data or {}))
                self._json(200, {"ok": True, "faults": sb.faults.to_dict()})
            elif (method, path) == ("GET", "/_sandbox/faults"):
                self._json(200, sb.faults.to_dict())
            elif (method, path) == ("GET", "/_sandbox/requests"):
                self._json(200, {"requests": [e.to_dict() for e in sb.request_log]})
            elif (method, path) == ("POST", "/_sandbox/reset"):
                sb.clear_log()
                sb.set_faults(FaultConfig())
                self._json(200, {"ok": True})
            elif (method, path) == ("POST", "/_sandbox/records"):
                recs = data.get("records") if isinstance(data, dict) else data
                if not isinstance(recs, list):
                    raise ValueError("body must be a list of records or {'records': [...]}")
                sb.add_records(recs)
                self._json(200, {"ok": True, "added": len(recs)})
            else:
                self._json(404, {"error": "not_found", "message": f"no admin route {path}"})
        except (ValueError, TypeError) as exc:
            self._json(400, {"error": "bad_request", "message": str(exc)})


__all__ = ["SandboxHTTPServer", "SandboxHTTPServer6", "SandboxHandler"]
