"""HTTP responses to records or to clear errors, with the API key redacted.

Transport failures are classified here too: what a retry can cure (timeouts, dropped or
reset connections, a TLS handshake cut short) becomes a problem the client retries; what it
cannot (a certificate that does not verify, an ``https://`` URL on a plain-HTTP server)
raises :class:`~airflow_provider_conpeek.exceptions.ConpeekConfigError` at once.
"""

from __future__ import annotations

import json
import re
import ssl
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from airflow_provider_conpeek.client.paging import Page
from airflow_provider_conpeek.client.settings import ConpeekSettings
from airflow_provider_conpeek.exceptions import (
    ConpeekAPIError,
    ConpeekAuthError,
    ConpeekBadRequestError,
    ConpeekConfigError,
    ConpeekNotFoundError,
    ConpeekPagingError,
)

_BODY_EXCERPT = 2000
_DEFAULT_LIMIT = 100
"""The API's documented default ``limit``."""
_BEARER = re.compile(r"bearer\s", re.IGNORECASE)

# TLS failures by what OpenSSL (1.1 to 3.x) and urllib3 (1.26 and 2.x) say, lower-cased.
_VERIFY_TYPES = ("SSLCertVerificationError", "CertificateError")
_VERIFY_MARKERS = ("certificate_verify_failed", "certificate verify failed", "doesn't match")
_MISMATCH_MARKERS = ("hostname mismatch", "ip address mismatch", "doesn't match")
_EOF_TYPES: tuple[type[BaseException], ...] = (
    ssl.SSLEOFError,
    ssl.SSLZeroReturnError,
    ssl.SSLSyscallError,
    ConnectionResetError,
    ConnectionAbortedError,
    BrokenPipeError,
)
_EOF_MARKERS = (
    "unexpected_eof_while_reading",
    "eof occurred in violation of protocol",
    "unexpected eof",
    "connection reset",
    "connection aborted",
)
_PLAIN_HTTP_MARKERS = (
    "wrong_version_number",  # OpenSSL 1.1-3.1
    "wrong version number",
    "record_layer_failure",  # OpenSSL 3.2+
    "record layer failure",
    "packet_length_too_long",  # the first bytes of "HTTP/1.x ..." read as a record length
    "packet length too long",
    "unknown protocol",  # OpenSSL 1.0
)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it wraps (``reason``, ``args[0]``, cause, context), outermost first."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        inner = getattr(current, "reason", None)
        nxt = inner if isinstance(inner, BaseException) else None
        if nxt is None and current.args and isinstance(current.args[0], BaseException):
            nxt = current.args[0]
        current = nxt or current.__cause__ or current.__context__


def connection_error_reason(exc: BaseException) -> str:
    """The innermost cause of a connection error, e.g. ``Connection refused``."""
    reason = type(exc).__name__
    for current in _causes(exc):
        if isinstance(current, OSError) and current.strerror:
            reason = current.strerror
    if reason == type(exc).__name__:
        text = str(exc)
        for marker in ("Connection refused", "Name or service not known", "RemoteDisconnected"):
            if marker in text:
                return marker
    return reason


def tls_failure(exc: BaseException) -> tuple[str, str]:
    """What kind of TLS failure ``exc`` is, and a short reason for messages.

    The kind is ``"verify"`` (the certificate does not verify), ``"hostname"`` (it does not
    name the host), ``"eof"`` (the connection was closed or reset, typically during the
    handshake: a retry may succeed), ``"plain_http"`` (the server answered in plain HTTP) or
    ``"other"``.

    Example::

        tls_failure(requests.exceptions.SSLError(ssl.SSLEOFError(8, "EOF")))  # ("eof", ...)
    """
    chain = list(_causes(exc))
    inner = chain[-1]
    for current in chain:  # the first SSL or OS error below requests' own names it best
        if isinstance(current, (ssl.SSLError, OSError)) and not isinstance(
            current, requests.exceptions.RequestException
        ):
            inner = current
            break
    detail = getattr(inner, "verify_message", None) or getattr(inner, "reason", None)
    reason = f"{type(inner).__name__}: {detail if isinstance(detail, str) else inner}"
    text = " ".join(f"{type(c).__name__} {c}" for c in chain).lower()
    if any(type(c).__name__ in _VERIFY_TYPES for c in chain) or any(
        m in text for m in _VERIFY_MARKERS
    ):
        kind = "hostname" if any(m in text for m in _MISMATCH_MARKERS) else "verify"
        return kind, reason
    if any(isinstance(c, _EOF_TYPES) for c in chain) or any(m in text for m in _EOF_MARKERS):
        return "eof", reason
    if any(m in text for m in _PLAIN_HTTP_MARKERS):
        return "plain_http", reason
    return "other", reason


