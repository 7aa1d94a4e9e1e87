"""The Conpeek HTTP client: plain Python, usable without Airflow.

* :mod:`.settings` -- :class:`ConpeekSettings`, everything a request needs.
* :mod:`.client` -- :class:`ConpeekClient`: sessions, retries, URLs, pages, records.
* :mod:`.auth` -- the ``Authorization`` header and the session's headers.
* :mod:`.retry` -- backoff, ``Retry-After``, the shared 429 gate, the injectable clock.
* :mod:`.responses` -- HTTP answers to records or to clear errors.
* :mod:`.paging` -- limit/offset paging and its stop conditions.

Example::

    from airflow_provider_conpeek.client import ConpeekClient, ConpeekSettings

    settings = ConpeekSettings("local", "http://127.0.0.1:8080/api/v1_3", "sandbox-key")
    with ConpeekClient(settings) as client:
        print(client.has_at_least(None, 1))
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_conpeek.client.client import ConpeekClient
    from airflow_provider_conpeek.client.retry import Clock, RetryPolicy
    from airflow_provider_conpeek.client.settings import ConpeekSettings

__all__ = ["Clock", "ConpeekClient", "ConpeekSettings", "RetryPolicy"]

# Imported on first use: Airflow imports the provider metadata (which needs only the
# defaults in .settings) whenever it lists providers, and must not pay for requests.
_HOMES = {
    "ConpeekClient": "client",
    "Clock": "retry",
    "RetryPolicy": "retry",
    "ConpeekSettings": "settings",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
