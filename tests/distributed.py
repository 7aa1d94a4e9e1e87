"""A distributed Airflow 3 on one machine, for ``tests/test_distributed.py`` and ``make
demo-distributed``: PostgreSQL as the metadata database, Redis as the Celery broker, and the
CeleryExecutor with several ``airflow celery worker`` processes, each set up as if on a
machine of its own. Nothing is mocked: the real servers are started and stopped here.

* :class:`PostgresServer`: Debian's PostgreSQL, a throw-away cluster (``initdb``) in a temp
  dir, listening on 127.0.0.1 on a port and unix socket dir of its own, ``fsync=off``. As
  root (CI) it runs as the ``postgres`` OS user (``initdb`` refuses root), otherwise as the
  current user.
* :class:`RedisServer`: Debian's ``redis-server`` on a free port, nothing saved to disk.
* :class:`CeleryWorker`: one worker's own ``AIRFLOW_HOME`` (pid file, task logs, its own
  copy of the DAGs folder), its own ``TMPDIR``, log-server port, Celery hostname and
  ``[core] hostname_callable``, which names the worker in each task instance it runs
  (the ``hostname`` field of the task instance, set by the Task SDK when the task starts).
  The names resolve to no address: the UI cannot fetch a task's log from a worker's log
  server, which no check here needs (task logs are read from the workers' homes).
* :class:`CeleryDeployment`: all of it, with an :class:`~harness.AirflowHome` (PostgreSQL
  instead of SQLite) for the API server, scheduler, DAG processor and triggerer, and helpers
  to drive DAGs through the REST API and CLI: :meth:`~CeleryDeployment.backfill`,
  :meth:`~CeleryDeployment.trigger_run`, :meth:`~CeleryDeployment.wait_for_runs`,
  :meth:`~CeleryDeployment.task_instances`.

:func:`daily_extract_for_backfill` is the example DAG set up for a backfill on it.

Every process's output goes to ``<home>/process-logs/<name>.log``; :meth:`CeleryDeployment.close`
stops everything and removes the database's and broker's files, also after a failure.

The binaries come from Debian's ``postgresql`` and ``redis-server`` (``make distributed-deps``
installs them), the Python side (Celery provider, celery, redis, psycopg2 and asyncpg, the
async driver Airflow 3 derives from a ``postgresql`` URL) from the locked dev group.
"""

from __future__ import annotations

import base64
import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import urllib.error
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

from harness import AIRFLOW, AirflowHome, get_or_none
from processes import Process, free_port, wait_for

# Where the provider keeps an extract's temporary files, under the temp dir of the process
# (airflow_provider_conpeek/tempfiles.py: root_dir()).
EXTRACT_TMP_ROOT = "airflow-provider-conpeek-{uid}"
DB_USER = "airflow"
DB_NAME = "airflow"
FINISHED = {"success", "failed"}
ROOT = Path(__file__).resolve().parent.parent
DAILY_EXTRACT = ROOT / "example_dags" / "example_conpeek_daily_extract.py"
SPLIT_INTERVAL = ROOT / "example_dags" / "example_conpeek_split_interval.py"


def daily_extract_for_backfill(tomorrow: date, poke_interval: int = 5) -> str:
    """The example daily extract DAG, to be backfilled: its start date moved to ``tomorrow``
    and catchup off, so the scheduler creates no run of its own before the day after
    (backfill runs ignore the start date), its sensor polling every ``poke_interval`` s
    instead of 600 s."""
    source = DAILY_EXTRACT.read_text()
    start = f"pendulum.datetime({tomorrow.year}, {tomorrow.month}, {tomorrow.day}, tz='UTC')"
    for old, new in (
        ('start_date=pendulum.datetime(2026, 1, 1, tz="UTC")', f"start_date={start}"),
        ("catchup=True,", "catchup=False,"),
        ("poke_interval=600,", f"poke_interval={poke_interval},"),
    ):
        if source.count(old) != 1:
            raise AssertionError(f"{DAILY_EXTRACT.name} no longer has {old!r}: update {__file__}")
        source = source.replace(old, new)
    return source


