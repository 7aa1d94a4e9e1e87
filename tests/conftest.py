"""Shared test set-up: an isolated Airflow home (SQLite), a real S3 API over HTTP (moto's
server mode) and Airflow connections pointing at the Conpeek sandbox; the first two come from
``harness.py``, shared with ``make demo`` and ``make bench``.

Airflow reads its configuration when first imported, so the environment is set here, at
conftest import, before any test module imports Airflow.
"""

from __future__ import annotations

import atexit
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import AirflowHome, S3Server
from hypothesis import HealthCheck, settings

# The sandbox fixtures are opt-in, as they are for users (see docs/sandbox.rst); the GCS
# and Azure servers' fixtures live beside their servers.
pytest_plugins = ["airflow_provider_conpeek.testing.pytest_plugin", "gcs_server", "azurite_server"]

# Hypothesis: no deadline and no too_slow health check (a fresh clone has no example
# database and a loaded 2-core machine is slow); derandomized under CI, so a CI run is
# reproducible. The "ci" profile is chosen when CI is set (as .ci/run does).
settings.register_profile(
    "dev", deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
settings.register_profile(
    "ci",
    parent=settings.get_profile("dev"),
    derandomize=True,
    database=None,
    print_blob=True,
)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

ROOT = Path(__file__).resolve().parent.parent

# The session's Airflow home (SQLite, DAGs folder example_dags/), removed at exit.
SESSION_HOME = AirflowHome(dags=ROOT / "example_dags")
atexit.register(SESSION_HOME.close)
SESSION_HOME.activate()


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated SQLite metadata database in the session's AIRFLOW_HOME."""
    SESSION_HOME.migrate()
    return SESSION_HOME.path


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    with S3Server() as server:
        yield server


@pytest.fixture
def s3_bucket(s3_server: S3Server, request: pytest.FixtureRequest) -> str:
    """A fresh, empty bucket for one test."""
    name = "t-" + "".join(c if c.isalnum() else "-" for c in request.node.name.lower())[:50]
    return s3_server.fresh_bucket(name.strip("-") + f"-{os.getpid() % 1000}")


@pytest.fixture
def tmpdir_watch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Route the operator's temporary files into a directory the test can inspect (with
    ``harness.temp_leftovers``)."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


@pytest.fixture
def sb(conpeek_sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The sandbox as ``conpeek_default``, with one fast retry (transient tests stay short)."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_CONPEEK_DEFAULT",
        conpeek_sandbox.airflow_connection_json(max_retries=1, max_retry_wait=0.05),
    )
    return conpeek_sandbox


@pytest.fixture
def airflow_connections(
    monkeypatch: pytest.MonkeyPatch, conpeek_sandbox: Any, s3_server: S3Server
) -> Any:
    """``conpeek_default`` -> the sandbox and ``aws_default`` -> the S3 server, as env vars."""
    monkeypatch.setenv("AIRFLOW_CONN_CONPEEK_DEFAULT", conpeek_sandbox.airflow_connection_json())
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", s3_server.connection_json())
    return conpeek_sandbox


@pytest.fixture
def connect_hook(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``connect_hook(server, conn_id, *, extra, host, password, **hook_kwargs)``: point the
    Airflow connection ``conn_id`` (an env var) at ``server``, with changes, and return a
    ``ConpeekHook`` on it."""
    from airflow_provider_conpeek.hooks.conpeek import ConpeekHook

    def make(
        server: Any,
        conn_id: str = "conpeek_default",
        *,
        extra: dict[str, Any] | None = None,
        host: str | None = None,
        password: str | None = None,
        **hook_kwargs: Any,
    ) -> ConpeekHook:
        conn = server.airflow_connection_dict(**(extra or {}))
        conn.update({k: v for k, v in (("host", host), ("password", password)) if v is not None})
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
        return ConpeekHook(conpeek_conn_id=conn_id, **hook_kwargs)

    return make


_REPORT: list[str] = []


@pytest.fixture
def report() -> Any:
    """Add a line to the summary printed at the end of the run (e.g. retries per scenario)."""
    return _REPORT.append


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _REPORT:
        terminalreporter.section("reliability scenarios")
        for line in _REPORT:
            terminalreporter.write_line(line)
