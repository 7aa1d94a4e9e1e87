"""Reliability end to end: the example DAG through ``dag.test()`` with faults injected in the
Conpeek sandbox and in the S3 path. Every recoverable fault must give the fault-free run's
object byte for byte; every unrecoverable one must fail the run and leave no object."""

from __future__ import annotations

import json
import socket
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pendulum
import pytest
from airflow_compat import load_dag, run_dag_test
from faultproxy import UploadCuttingProxy

from airflow_provider_conpeek.testing.sandbox import FaultConfig, FaultRule, SandboxServer

pytestmark = pytest.mark.e2e

EXAMPLE_DAGS = Path(__file__).resolve().parent.parent / "example_dags"
DAG_ID = "example_conpeek_daily_extract"
DAY = pendulum.datetime(2026, 1, 2, tz="UTC")
KEY = f"conpeek/voice_campaign_request_summary/{DAY:%Y%m%dT%H%M%S}.jsonl.gz"
FAST_RETRIES = {"read_timeout": 1, "max_retries": 6, "max_retry_wait": 2}


def run_day(monkeypatch: pytest.MonkeyPatch, bucket: str) -> Any:
    monkeypatch.setenv("CONPEEK_S3_BUCKET", bucket)
    return run_dag_test(load_dag(EXAMPLE_DAGS, DAG_ID), DAY.add(days=1))


def task_tries(run: Any) -> int:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        ti = (
            session.query(TaskInstance)
            .filter_by(
                dag_id=DAG_ID, run_id=run.run_id, task_id="extract_voice_campaign_request_summary"
            )
            .one()
        )
        return int(ti.try_number)


@pytest.fixture(scope="module")
def sandbox() -> Any:
    with SandboxServer(records=3000, days=3, start="2026-01-01", seed=3) as server:
        yield server


@pytest.fixture
def env(airflow_db: Path, sandbox: Any, s3_server: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    sandbox.set_faults(None)
    sandbox.clear_log()
    monkeypatch.setenv(
        "AIRFLOW_CONN_CONPEEK_DEFAULT", sandbox.airflow_connection_json(**FAST_RETRIES)
    )
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", s3_server.connection_json())
    return sandbox


@pytest.fixture(scope="module")
def baseline(airflow_db: Path, sandbox: Any, s3_server: Any) -> bytes:
    """The fault-free run's object."""
    mp = pytest.MonkeyPatch()
    try:
        sandbox.set_faults(None)
        mp.setenv("AIRFLOW_CONN_CONPEEK_DEFAULT", sandbox.airflow_connection_json(**FAST_RETRIES))
        mp.setenv("AIRFLOW_CONN_AWS_DEFAULT", s3_server.connection_json())
        bucket = s3_server.create_bucket("baseline")
        assert run_day(mp, bucket).state == "success"
        return bytes(s3_server.read(bucket, KEY))
    finally:
        mp.undo()


def faulted_requests(sandbox: Any, settle: float = 30.0) -> list[Any]:
    """Requests the sandbox faulted. A stalled request is logged when the sandbox finally
    answers it, after the client gave up, so wait for stalls to settle first."""
    deadline = time.monotonic() + settle
    while True:
        faulted = [entry for entry in sandbox.request_log if entry.fault]
        if faulted or time.monotonic() > deadline:
            return faulted
        time.sleep(0.1)


def http_date(seconds: int) -> str:
    return format_datetime(datetime.now(timezone.utc) + timedelta(seconds=seconds), usegmt=True)


RECOVERABLE: dict[str, Any] = {
    "429 Retry-After seconds": [FaultRule(kind="429", retry_after="1", every=4, times=3)],
    # Built when the test runs (a date must lie ahead); 30 s ahead, capped by max_retry_wait.
    "429 Retry-After HTTP-date": lambda: [
        FaultRule(kind="429", retry_after=http_date(30), every=4, times=2)
    ],
    "429 Retry-After 0": [FaultRule(kind="429", retry_after="0", every=3, times=3)],
    "429 Retry-After garbage": [FaultRule(kind="429", retry_after="soon-ish", every=3, times=3)],
    "429 Retry-After negative": [FaultRule(kind="429", retry_after="-5", every=3, times=2)],
    "500/502/503 at random pages": [
        FaultRule(kind="500", probability=0.15, times=3),
        FaultRule(kind="502", probability=0.15, times=3),
        FaultRule(kind="503", probability=0.15, times=3),
    ],
    "dropped connections": [FaultRule(kind="drop", every=3, times=4)],
    "stall longer than the read timeout": [
        FaultRule(kind="stall", stall_seconds=3, every=5, times=2)
    ],
}


@pytest.mark.parametrize("name", list(RECOVERABLE))
def test_recoverable_faults_give_the_same_object(
    name: str,
    env: Any,
    s3_server: Any,
    baseline: bytes,
    monkeypatch: pytest.MonkeyPatch,
    report: Any,
) -> None:
    sandbox = env
    rules = RECOVERABLE[name]
    sandbox.set_faults(FaultConfig(rules=rules() if callable(rules) else rules, seed=11))
    bucket = s3_server.create_bucket(
        "r-" + "".join(c if c.isalnum() else "-" for c in name.lower())[:40].strip("-")
    )
    run = run_day(monkeypatch, bucket)
    assert run.state == "success"
    faulted = faulted_requests(sandbox)
    assert faulted, "the fault never fired, so this scenario proved nothing"
    assert s3_server.read(bucket, KEY) == baseline
    # That a usable Retry-After holds every request of the extract is shown on the fake
    # clock (tests/test_client.py::test_retry_after_holds_every_request_of_the_client),
    # not by wall-clock gaps on a shared machine.
    tries = task_tries(run)
    report(f"{name:<40} recovered: {len(faulted)} faulted requests retried, task tries={tries}")


UNRECOVERABLE = {
    "server ignores offset": ([FaultRule(kind="ignore_offset")], "ignore 'offset'"),
    "malformed body": ([FaultRule(kind="malformed", offsets=[300])], "Malformed response"),
}


@pytest.mark.parametrize("name", list(UNRECOVERABLE))
def test_unrecoverable_faults_fail_and_write_nothing(
    name: str,
    env: Any,
    s3_server: Any,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    report: Any,
) -> None:
    sandbox = env
    rules, message = UNRECOVERABLE[name]
    sandbox.set_faults(FaultConfig(rules=rules))
    bucket = s3_server.create_bucket(
        "u-" + "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")
    )
    run = run_day(monkeypatch, bucket)
    assert run.state == "failed"
    assert message in capfd.readouterr().out
    assert s3_server.keys(bucket) == []
    report(f"{name:<40} failed cleanly after {task_tries(run)} task tries; nothing written")


