"""The example DAG scheduled by a real Airflow: scheduler, triggerer, the HTTP server, and on
Airflow 3 the DAG processor.

Nothing here calls ``dag.test()``: the scheduler creates the runs from the timetable
(catchup), the executor runs the tasks (Airflow 3: LocalExecutor, Task SDK workers talking
to the API server's execution API; Airflow 2.11: SequentialExecutor, the only one it runs on
SQLite, ``airflow tasks run``), and the deferred sensor waits in the triggerer. All on
loopback, with a fresh AIRFLOW_HOME and SQLite, connections passed as ``AIRFLOW_CONN_*`` env
vars to every process. What differs between the versions (server, REST API, executor) is in
``airflow_servers.py``; the log formats are read below.

The example DAG starts on 2026-01-01 with catchup; the test copies it into its own DAGs
folder with the start date moved to three days before today (UTC), so the scheduler makes
exactly three daily runs, all in the past. The sandbox holds records for those three days.

The example loading DAG (``example_conpeek_load_on_asset``), scheduled on the extract's
asset, is in the same folder: unpaused first, it must be triggered by the extracts' asset
events and load each day's object into its SQLite table, row for row.

To prove deferral deterministically, the sandbox answers the *first* ``limit=1`` request of
each window with no records (the day's data "lands" just after the sensor's first look):
the sensor must defer, and the trigger's first poll, in the triggerer, finds the records.
"""

from __future__ import annotations

import gzip
import json
import re
import sqlite3
import time
import urllib.error
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pendulum
import pytest
from harness import AirflowHome, get_or_none, late_data, window_filters
from processes import free_port, wait_for

from airflow_provider_conpeek.testing.sandbox import SandboxServer

