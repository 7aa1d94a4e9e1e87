"""Connection settings: an Airflow connection validated into what a request needs.

Every problem is reported before any request is sent, naming the connection and the fix:
a missing key or host, an unknown or mistyped extra, a timeout that is not positive.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_conpeek.client.retry import RetryPolicy
from airflow_provider_conpeek.client.settings import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_PAGES,
    DEFAULT_MAX_RETRIES,
    DEFAULT_MAX_RETRY_WAIT,
    DEFAULT_READ_TIMEOUT,
    ConpeekSettings,
)
from airflow_provider_conpeek.connection import CONN_TYPE, EXTRA_FIELDS
from airflow_provider_conpeek.exceptions import ConpeekConfigError


def read_settings(conn_id: str, conn: Any, overrides: Mapping[str, Any]) -> ConpeekSettings:
    """Validate an Airflow connection (and hook-argument overrides) into settings.

    :param conn_id: the connection's id, named in every error.
    :param conn: the Airflow ``Connection``.
    :param overrides: hook arguments; ``None`` values mean "use the connection's value".
    """
    raw_key = conn.password or ""
    api_key = raw_key.strip()  # a key pasted or read from a file often ends with a newline
    _mask_secret(raw_key)
    _mask_secret(api_key)
    if not api_key:
        raise ConpeekConfigError(
            f"Connection {conn_id!r} has no API key. Put the key in the "
            "connection's password field (labelled 'API key' in the UI)."
        )
    if not all(" " <= char <= "~" for char in api_key):
        # http.client would refuse it with an error that quotes the header value.
        raise ConpeekConfigError(
            f"Connection {conn_id!r}: the API key contains a control or non-ASCII character, "
            "which cannot be sent in an HTTP header. Paste the key again (the message does "
            "not repeat it)."
        )
    base_url = _base_url(conn_id, conn.host, conn.schema, conn.port)
    extra = _read_extra(conn_id, conn.extra)
    for name, value in overrides.items():
        if value is not None:
            where = f"ConpeekHook argument {name!r} (connection {conn_id!r})"
            extra[name] = _check_type(where, name, value)
    values = {**_DEFAULTS, **extra}
    for name in ("connect_timeout", "read_timeout", "max_retry_wait"):
        _check_range(conn_id, name, values[name], minimum=0, exclusive=True)
    _check_range(conn_id, "max_retries", values["max_retries"], minimum=0)
    _check_range(conn_id, "max_pages", values["max_pages"], minimum=1)
    verify: bool | str = values.get("ca_bundle") or values.get("verify", True)
    proxy = values.get("proxy") or None
    if proxy:
        _mask_url_password(proxy)
    return ConpeekSettings(
        conn_id=conn_id,
        base_url=base_url,
        api_key=api_key,
        connect_timeout=float(values["connect_timeout"]),
        read_timeout=float(values["read_timeout"]),
        max_pages=int(values["max_pages"]),
        retry=RetryPolicy(
            max_retries=int(values["max_retries"]),
            max_wait=float(values["max_retry_wait"]),
        ),
        verify=verify,
        proxy=proxy,
    )


def _mask_secret(secret: str) -> None:
    """Register the key with Airflow's secrets masker, so logs print *** instead."""
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # pragma: no cover - older task SDKs
        return
    mask_secret(secret)


_DEFAULTS: dict[str, Any] = {
    "connect_timeout": DEFAULT_CONNECT_TIMEOUT,
    "read_timeout": DEFAULT_READ_TIMEOUT,
    "max_retries": DEFAULT_MAX_RETRIES,
    "max_retry_wait": DEFAULT_MAX_RETRY_WAIT,
    "max_pages": DEFAULT_MAX_PAGES,
}


def _read_extra(conn_id: str, raw: str | None) -> dict[str, Any]:
    """The known extras, with UI prefixes and empty form values removed, type-checked.

    Unknown keys raise: a typo such as ``read_timout`` must never be silently ignored.
    """
    if not raw or not raw.strip():
        return {}
    try:
        extra = json.loads(raw)
    except ValueError:
        raise ConpeekConfigError(
            f"Connection {conn_id!r}: the extra is not valid JSON. Use a JSON object such as "
            '{"read_timeout": 60}.'
        ) from None
    if extra is None:
        return {}
    if not isinstance(extra, dict):
        raise ConpeekConfigError(
            f"Connection {conn_id!r}: the extra must be a JSON object, got "
            f'{type(extra).__name__}. Example: {{"read_timeout": 60}}.'
        )
    prefix = f"extra__{CONN_TYPE}__"
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for raw_key, value in extra.items():
        key = str(raw_key).removeprefix(prefix)
        if key not in EXTRA_FIELDS:
            raise ConpeekConfigError(
                f"Connection {conn_id!r} has an unknown extra field {raw_key!r}. "
                f"Known extras: {', '.join(sorted(EXTRA_FIELDS))}. Remove or rename it."
            )
        if value is None or (isinstance(value, str) and not value.strip()):
            continue  # an empty form field means "use the default"
        coerced = _check_type(f"Connection {conn_id!r}: extra {raw_key!r}", key, value)
        if key in values and values[key] != coerced:
            raise ConpeekConfigError(
                f"Connection {conn_id!r}: extras {sources[key]!r} and {raw_key!r} disagree "
                f"({values[key]!r} vs {coerced!r}). Keep only one of them."
            )
        values[key], sources[key] = coerced, str(raw_key)
    return values


