"""Killed tasks leave nothing behind: real ``airflow tasks test`` / ``airflow dags test``
subprocesses (a fresh AIRFLOW_HOME), killed with SIGTERM or SIGKILL mid-page and mid-upload,
then a rerun that writes the exact object.

Every kill is synchronised on an observable event, never on time: mid-page, the sandbox holds
the request at offset 8000 (its ``stall`` fault with a ``sleep`` that waits for the test);
mid-upload, moto's server holds the first ``UploadPart`` until the test releases it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pendulum
import pytest
from airflow_compat import DAG_IMPORT, run_dag_test, write_dag
from harness import AIRFLOW, REGION, AirflowHome
from processes import Process, wait_for

from airflow_provider_conpeek import tempfiles
from airflow_provider_conpeek.testing.sandbox import FaultConfig, FaultRule, SandboxServer

pytestmark = [pytest.mark.e2e, pytest.mark.processes, pytest.mark.timeout(900)]

DAG_ID = "conpeek_kill_test"
KEY = "kill/20260101.jsonl"
WINDOW = [
    {"property": "created_date", "operator": "gte", "value": "2026-01-01 00:00:00"},
    {"property": "created_date", "operator": "lt", "value": "2026-01-02 00:00:00"},
]
PAGE_SIZE = 1000
HELD_OFFSET = 8000  # pages 0..7 are written when the request for page 8 is held
PART = 5 * 1024 * 1024  # S3's smallest part: 20,000 plain records (~6 MB) take two
HOLD_LIMIT = 300.0  # a safety net only: every hold is released by the test

DAG_SOURCE = f'''
import os
from datetime import timedelta

import pendulum
from airflow.timetables.interval import CronDataIntervalTimetable

from airflow_provider_conpeek.operators.voice_campaign_summary import (
    VoiceCampaignSummaryToS3Operator,
)
{DAG_IMPORT}
with DAG(
    dag_id="{DAG_ID}",
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
) as dag:
    VoiceCampaignSummaryToS3Operator(
        task_id="extract",
        s3_bucket=os.environ["KILL_BUCKET"],
        s3_key="{KEY}",
        compression="none",
        window_start="2026-01-01 00:00:00",
        window_end="2026-01-02 00:00:00",
        page_size={PAGE_SIZE},
        concurrency=int(os.environ["KILL_CONCURRENCY"]),
        execution_timeout=timedelta(seconds=float(os.environ.get("KILL_TIMEOUT", "3600"))),
    )
'''


class Hold:
    """Holds whoever calls it until the test releases it; ``entered`` tells it arrived."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, *_: Any) -> None:
        self.entered.set()
        self.release.wait(HOLD_LIMIT)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowHome]:
    base = tmp_path_factory.mktemp("kill")
    dags = base / "dags"
    dags.mkdir()
    (dags / f"{DAG_ID}.py").write_text(DAG_SOURCE)
    with AirflowHome(base, dags=dags) as airflow_home:
        airflow_home.migrate()
        yield airflow_home


@pytest.fixture
def page_hold() -> Iterator[tuple[SandboxServer, Hold]]:
    """The sandbox (20,000 records on 2026-01-01), holding the request at HELD_OFFSET once."""
    hold = Hold()
    stall = FaultRule("stall", offsets=[HELD_OFFSET], times=1, stall_seconds=HOLD_LIMIT)
    with SandboxServer(
        records=20_000, days=1, start="2026-01-01", faults=FaultConfig(rules=[stall]), sleep=hold
    ) as sandbox:
        try:
            yield sandbox, hold
        finally:
            hold.release.set()


