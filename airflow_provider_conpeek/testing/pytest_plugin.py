"""Pytest fixtures for the Conpeek sandbox (registered via the ``pytest11`` entry point).

Example::

    def test_extract(conpeek_sandbox, monkeypatch):
        monkeypatch.setenv("AIRFLOW_CONN_CONPEEK_DEFAULT",
                           conpeek_sandbox.airflow_connection_json())
        ...

    def test_big(conpeek_sandbox_factory):
        server = conpeek_sandbox_factory(records=100_000, max_limit=500)

Importing this module is cheap: the server module loads only when a fixture runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from airflow_provider_conpeek.testing.sandbox import SandboxServer


@pytest.fixture
def conpeek_sandbox_factory() -> Iterator[Callable[..., SandboxServer]]:
    """Callable taking :class:`SandboxServer` kwargs; returns a started server.

    Every server it made is stopped at teardown.
    """
    from airflow_provider_conpeek.testing.sandbox import SandboxServer

    servers: list[SandboxServer] = []

    def make(*args: Any, **kwargs: Any) -> SandboxServer:
        server = SandboxServer(*args, **kwargs).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def conpeek_sandbox(
    conpeek_sandbox_factory: Callable[..., SandboxServer],
) -> SandboxServer:
    """A running sandbox: 1000 records over 3 days from 2026-01-01, key ``sandbox-key``."""
    return conpeek_sandbox_factory(records=1000, days=3)
