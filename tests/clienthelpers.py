"""ConpeekClients on Airflow connections, for tests that talk to the sandbox.

A test module's ``connect`` fixture yields from ``clients``::

    @pytest.fixture
    def connect(connect_hook: Any, clock: FakeClock) -> Iterator[Callable[..., ConpeekClient]]:
        yield from clients(connect_hook, clock)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fakeclock import FakeClock

from airflow_provider_conpeek.client import ConpeekClient


def clients(
    connect_hook: Any, clock: FakeClock | None = None
) -> Iterator[Callable[..., ConpeekClient]]:
    """Yield ``connect(server, conn_id, *, extra, host, password)``: point connection
    ``conn_id`` at ``server`` (an env var, by conftest's ``connect_hook``) and return a client
    on its settings and ``clock`` (a fresh ``FakeClock`` per client when None). Every client
    is closed when the generator resumes."""
    made: list[ConpeekClient] = []

    def make(*args: Any, **kwargs: Any) -> ConpeekClient:
        client = ConpeekClient(
            connect_hook(*args, **kwargs).settings,
            clock=FakeClock() if clock is None else clock,
        )
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()
