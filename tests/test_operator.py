"""VoiceCampaignSummaryToS3Operator against the sandbox and a real S3 API over HTTP."""

from __future__ import annotations

import gzip
import json
import logging
import os
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pendulum
import pytest
from airflow_compat import DAG, AirflowFailException, serialization_round_trip
from harness import temp_leftovers

from airflow_provider_conpeek.exceptions import (
    ConpeekConfigError,
    ConpeekPagingError,
)
from airflow_provider_conpeek.operators.voice_campaign_summary import (
    VoiceCampaignSummaryToAzureBlobOperator,
    VoiceCampaignSummaryToGCSOperator,
    VoiceCampaignSummaryToS3Operator,
)
from airflow_provider_conpeek.testing.sandbox import FaultConfig, FaultRule

DAY1 = pendulum.datetime(2026, 1, 1, tz="UTC")
DAY2 = DAY1.add(days=1)
DAY3 = DAY1.add(days=2)


def context(start: Any = DAY1, end: Any = DAY2) -> dict[str, Any]:
    return {"data_interval_start": start, "data_interval_end": end}


def make(
    bucket: str, key: str = "out/day.jsonl.gz", **kwargs: Any
) -> VoiceCampaignSummaryToS3Operator:
    kwargs.setdefault("concurrency", 3)
    kwargs.setdefault("page_size", 50)
    return VoiceCampaignSummaryToS3Operator(
        task_id="extract", s3_bucket=bucket, s3_key=key, **kwargs
    )


def read_lines(raw: bytes, gz: bool = True) -> list[dict[str, Any]]:
    text = (gzip.decompress(raw) if gz else raw).decode("utf-8")
    return [json.loads(line) for line in text.splitlines()]


def window(start: str, end: str, prop: str = "created_date") -> list[dict[str, Any]]:
    return [
        {"property": prop, "operator": "gte", "value": start},
        {"property": prop, "operator": "lt", "value": end},
    ]


