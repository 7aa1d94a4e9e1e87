"""ConpeekHook: connection -> validated settings -> client, and the Test button."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable

import pytest

from airflow_provider_conpeek.client import ConpeekClient
from airflow_provider_conpeek.hooks.conpeek import ConpeekHook
from airflow_provider_conpeek.testing.sandbox import RequestLogEntry, SandboxServer

Factory = Callable[..., SandboxServer]
KEY = "sk-LEAK-7f3a9c1e5b2d"


@pytest.fixture
def connect(connect_hook: Callable[..., ConpeekHook]) -> Callable[..., ConpeekHook]:
    return connect_hook


def api_log(server: SandboxServer) -> list[RequestLogEntry]:
    return [e for e in server.request_log if e.path.endswith("voice_campaign_request_summary")]


def test_get_conn_is_a_client_on_the_connection_settings(
    conpeek_sandbox: SandboxServer, connect: Callable[..., ConpeekHook]
) -> None:
    hook = connect(conpeek_sandbox, read_timeout=7, extra={"max_retries": 2})
    with hook.get_conn() as client:
        assert isinstance(client, ConpeekClient)
        assert client.settings is hook.settings
        assert client.settings.base_url == conpeek_sandbox.url
        assert client.settings.read_timeout == 7.0  # the hook argument wins
        assert client.settings.retry.max_retries == 2  # from the extra
        assert client.has_at_least(None, 1) is True
    assert repr(hook) == "ConpeekHook(conpeek_conn_id='conpeek_default')"


def test_client_works_without_airflow(conpeek_sandbox: SandboxServer) -> None:
    """The client package is plain Python: it runs with every ``airflow`` import blocked."""
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["airflow"] = None  # any import of Airflow now raises ImportError
        from airflow_provider_conpeek.client import ConpeekClient, ConpeekSettings
        from airflow_provider_conpeek.exceptions import ConpeekAuthError
        settings = ConpeekSettings("plain", {conpeek_sandbox.url!r}, "sandbox-key")
        with ConpeekClient(settings) as client:
            print(sum(map(len, client.iter_pages(page_size=300, concurrency=2))))
        try:
            ConpeekClient(ConpeekSettings("plain", {conpeek_sandbox.url!r}, "bad")).check()
        except ConpeekAuthError as exc:
            print(type(exc).__mro__[1].__name__, exc.status)
        print(sorted(m for m, v in sys.modules.items() if v and m.split(".")[0] == "airflow"))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split("\n")
    assert out[:3] == [str(len(conpeek_sandbox.expected_records())), "ConpeekAPIError 401", "[]"]


# -- test_connection ----------------------------------------------------------------------


def test_test_connection_ok_with_one_small_request(
    conpeek_sandbox: SandboxServer, connect: Callable[..., ConpeekHook]
) -> None:
    ok, message = connect(conpeek_sandbox).test_connection()
    assert ok is True, message
    assert conpeek_sandbox.url in message
    assert [e.query for e in api_log(conpeek_sandbox)] == ["limit=1&offset=0"]


def test_test_connection_wrong_key(
    conpeek_sandbox: SandboxServer, connect: Callable[..., ConpeekHook]
) -> None:
    ok, message = connect(conpeek_sandbox, "conpeek_bad", password=KEY).test_connection()
    assert ok is False
    assert "conpeek_bad" in message
    assert "401" in message
    assert KEY not in message
    assert len(api_log(conpeek_sandbox)) == 1


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_test_connection_unreachable_host(
    conpeek_sandbox: SandboxServer, connect: Callable[..., ConpeekHook]
) -> None:
    host = f"http://127.0.0.1:{_closed_port()}/api/v1_3"
    hook = connect(conpeek_sandbox, "conpeek_gone", host=host, password=KEY)
    ok, message = hook.test_connection()
    assert ok is False
    assert "after 1 tries" in message  # the UI button never waits for retries
    assert "127.0.0.1" in message
    assert KEY not in message


def test_test_connection_bad_config_is_reported(
    conpeek_sandbox: SandboxServer, connect: Callable[..., ConpeekHook]
) -> None:
    ok, message = connect(
        conpeek_sandbox, "conpeek_typo", extra={"read_timout": 1}
    ).test_connection()
    assert ok is False
    assert "read_timout" in message
