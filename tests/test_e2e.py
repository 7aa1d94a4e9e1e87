"""The example DAG run through Airflow itself (``dag.test()``, SQLite metadata DB) against the
sandbox and a real S3 API over HTTP, for three consecutive days."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pendulum
import pytest
from airflow_compat import asset_event_extras, dag_bag, run_dag_test

EXAMPLE_DAGS = Path(__file__).resolve().parent.parent / "example_dags"
DAG_ID = "example_conpeek_daily_extract"
DAYS = [pendulum.datetime(2026, 1, d, tz="UTC") for d in (1, 2, 3)]


def load_dagbag() -> Any:
    return dag_bag(EXAMPLE_DAGS)


def test_example_dags_load_without_errors() -> None:
    dagbag = load_dagbag()
    assert dagbag.import_errors == {}
    assert DAG_ID in dagbag.dag_ids
    files = {Path(dag.fileloc).name for dag in dagbag.dags.values()}
    assert files == {p.name for p in EXAMPLE_DAGS.glob("*.py")}


def run_day(day: pendulum.DateTime) -> Any:
    dag = load_dagbag().get_dag(DAG_ID)
    # CronDataIntervalTimetable: the run at logical date D+1 covers [D, D+1).
    return run_dag_test(dag, day.add(days=1))


@pytest.mark.e2e
def test_three_daily_runs_then_a_rerun(
    airflow_db: Path,
    airflow_connections: Any,
    s3_server: Any,
    s3_bucket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sandbox = airflow_connections
    monkeypatch.setenv("CONPEEK_S3_BUCKET", s3_bucket)
    objects: dict[str, bytes] = {}
    for day in DAYS:
        run = run_day(day)
        assert run.state == "success", run
        key = f"conpeek/voice_campaign_request_summary/{day:%Y%m%dT%H%M%S}.jsonl.gz"
        objects[key] = s3_server.read(s3_bucket, key)
        lines = [json.loads(line) for line in gzip.decompress(objects[key]).splitlines()]
        start, end = (
            day.format("YYYY-MM-DD HH:mm:ss"),
            day.add(days=1).format("YYYY-MM-DD HH:mm:ss"),
        )
        expected = sandbox.expected_records(
            [
                {"property": "created_date", "operator": "gte", "value": start},
                {"property": "created_date", "operator": "lt", "value": end},
            ]
        )
        assert lines == expected
        assert lines[0]["created_date"] == start  # the boundary second belongs here
        assert lines[-1]["created_date"] == day.format("YYYY-MM-DD") + " 23:59:59"
    assert sorted(s3_server.keys(s3_bucket)) == sorted(objects)
    # Each run emitted an asset event on the prefix, naming its object, window and counts.
    events = asset_event_extras(f"s3://{s3_bucket}/conpeek/voice_campaign_request_summary")
    assert [e["uri"] for e in events] == [f"s3://{s3_bucket}/{key}" for key in objects]
    for event, (key, body) in zip(events, objects.items(), strict=True):
        assert (event["bucket"], event["key"], event["bytes"]) == (s3_bucket, key, len(body))
        assert event["records"] == len(gzip.decompress(body).splitlines())
        start = key.rsplit("/", 1)[1].split(".")[0]
        assert event["window"]["start"].replace("-", "").replace(":", "").replace(" ", "T") == start
    assert sum(len(gzip.decompress(b).splitlines()) for b in objects.values()) == len(
        sandbox.expected_records()
    )

    rerun = run_day(DAYS[1])
    assert rerun.state == "success"
    key = f"conpeek/voice_campaign_request_summary/{DAYS[1]:%Y%m%dT%H%M%S}.jsonl.gz"
    assert s3_server.read(s3_bucket, key) == objects[key]
