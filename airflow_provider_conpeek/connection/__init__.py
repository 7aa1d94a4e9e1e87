"""The Conpeek connection: its form in Airflow's UI and the extras it accepts.

Every extra is described once, as an :class:`ExtraField` in :data:`EXTRA_FIELDS`. From that
description come the form of Airflow 3.2+ (:data:`CONN_FIELDS`, in the provider metadata),
the form fields of older Airflow (:func:`connection_form_widgets`), the checks of
:func:`airflow_provider_conpeek.settings.read_settings` and the docs' table of extras
(``.. conpeek-extras::``, from :mod:`.reference`).

It imports nothing heavy: it is loaded whenever Airflow lists providers.

Example::

    from airflow_provider_conpeek.connection import EXTRA_FIELDS

    EXTRA_FIELDS["read_timeout"].parse("30")  # 30.0, as typed in a form
    EXTRA_FIELDS["read_timeout"].rule  # '> 0 and <= 3600'
"""

from __future__ import annotations

from typing import Any

from airflow_provider_conpeek.client.settings import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_PAGES,
    DEFAULT_MAX_RETRIES,
    DEFAULT_MAX_RETRY_WAIT,
    DEFAULT_READ_TIMEOUT,
)
from airflow_provider_conpeek.connection.field import ExtraField
from airflow_provider_conpeek.connection.widgets import form_widgets

CONN_TYPE = "conpeek"
HOOK_NAME = "Conpeek"
DEFAULT_CONN_ID = "conpeek_default"
EXTRA_PREFIX = f"extra__{CONN_TYPE}__"
"""The prefix older forms put before an extra's name; accepted and removed when read."""

MAX_SECONDS = 3600.0
"""Upper bound of every timeout and wait. A longer one is nearly always milliseconds typed
as seconds and would hold a worker slot idle (Airflow's task retries are the tool for long
pauses); past about 292 years, socket and threading timeouts overflow."""

MAX_CONCURRENCY_CAP = 64
"""Upper bound of ``max_concurrency``: a thread and a connection each; more is a typo."""

EXTRA_FIELDS: dict[str, ExtraField] = {
    extra.name: extra
    for extra in (
        ExtraField(
            "connect_timeout",
            "number",
            "Connect timeout (s)",
            "Seconds to wait for the TCP/TLS connection to the API server.",
            default=DEFAULT_CONNECT_TIMEOUT,
            exclusive_minimum=0,
            maximum=MAX_SECONDS,
        ),
        ExtraField(
            "read_timeout",
            "number",
            "Read timeout (s)",
            "Seconds to wait for the server between bytes of a response.",
            default=DEFAULT_READ_TIMEOUT,
            exclusive_minimum=0,
            maximum=MAX_SECONDS,
        ),
        ExtraField(
            "max_retries",
            "integer",
            "Max retries",
            "Retries after the first try on HTTP 408, 429 and 5xx (except 501), connection "
            "errors and timeouts. 0 disables retrying.",
            default=DEFAULT_MAX_RETRIES,
            minimum=0,
        ),
        ExtraField(
            "max_retry_wait",
            "number",
            "Max wait between retries (s)",
            "Cap, in seconds, on each single wait between tries, Retry-After included.",
            default=DEFAULT_MAX_RETRY_WAIT,
            exclusive_minimum=0,
            maximum=MAX_SECONDS,
        ),
        ExtraField(
            "max_pages",
            "integer",
            "Max pages per extract",
            "Safety ceiling on the pages of data one extract may fetch: an extract needing "
            "more fails instead of looping.",
            default=DEFAULT_MAX_PAGES,
            minimum=1,
        ),
        ExtraField(
            "max_concurrency",
            "integer",
            "Max requests in flight",
            "Ceiling on the requests one extract sends at once. Extracts adapt below it: "
            "fewer when the server answers 429 or slows down. 1 pages sequentially.",
            default=DEFAULT_MAX_CONCURRENCY,
            minimum=1,
            maximum=MAX_CONCURRENCY_CAP,
            details="Several extracts at once (mapped tasks, backfills) each have this "
            "ceiling: cap how many run together with an Airflow pool.",
        ),
        ExtraField(
            "verify",
            "boolean",
            "Verify TLS certificates",
            "Set false only for a test server with a self-signed certificate.",
            default=True,
            details="With ``true`` and no ``ca_bundle``, a bundle named by "
            "``REQUESTS_CA_BUNDLE`` or ``CURL_CA_BUNDLE`` in the environment is used, as "
            "``requests`` would.",
        ),
        ExtraField(
            "ca_bundle",
            "string",
            "CA bundle path",
            "Path to a PEM file of CA certificates to trust instead of the default.",
            details="When set, it takes the place of ``verify``.",
        ),
        ExtraField(
            "proxy",
            "string",
            "Proxy URL",
            "Proxy for both http and https requests, e.g. http://proxy.internal:3128.",
            details="When it is set, the proxy environment variables are ignored. When it is "
            "not, the environment's proxies apply (``HTTPS_PROXY``, ``HTTP_PROXY``, "
            "``ALL_PROXY``, ``NO_PROXY``, upper or lower case), read once when the client "
            "opens an HTTP session rather than on every request: a ``NO_PROXY`` match for "
            "the base URL means no proxy, and a change to them reaches only later sessions.",
        ),
    )
}
"""Every extra of the connection, by name, in the form's order.

:meta hide-value:
"""

CONN_FIELDS: dict[str, dict[str, Any]] = {
    name: extra.conn_field() for name, extra in EXTRA_FIELDS.items()
}
"""The ``conn-fields`` of the provider metadata: label, help and JSON schema by extra.

:meta hide-value:
"""

UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["schema", "login", "port"],
    "relabeling": {"host": "Base URL", "password": "API key"},
    "placeholders": {
        "host": "https://tenant.cloud.conpeek.com/api/v1_3",
        "password": "the raw API key (sent as the Authorization header)",
    },
}
"""The standard fields: which are hidden, relabelled and given a placeholder."""


def connection_type_metadata() -> dict[str, Any]:
    """The ``connection-types`` entry of the provider metadata (Airflow 3.2+'s form)."""
    return {
        "connection-type": CONN_TYPE,
        "hook-class-name": "airflow_provider_conpeek.hooks.conpeek.ConpeekHook",
        "hook-name": HOOK_NAME,
        "conn-fields": CONN_FIELDS,
        "ui-field-behaviour": UI_FIELD_BEHAVIOUR,
    }


def ui_field_behaviour() -> dict[str, Any]:
    """The same behaviour in the shape of ``BaseHook.get_ui_field_behaviour()`` (before 3.2)."""
    return {
        "hidden_fields": list(UI_FIELD_BEHAVIOUR["hidden-fields"]),
        "relabeling": dict(UI_FIELD_BEHAVIOUR["relabeling"]),
        "placeholders": dict(UI_FIELD_BEHAVIOUR["placeholders"]),
    }


def connection_form_widgets() -> dict[str, Any]:
    """The extras as wtforms fields for the form of Airflow before 3.2; ``{}`` without wtforms."""
    return form_widgets(EXTRA_FIELDS)


__all__ = [
    "CONN_FIELDS",
    "CONN_TYPE",
    "DEFAULT_CONN_ID",
    "EXTRA_FIELDS",
    "EXTRA_PREFIX",
    "HOOK_NAME",
    "MAX_CONCURRENCY_CAP",
    "MAX_SECONDS",
    "UI_FIELD_BEHAVIOUR",
    "ExtraField",
    "connection_form_widgets",
    "connection_type_metadata",
    "ui_field_behaviour",
]
