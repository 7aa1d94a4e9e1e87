"""Shared test set-up: an isolated Airflow home (SQLite), a real S3 API over HTTP (moto's
server mode) and Airflow connections pointing at the Conpeek sandbox.

Airflow reads its configuration when first imported, so the environment is set here, at
conftest import, before any test module imports Airflow.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

# The sandbox fixtures are opt-in, as they are for users (see docs/sandbox.rst).
pytest_plugins = ["airflow_provider_conpeek.testing.pytest_plugin"]

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
EXAMPLE_DAGS = ROOT / "example_dags"
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="conpeek-airflow-home-"))
atexit.register(shutil.rmtree, _AIRFLOW_HOME, ignore_errors=True)

os.environ.update(
    {
        "AIRFLOW_HOME": str(_AIRFLOW_HOME),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_AIRFLOW_HOME}/airflow.db",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(EXAMPLE_DAGS),
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "1",  # Airflow retries without the 300 s wait
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",  # moto's fake credentials
        "AWS_DEFAULT_REGION": "us-east-1",
    }
)
for _name in list(os.environ):
    if _name.startswith("AIRFLOW_CONN_"):
        del os.environ[_name]


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated SQLite metadata database in the session's AIRFLOW_HOME."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        capture_output=True,
        env=os.environ.copy(),
    )
    return _AIRFLOW_HOME


class S3Server:
    """moto's S3 API served over real HTTP on loopback."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name="us-east-1")

    def connection_json(self) -> str:
        """An ``AIRFLOW_CONN_AWS_DEFAULT`` value pointing at this server."""
        return json.dumps(
            {
                "conn_type": "aws",
                "extra": {"endpoint_url": self.endpoint_url, "region_name": "us-east-1"},
            }
        )

    def create_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def read(self, bucket: str, key: str) -> bytes:
        body: bytes = self.client().get_object(Bucket=bucket, Key=key)["Body"].read()
        return body

    def keys(self, bucket: str) -> list[str]:
        listing = self.client().list_objects_v2(Bucket=bucket)
        return [item["Key"] for item in listing.get("Contents", [])]

    def stop(self) -> None:
        self._server.stop()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    server = S3Server()
    yield server
    server.stop()


@pytest.fixture
def s3_bucket(s3_server: S3Server, request: pytest.FixtureRequest) -> str:
    """A fresh, empty bucket for one test."""
    name = "t-" + "".join(c if c.isalnum() else "-" for c in request.node.name.lower())[:50]
    name = name.strip("-") + f"-{os.getpid() % 1000}"
    client = s3_server.client()
    for key in s3_server.keys(name) if _bucket_exists(client, name) else []:
        client.delete_object(Bucket=name, Key=key)
    if not _bucket_exists(client, name):
        client.create_bucket(Bucket=name)
    return name


def _bucket_exists(client: Any, name: str) -> bool:
    try:
        client.head_bucket(Bucket=name)
    except Exception:
        return False
    return True


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
