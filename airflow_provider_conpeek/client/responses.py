"""HTTP responses to records or to clear errors, with the API key redacted."""

from __future__ import annotations

import json
from typing import Any

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
_DROPPED = (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError)


def connection_error_reason(exc: BaseException) -> str:
    """The innermost cause of a connection error, e.g. ``Connection refused``."""
    seen: set[int] = set()
    current: BaseException | None = exc
    reason = type(exc).__name__
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            reason = current.strerror
        inner = getattr(current, "reason", None)
        nxt = inner if isinstance(inner, BaseException) else None
        if nxt is None and current.args and isinstance(current.args[0], BaseException):
            nxt = current.args[0]
        current = nxt or current.__cause__ or current.__context__
    if reason == type(exc).__name__:
        text = str(exc)
        for marker in ("Connection refused", "Name or service not known", "RemoteDisconnected"):
            if marker in text:
                return marker
    return reason


def transport_problem(exc: requests.exceptions.RequestException, settings: ConpeekSettings) -> str:
    """Why a request got no response, as a retryable problem; raises if no retry can help.

    Timeouts and dropped or refused connections are retryable; a TLS failure is not.
    """
    if isinstance(exc, requests.exceptions.SSLError):
        raise ConpeekConfigError(
            f"TLS failed for {settings.base_url} (connection {settings.conn_id!r}): "
            f"{type(exc).__name__}. Fix the certificate, or set 'ca_bundle' in the "
            "connection extra."
        ) from None
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
    """``text`` with every occurrence of ``secret`` replaced by ``***``."""
    return text.replace(secret, "***") if secret else text


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
            f"Conpeek rejected the request (HTTP 400) at {url}: {body}", **kwargs
        )
    if status in (401, 403):
        return ConpeekAuthError(
            f"Conpeek refused the API key of connection {settings.conn_id!r} (HTTP {status}). "
            "Check the key in the connection's 'API key' (password) field.",
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
