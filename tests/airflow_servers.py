"""Airflow's HTTP server, the one of the installed version: what differs between them, in one
place.

* :class:`ApiServer` (Airflow 3.x): ``airflow api-server``, REST API v2 at ``/api/v2``, the
  simple auth manager with every user an admin; API calls carry the token that
  ``GET /auth/token`` hands out (3.1 refuses calls without one). The scheduler needs a
  separate ``airflow dag-processor``.
* :class:`Webserver` (Airflow 2.11): ``airflow webserver`` (Flask-AppBuilder), REST API v1 at
  ``/api/v1`` with basic auth for the tests and the session for the UI, an admin user made
  with ``airflow users create``. The scheduler parses the DAGs itself.

:func:`airflow_server` picks the class for :func:`airflow_version`.
"""

from __future__ import annotations

import base64
import functools
import importlib.metadata
import json
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar

from packaging.version import Version


@functools.cache
def airflow_version() -> Version:
    """The installed Airflow's version, e.g. ``Version("3.1.8")``.

    The same number as ``airflow.__version__``, read from the package metadata instead: an
    ``AirflowHome`` is made (tests/conftest.py) before its environment is set, and importing
    ``airflow`` then would load the configuration of the wrong ``AIRFLOW_HOME``.
    """
    try:  # Airflow 3's code is in apache-airflow-core (apache-airflow pulls it in)
        return Version(importlib.metadata.version("apache-airflow-core"))
    except importlib.metadata.PackageNotFoundError:  # Airflow 2
        return Version(importlib.metadata.version("apache-airflow"))


class AirflowServer(ABC):
    """How to start, and talk to, the HTTP server (UI and REST API) of one Airflow flavour.

    ``url`` is where it listens (``http://127.0.0.1:<port>``).
    """

    command: ClassVar[str]
    """The ``airflow`` sub-command starting it (also the name of its process log)."""
    rest_api: ClassVar[str]
    """The path of the REST API's root."""
    health_path: ClassVar[str]
    upstream_events: ClassVar[str]
    """REST path (under ``rest_api``) of the asset events a DAG run consumed, with
    ``{dag_id}`` and ``{run_id}``; the response lists them under ``events_key``."""
    events_key: ClassVar[str]
    """A path answering 200 once the server serves requests."""
    scheduler_components: ClassVar[tuple[str, ...]]
    """The ``airflow`` sub-commands running the DAGs, besides this server."""

    def __init__(self, url: str) -> None:
        self.url = url

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @abstractmethod
    def env(self) -> dict[str, str]:
        """The settings every process started from the home needs."""

    @abstractmethod
    def scheduler_env(self) -> dict[str, str]:
        """Settings for the processes running the DAGs: executor, DAG parsing."""

    @abstractmethod
    def args(self) -> list[str]:
        """The ``airflow`` command line starting the server on 127.0.0.1:``port``."""

    def prepare(self, run_airflow: Callable[..., object]) -> None:  # noqa: B027 (optional)
        """One-off set-up before the server starts (the database is migrated), with
        ``run_airflow(*args)`` running an ``airflow`` CLI command to completion."""

    @abstractmethod
    def auth_headers(self) -> dict[str, str]:
        """The headers authenticating a REST API call (the server is up)."""


class ApiServer(AirflowServer):
    """Airflow 3.x: ``airflow api-server``, the simple auth manager, every user an admin."""

    command = "api-server"
    rest_api = "/api/v2"
    health_path = "/api/v2/monitor/health"
    upstream_events = "/dags/{dag_id}/dagRuns/{run_id}/upstreamAssetEvents"
    events_key = "asset_events"
    scheduler_components = ("dag-processor", "scheduler", "triggerer")
    SIMPLE_AUTH_MANAGER = (
        "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
    )

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._token: str | None = None

    def env(self) -> dict[str, str]:
        return {
            "AIRFLOW__CORE__AUTH_MANAGER": self.SIMPLE_AUTH_MANAGER,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__API__BASE_URL": self.url,
            # Shared by every process: tokens the scheduler signs for task workers must
            # verify in the API server.
            "AIRFLOW__API_AUTH__JWT_SECRET": "conpeek-test-jwt-secret-" + "x" * 48,
            "AIRFLOW__API__SECRET_KEY": "conpeek-test-secret-key",
            "AIRFLOW__API__WORKERS": "1",
        }

    def scheduler_env(self) -> dict[str, str]:
        return {
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",  # 3.x accepts it on SQLite
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "120",
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
        }

    def args(self) -> list[str]:
        return ["api-server", "--host", "127.0.0.1", "--port", str(self.port)]

    def auth_headers(self) -> dict[str, str]:
        if self._token is None:
            # With every user an admin, GET /auth/token hands a token to anyone.
            with urllib.request.urlopen(f"{self.url}/auth/token", timeout=30) as response:  # noqa: S310
                self._token = str(json.loads(response.read())["access_token"])
        return {"Authorization": f"Bearer {self._token}"}


class Webserver(AirflowServer):
    """Airflow 2.11: ``airflow webserver`` (Flask-AppBuilder) with an admin user.

    The REST API takes basic auth (these tests) and the UI's session (its Test button).
    """

    command = "webserver"
    rest_api = "/api/v1"
    health_path = "/health"
    upstream_events = "/dags/{dag_id}/dagRuns/{run_id}/upstreamDatasetEvents"
    events_key = "dataset_events"
    scheduler_components = ("scheduler", "triggerer")
    username = "admin"
    password = "conpeek-admin-password"

    def env(self) -> dict[str, str]:
        return {
            "AIRFLOW__API__AUTH_BACKENDS": (
                "airflow.providers.fab.auth_manager.api.auth.backend.basic_auth,"
                "airflow.api.auth.backend.session"
            ),
            "AIRFLOW__WEBSERVER__BASE_URL": self.url,
            "AIRFLOW__WEBSERVER__SECRET_KEY": "conpeek-test-secret-key",
            "AIRFLOW__WEBSERVER__WORKERS": "1",
            # gunicorn's master gives up on a worker not up in time: a busy machine is slow.
            "AIRFLOW__WEBSERVER__WEB_SERVER_MASTER_TIMEOUT": "600",
            "AIRFLOW__WEBSERVER__WEB_SERVER_WORKER_TIMEOUT": "600",
        }

    def scheduler_env(self) -> dict[str, str]:
        return {
            # Airflow 2 refuses any other executor on SQLite ("cannot use SQLite with the
            # LocalExecutor"); the SequentialExecutor runs one `airflow tasks run` at a time.
            "AIRFLOW__CORE__EXECUTOR": "SequentialExecutor",
            "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "120",
            "AIRFLOW__SCHEDULER__PARSING_PROCESSES": "1",
        }

    def args(self) -> list[str]:
        return ["webserver", "--hostname", "127.0.0.1", "--port", str(self.port)]

    def prepare(self, run_airflow: Callable[..., object]) -> None:
        run_airflow(
            "users", "create", "--role", "Admin", "--username", self.username,
            "--password", self.password, "--email", "admin@example.com",
            "--firstname", "Conpeek", "--lastname", "Admin",
        )  # fmt: skip

    def auth_headers(self) -> dict[str, str]:
        pair = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return {"Authorization": f"Basic {pair}"}


def airflow_server(url: str) -> AirflowServer:
    """The server of the installed Airflow, to listen on ``url``."""
    return Webserver(url) if airflow_version().major < 3 else ApiServer(url)
