"""The one set-up shared by the tests, ``make demo`` and ``make bench``.

* :class:`S3Server`: moto's S3 API served over real HTTP on loopback (a thread of this
  process), with a boto3 client and the ``AIRFLOW_CONN_AWS_DEFAULT`` value pointing at it.
* :class:`AirflowHome`: a throw-away ``AIRFLOW_HOME`` with its own SQLite database, DAGs
  folder and the environment every ``airflow`` command started from it shares;
  :meth:`~AirflowHome.migrate`, :meth:`~AirflowHome.start` (``scheduler``, ...),
  :meth:`~AirflowHome.start_server` (the installed Airflow's HTTP server: ``api-server`` on
  3.x, ``webserver`` on 2.11, see ``airflow_servers.py``), :meth:`~AirflowHome.api` (its
  REST API), :meth:`~AirflowHome.stop_all`. Its processes are ``processes.Process`` objects
  (see ``processes.py``).

The dev scripts import this module by putting ``tests/`` on ``sys.path``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from airflow_servers import AirflowServer, airflow_server
from processes import Process, free_port, wait_for

AIRFLOW = [sys.executable, "-m", "airflow"]
REGION = "us-east-1"
FAKE_AWS = {  # moto accepts any credentials; these keep boto3 away from real ones
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_EC2_METADATA_DISABLED": "true",
}


class S3Server:
    """moto's S3 API over real HTTP on 127.0.0.1 (a free port), served by a thread."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line per request otherwise
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"

    def __enter__(self) -> S3Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=FAKE_AWS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_AWS["AWS_SECRET_ACCESS_KEY"],
        )

    def connection_json(self) -> str:
        """An ``AIRFLOW_CONN_AWS_DEFAULT`` value pointing at this server."""
        extra = {"endpoint_url": self.endpoint_url, "region_name": REGION}
        return json.dumps({"conn_type": "aws", "extra": extra})

    def create_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def fresh_bucket(self, name: str) -> str:
        """Bucket ``name``, created, or emptied if it exists already."""
        client = self.client()
        try:
            client.head_bucket(Bucket=name)
        except client.exceptions.ClientError:
            return self.create_bucket(name)
        for key in self.keys(name):
            client.delete_object(Bucket=name, Key=key)
        return name

    def read(self, bucket: str, key: str) -> bytes:
        body: bytes = self.client().get_object(Bucket=bucket, Key=key)["Body"].read()
        return body

    def keys(self, bucket: str) -> list[str]:
        listing = self.client().list_objects_v2(Bucket=bucket)
        return [item["Key"] for item in listing.get("Contents", [])]

    def stop(self) -> None:
        self._server.stop()