def postgres_bin() -> Path:
    """The newest ``/usr/lib/postgresql/<version>/bin`` holding ``initdb`` (Debian's layout)."""
    found = sorted(
        (Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if not found:
        raise RuntimeError(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): "
            "run `make distributed-deps` (apt-get install postgresql redis-server)"
        )
    return found[-1]


class PostgresServer:
    """A fresh PostgreSQL cluster for one deployment, on 127.0.0.1:``port``.

    Its data and socket dir is made in the system temp dir (pytest's ``tmp_path`` is not
    readable by the ``postgres`` user) and removed by :meth:`stop`; the server's log goes to
    ``logs/postgres.log``. Authentication is ``trust`` for ``DB_USER`` (loopback only).
    """

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.bin = postgres_bin()
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="conpeek-postgres-"))
        self.data = self.dir / "data"
        self.process: Process | None = None
        self._as_owner: list[str] = []
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            runuser = shutil.which("runuser") or "/usr/sbin/runuser"
            self._as_owner = [runuser, "-u", "postgres", "--"]
            shutil.chown(self.dir, "postgres", "postgres")

    def url(self, scheme: str = "postgresql+psycopg2") -> str:
        """The database's SQLAlchemy URL; ``db+postgresql+psycopg2`` for Celery's result
        backend (SQLAlchemy's default PostgreSQL driver is psycopg 3, not installed)."""
        return f"{scheme}://{DB_USER}@127.0.0.1:{self.port}/{DB_NAME}"

    def _env(self) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "LANG": "C"}

    def _run(self, name: str, cmd: Sequence[str], timeout: float = 120) -> None:
        log = self.logs / f"postgres-{name}.log"
        with log.open("wb") as out:
            done = subprocess.run(
                list(cmd), env=self._env(), cwd=self.dir, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, timeout=timeout, check=False,
            )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"{cmd[0]} failed ({done.returncode}):\n{log.read_text()[-3000:]}")

    def start(self, timeout: float = 120) -> PostgresServer:
        """``initdb``, start ``postgres``, wait until it answers, create the database."""
        self._run(
            "initdb",
            [*self._as_owner, str(self.bin / "initdb"), "-D", str(self.data), "-U", DB_USER,
             "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"],
        )  # fmt: skip
        settings = {
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "200",  # every Airflow process keeps a pool
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.dir),
        }
        options = [arg for k, v in settings.items() for arg in ("-c", f"{k}={v}")]
        cmd = [*self._as_owner, str(self.bin / "postgres"), "-D", str(self.data),
               "-p", str(self.port), *options]  # fmt: skip
        self.process = Process("postgres", cmd, self._env(), self.logs / "postgres.log")
        ready = [str(self.bin / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port),
                 "-U", DB_USER, "-d", "postgres"]  # fmt: skip
        wait_for(
            "PostgreSQL to accept connections",
            lambda: subprocess.run(ready, env=self._env(), check=False).returncode == 0,
            timeout,
            alive=self.process.check_alive,
        )
        self._run("createdb", [str(self.bin / "createdb"), "-h", "127.0.0.1",
                               "-p", str(self.port), "-U", DB_USER, DB_NAME])  # fmt: skip
        return self

    def stop(self, grace: float = 30.0) -> None:
        """Fast shutdown (SIGINT: disconnect clients, checkpoint), then remove its files.
        Never raises."""
        if self.process is not None:
            with contextlib.suppress(Exception):
                os.killpg(self.process.popen.pid, 2)  # SIGINT to runuser and postgres
                self.process.popen.wait(timeout=grace)
            with contextlib.suppress(Exception):
                self.process.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class RedisServer:
    """Debian's ``redis-server`` on 127.0.0.1:``port``: no RDB snapshots, no AOF; its
    working dir in the system temp dir, removed by :meth:`stop`."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="conpeek-redis-"))
        self.process: Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 60) -> RedisServer:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not os.path.exists(binary):
            raise RuntimeError("redis-server is not installed: run `make distributed-deps`")
        cmd = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", str(self.dir), "--daemonize", "no"]  # fmt: skip
        self.process = Process("redis-server", cmd, os.environ, self.logs / "redis.log")
        wait_for("Redis to answer PING", self._pong, timeout, alive=self.process.check_alive)
        return self

    def _pong(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the server, remove its dir. Never raises."""
        if self.process is not None:
            with contextlib.suppress(Exception):
                self.process.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


IDENTITY_MODULE = "conpeek_worker_identity"
IDENTITY_SOURCE = '''"""This worker's name: its [core] hostname_callable (tests/distributed.py)."""


def hostname() -> str:
    return {name!r}
'''


