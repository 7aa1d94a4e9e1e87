"""Connection settings: an Airflow connection validated into what a request needs.

Every problem is reported before any request is sent, naming the connection and the fix:
a missing key or host, an unknown extra, or one of the wrong type or out of its range (the
types and ranges are those of :data:`~airflow_provider_conpeek.connection.EXTRA_FIELDS`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_conpeek._compat import mask_secret
from airflow_provider_conpeek.client.responses import redact
from airflow_provider_conpeek.client.retry import RetryPolicy
from airflow_provider_conpeek.client.settings import ConpeekSettings
from airflow_provider_conpeek.connection import EXTRA_FIELDS, EXTRA_PREFIX
from airflow_provider_conpeek.connection.field import ExtraField, format_value
from airflow_provider_conpeek.exceptions import ConpeekConfigError


def read_settings(conn_id: str, conn: Any, overrides: Mapping[str, Any]) -> ConpeekSettings:
    """Validate an Airflow connection (and hook-argument overrides) into settings.

    :param conn_id: the connection's id, named in every error.
    :param conn: the Airflow ``Connection``.
    :param overrides: hook arguments named like extras; ``None`` means "use the extra".
    :raises ConpeekConfigError: naming the connection, the field and the fix, never the key.

    Example::

        settings = read_settings("conpeek_default", BaseHook.get_connection("conpeek_default"),
                                 {"read_timeout": 30})
    """
    api_key = _api_key(conn_id, conn.password)
    base_url = _base_url(conn_id, conn.host, conn.schema, conn.port)
    values: dict[str, Any] = {name: extra.default for name, extra in EXTRA_FIELDS.items()}
    try:
        values.update(_read_extra(conn_id, conn.extra))
        values.update(_read_overrides(conn_id, overrides))
    except ConpeekConfigError as error:  # a value echoed back could be a misplaced key
        raise ConpeekConfigError(redact(str(error), api_key)) from None
    verify: bool | str = values["ca_bundle"] or values["verify"]
    proxy = values["proxy"] or None
    if proxy:
        _mask_url_password(proxy)
    return ConpeekSettings(
        conn_id=conn_id,
        base_url=base_url,
        api_key=api_key,
        connect_timeout=values["connect_timeout"],
        read_timeout=values["read_timeout"],
        max_pages=values["max_pages"],
        max_concurrency=values["max_concurrency"],
        retry=RetryPolicy(max_retries=values["max_retries"], max_wait=values["max_retry_wait"]),
        verify=verify,
        proxy=proxy,
    )


def _api_key(conn_id: str, password: str | None) -> str:
    """The key from the password field, stripped and registered with the secrets masker."""
    raw_key = password or ""
    api_key = raw_key.strip()  # a key pasted or read from a file often ends with a newline
    mask_secret(raw_key)
    mask_secret(api_key)
    if api_key[:7].lower() == "bearer ":  # refused with a hint later; mask the bare key too
        mask_secret(api_key[7:].strip())
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
    return api_key


def _read_extra(conn_id: str, raw: str | None) -> dict[str, Any]:
    """The extras that are set, by un-prefixed name, converted and checked.

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
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for raw_key, value in extra.items():
        key = str(raw_key).removeprefix(EXTRA_PREFIX)
        if key not in EXTRA_FIELDS:
            raise ConpeekConfigError(
                f"Connection {conn_id!r} has an unknown extra field {raw_key!r}. "
                f"Known extras: {', '.join(sorted(EXTRA_FIELDS))}. Remove or rename it."
            )
        if value is None or (isinstance(value, str) and not value.strip()):
            continue  # an empty form field means "use the default"
        extra_field = EXTRA_FIELDS[key]
        fix = "Correct it in the connection's extra, or remove it"
        if extra_field.default is not None:
            fix += f" to use the default ({format_value(extra_field.default)})"
        where = f"Connection {conn_id!r}: extra {raw_key!r}"
        parsed = _parse(extra_field, value, where, f"{fix}.")
        if key in values and values[key] != parsed:
            raise ConpeekConfigError(
                f"Connection {conn_id!r}: extras {sources[key]!r} and {raw_key!r} disagree "
                f"({values[key]!r} vs {parsed!r}). Keep only one of them."
            )
        values[key], sources[key] = parsed, str(raw_key)
    return values


def _read_overrides(conn_id: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The hook arguments that are set, converted and checked like the extras."""
    values: dict[str, Any] = {}
    for name, value in overrides.items():
        if value is not None:
            where = f"Argument {name!r} (connection {conn_id!r})"
            fix = "Fix the argument, or pass None to use the connection's extra or default."
            values[name] = _parse(EXTRA_FIELDS[name], value, where, fix)
    return values


def _parse(extra: ExtraField, value: object, where: str, fix: str) -> Any:
    """``extra.parse(value)``, its problem raised as a ConpeekConfigError: where, what, fix."""
    try:
        return extra.parse(value)
    except ValueError as problem:
        raise ConpeekConfigError(f"{where} {problem}. {fix}") from None


def _mask_url_password(url: str) -> None:
    try:
        password = urlsplit(url).password
    except ValueError:
        return
    if password:
        mask_secret(password)


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