pytestmark = [pytest.mark.scheduler, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_DAG = ROOT / "example_dags" / "example_conpeek_daily_extract.py"
DAG_ID = "example_conpeek_daily_extract"
LOAD_DAG = ROOT / "example_dags" / "example_conpeek_load_on_asset.py"
LOAD_DAG_ID = "example_conpeek_load_on_asset"
START_DATE_IN_EXAMPLE = 'start_date=pendulum.datetime(2026, 1, 1, tz="UTC")'
POKE_INTERVAL_IN_EXAMPLE = "poke_interval=600,"
KEY = "conpeek/voice_campaign_request_summary/{day:%Y%m%dT%H%M%S}.jsonl.gz"
SENSOR_CLASS = "VoiceCampaignSummarySensor"
OPERATOR_CLASS = "VoiceCampaignSummaryToS3Operator"
RUNS_TIMEOUT = 600.0  # Airflow 2.11 runs one task at a time, each a fresh process
BAD_STATES = {"failed", "up_for_retry", "upstream_failed", "removed"}


# The sensor's first poke of each window finds nothing: it must defer (harness.late_data).
LATE_DATA = late_data()


def dag_source(days: list[pendulum.DateTime]) -> str:
    """The example DAG, scheduled from ``days[0]`` to ``days[-1]`` (one run per day), its
    sensor polling every 5 s instead of 600 s.

    ``end_date`` keeps a run test started just before midnight UTC from growing a fourth run.
    """
    source = EXAMPLE_DAG.read_text()
    for expected in (START_DATE_IN_EXAMPLE, POKE_INTERVAL_IN_EXAMPLE):
        assert source.count(expected) == 1, (
            f"{EXAMPLE_DAG.name} no longer has {expected!r}; update this test"
        )
    source = source.replace(POKE_INTERVAL_IN_EXAMPLE, "poke_interval=5,")
    first, last = days[0], days[-1]
    return source.replace(
        START_DATE_IN_EXAMPLE,
        f'start_date=pendulum.datetime({first.year}, {first.month}, {first.day}, tz="UTC"), '
        f'end_date=pendulum.datetime({last.year}, {last.month}, {last.day}, tz="UTC")',
    )


@pytest.fixture
def airflow(
    s3_server: Any, s3_bucket: str, tmp_path: Path
) -> Iterator[tuple[AirflowHome, SandboxServer, list[pendulum.DateTime]]]:
    """Every Airflow component, the example DAG three days back, the sandbox, moto S3."""
    today = pendulum.now("UTC").start_of("day")
    days = [today.subtract(days=n) for n in (3, 2, 1)]
    sandbox = SandboxServer(
        records=3000, days=3, start=days[0].to_date_string(), faults=LATE_DATA
    ).start()
    try:
        env = {
            "AIRFLOW_CONN_CONPEEK_DEFAULT": sandbox.airflow_connection_json(),
            "AIRFLOW_CONN_AWS_DEFAULT": s3_server.connection_json(),
            "CONPEEK_S3_BUCKET": s3_bucket,
            "CONPEEK_EXAMPLE_SQLITE": str(tmp_path / "loaded.sqlite"),
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "1",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        }
        with AirflowHome(tmp_path, env, scheduler=True) as home:
            (home.dags / EXAMPLE_DAG.name).write_text(dag_source(days))
            (home.dags / LOAD_DAG.name).write_text(LOAD_DAG.read_text())
            home.migrate()
            home.start_server()
            home.start_scheduler()
            yield home, sandbox, days
    finally:
        sandbox.stop()


def _get(home: AirflowHome, path: str) -> Any:
    return get_or_none(home.api, path)


def test_three_scheduled_runs_defer_and_extract(
    airflow: tuple[AirflowHome, SandboxServer, list[pendulum.DateTime]],
    s3_server: Any,
    s3_bucket: str,
) -> None:
    home, sandbox, days = airflow
    started = time.monotonic()
    timings: dict[str, float] = {}

    def fail(message: str) -> None:
        pytest.fail(f"{message}\n{home.logs_tail()}")

    # The DAG processor (Airflow 2.11: the scheduler) parses the copied example DAG.
    def dag_parsed() -> Any:
        errors = _get(home, "/importErrors") or {}
        if errors.get("import_errors"):
            fail(f"DAG import errors: {errors['import_errors']}")
        return _get(home, f"/dags/{DAG_ID}")

    dag = wait_for("the DAG to be parsed", dag_parsed, 240, alive=home.check_alive)
    timings["parsed"] = time.monotonic() - started
    assert dag["is_paused"] is True
    tasks = {t["task_id"]: t for t in home.api("GET", f"/dags/{DAG_ID}/tasks")["tasks"]}
    by_class = {t["class_ref"]["class_name"]: task_id for task_id, t in tasks.items()}
    assert OPERATOR_CLASS in by_class, tasks.keys()
    assert SENSOR_CLASS in by_class, f"the example DAG has no {SENSOR_CLASS}: {list(tasks)}"
    sensor_id, extract_id = by_class[SENSOR_CLASS], by_class[OPERATOR_CLASS]
    assert tasks[sensor_id]["downstream_task_ids"] == [extract_id]
    assert tasks[extract_id]["downstream_task_ids"] == []

    # The loading DAG first: a paused DAG is not triggered by the events it misses.
    wait_for("the loading DAG to be parsed", lambda: _get(home, f"/dags/{LOAD_DAG_ID}"), 240)
    home.run("dags", "unpause", LOAD_DAG_ID)
    home.run("dags", "unpause", DAG_ID)
    timings["unpaused"] = time.monotonic() - started

    # Three scheduled runs; watch task states as they go (deferred ones included).
    seen: dict[tuple[str, str], list[str]] = {}

    def three_successful_runs() -> list[dict[str, Any]] | None:
        try:
            runs = home.api("GET", f"/dags/{DAG_ID}/dagRuns?limit=100")["dag_runs"]
            tis = home.api("GET", f"/dags/{DAG_ID}/dagRuns/~/taskInstances?limit=100")
        except (urllib.error.URLError, OSError):  # e.g. SQLite busy under load: ask again
            return None
        for ti in tis["task_instances"]:
            states = seen.setdefault((ti["dag_run_id"], ti["task_id"]), [])
            if not states or states[-1] != ti["state"]:
                states.append(ti["state"])
            if ti["state"] in BAD_STATES:
                fail(f"task {ti['task_id']} of {ti['dag_run_id']} is {ti['state']}")
        if any(r["state"] == "failed" for r in runs):
            fail(f"a DAG run failed: {runs}")
        done = [r for r in runs if r["state"] == "success"]
        return done if len(done) >= 3 else None

    runs = wait_for(
        "three successful DAG runs", three_successful_runs, RUNS_TIMEOUT, alive=home.check_alive
    )
    timings["three runs"] = time.monotonic() - started

    # Exactly the three intervals, scheduled (not manual), each a whole UTC day.
    assert len(runs) == 3, runs
    intervals = sorted(
        (pendulum.parse(r["data_interval_start"]), pendulum.parse(r["data_interval_end"]))
        for r in runs
    )
    assert intervals == [(day, day.add(days=1)) for day in days]
    assert {r["run_type"] for r in runs} == {"scheduled"}

    # Each day's object holds exactly the sandbox's records of that day (templated key).
    assert sorted(s3_server.keys(s3_bucket)) == [KEY.format(day=d) for d in days]
    for day in days:
        body = s3_server.read(s3_bucket, KEY.format(day=day))
        lines = [json.loads(line) for line in gzip.decompress(body).splitlines()]
        expected = sandbox.expected_records(window_filters(day))
        assert expected, f"the sandbox has no records on {day}"
        assert lines == expected, f"{day}: {len(lines)} records, expected {len(expected)}"

    # Templating under the scheduler: the rendered key of each run is its own day.
    for run in runs:
        ti = _task_instance(home, run["dag_run_id"], extract_id)
        interval_start = pendulum.parse(run["data_interval_start"])
        assert isinstance(interval_start, pendulum.DateTime), run
        key = KEY.format(day=interval_start)
        assert ti["rendered_fields"]["s3_key"] == key, ti["rendered_fields"]
        assert ti["rendered_fields"]["s3_bucket"] == s3_bucket

    # Deferral, for every run: the sensor's first poke found nothing (LATE_DATA), the
    # trigger's first poll in the triggerer found the records, the sensor resumed and
    # succeeded in the same try.
    log = sandbox.request_log
    for day in days:
        start = day.format("YYYY-MM-DD HH:mm:ss")
        polls = [e for e in log if e.params.get("limit") == ["1"] and _window_start(e) == start]
        assert [e.fault for e in polls] == ["empty", None], polls
        assert [e.status for e in polls] == [200, 200]
        assert polls[1].headers["Authorization"] == sandbox.api_key
    for run in runs:
        ti = _task_instance(home, run["dag_run_id"], sensor_id)
        assert ti["state"] == "success"
        assert ti["try_number"] == 1, ti  # resumed after the deferral, not retried

        # The triggerer writes its log file on its own schedule, possibly after the task
        # resumed: wait (bounded) until the fired line is there.
        def fired_logged(dag_run_id: str = run["dag_run_id"]) -> Any:
            found = _sensor_logs(home, dag_run_id, sensor_id)
            return found if any(e["event"] == TRIGGER_FIRED for t in found[1] for e in t) else None

        try:
            events, trigger_logs = wait_for("the trigger's fired line", fired_logged, 60)
        except TimeoutError:
            events, trigger_logs = _sensor_logs(home, run["dag_run_id"], sensor_id)
        paused = [i for i, e in enumerate(events) if e.startswith("Pausing task as DEFERRED")]
        assert len(paused) == 1, events
        # ...and the same try resumed in a worker (execute_complete) after the trigger fired.
        resumed = [e for e in events[paused[0] :] if e.endswith("record(s) found. Exiting.")]
        assert len(resumed) == 1, events
        # The trigger ran in the triggerer, which writes <attempt>.log.trigger.<job id>.log.
        assert len(trigger_logs) == 1, trigger_logs
        fired = [e for e in trigger_logs[0] if e["event"] == TRIGGER_FIRED]
        assert len(fired) == 1, trigger_logs
        assert "'status': 'success'" in fired[0]["result"], fired
    # The loading DAG, triggered by the extracts' asset events, loaded exactly the objects its
    # runs' events named, row for row. (How Airflow groups events into runs depends on their
    # timing and on the version: three events within milliseconds may give one run for the
    # first, the others waiting for the next event. So: what was consumed was loaded.)
    database = home.env["CONPEEK_EXAMPLE_SQLITE"]
    objects = {f"s3://{s3_bucket}/{KEY.format(day=day)}": day for day in days}

    def loads_settled() -> tuple[set[str], dict[str, int]] | None:
        load_runs = _get(home, f"/dags/{LOAD_DAG_ID}/dagRuns?limit=100") or {"dag_runs": []}
        runs = load_runs["dag_runs"]
        if any(r["state"] == "failed" for r in runs):
            fail(f"a run of {LOAD_DAG_ID} failed: {load_runs}")
        if not runs or any(r["state"] != "success" for r in runs):
            return None
        consumed: set[str] = set()
        for run in runs:
            path = home.server.upstream_events.format(dag_id=LOAD_DAG_ID, run_id=run["dag_run_id"])
            events = home.api("GET", path)[home.server.events_key]
            consumed |= {
                json.loads(e["extra"])["uri"] if isinstance(e["extra"], str) else e["extra"]["uri"]
                for e in events
            }
        with sqlite3.connect(database, timeout=30) as db:
            counts = dict(
                db.execute(
                    "SELECT source_uri, COUNT(*) FROM voice_campaign_request_summary "
                    "GROUP BY source_uri"
                ).fetchall()
            )
        return (consumed, counts) if set(counts) == consumed else None

    consumed, loaded = wait_for("the loading DAG to load what it consumed", loads_settled, 300)
    timings["loaded"] = time.monotonic() - started
    assert consumed, "no event triggered the loading DAG"
    assert consumed <= set(objects)
    with sqlite3.connect(database) as db:
        for uri in consumed:
            rows = db.execute(
                "SELECT record FROM voice_campaign_request_summary WHERE source_uri = ? "
                "ORDER BY line",
                (uri,),
            ).fetchall()
            assert [json.loads(r) for (r,) in rows] == sandbox.expected_records(
                window_filters(objects[uri])
            ), uri
    load_runs = home.api("GET", f"/dags/{LOAD_DAG_ID}/dagRuns?limit=100")["dag_runs"]
    assert {r["run_type"] for r in load_runs} <= {"asset_triggered", "dataset_triggered"}
    print(f"loading DAG: {len(load_runs)} run(s) loaded {sorted(loaded.items())}")

    # Every process outlived the triggers (a trigger breaking the triggerer's channel to its
    # supervisor used to kill it on Airflow 3.0 and 3.1).
    home.check_alive()
    deferred_seen = [k for k, states in seen.items() if "deferred" in states]
    print(
        f"timings (s since the test started): {timings}; deferred state seen by polling: "
        f"{len(deferred_seen)}/3 sensor tries; state histories: {seen}"
    )


def _window_start(entry: Any) -> str | None:
    """The ``created_date >= ...`` bound of a logged request's filter."""
    raw = entry.params.get("filter", [None])[0]
    for item in json.loads(raw) if raw else []:
        if item.get("property") == "created_date" and item.get("operator") == "gte":
            return str(item["value"])
    return None


def _task_instance(home: AirflowHome, run_id: str, task_id: str) -> Any:
    run = urllib.parse.quote(run_id, safe="")
    return home.api("GET", f"/dags/{DAG_ID}/dagRuns/{run}/taskInstances/{task_id}")


def _sensor_logs(
    home: AirflowHome, run_id: str, task_id: str
) -> tuple[list[str], list[list[dict[str, Any]]]]:
    """The messages of the task's first try (worker side) and the records of each trigger
    log file."""
    base = home.path / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}" / f"task_id={task_id}"
    task_events = [e["event"] for e in _log_records(base / "attempt=1.log")]
    triggers = [_log_records(path) for path in sorted(base.glob("attempt=1.log.trigger.*.log"))]
    return task_events, triggers