def test_s3_down_fails_and_writes_nothing(
    env: Any, s3_server: Any, monkeypatch: pytest.MonkeyPatch, report: Any
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    bucket = s3_server.create_bucket("s3-down")
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", aws_conn(f"http://127.0.0.1:{dead}"))
    run = run_day(monkeypatch, bucket)
    assert run.state == "failed"
    assert s3_server.keys(bucket) == []
    report(f"{'S3 endpoint down':<40} failed after {task_tries(run)} task tries; nothing written")


PUTS_PER_TRY = 3  # boto's retries (max_attempts=2) plus s3transfer's own retry on a dropped upload


def test_upload_cut_midway_every_time_fails_and_writes_nothing(
    env: Any, s3_server: Any, baseline: bytes, monkeypatch: pytest.MonkeyPatch, report: Any
) -> None:
    port = int(s3_server.endpoint_url.rsplit(":", 1)[1])
    proxy = UploadCuttingProxy(port, cut_puts=1000, cut_after=len(baseline) // 2)
    try:
        bucket = s3_server.create_bucket("s3-cut-always")
        monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", aws_conn(proxy.endpoint_url))
        run = run_day(monkeypatch, bucket)
        assert run.state == "failed"
        assert proxy.puts_cut == 3 * PUTS_PER_TRY
        assert s3_server.keys(bucket) == []  # no partial object
        cut = proxy.puts_cut
        report(f"{'S3 upload always cut midway':<40} failed, {cut} uploads cut; nothing written")
    finally:
        proxy.stop()


def test_upload_cut_midway_then_airflow_retry_writes_the_right_object(
    env: Any, s3_server: Any, baseline: bytes, monkeypatch: pytest.MonkeyPatch, report: Any
) -> None:
    port = int(s3_server.endpoint_url.rsplit(":", 1)[1])
    proxy = UploadCuttingProxy(port, cut_puts=PUTS_PER_TRY, cut_after=len(baseline) // 2)
    try:
        bucket = s3_server.create_bucket("s3-cut")
        monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", aws_conn(proxy.endpoint_url))
        run = run_day(monkeypatch, bucket)
        assert run.state == "success"
        assert proxy.puts_cut == PUTS_PER_TRY  # every upload of the first try died midway
        assert task_tries(run) == 2  # ... and Airflow's retry wrote the object
        assert s3_server.read(bucket, KEY) == baseline
        report(f"{'S3 upload cut midway (first try)':<40} recovered by Airflow retry, task tries=2")
    finally:
        proxy.stop()


def aws_conn(endpoint_url: str) -> str:
    return json.dumps(
        {
            "conn_type": "aws",
            "extra": {
                "endpoint_url": endpoint_url,
                "region_name": "us-east-1",
                "config_kwargs": {
                    "retries": {"max_attempts": 2, "mode": "standard"},
                    "connect_timeout": 2,
                },
            },
        }
    )
