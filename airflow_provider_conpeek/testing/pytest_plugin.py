"""Pytest fixtures for the Conpeek sandbox: ``conpeek_sandbox`` and ``conpeek_sandbox_factory``.

The fixtures are opt-in: installing the provider adds none to your pytest sessions. Load
them in your project's top-level ``conftest.py``::

    pytest_plugins = ["airflow_provider_conpeek.testing.pytest_plugin"]

Example::

    def test_extract(conpeek_sandbox, monkeypatch):
        for name, value in conpeek_sandbox.airflow_connection_env().items():
            monkeypatch.setenv(name, value)
        ...

    def test_big(conpeek_sandbox_factory):
        server = conpeek_sandbox_factory(records=100_000, max_limit=500)

Loading this module is cheap: the server module is imported only when a fixture runs.

.. seealso:: :doc:`/sandbox`, section *pytest fixtures*.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from airflow_provider_conpeek.testing.sandbox import SandboxServer


@pytest.fixture
def conpeek_sandbox_factory() -> Iterator[Callable[..., SandboxServer]]:
    """A callable taking :class:`~.sandbox.SandboxServer`'s arguments; returns it started.

    Every server it made is stopped at teardown.

    Example::

        def test_clamped(conpeek_sandbox_factory):
            server = conpeek_sandbox_factory(records=300, max_limit=50)
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
    """A running sandbox: 1000 records over 3 days from 2026-01-01, key ``sandbox-key``.

    Stopped at teardown.
    """
    return conpeek_sandbox_factory(records=1000, days=3)