class CeleryWorker:
    """One ``airflow celery worker``, set up as on a machine of its own.

    ``home`` is its ``AIRFLOW_HOME`` (pid file, task logs under ``logs/``, its own copy of
    the DAGs in ``dags/``), ``tmp`` its ``TMPDIR``. Its ``[core] hostname_callable``
    (a module in ``home/identity`` on ``PYTHONPATH``) returns ``name``: the Task SDK reports
    it when a task starts, so a task instance's ``hostname`` tells which worker ran it.
    """

    def __init__(self, name: str, home: Path, base_env: Mapping[str, str]) -> None:
        self.name = name
        self.home = home
        self.dags = home / "dags"
        self.tmp = home / "tmp"
        self.logs = home / "logs"
        identity = home / "identity"
        for path in (self.dags, self.tmp, self.logs, identity):
            path.mkdir(parents=True, exist_ok=True)
        (identity / f"{IDENTITY_MODULE}.py").write_text(IDENTITY_SOURCE.format(name=name))
        self.log_server_port = free_port()
        self.celery_hostname = f"{name}@%h"  # celery expands %h to this machine's name
        pythonpath = [str(identity), *filter(None, [base_env.get("PYTHONPATH")])]
        self.env = {
            **base_env,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags),
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.logs),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.log_server_port),
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": f"{IDENTITY_MODULE}.hostname",
            "PYTHONPATH": os.pathsep.join(pythonpath),
            "TMPDIR": str(self.tmp),
        }
        self.process: Process | None = None

    @property
    def extract_tmp(self) -> Path:
        """Where the provider's extracts keep their temporary files on this worker."""
        return self.tmp / EXTRACT_TMP_ROOT.format(uid=os.getuid())

    def leftovers(self) -> list[Path]:
        """Whatever the extracts left in this worker's temp dir (nothing, if all is well)."""
        return sorted(self.extract_tmp.iterdir()) if self.extract_tmp.exists() else []

    def command(self, concurrency: int) -> list[str]:
        return ["celery", "worker", "--celery-hostname", self.celery_hostname,
                "--concurrency", str(concurrency), "--without-gossip"]  # fmt: skip

    def ready(self) -> bool:
        """Whether Celery logged that the worker is ready to take tasks."""
        return self.process is not None and " ready." in self.process.tail(200_000)


def split_interval(parts: int | None = None) -> str:
    """The example split-interval DAG, with ``PARTS = parts`` if given (else the example's)."""
    source = SPLIT_INTERVAL.read_text()
    if parts is not None:
        old = next((line for line in source.splitlines() if line.startswith("PARTS = ")), None)
        if old is None:
            raise AssertionError(
                f"{SPLIT_INTERVAL.name} no longer has 'PARTS = ': update {__file__}"
            )
        source = source.replace(old, f"PARTS = {parts}")
    return source


def most_at_once(task_instances: Sequence[Mapping[str, Any]]) -> int:
    """The most of these task instances that were running at the same moment, from their
    recorded start and end (an order of events, not a duration)."""

    def at(stamp: str) -> datetime:  # "...:01Z" and "...:01.5Z": compare times, not text
        return datetime.fromisoformat(stamp.replace("Z", "+00:00"))

    edges = sorted(
        [(at(ti["start_date"]), 1) for ti in task_instances]
        + [(at(ti["end_date"]), -1) for ti in task_instances]
    )  # an end sorts before a start at a tie
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


