"""Smoke-test one Airflow leg's pinned set: do Airflow's own servers come up with it?

Run with the leg's interpreter (stdlib only; nothing from this repo is imported)::

    "$(ci/airflow-venv.sh 3.0)/bin/python" ci/smoke-airflow.py

In a throw-away AIRFLOW_HOME (SQLite) it checks, and prints the time each took:

1. ``from airflow.providers.amazon.aws.hooks.s3 import S3Hook`` imports;
2. ``airflow db migrate``;
3. the API server (3.x: ``airflow api-server``, ``/api/v2/monitor/health``) or the
   webserver (2.11: ``airflow webserver``, ``/health``) answers 200, and its UI page too;
   on 3.x the connection form metadata (``/ui/connections/hook_meta``) gives ``conpeek``
   its relabelled host field and its extra fields (this project installed, ``-e .``); on
   2.11 the same is read from ProvidersManager, which the FAB form is built from;
4. ``airflow scheduler`` (with its health-check server; on 3.x also ``airflow
   dag-processor``) and ``airflow triggerer`` start and stay up, and the scheduler's
   ``/health`` answers 200;
5. a triggered run of a trivial DAG (a task importing S3Hook, then a task that defers to the
   triggerer for one second) succeeds under that real scheduler and triggerer;
6. with the servers stopped, ``airflow dags test`` of the same DAG succeeds.

Exit status 0 when every check passed; otherwise the failed checks are listed and the end
of every process's log is printed. ``--keep`` keeps the home (its path is printed).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

DAG_ID = "ci_smoke"
DAG_FILE = """
from __future__ import annotations

import datetime

try:  # Airflow 3
    from airflow.sdk import DAG, BaseOperator
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.models import BaseOperator
try:
    from airflow.providers.standard.triggers.temporal import TimeDeltaTrigger
except ImportError:  # Airflow 2 without the standard provider
    from airflow.triggers.temporal import TimeDeltaTrigger


class ImportS3Hook(BaseOperator):
    def execute(self, context):
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        return S3Hook.__module__


class DeferOnce(BaseOperator):
    def execute(self, context):
        self.defer(
            trigger=TimeDeltaTrigger(datetime.timedelta(seconds=1)), method_name="resume"
        )

    def resume(self, context, event=None):
        return "resumed"


with DAG(
    dag_id="ci_smoke",
    schedule=None,
    start_date=datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc),
    catchup=False,
):
    ImportS3Hook(task_id="import_s3hook") >> DeferOnce(task_id="defer_once")
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_get(url: str, timeout: float = 5, token: str | None = None) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        request = urllib.request.Request(url, headers=headers)  # noqa: S310 (loopback)
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except (urllib.error.URLError, OSError) as error:
        return 0, str(error).encode()