class AirflowHome:
    """A fresh AIRFLOW_HOME (SQLite) and the ``airflow`` processes started with it.

    ``env`` is the environment every command gets: this process's, without any
    ``AIRFLOW_CONN_*``, plus the home's settings, fake AWS credentials and ``extra_env``.
    Under ``base`` (pytest's ``tmp_path``) the home is kept after :meth:`close`, for a look
    at its logs; with no ``base`` it is made in the system temp dir and removed.
    ``dags`` is the DAGs folder (default: an empty ``dags/`` in the home). With
    ``scheduler``, ``env`` also has the settings of the processes running DAGs (executor,
    DAG parsing: ``server.scheduler_env()``), before ``extra_env``.

    Example::

        with AirflowHome(tmp_path, scheduler=True) as home:
            home.migrate()
            home.start_server()
            home.start_scheduler()
            ...
    """

    def __init__(
        self,
        base: Path | None = None,
        extra_env: Mapping[str, str] | None = None,
        *,
        dags: Path | None = None,
        scheduler: bool = False,
    ) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="conpeek-airflow-home-", dir=base))
        self._remove_on_close = base is None
        self.logs = self.path / "process-logs"
        self.logs.mkdir()
        self.dags = dags or self.path / "dags"
        self.dags.mkdir(exist_ok=True)
        self.api_port = free_port()
        self.server: AirflowServer = airflow_server(self.api_url)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
        env.update(FAKE_AWS)
        env.update(
            {
                "AIRFLOW_HOME": str(self.path),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.path}/airflow.db",
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
                "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "1",  # not the 300 s default
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
                "NO_PROXY": "*",
                "no_proxy": "*",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.server.env())  # for the server and the processes that talk to it
        if scheduler:
            env.update(self.server.scheduler_env())
        env.update(extra_env or {})
        self.env = env
        self.processes: list[Process] = []

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def __enter__(self) -> AirflowHome:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop every process; remove the home unless it was made under ``base``."""
        self.stop_all()
        if self._remove_on_close:
            shutil.rmtree(self.path, ignore_errors=True)

    def activate(self) -> None:
        """Make ``env`` this process's environment too (for Airflow imported in-process)."""
        for name in [n for n in os.environ if n.startswith("AIRFLOW_CONN_")]:
            del os.environ[name]
        os.environ.update(self.env)

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run a short ``airflow`` CLI command to completion; raise with its output on error."""
        done = subprocess.run(
            [*AIRFLOW, *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"airflow {' '.join(args)} failed ({done.returncode}):\n"
                f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )
        return done

    def migrate(self) -> None:
        """``airflow db migrate``: create the SQLite metadata database."""
        self.run("db", "migrate")

    def start(self, name: str, *args: str) -> Process:
        """``airflow <args>`` in the background, logged to ``logs/<name>.log``."""
        process = Process(f"airflow {name}", [*AIRFLOW, *args], self.env, self.logs / f"{name}.log")
        self.processes.append(process)
        return process

    def start_server(self, timeout: float = 180) -> Process:
        """The HTTP server (UI and REST API) on 127.0.0.1, returned once its health check
        answers: ``airflow api-server`` (3.x) or ``airflow webserver`` (2.11)."""
        self.server.prepare(self.run)
        process = self.start(self.server.command, *self.server.args())
        wait_for("the server's health check", self._healthy, timeout, alive=process.check_alive)
        return process

    def start_scheduler(self) -> list[Process]:
        """Every process running the DAGs besides the server: the scheduler, the triggerer
        and (3.x) the DAG processor (make the home with ``scheduler=True``)."""
        return [self.start(name, name) for name in self.server.scheduler_components]

    def _healthy(self) -> bool:
        try:
            url = f"{self.api_url}{self.server.health_path}"  # http://127.0.0.1 only
            with urllib.request.urlopen(url, timeout=5):  # noqa: S310
                return True
        except (urllib.error.URLError, OSError):
            return False

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """A JSON call to the REST API; ``path`` is under its root (``/api/v2`` on 3.x,
        ``/api/v1`` on 2.11), e.g. ``/dags/my_dag``. Authenticated as an admin."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 (http://127.0.0.1 only)
            f"{self.api_url}{self.server.rest_api}{path}",
            data=data,
            method=method,
            headers={
                "Content-Type": "application/json",
                "Accept": "application/json",
                **self.server.auth_headers(),
            },
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return json.loads(response.read() or b"null")

    def check_alive(self) -> None:
        for process in self.processes:
            process.check_alive()

    def stop_all(self, grace: float = 10.0) -> None:
        """Stop every process started: SIGTERM all groups, wait up to ``grace`` seconds in
        all, then SIGKILL every group. Never raises."""
        for process in reversed(self.processes):
            with contextlib.suppress(Exception):
                process.terminate()
        deadline = time.monotonic() + grace
        for process in self.processes:
            with contextlib.suppress(Exception):
                process.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
        for process in self.processes:
            with contextlib.suppress(Exception):
                process.kill()

    def logs_tail(self, chars: int = 3000) -> str:
        """The end of every process's log, for failure messages."""
        return "\n".join(f"===== {p.name} ({p.log}) =====\n{p.tail(chars)}" for p in self.processes)


def temp_leftovers(tmp: Path) -> list[Path]:
    """What an operator left in the temp dir ``tmp`` (the ``tmpdir_watch`` fixture): anything
    but the provider's own (empty) directory, and whatever is inside that."""
    from airflow_provider_conpeek import tempfiles

    root = tempfiles.root_dir()
    assert root.parent == tmp
    return [p for p in tmp.iterdir() if p != root] + (list(root.iterdir()) if root.exists() else [])


# Each window's first one-record probe (the sensor's first poke) finds nothing, so the
# sensor must defer; the trigger's first poll then finds the records. (The scheduler and
# distributed tests' sandbox.)
def late_data() -> Any:
    """A sandbox ``FaultConfig`` under which every window's first one-record probe is empty."""
    from airflow_provider_conpeek.testing.sandbox import FaultConfig, FaultRule

    return FaultConfig(rules=[FaultRule("empty", limits=[1], first=1, per_filter=True)])


def window_filters(day: Any) -> list[dict[str, Any]]:
    """The ``created_date`` filters of the UTC day starting at ``day`` (a pendulum DateTime)."""
    fmt = "YYYY-MM-DD HH:mm:ss"
    return [
        {"property": "created_date", "operator": "gte", "value": day.format(fmt)},
        {"property": "created_date", "operator": "lt", "value": day.add(days=1).format(fmt)},
    ]


def get_or_none(api: Any, path: str) -> Any:
    """``api("GET", path)``, or None on 404 and on a momentary failure (the caller polls
    again)."""
    try:
        return api("GET", path)
    except urllib.error.HTTPError as exc:
        if exc.code == 404 or exc.code >= 500:
            return None
        raise
    except (urllib.error.URLError, OSError):
        return None