class CeleryDeployment:
    """PostgreSQL, Redis, the API server, scheduler, DAG processor, triggerer and
    ``workers`` Celery workers, each ``concurrency`` tasks at a time.

    ``home`` is an :class:`~harness.AirflowHome` (under ``base``, kept for its logs; in the
    system temp dir and removed at :meth:`close` without one) whose ``env`` points at
    PostgreSQL and the CeleryExecutor; ``extra_env`` goes to every process (connections,
    settings of the DAGs). Install DAG files with :meth:`add_dag` (the central DAGs folder and
    every worker's copy), then :meth:`start`. Use as a context manager: everything started
    is stopped and removed on exit, also after a failure.

    Example::

        with CeleryDeployment(tmp_path, {"AIRFLOW_CONN_...": ...}) as deployment:
            deployment.add_dag("my_dag.py", source)
            deployment.start()
            deployment.wait_for_dag("my_dag")
            ...
    """

    def __init__(
        self,
        base: Path | None = None,
        extra_env: Mapping[str, str] | None = None,
        *,
        workers: Sequence[str] = ("worker-1", "worker-2"),
        concurrency: int = 2,
    ) -> None:
        self.concurrency = concurrency
        self.home = AirflowHome(base, scheduler=True)
        try:
            self.postgres = PostgresServer(self.home.logs)
            self.redis = RedisServer(self.home.logs)
        except BaseException:
            self.close()
            raise
        fernet_key = base64.urlsafe_b64encode(os.urandom(32)).decode()
        self.home.env.update(
            {
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.postgres.url(),
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__CELERY__BROKER_URL": self.redis.url,
                "AIRFLOW__CELERY__RESULT_BACKEND": self.postgres.url("db+postgresql+psycopg2"),
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(concurrency),
                # One key for every process, like the JWT and API secrets (ApiServer.env()):
                # each home's generated airflow.cfg has secrets of its own, and no fernet key.
                "AIRFLOW__CORE__FERNET_KEY": fernet_key,
                "AIRFLOW__CORE__PARALLELISM": str(2 * concurrency * len(workers)),
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
                **(extra_env or {}),
            }
        )
        self.workers = [
            CeleryWorker(name, self.home.path / name, self.home.env) for name in workers
        ]

    @property
    def logs(self) -> Path:
        """Where every process's output is (``<name>.log``)."""
        return self.home.logs

    def __enter__(self) -> CeleryDeployment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add_dag(self, name: str, source: str) -> None:
        """Install a DAG file: the central DAGs folder (DAG processor) and each worker's."""
        for folder in (self.home.dags, *(w.dags for w in self.workers)):
            (folder / name).write_text(source)

    def start(self, timeout: float = 300) -> None:
        """Start everything, in order, each once the previous is up: PostgreSQL, Redis,
        ``airflow db migrate``, the API server, the DAG processor, scheduler and triggerer,
        then the workers; returns when every worker is ready for tasks."""
        self.postgres.start()
        self.redis.start()
        self.home.run("db", "migrate", timeout=timeout)
        self.home.start_server(timeout=timeout)
        self.home.start_scheduler()
        for worker in self.workers:
            worker.process = Process(
                f"airflow celery worker {worker.name}",
                [*AIRFLOW, *worker.command(self.concurrency)],
                worker.env,
                self.logs / f"{worker.name}.log",
            )
            self.home.processes.append(worker.process)
        wait_for(
            "every Celery worker to be ready",
            lambda: all(w.ready() for w in self.workers),
            timeout,
            alive=self.check_alive,
        )

    def close(self) -> None:
        """Stop every Airflow process (workers first), Redis and PostgreSQL; remove their
        files, and the home unless it is under ``base``. Never raises."""
        with contextlib.suppress(Exception):
            self.home.close()
        for server in ("redis", "postgres"):
            with contextlib.suppress(Exception):
                getattr(self, server).stop()

    def check_alive(self) -> None:
        """Raise if any process started has exited."""
        self.home.check_alive()
        for server in (self.postgres, self.redis):
            if server.process is not None:
                server.process.check_alive()

    def logs_tail(self, chars: int = 3000) -> str:
        """The end of every process's log, for failure messages."""
        servers = [s.process for s in (self.postgres, self.redis) if s.process is not None]
        extra = "\n".join(f"===== {p.name} ({p.log}) =====\n{p.tail(chars)}" for p in servers)
        return f"{self.home.logs_tail(chars)}\n{extra}"

    # -- driving DAGs -------------------------------------------------------------------
    def api(self, method: str, path: str, body: Any = None) -> Any:
        """A JSON call to the REST API (``/api/v2``), as an admin."""
        return self.home.api(method, path, body)

    def get(self, path: str) -> Any:
        """GET, or None on 404 and on a momentary failure (the caller polls again)."""
        return get_or_none(self.api, path)

    def wait_for_dag(self, dag_id: str, timeout: float = 300) -> Any:
        """Wait until the DAG processor has parsed ``dag_id``; raise on an import error."""

        def parsed() -> Any:
            errors = self.get("/importErrors") or {}
            if errors.get("import_errors"):
                raise RuntimeError(f"DAG import errors: {errors['import_errors']}")
            return self.get(f"/dags/{dag_id}")

        return wait_for(f"DAG {dag_id} to be parsed", parsed, timeout, alive=self.check_alive)

    def unpause(self, dag_id: str) -> None:
        self.api("PATCH", f"/dags/{dag_id}", {"is_paused": False})

    def backfill(self, dag_id: str, from_date: str, to_date: str, max_active_runs: int) -> str:
        """``airflow backfill create``: the runs of every interval whose logical date is in
        [``from_date``, ``to_date``], which the scheduler then runs; returns its output."""
        done = self.home.run(
            "backfill", "create", "--dag-id", dag_id, "--from-date", from_date,
            "--to-date", to_date, "--max-active-runs", str(max_active_runs), timeout=300,
        )  # fmt: skip
        return done.stdout + done.stderr

    def set_pool(self, name: str, slots: int, description: str) -> None:
        """``airflow pools set``: create or resize a pool."""
        self.home.run("pools", "set", name, str(slots), description)

    def trigger_run(
        self,
        dag_id: str,
        logical_date: str,
        *,
        data_interval: tuple[str, str] | None = None,
        conf: Mapping[str, Any] | None = None,
        run_id: str | None = None,
    ) -> str:
        """A manual run of ``dag_id`` through the REST API; returns its run id. Without
        ``data_interval`` the timetable infers it from ``logical_date`` (ISO 8601 with an
        offset)."""
        body: dict[str, Any] = {"logical_date": logical_date, "conf": dict(conf or {})}
        if data_interval is not None:
            body["data_interval_start"], body["data_interval_end"] = data_interval
        if run_id is not None:
            body["dag_run_id"] = run_id
        return str(self.api("POST", f"/dags/{dag_id}/dagRuns", body)["dag_run_id"])

    def dag_runs(self, dag_id: str) -> list[dict[str, Any]]:
        return list(self.api("GET", f"/dags/{dag_id}/dagRuns?limit=1000")["dag_runs"])

    def task_instances(self, dag_id: str, run_id: str = "~") -> list[dict[str, Any]]:
        """Task instances of one run (``~``: of every run), with their ``hostname``."""
        run = urllib.parse.quote(run_id, safe="~")
        path = f"/dags/{dag_id}/dagRuns/{run}/taskInstances?limit=1000"
        return list(self.api("GET", path)["task_instances"])

    def wait_for_runs(
        self,
        dag_id: str,
        count: int,
        timeout: float,
        *,
        run_ids: Sequence[str] | None = None,
        on_poll: Callable[[list[dict[str, Any]], list[dict[str, Any]]], None] | None = None,
    ) -> list[dict[str, Any]]:
        """Wait until ``count`` runs of ``dag_id`` (those of ``run_ids`` if given) have
        finished, successful or not; returns them. ``on_poll(runs, task_instances)`` is
        called on each poll (to watch states or fail early)."""

        def finished() -> list[dict[str, Any]] | None:
            try:
                runs = self.dag_runs(dag_id)
                tis = self.task_instances(dag_id) if on_poll else []
            except (urllib.error.URLError, OSError):
                return None
            if run_ids is not None:
                runs = [r for r in runs if r["dag_run_id"] in run_ids]
            if on_poll:
                on_poll(runs, tis)
            done = [r for r in runs if r["state"] in FINISHED]
            return done if len(done) >= count else None

        return wait_for(
            f"{count} finished run(s) of {dag_id}", finished, timeout, interval=2,
            alive=self.check_alive,
        )  # fmt: skip

    def run_dag(
        self, dag_id: str, logical_date: str, timeout: float = 300, **trigger: Any
    ) -> dict[str, Any]:
        """Trigger one run (:meth:`trigger_run`) and wait for it to finish; returns it.

        Raises if the run had no task instance: a manual run whose logical date is before
        the tasks' start date gets none, and "succeeds" without running anything."""
        run_id = self.trigger_run(dag_id, logical_date, **trigger)
        (run,) = self.wait_for_runs(dag_id, 1, timeout, run_ids=[run_id])
        if not self.task_instances(dag_id, run_id):
            raise RuntimeError(
                f"run {run_id} of {dag_id} ({run['state']}) ran no task: is {logical_date} "
                "before the DAG's start_date?"
            )
        return run

    def worker_of(self, hostname: str | None) -> CeleryWorker | None:
        """The worker whose ``hostname_callable`` gives ``hostname``."""
        return next((w for w in self.workers if w.name == hostname), None)