def _check_type(where: str, key: str, value: Any) -> Any:
    """``value`` as the type of extra ``key``; strings (from the UI form) are converted."""
    kind = EXTRA_FIELDS[key]["schema"]["type"][0]
    try:
        if kind == "boolean":
            if isinstance(value, bool):
                return value
            if not isinstance(value, str):
                raise ValueError(value)
            text = value.strip().lower()
            if text in ("true", "1", "yes"):
                return True
            if text in ("false", "0", "no"):
                return False
            raise ValueError(value)
        if kind in ("integer", "number"):
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise ValueError(value)
            number = float(value)
            if not math.isfinite(number):
                raise ValueError(value)
            if kind == "number":
                return number
            if not number.is_integer():
                raise ValueError(value)
            return int(number)
        if not isinstance(value, str):
            raise ValueError(value)
        return value.strip()
    except (TypeError, ValueError):
        expected = {"number": "a finite number", "integer": "an integer"}.get(kind, f"a {kind}")
        raise ConpeekConfigError(
            f"{where} must be {expected}, got {type(value).__name__} {value!r}."
        ) from None


def _check_range(
    conn_id: str, name: str, value: float, *, minimum: float, exclusive: bool = False
) -> None:
    if value < minimum or (exclusive and value == minimum):
        bound = f"> {minimum:g}" if exclusive else f">= {minimum:g}"
        raise ConpeekConfigError(
            f"Connection {conn_id!r}: {name} must be {bound}, got {value!r}. Set it in the "
            "connection extra or as a hook argument."
        )


def _mask_url_password(url: str) -> None:
    try:
        password = urlsplit(url).password
    except ValueError:
        return
    if password:
        _mask_secret(password)


def _base_url(conn_id: str, host: str | None, schema: str | None, port: int | None) -> str:
    """The base URL from the connection, without a trailing slash.

    The host is normally the whole base URL. In the URI form of a connection
    (``conpeek://:KEY@tenant.cloud.conpeek.com/api%2Fv1_3``) Airflow splits it into host,
    port and schema (the path); then ``https`` is assumed and the parts are put back together.
    """
    example = "https://tenant.cloud.conpeek.com/api/v1_3"
    text = (host or "").strip()
    if not text:
        raise ConpeekConfigError(
            f"Connection {conn_id!r} has no host. Set the host to the API's base URL, "
            f"for example {example}."
        )
    if "://" not in text:
        text = f"https://{text}"
    try:
        parts = urlsplit(text)
        url_port = parts.port
    except ValueError:
        parts, url_port = None, None
    if parts is not None and (parts.username is not None or parts.password is not None):
        raise ConpeekConfigError(
            f"Connection {conn_id!r}: the host URL must not contain credentials; put the API "
            f"key in the password field and the plain base URL in the host, e.g. {example}."
        )
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConpeekConfigError(
            f"Connection {conn_id!r}: host {host!r} is not an http(s) URL. Use the base URL, "
            f"for example {example}."
        )
    if parts.query or parts.fragment:
        raise ConpeekConfigError(
            f"Connection {conn_id!r}: the host URL must not contain a query or a fragment. "
            f"Example: {example}."
        )
    netloc, path = parts.netloc, parts.path.strip("/")
    if port:
        if url_port is None:
            netloc = f"{netloc}:{port}"
        elif url_port != port:
            raise ConpeekConfigError(
                f"Connection {conn_id!r}: the host URL says port {url_port} but the port "
                f"field says {port}. Keep the port in the host URL only."
            )
    extra_path = (schema or "").strip().strip("/")
    if extra_path:
        if path and path != extra_path:
            raise ConpeekConfigError(
                f"Connection {conn_id!r}: the host URL has the path {path!r} but the schema "
                f"field says {extra_path!r}. Put the whole base URL in the host, e.g. {example}."
            )
        path = extra_path
    return f"{parts.scheme}://{netloc}/{path}" if path else f"{parts.scheme}://{netloc}"