@pytest.fixture
def part_hold(monkeypatch: pytest.MonkeyPatch) -> Iterator[Hold]:
    """moto's server holds the first UploadPart it receives until the test releases it."""
    from moto.s3.models import S3Backend

    hold = Hold()
    original = S3Backend.upload_part

    def upload_part(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not hold.entered.is_set():
            hold()
        return original(self, *args, **kwargs)

    monkeypatch.setattr(S3Backend, "upload_part", upload_part)
    try:
        yield hold
    finally:
        hold.release.set()


def task_env(
    home: AirflowHome, sandbox: SandboxServer, s3_server: Any, bucket: str, tmp: Path, **kw: Any
) -> dict[str, str]:
    """The subprocess's environment: the sandbox, moto (5 MiB parts), the bucket, TMPDIR."""
    aws_extra = {
        "endpoint_url": s3_server.endpoint_url,
        "region_name": REGION,
        "service_config": {
            "s3": {
                "transfer_config_args": {"multipart_threshold": PART, "multipart_chunksize": PART}
            }
        },
    }
    tmp.mkdir(exist_ok=True)
    return {
        **home.env,
        "AIRFLOW_CONN_CONPEEK_DEFAULT": sandbox.airflow_connection_json(),
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps({"conn_type": "aws", "extra": aws_extra}),
        "KILL_BUCKET": bucket,
        "KILL_CONCURRENCY": str(kw.get("concurrency", 1)),
        "TMPDIR": str(tmp),
    }


def command(kind: str) -> list[str]:
    if kind == "dags":
        return [*AIRFLOW, "dags", "test", DAG_ID, "2026-01-02"]
    return [*AIRFLOW, "tasks", "test", DAG_ID, "extract", "2026-01-02"]


def start(home: AirflowHome, env: dict[str, str], name: str, kind: str = "tasks") -> Process:
    process = Process(name, command(kind), env, home.logs / f"{name}.log")
    home.processes.append(process)
    return process


def kill_when(process: Process, hold: Hold, sig: signal.Signals) -> int:
    """Send ``sig`` once the process reached the hold; return its exit status."""
    wait_for("the held request", hold.entered.is_set, 300, interval=0.05, alive=process.check_alive)
    process.popen.send_signal(sig)
    return process.popen.wait(timeout=300)


def rerun(env: dict[str, str], tmp_log: Path) -> str:
    done = subprocess.run(command("tasks"), env=env, capture_output=True, text=True, timeout=600)
    tmp_log.write_text(done.stdout + done.stderr)
    return done.stdout + done.stderr


def leftovers(tmp: Path) -> list[Path]:
    """Directories in the provider's temp place (``<TMPDIR>/airflow-provider-conpeek-<uid>``)."""
    root = tmp / f"airflow-provider-conpeek-{os.getuid()}"
    return sorted(root.iterdir()) if root.exists() else []


def uploads(s3_server: Any, bucket: str) -> list[dict[str, Any]]:
    listing = s3_server.client().list_multipart_uploads(Bucket=bucket)
    return list(listing.get("Uploads", []))


def assert_exact_object(s3_server: Any, bucket: str, sandbox: SandboxServer) -> None:
    expected = sandbox.expected_records(WINDOW)
    raw = s3_server.read(bucket, KEY)
    assert [json.loads(line) for line in raw.splitlines()] == expected
    head = s3_server.client().head_object(Bucket=bucket, Key=KEY)
    assert head["Metadata"]["conpeek-records"] == str(len(expected)) == "20000"
    assert s3_server.keys(bucket) == [KEY]


def served_offsets(sandbox: SandboxServer) -> list[int]:
    """Offsets of the requests the sandbox answered without holding them."""
    return [int(e.params["offset"][0]) for e in sandbox.request_log if e.fault is None]


def test_sigterm_mid_page_stops_paging_at_once_and_cleans_up(
    home: AirflowHome,
    page_hold: tuple[SandboxServer, Hold],
    s3_server: Any,
    s3_bucket: str,
    tmp_path: Path,
) -> None:
    sandbox, hold = page_hold
    env = task_env(home, sandbox, s3_server, s3_bucket, tmp_path / "tmp")
    process = start(home, env, "sigterm-mid-page")
    kill_when(process, hold, signal.SIGTERM)
    # The process ended while its request was still held: it did not wait for it.
    assert not hold.release.is_set()
    log = process.tail(200_000)
    assert "The task was killed" in log or "SIGTERM" in log, log[-3000:]
    assert leftovers(tmp_path / "tmp") == []  # the temporary file is gone
    assert s3_server.keys(s3_bucket) == []
    assert served_offsets(sandbox) == list(range(0, HELD_OFFSET, PAGE_SIZE))
    hold.release.set()

    out = rerun(env, home.logs / "sigterm-mid-page-rerun.log")
    assert_exact_object(s3_server, s3_bucket, sandbox)
    assert "Wrote s3://" in out


def test_sigkill_mid_page_leftover_is_removed_by_the_next_run(
    home: AirflowHome,
    page_hold: tuple[SandboxServer, Hold],
    s3_server: Any,
    s3_bucket: str,
    tmp_path: Path,
) -> None:
    sandbox, hold = page_hold
    env = task_env(home, sandbox, s3_server, s3_bucket, tmp_path / "tmp", concurrency=3)
    process = start(home, env, "sigkill-mid-page")
    pid = process.popen.pid
    assert kill_when(process, hold, signal.SIGKILL) == -signal.SIGKILL
    left = leftovers(tmp_path / "tmp")
    assert [p.name.split("-")[-2] for p in left] == [str(pid)]  # <host>-<pid>-<random>
    assert (left[0] / "records.jsonl").exists()
    hold.release.set()

    out = rerun(env, home.logs / "sigkill-mid-page-rerun.log")
    assert_exact_object(s3_server, s3_bucket, sandbox)
    assert f"left behind by process {pid}, which no longer exists" in out
    assert leftovers(tmp_path / "tmp") == []


def test_sigterm_mid_upload_aborts_the_multipart_upload(
    home: AirflowHome,
    page_hold: tuple[SandboxServer, Hold],
    part_hold: Hold,
    s3_server: Any,
    s3_bucket: str,
    tmp_path: Path,
) -> None:
    sandbox, page = page_hold
    page.release.set()  # paging runs through; the upload is held instead
    env = task_env(home, sandbox, s3_server, s3_bucket, tmp_path / "tmp")
    process = start(home, env, "sigterm-mid-upload", kind="dags")
    kill_when(process, part_hold, signal.SIGTERM)
    assert not part_hold.release.is_set()
    assert uploads(s3_server, s3_bucket) == []  # aborted, not left for the lifecycle rule
    assert s3_server.keys(s3_bucket) == []
    assert leftovers(tmp_path / "tmp") == []
    assert "Aborted the incomplete multipart upload" in process.tail(200_000)
    part_hold.release.set()

    rerun(env, home.logs / "sigterm-mid-upload-rerun.log")
    assert_exact_object(s3_server, s3_bucket, sandbox)


def test_sigkill_mid_upload_leaves_only_what_the_lifecycle_rule_removes(
    home: AirflowHome,
    page_hold: tuple[SandboxServer, Hold],
    part_hold: Hold,
    s3_server: Any,
    s3_bucket: str,
    tmp_path: Path,
) -> None:
    sandbox, page = page_hold
    page.release.set()
    env = task_env(home, sandbox, s3_server, s3_bucket, tmp_path / "tmp")
    process = start(home, env, "sigkill-mid-upload")
    pid = process.popen.pid
    assert kill_when(process, part_hold, signal.SIGKILL) == -signal.SIGKILL
    # Nothing can run after SIGKILL: the incomplete upload stays (an
    # AbortIncompleteMultipartUpload lifecycle rule removes it), and so does the temp file.
    assert [u["Key"] for u in uploads(s3_server, s3_bucket)] == [KEY]
    assert len(leftovers(tmp_path / "tmp")) == 1
    assert s3_server.keys(s3_bucket) == []
    part_hold.release.set()

    out = rerun(env, home.logs / "sigkill-mid-upload-rerun.log")
    assert_exact_object(s3_server, s3_bucket, sandbox)
    assert f"left behind by process {pid}" in out
    assert leftovers(tmp_path / "tmp") == []


def test_execution_timeout_mid_page_cleans_up(
    airflow_db: Path,
    page_hold: tuple[SandboxServer, Hold],
    s3_server: Any,
    s3_bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Airflow's execution_timeout interrupts the task while a request is held (in-process,
    ``dag.test()``): the same clean-up as SIGTERM."""
    sandbox, hold = page_hold
    env = {
        "AIRFLOW_CONN_CONPEEK_DEFAULT": sandbox.airflow_connection_json(),
        "AIRFLOW_CONN_AWS_DEFAULT": s3_server.connection_json(),
        "KILL_BUCKET": s3_bucket,
        "KILL_CONCURRENCY": "1",
        "KILL_TIMEOUT": "2",
        "TMPDIR": str(tmp_path / "tmp"),
    }
    (tmp_path / "tmp").mkdir()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(tempfile, "tempdir", env["TMPDIR"])
    dag = write_dag(tmp_path, monkeypatch, DAG_ID, DAG_SOURCE)

    try:
        state = run_dag_test(dag, pendulum.datetime(2026, 1, 2, tz="UTC")).state
    except BaseException as exc:
        # Airflow 2.11's dag.test() lets AirflowTaskTimeout (a BaseException) through.
        if type(exc).__name__ != "AirflowTaskTimeout":
            raise
        state = "failed"
    assert state == "failed"
    assert hold.entered.is_set()
    assert not hold.release.is_set()  # timed out while the request was held
    assert leftovers(tmp_path / "tmp") == []
    assert s3_server.keys(s3_bucket) == []
    assert served_offsets(sandbox) == list(range(0, HELD_OFFSET, PAGE_SIZE))


def test_sweep_removes_only_dead_processes_directories_of_this_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid = int(dead.stdout)  # exited and reaped: no process has this pid now
    with subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    ) as alive:
        root = tempfiles.root_dir()
        root.mkdir(mode=0o700)
        host = tempfiles.host_label()
        names = {
            "dead": f"{host}-{dead_pid}-abc123",
            "alive": f"{host}-{alive.pid}-abc123",
            "mine": f"{host}-{os.getpid()}-abc123",
            "other host": f"otherhost-{dead_pid}-abc123",
            "not ours": "something-else",
        }
        for name in names.values():
            (root / name).mkdir()
            (root / name / "records.jsonl").write_bytes(b"x" * 10)
        with tempfiles.ExtractDir() as fresh:  # creating one sweeps first
            assert fresh.path.parent == root
            assert sorted(p.name for p in root.iterdir()) == sorted(
                [n for k, n in names.items() if k != "dead"] + [fresh.path.name]
            )
        assert not fresh.path.exists()
        alive.stdin.close()  # type: ignore[union-attr]