def _tls_problem(exc: requests.exceptions.SSLError, settings: ConpeekSettings) -> str:
    """A retryable problem for a handshake cut short; raises for every other TLS failure."""
    kind, reason = tls_failure(exc)
    where = f"{settings.base_url} (connection {settings.conn_id!r})"
    if kind == "eof":
        return f"TLS connection closed or reset by the server before it answered ({reason})"
    if kind == "plain_http":
        plain = "http://" + settings.base_url.split("://", 1)[-1]
        raise ConpeekConfigError(
            f"TLS failed for {where}: the server answered in plain HTTP; use {plain} as the "
            "connection's host instead (a host without a scheme means https://). "
            f"({reason})"
        ) from None
    hint = "Fix the certificate, or set 'ca_bundle' in the connection extra."
    if kind == "hostname":
        hint = (
            "The certificate does not name this host: use the host name it was issued for. " + hint
        )
    elif kind == "other":
        hint = "Check the URL's scheme and port, and the server's TLS set-up. " + hint
    raise ConpeekConfigError(f"TLS failed for {where}: {reason}. {hint}") from None


def transport_problem(exc: requests.exceptions.RequestException, settings: ConpeekSettings) -> str:
    """Why a request got no response, as a retryable problem; raises if no retry can help.

    Timeouts, dropped, refused or reset connections and TLS handshakes cut short are
    retryable; a certificate that does not verify, or an ``https://`` URL on a plain-HTTP
    server, is not (see :func:`tls_failure`).
    """
    if isinstance(exc, requests.exceptions.SSLError):
        return _tls_problem(exc, settings)
    if isinstance(exc, requests.exceptions.Timeout):
        limit = settings.connect_timeout
        if not isinstance(exc, requests.exceptions.ConnectTimeout):
            limit = settings.read_timeout
        return f"timed out after {limit:g} s ({type(exc).__name__})"
    if isinstance(
        exc, (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError)
    ):
        return f"connection failed or was dropped ({connection_error_reason(exc)})"
    raise exc


def redact(text: str, secret: str) -> str:
    """``text`` with every occurrence of ``secret`` replaced by ``***`` (and of the bare key,
    when ``secret`` was pasted as ``Bearer <key>``)."""
    if not secret:
        return text
    text = text.replace(secret, "***")
    bare = _BEARER.sub("", secret, count=1).strip() if _BEARER.match(secret) else ""
    return text.replace(bare, "***") if bare else text


def excerpt(response: requests.Response | None, secret: str) -> str:
    """The start of a response body, for error messages, without ``secret``."""
    if response is None:
        return ""
    return redact(response.text[:_BODY_EXCERPT], secret)


def error_for_response(response: requests.Response, settings: ConpeekSettings) -> ConpeekAPIError:
    """The error for a non-retryable status (400, 401/403, 404, others), key removed."""
    status = response.status_code
    url = redact(response.url, settings.api_key)
    body = excerpt(response, settings.api_key)
    kwargs: dict[str, Any] = {"status": status, "body": body, "url": url}
    if status == 400:
        return ConpeekBadRequestError(
            f"Conpeek rejected the request (HTTP 400) at {url}: {body}"
            + _limit_hint(response.url, body),
            **kwargs,
        )
    if status in (401, 403):
        hint = "Check the key in the connection's 'API key' (password) field."
        if _BEARER.match(settings.api_key):
            hint = (
                "The key starts with 'Bearer ', but the API wants the raw key as the "
                "Authorization header, without a prefix: remove 'Bearer ' from the "
                "connection's 'API key' (password) field."
            )
            kwargs["body"] = redact(body, settings.api_key[7:].strip())
        return ConpeekAuthError(
            f"Conpeek refused the API key of connection {settings.conn_id!r} "
            f"(HTTP {status}). {hint}",
            **kwargs,
        )
    if status == 404:
        return ConpeekNotFoundError(
            f"Not found (HTTP 404): {url}. The base URL of connection {settings.conn_id!r} "
            f"({settings.base_url}) is probably wrong; it should end with the API's path "
            "prefix, for example https://tenant.cloud.conpeek.com/api/v1_3.",
            **kwargs,
        )
    return ConpeekAPIError(f"Conpeek answered HTTP {status} at {url}: {body}", **kwargs)


def _limit_hint(url: str, body: str) -> str:
    """For a 400: lower ``page_size`` if the server names ``limit``, or may mean it."""
    values = parse_qs(urlsplit(url).query).get("limit", [])
    limit = int(values[0]) if values and values[0].isdigit() else None
    if limit is None or limit <= 1:
        return ""
    if "limit" in body.lower():
        return (
            f" The server refused limit={limit}, the page size: lower page_size (this "
            f"request sent {limit}; the API's default is {_DEFAULT_LIMIT})."
        )
    if limit > _DEFAULT_LIMIT:
        return (
            f" If page_size ({limit}) is more than the server accepts, lower it (the API's "
            f"default is {_DEFAULT_LIMIT})."
        )
    return ""


def parse_page(response: requests.Response, secret: str) -> Page:
    """The ``data`` list of a 200 response; anything else is a clear error.

    :param secret: the API key, removed from the excerpt of the body that the error quotes.
    """
    try:
        body = json.loads(response.content)
    except ValueError:
        body = None
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        raise ConpeekPagingError(
            f"Malformed response from {response.url}: expected a JSON object with a 'data' "
            f"list, got {redact(repr(response.content[:200]), secret)}. Nothing was written."
        )
    return data