# Airflow 2 writes task and trigger logs as text, "[<time>] {<file>:<line>} <LEVEL> - <message>",
# a message's further lines (a traceback) following it as they are; Airflow 3 as JSON lines.
TEXT_RECORD = re.compile(r"^\[[^\]]+\] \{[^}]*\} [A-Z]+ - (?P<message>.*)$")
# Airflow 3's triggerer logs {"event": "Trigger fired event", "name": ..., "result": ...};
# Airflow 2's "Trigger <name> fired: <result>".
TRIGGER_FIRED = "Trigger fired event"
TEXT_TRIGGER_FIRED = re.compile(r"^Trigger (?P<name>.+) fired: (?P<result>.*)$", re.DOTALL)


def _log_records(path: Path) -> list[dict[str, Any]]:
    """A task or trigger log file's records, each a dict with at least ``event`` (the
    message): JSON lines as they are, text lines as ``{"event": message}``, and Airflow 2's
    trigger-fired line as Airflow 3 writes it."""
    assert path.exists(), f"no log file {path}"
    records: list[dict[str, Any]] = []
    text: dict[str, Any] | None = None  # the last text record: other lines continue it
    for line in path.read_text().splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))
            text = None
        elif match := TEXT_RECORD.match(line):
            text = {"event": match["message"]}
            records.append(text)
        elif text is not None:
            text["event"] += "\n" + line
    for record in records:
        if fired := TEXT_TRIGGER_FIRED.match(record["event"]):
            record.update(event=TRIGGER_FIRED, name=fired["name"], result=fired["result"])
    return records