def test_extracts_exactly_the_interval(
    airflow_connections: Any, s3_server: Any, s3_bucket: str, tmpdir_watch: Path
) -> None:
    sandbox = airflow_connections
    result = make(s3_bucket).execute(context())
    expected = sandbox.expected_records(window("2026-01-01 00:00:00", "2026-01-02 00:00:00"))
    raw = s3_server.read(s3_bucket, "out/day.jsonl.gz")
    assert read_lines(raw) == expected
    assert expected[0]["created_date"] == "2026-01-01 00:00:00"  # boundary second included
    assert expected[-1]["created_date"] == "2026-01-01 23:59:59"
    assert result == {
        "s3_uri": f"s3://{s3_bucket}/out/day.jsonl.gz",
        "records": len(expected),
        "bytes": len(raw),
        "pages": -(-len(expected) // 50),
        "window": {
            "date_property": "created_date",
            "start": "2026-01-01 00:00:00",
            "end": "2026-01-02 00:00:00",
        },
        "etag": s3_server.client().head_object(Bucket=s3_bucket, Key="out/day.jsonl.gz")["ETag"],
    }
    assert json.loads(json.dumps(result)) == result  # XCom-safe
    assert temp_leftovers(tmpdir_watch) == []  # temp files cleaned up


def test_adjacent_windows_partition_the_records(
    airflow_connections: Any, s3_server: Any, s3_bucket: str
) -> None:
    sandbox = airflow_connections
    seen: list[dict[str, Any]] = []
    for i, (start, end) in enumerate([(DAY1, DAY2), (DAY2, DAY3), (DAY3, DAY3.add(days=1))]):
        make(s3_bucket, f"d{i}.jsonl.gz").execute(context(start, end))
        seen += read_lines(s3_server.read(s3_bucket, f"d{i}.jsonl.gz"))
    assert seen == sandbox.expected_records()


def test_plain_json_lines_keeps_non_ascii_readable(
    airflow_connections: Any, s3_server: Any, s3_bucket: str
) -> None:
    make(s3_bucket, "plain.jsonl", compression="none").execute(context())
    raw = s3_server.read(s3_bucket, "plain.jsonl")
    assert "Łódź".encode() in raw or "ż".encode() in raw
    assert b"\\u0" not in raw
    assert len(read_lines(raw, gz=False)) == 333


def test_extra_filters_and_closed_date(
    airflow_connections: Any, s3_server: Any, s3_bucket: str
) -> None:
    sandbox = airflow_connections
    extra = [{"property": "project_id_list", "value": [11, 13]}]
    result = make(s3_bucket, filters=extra, date_property="closed_date").execute(context())
    expected = sandbox.expected_records(
        window("2026-01-01 00:00:00", "2026-01-02 00:00:00", "closed_date") + extra
    )
    assert read_lines(s3_server.read(s3_bucket, "out/day.jsonl.gz")) == expected
    assert result["records"] == len(expected) > 0
    assert {r["project_id"] for r in expected} == {11, 13}


def test_explicit_window_strings(airflow_connections: Any, s3_server: Any, s3_bucket: str) -> None:
    sandbox = airflow_connections
    op = make(s3_bucket, window_start="2026-01-02T06:00:00+00:00", window_end="2026-01-02 12:00:00")
    result = op.execute({})
    assert result["window"]["start"] == "2026-01-02 06:00:00"
    expected = sandbox.expected_records(window("2026-01-02 06:00:00", "2026-01-02 12:00:00"))
    assert result["records"] == len(expected) > 0


def test_empty_interval_writes_a_valid_empty_object(
    airflow_connections: Any, s3_server: Any, s3_bucket: str
) -> None:
    result = make(s3_bucket).execute(context(DAY1.subtract(days=5), DAY1.subtract(days=4)))
    raw = s3_server.read(s3_bucket, "out/day.jsonl.gz")
    assert gzip.decompress(raw) == b""
    assert result["records"] == 0
    assert result["pages"] == 0


def test_rerun_overwrites_with_identical_bytes(
    airflow_connections: Any, s3_server: Any, s3_bucket: str
) -> None:
    make(s3_bucket).execute(context())
    first = s3_server.read(s3_bucket, "out/day.jsonl.gz")
    make(s3_bucket).execute(context())
    assert s3_server.read(s3_bucket, "out/day.jsonl.gz") == first


def test_replace_false_refuses_before_any_request(
    airflow_connections: Any, s3_server: Any, s3_bucket: str
) -> None:
    sandbox = airflow_connections
    make(s3_bucket).execute(context())
    sandbox.clear_log()
    with pytest.raises(ConpeekConfigError, match="replace=False"):
        make(s3_bucket, replace=False).execute(context())
    assert sandbox.request_log == []


def test_failure_mid_extract_leaves_nothing(
    airflow_connections: Any, s3_server: Any, s3_bucket: str, tmpdir_watch: Path
) -> None:
    sandbox = airflow_connections
    sandbox.set_faults(FaultConfig(rules=[FaultRule(kind="malformed", offsets=[200])]))
    with pytest.raises(ConpeekPagingError, match="Malformed"):
        make(s3_bucket).execute(context())
    assert s3_server.keys(s3_bucket) == []
    assert temp_leftovers(tmpdir_watch) == []


def test_rejected_request_leaves_nothing(
    airflow_connections: Any, s3_server: Any, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = airflow_connections
    monkeypatch.setenv(
        "AIRFLOW_CONN_CONPEEK_DEFAULT",
        json.dumps({**json.loads(sandbox.airflow_connection_json()), "password": "wrong"}),
    )
    with pytest.raises(Exception, match="conpeek_default") as info:
        make(s3_bucket).execute(context())
    assert "wrong" not in str(info.value)
    assert s3_server.keys(s3_bucket) == []


def test_s3_down_fails_and_cleans_up(
    airflow_connections: Any, s3_bucket: str, monkeypatch: pytest.MonkeyPatch, tmpdir_watch: Path
) -> None:
    import socket

    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_DEFAULT",
        json.dumps(
            {
                "conn_type": "aws",
                "extra": {
                    "endpoint_url": f"http://127.0.0.1:{port}",
                    "region_name": "us-east-1",
                    "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 1},
                },
            }
        ),
    )
    with pytest.raises(Exception):  # noqa: B017, PT011 - botocore's own connection error
        make(s3_bucket).execute(context())
    assert temp_leftovers(tmpdir_watch) == []


def test_window_in_the_future_warns(
    airflow_connections: Any, s3_bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    with caplog.at_level(logging.WARNING):
        make(s3_bucket).execute(context(now - timedelta(hours=1), now + timedelta(hours=1)))
    assert "ends in the future" in caplog.text


@pytest.mark.parametrize(
    ("cls", "target"),
    [
        (VoiceCampaignSummaryToS3Operator, {"s3_bucket": "{{ b }}", "s3_key": "{{ k }}"}),
        (VoiceCampaignSummaryToGCSOperator, {"bucket_name": "{{ b }}", "object_name": "{{ k }}"}),
        (
            VoiceCampaignSummaryToAzureBlobOperator,
            {"container_name": "{{ b }}", "blob_name": "{{ k }}"},
        ),
    ],
)
def test_constructor_arguments_match_template_fields(cls: Any, target: dict[str, str]) -> None:
    """Every template field is a constructor argument of the same name (the operator's own
    or its shared base's), assigned as given: Airflow renders the attribute of that name."""
    import inspect

    given = {
        **target,
        "filters": [{"x": "{{ f }}"}],
        "date_property": "{{ p }}",
        "window_start": "{{ s }}",
        "window_end": "{{ e }}",
    }
    op = cls(task_id="t", **given)
    params = {
        name
        for klass in cls.__mro__
        if "__init__" in vars(klass)
        for name in inspect.signature(vars(klass)["__init__"]).parameters
    }
    for name in op.template_fields:
        assert name in params
        if name in given:
            assert getattr(op, name) == given[name]


def test_operator_survives_dag_serialization() -> None:
    with DAG("ser", schedule=None, start_date=DAY1) as dag:
        make(
            "b",
            filters=[{"property": "project_id_list", "value": [11]}],
            window_start="{{ data_interval_start }}",
        )
    restored = serialization_round_trip(dag)
    task = restored.get_task("extract")
    assert tuple(task.template_fields) == tuple(VoiceCampaignSummaryToS3Operator.template_fields)
    assert task.filters == [{"property": "project_id_list", "value": [11]}]
    assert task.window_start == "{{ data_interval_start }}"
    assert task.s3_key == "out/day.jsonl.gz"


def test_module_import_does_not_load_heavy_libraries() -> None:
    import subprocess
    import sys

    # What the module adds to what Airflow's BaseOperator already costs (2.11's loads requests).
    code = (
        "import sys; import airflow_provider_conpeek._compat; before = set(sys.modules); "
        "import airflow_provider_conpeek.operators.voice_campaign_summary; "
        "heavy = ('boto3', 'requests', 'airflow.providers.amazon.aws.hooks.s3'); "
        "print(sorted(m for m in heavy if m in set(sys.modules) - before))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env=os.environ.copy(),
    )
    assert out.stdout.strip() == "[]"


def test_unfixable_errors_skip_task_retries(
    airflow_connections: Any, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bad input and a rejected key are AirflowFailException: retries cannot cure them."""
    sandbox = airflow_connections
    conn = sandbox.airflow_connection_json(max_retries=1, max_retry_wait=0.1)
    monkeypatch.setenv("AIRFLOW_CONN_CONPEEK_DEFAULT", conn)

    with pytest.raises(AirflowFailException, match="CronDataIntervalTimetable"):
        make(s3_bucket).execute(context(DAY1, DAY1))
    sandbox.set_faults(FaultConfig(rules=[FaultRule(kind="500")]))
    with pytest.raises(Exception, match="Giving up") as info:  # transient: retries apply
        make(s3_bucket).execute(context())
    assert not isinstance(info.value, AirflowFailException)
    sandbox.set_faults(None)
    wrong = {**json.loads(conn), "password": "not-the-key"}
    monkeypatch.setenv("AIRFLOW_CONN_CONPEEK_DEFAULT", json.dumps(wrong))
    with pytest.raises(AirflowFailException, match="refused the API key"):
        make(s3_bucket).execute(context())


PROGRESS_LINE = re.compile(r"Progress (\d+) pages")


def test_logs_progress_and_totals(
    airflow_connections: Any,
    s3_bucket: str,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from airflow_provider_conpeek.operators import voice_campaign_summary

    monkeypatch.setattr(voice_campaign_summary, "PROGRESS_EVERY_SECONDS", 0.0)
    with caplog.at_level(logging.INFO):
        result = make(s3_bucket).execute(context())
    out = capfd.readouterr()
    # Airflow 2.11 and 3.0 log each line both to stderr and to caplog: count distinct lines.
    lines = (out.out + out.err + caplog.text).splitlines()
    progress = {int(m[1]) for m in map(PROGRESS_LINE.search, lines) if m}
    assert progress == set(range(1, result["pages"] + 1))  # a line per page at 0 s interval
    assert f"Progress {result['pages']} pages, {result['records']} records" in caplog.text + (
        out.out + out.err
    )
    totals = {line[line.index("Wrote s3://") :] for line in lines if "Wrote s3://" in line}
    assert len(totals) == 1
    assert f"{result['records']} records" in totals.pop()