class Smoke:
    def __init__(self, keep: bool) -> None:
        import airflow

        self.version = airflow.__version__
        self.major = int(self.version.split(".")[0])
        self.keep = keep
        self.home = Path(tempfile.mkdtemp(prefix=f"airflow-smoke-{self.version}-"))
        (self.home / "dags").mkdir()
        (self.home / "dags" / "ci_smoke.py").write_text(DAG_FILE)
        (self.home / "logs-proc").mkdir()
        self.api_port = free_port()
        self.scheduler_health_port = free_port()
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home}/airflow.db",
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.home / "dags"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "True",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST": "127.0.0.1",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(
                    self.scheduler_health_port
                ),
                "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "5",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL": "5",
                "AIRFLOW__TRIGGERER__DEFAULT_CAPACITY": "10",
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_EC2_METADATA_DISABLED": "true",
                "NO_PROXY": "*",
                "no_proxy": "*",
                "PYTHONUNBUFFERED": "1",
                # Airflow 2's executors start `airflow tasks run` from PATH.
                "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
            }
        )
        if self.major >= 3:
            env.update(
                {
                    "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple."
                    "simple_auth_manager.SimpleAuthManager",
                    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
                    "AIRFLOW__API__BASE_URL": self.api_url,
                    "AIRFLOW__API_AUTH__JWT_SECRET": "ci-smoke-jwt-secret-" + "x" * 48,
                    "AIRFLOW__API__SECRET_KEY": "ci-smoke-secret-key",
                    "AIRFLOW__API__WORKERS": "1",
                }
            )
        else:
            env.update(
                {
                    "AIRFLOW__WEBSERVER__SECRET_KEY": "ci-smoke-secret-key",
                    "AIRFLOW__WEBSERVER__WORKERS": "1",
                    "AIRFLOW__WEBSERVER__WEB_SERVER_HOST": "127.0.0.1",
                }
            )
        self.env = env
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.failures: list[str] = []

    # -- helpers ---------------------------------------------------------------------------

    def airflow(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 - this interpreter's own airflow
            [sys.executable, "-m", "airflow", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start(self, name: str, *args: str) -> None:
        log = (self.home / "logs-proc" / f"{name}.log").open("wb")
        self.processes[name] = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "airflow", *args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def dead(self) -> list[str]:
        return [n for n, p in self.processes.items() if p.poll() is not None]

    def wait(self, what: str, check, timeout: float) -> bool:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return True
            if self.dead():
                print(f"    processes died: {self.dead()}")
                return False
            time.sleep(1)
        print(f"    timed out after {timeout:.0f} s waiting for {what}")
        return False

    def step(self, name: str, ok: bool, started: float, detail: str = "") -> bool:
        took = time.monotonic() - started
        print(
            f"[{'PASS' if ok else 'FAIL'}] {name} ({took:.1f} s){': ' + detail if detail else ''}"
        )
        if not ok:
            self.failures.append(name)
        sys.stdout.flush()
        return ok

    def stop_all(self) -> None:
        for process in self.processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for process in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
        for process in self.processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)

    def log_tails(self, chars: int = 4000) -> None:
        for path in sorted((self.home / "logs-proc").glob("*.log")):
            print(f"===== {path.name} =====")
            print(path.read_text(errors="replace")[-chars:])

    # -- checks ----------------------------------------------------------------------------

    def run(self) -> int:
        print(f"Airflow {self.version} on Python {sys.version.split()[0]}; home {self.home}")
        try:
            self._run()
        finally:
            self.stop_all()
        if self.failures:
            self.log_tails()
            for path in sorted((self.home / "logs").rglob("*.log")):
                if DAG_ID in str(path):
                    print(f"===== task log {path.relative_to(self.home)} =====")
                    print(path.read_text(errors="replace")[-3000:])
            print(f"FAILED: {', '.join(self.failures)}")
        else:
            print("all checks passed")
        if self.keep or self.failures:
            print(f"home kept: {self.home}")
        else:
            shutil.rmtree(self.home, ignore_errors=True)
        return 1 if self.failures else 0

    def _run(self) -> None:
        t = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-c", "from airflow.providers.amazon.aws.hooks.s3 import S3Hook"],
            env=self.env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        self.step("import S3Hook", done.returncode == 0, t, done.stderr.strip()[-1500:])

        t = time.monotonic()
        done = self.airflow("db", "migrate")
        if not self.step("airflow db migrate", done.returncode == 0, t, done.stderr[-2000:]):
            return

        t = time.monotonic()
        if self.major >= 3:
            self.start(
                "api-server", "api-server", "--host", "127.0.0.1", "--port", str(self.api_port)
            )
            health = f"{self.api_url}/api/v2/monitor/health"
            server = "api-server"
        else:
            self.start(
                "webserver", "webserver", "--hostname", "127.0.0.1", "--port", str(self.api_port)
            )
            health = f"{self.api_url}/health"
            server = "webserver"
        ok = self.wait(f"{health} -> 200", lambda: http_get(health)[0] == 200, 180)
        status, body = http_get(health)
        self.step(f"{server} health 200", ok, t, f"{status} {body[:300]!r}")
        if not ok:
            return

        t = time.monotonic()
        page = f"{self.api_url}/" if self.major >= 3 else f"{self.api_url}/login/"
        status, body = http_get(page)
        self.step(f"{server} UI page {page} 200", status == 200, t, str(status))
        if self.major >= 3:
            t = time.monotonic()
            status, body = http_get(f"{self.api_url}/ui/connections/hook_meta")
            if status == 401:  # 3.1+: the UI API wants the token the UI gets from /auth/token
                _, answer = http_get(f"{self.api_url}/auth/token")
                token = json.loads(answer or b"{}").get("access_token")
                status, body = http_get(f"{self.api_url}/ui/connections/hook_meta", token=token)
            conpeek: dict[str, Any] = {}
            with contextlib.suppress(ValueError, TypeError):
                for meta in json.loads(body):
                    if meta.get("connection_type") == "conpeek":
                        conpeek = meta
            extras = sorted((conpeek.get("extra_fields") or {}).keys())
            labels = conpeek.get("standard_fields") or {}
            host_title = (labels.get("host") or {}).get("title")
            self.step(
                "connection form of conpeek (/ui/connections/hook_meta): extras and labels",
                status == 200 and bool(extras) and bool(host_title),
                t,
                f"{status}, host titled {host_title!r}, extras {extras}",
            )

        else:  # 2.11: the FAB form is built from ProvidersManager's widgets and behaviours
            t = time.monotonic()
            probe = (
                "import json; from airflow.providers_manager import ProvidersManager as P; p = P();"
                "print(json.dumps([sorted(k for k in p.connection_form_widgets"
                " if k.startswith('extra__conpeek__')),"
                " p.field_behaviours.get('conpeek', {}).get('relabeling', {})]))"
            )
            done = subprocess.run(  # noqa: S603 - a fixed probe
                [sys.executable, "-c", probe], env=self.env, capture_output=True, text=True,
                check=False,
            )  # fmt: skip
            extras, relabeling = [], {}
            with contextlib.suppress(ValueError, IndexError):
                extras, relabeling = json.loads(done.stdout.strip().splitlines()[-1])
            self.step(
                "connection form of conpeek (ProvidersManager): extras and labels",
                bool(extras) and bool(relabeling.get("host")),
                t,
                f"host titled {relabeling.get('host')!r}, extras {extras}"
                + ("" if done.returncode == 0 else f"; {done.stderr[-800:]}"),
            )

        t = time.monotonic()
        self.start("scheduler", "scheduler")
        self.start("triggerer", "triggerer")
        if self.major >= 3:
            self.start("dag-processor", "dag-processor")
        sched_health = f"http://127.0.0.1:{self.scheduler_health_port}/health"
        ok = self.wait("scheduler /health -> 200", lambda: http_get(sched_health)[0] == 200, 120)
        self.step("scheduler health 200", ok, t, str(http_get(sched_health)[0]))
        if not ok:
            return

        t = time.monotonic()
        ok = self.wait(
            "the DAG to be parsed",
            lambda: DAG_ID in self.airflow("dags", "list", "-o", "plain").stdout,
            180,
        )
        if ok:
            done = self.airflow("dags", "trigger", DAG_ID)
            ok = done.returncode == 0
            if not ok:
                print(done.stdout[-1500:], done.stderr[-1500:])
        state = "?"
        if ok:

            def finished() -> bool:
                nonlocal state
                dag = ["-d", DAG_ID] if self.major < 3 else [DAG_ID]  # 3.x: positional
                done = self.airflow("dags", "list-runs", *dag, "-o", "json")
                # Warnings may precede the JSON on stdout: take the line that is a list.
                for line in done.stdout.splitlines():
                    if line.startswith("[{"):
                        with contextlib.suppress(ValueError, IndexError, KeyError):
                            state = json.loads(line)[0]["state"]
                return state in ("success", "failed")

            ok = self.wait("the triggered run to finish", finished, 240) and state == "success"
        self.step("triggered run under scheduler + triggerer", ok, t, f"state {state}")
        alive = [n for n in self.processes if n not in self.dead()]
        t = time.monotonic()
        self.step("every server still up", not self.dead(), t, f"up: {alive}, died: {self.dead()}")

        # dags test runs its own in-process run: stop the scheduler first, or it would pick
        # up that run's tasks too (the DAG is unpaused) and the two would race.
        self.stop_all()
        t = time.monotonic()
        done = self.airflow("dags", "test", DAG_ID, "2026-01-02", timeout=300)
        out = done.stdout + done.stderr
        ok = done.returncode == 0 and "state=failed" not in out and "Traceback" not in out
        self.step("airflow dags test", ok, t, f"exit {done.returncode}")
        if not ok:
            print(textwrap.indent(out[-4000:], "    "))


if __name__ == "__main__":
    sys.exit(Smoke(keep="--keep" in sys.argv).run())
