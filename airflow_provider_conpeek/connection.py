"""The Conpeek connection: its form in Airflow's UI and the extras it accepts.

This module is the single source of truth for the connection form. Airflow 3.2+ reads it
through the provider metadata (``conn-fields`` / ``ui-field-behaviour``); Airflow 3.0-3.1
through :meth:`ConpeekHook.get_ui_field_behaviour` and
:meth:`ConpeekHook.get_connection_form_widgets`, which are built from the same data.

Every extra is optional. Timeouts are always set: ``connect_timeout`` (default 10 s) and
``read_timeout`` (default 60 s) come from the extra when present, and a
:class:`~airflow_provider_conpeek.hooks.conpeek.ConpeekHook` argument of the same name
overrides both. Keys may carry the UI prefix (``extra__conpeek__read_timeout``); empty
values mean the default; an unknown key or a value of the wrong type raises
:class:`~airflow_provider_conpeek.exceptions.ConpeekConfigError` naming it.

It imports nothing heavy: it is loaded whenever Airflow lists providers.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_conpeek.client.settings import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_PAGES,
    DEFAULT_MAX_RETRIES,
    DEFAULT_MAX_RETRY_WAIT,
    DEFAULT_READ_TIMEOUT,
)

CONN_TYPE = "conpeek"
HOOK_NAME = "Conpeek"
DEFAULT_CONN_ID = "conpeek_default"

# Extras: name -> (label, JSON-schema type, default, description).
# The extra keys are stored un-prefixed in Connection.extra (``{"read_timeout": 30}``).
EXTRA_FIELDS: dict[str, dict[str, Any]] = {
    "connect_timeout": {
        "label": "Connect timeout (s)",
        "schema": {"type": ["number", "null"], "default": DEFAULT_CONNECT_TIMEOUT},
        "description": "Seconds to wait for the connection to the API server.",
    },
    "read_timeout": {
        "label": "Read timeout (s)",
        "schema": {"type": ["number", "null"], "default": DEFAULT_READ_TIMEOUT},
        "description": "Seconds to wait for the server between bytes of a response.",
    },
    "max_retries": {
        "label": "Max retries",
        "schema": {"type": ["integer", "null"], "default": DEFAULT_MAX_RETRIES},
        "description": "Retries after the first try on 429, 5xx, connection errors, timeouts.",
    },
    "max_retry_wait": {
        "label": "Max wait between retries (s)",
        "schema": {"type": ["number", "null"], "default": DEFAULT_MAX_RETRY_WAIT},
        "description": "Cap on each wait, Retry-After included.",
    },
    "max_pages": {
        "label": "Max pages per extract",
        "schema": {"type": ["integer", "null"], "default": DEFAULT_MAX_PAGES},
        "description": "Safety ceiling: an extract needing more pages fails instead of looping.",
    },
    "verify": {
        "label": "Verify TLS certificates",
        "schema": {"type": ["boolean", "null"], "default": True},
        "description": "Set false only for a test server with a self-signed certificate.",
    },
    "ca_bundle": {
        "label": "CA bundle path",
        "schema": {"type": ["string", "null"]},
        "description": "Path to a PEM file of CA certificates to trust instead of the default.",
    },
    "proxy": {
        "label": "HTTPS proxy URL",
        "schema": {"type": ["string", "null"]},
        "description": "For example http://proxy.internal:3128; used for http and https.",
    },
}

UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["schema", "login", "port"],
    "relabeling": {"host": "Base URL", "password": "API key"},
    "placeholders": {
        "host": "https://tenant.cloud.conpeek.com/api/v1_3",
        "password": "the raw API key (sent as the Authorization header)",
    },
}


def connection_type_metadata() -> dict[str, Any]:
    """The ``connection-types`` entry of the provider metadata (Airflow 3.2+ form)."""
    return {
        "connection-type": CONN_TYPE,
        "hook-class-name": "airflow_provider_conpeek.hooks.conpeek.ConpeekHook",
        "hook-name": HOOK_NAME,
        "conn-fields": EXTRA_FIELDS,
        "ui-field-behaviour": UI_FIELD_BEHAVIOUR,
    }


def ui_field_behaviour() -> dict[str, Any]:
    """The same behaviour in the shape of ``BaseHook.get_ui_field_behaviour()`` (3.0-3.1)."""
    return {
        "hidden_fields": list(UI_FIELD_BEHAVIOUR["hidden-fields"]),
        "relabeling": dict(UI_FIELD_BEHAVIOUR["relabeling"]),
        "placeholders": dict(UI_FIELD_BEHAVIOUR["placeholders"]),
    }


def connection_form_widgets() -> dict[str, Any]:
    """The extras as form fields for Airflow 2.11-3.1's connection form (needs wtforms)."""
    try:
        from wtforms import BooleanField, IntegerField, StringField
    except ImportError:  # Airflow 3.2+: the form comes from the provider metadata
        return {}
    kinds = {"integer": IntegerField, "boolean": BooleanField}
    widgets: dict[str, Any] = {}
    for name, spec in EXTRA_FIELDS.items():
        field_class = kinds.get(spec["schema"]["type"][0], StringField)
        widgets[name] = field_class(spec["label"], description=spec["description"])
    return widgets
