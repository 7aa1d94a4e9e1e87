"""Real Airflow processes for the browser and scheduler tests.

:class:`AirflowHome` is a throw-away ``AIRFLOW_HOME`` with its own SQLite database and the
environment every process started from it shares. :meth:`AirflowHome.start` runs an
``airflow`` command (``api-server``, ``scheduler``, ...) in its own process group, output to
a log file; :meth:`AirflowHome.stop_all` stops every one of them (SIGTERM to the whole
group, then SIGKILL), whatever happened before. Use it as a context manager so that happens
even when a test fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

AIRFLOW = [sys.executable, "-m", "airflow"]
SIMPLE_AUTH_MANAGER = (
    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(
    what: str,
    check: Callable[[], T | None],
    timeout: float,
    *,
    interval: float = 0.5,
    alive: Callable[[], None] | None = None,
) -> T:
    """Call ``check`` until it returns something truthy; ``alive`` raises if a process died."""
    deadline = time.monotonic() + timeout
    while True:
        if alive is not None:
            alive()
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"Timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


class AirflowProcess:
    """One ``airflow <command>`` in its own session (process group)."""

    def __init__(self, name: str, args: list[str], env: Mapping[str, str], log: Path) -> None:
        self.name = name
        self.log = log
        self._out = log.open("wb")
        self.popen = subprocess.Popen(
            [*AIRFLOW, *args],
            env=dict(env),
            stdout=self._out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def check_alive(self) -> None:
        code = self.popen.poll()
        if code is not None:
            raise RuntimeError(
                f"airflow {self.name} exited with {code}; last output:\n{self.tail()}"
            )

    def tail(self, chars: int = 4000) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")[-chars:]
        return ""

    def terminate(self) -> None:
        """SIGTERM the whole process group (the leader and every child it started)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)  # new session: group id == leader's pid

    def kill(self) -> None:
        """SIGKILL whatever is left of the group, reap the leader, close the log."""
        # Children (uvicorn workers, executor workers, task supervisors) may outlive the
        # leader: kill the group unconditionally.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=5)
        self._out.close()

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the group, wait up to ``grace`` seconds for the leader, then SIGKILL."""
        self.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=grace)
        self.kill()


class AirflowHome:
    """A fresh AIRFLOW_HOME (SQLite) under ``base`` and the processes started with it.

    Put ``base`` under pytest's ``tmp_path``: the logs stay for a look after a failure, and
    pytest removes old ones.

    Example::

        with AirflowHome(tmp_path, extra_env={...}) as home:
            home.migrate()
            api = home.start_api_server()
            ...
    """

    def __init__(self, base: Path, extra_env: Mapping[str, str] | None = None) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="airflow-home-", dir=base))
        self.logs = self.path / "process-logs"
        self.logs.mkdir()
        self.dags = self.path / "dags"
        self.dags.mkdir()
        self.api_port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
        env.update(
            {
                "AIRFLOW_HOME": str(self.path),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.path}/airflow.db",
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
                "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
                "AIRFLOW__API__BASE_URL": self.api_url,
                # Shared by every process: tokens the scheduler signs for task workers must
                # verify in the API server.
                "AIRFLOW__API_AUTH__JWT_SECRET": "conpeek-test-jwt-secret-" + "x" * 48,
                "AIRFLOW__API__SECRET_KEY": "conpeek-test-secret-key",
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
                "NO_PROXY": "*",
                "no_proxy": "*",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(extra_env or {})
        self.env = env
        self.processes: list[AirflowProcess] = []

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def __enter__(self) -> AirflowHome:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run a short ``airflow`` CLI command to completion; raise with its output on error."""
        done = subprocess.run(
            [*AIRFLOW, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"airflow {' '.join(args)} failed ({done.returncode}):\n"
                f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )
        return done

    def migrate(self) -> None:
        self.run("db", "migrate")

    def start(self, name: str, *args: str) -> AirflowProcess:
        process = AirflowProcess(name, list(args), self.env, self.logs / f"{name}.log")
        self.processes.append(process)
        return process

    def start_api_server(self, timeout: float = 90) -> AirflowProcess:
        """``airflow api-server`` on 127.0.0.1, returned once its health check answers."""
        api = self.start(
            "api-server", "api-server", "--host", "127.0.0.1", "--port", str(self.api_port)
        )
        wait_for(
            "the API server's health check",
            lambda: self._healthy(),
            timeout,
            alive=api.check_alive,
        )
        return api

    def _healthy(self) -> bool:
        try:
            url = f"{self.api_url}/api/v2/monitor/health"  # http://127.0.0.1 only
            with urllib.request.urlopen(url, timeout=5):  # noqa: S310
                return True
        except (urllib.error.URLError, OSError):
            return False

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """A JSON call to the REST API (the simple auth manager lets every caller in)."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 (http://127.0.0.1 only)
            f"{self.api_url}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
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
        return "\n".join(
            f"===== airflow {p.name} ({p.log}) =====\n{p.tail(chars)}" for p in self.processes
        )
