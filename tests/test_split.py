"""One window split into parts: ``split_window`` alone, the manifest's checks, and the
example DAG ``example_conpeek_split_interval`` run through Airflow (``dag.test()``) against
the sandbox and the S3 server: the parts' union is the single extract record for record, a
failed part is retried alone, a rerun rewrites the same parts and the same manifest."""

from __future__ import annotations

import gzip
import itertools
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pendulum
import pytest
from airflow_compat import dag_bag, run_dag_test
from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_conpeek.exceptions import ConpeekConfigError
from airflow_provider_conpeek.operators.manifest import check_coverage, check_parts
from airflow_provider_conpeek.split import MAX_PARTS, manifest_key, part_key, split_window
from airflow_provider_conpeek.testing.sandbox import FaultConfig, FaultRule
from airflow_provider_conpeek.window import Window

EXAMPLE_DAGS = Path(__file__).resolve().parent.parent / "example_dags"
SPLIT_DAG_ID = "example_conpeek_split_interval"
DAILY_DAG_ID = "example_conpeek_daily_extract"
DAY = pendulum.datetime(2026, 1, 2, tz="UTC")
PREFIX = f"conpeek/voice_campaign_request_summary_parts/{DAY:%Y%m%dT%H%M%S}"
SINGLE_KEY = f"conpeek/voice_campaign_request_summary/{DAY:%Y%m%dT%H%M%S}.jsonl.gz"
PARTS = 4  # the example's


# -- split_window -----------------------------------------------------------------------------


def test_split_a_day_into_contiguous_parts_with_keys() -> None:
    windows = split_window(
        pendulum.datetime(2026, 1, 1, tz="UTC"),
        "2026-01-02T01:00:00+01:00",  # the same instant as 2026-01-02 00:00:00 UTC
        3,
        key_prefix="conpeek/x/20260101T000000/",
    )
    assert windows == [
        {
            "window_start": "2026-01-01 00:00:00",
            "window_end": "2026-01-01 08:00:00",
            "s3_key": "conpeek/x/20260101T000000/part-00000-of-00003.jsonl.gz",
        },
        {
            "window_start": "2026-01-01 08:00:00",
            "window_end": "2026-01-01 16:00:00",
            "s3_key": "conpeek/x/20260101T000000/part-00001-of-00003.jsonl.gz",
        },
        {
            "window_start": "2026-01-01 16:00:00",
            "window_end": "2026-01-02 00:00:00",
            "s3_key": "conpeek/x/20260101T000000/part-00002-of-00003.jsonl.gz",
        },
    ]
    assert manifest_key("conpeek/x/20260101T000000/") == "conpeek/x/20260101T000000/manifest.json"


def test_uneven_split_falls_on_whole_seconds_and_one_part_is_the_window() -> None:
    windows = split_window("2026-01-01 00:00:00", "2026-01-01 00:00:10", 3, compression="none")
    assert [(w["window_start"][-2:], w["window_end"][-2:]) for w in windows] == [
        ("00", "03"),
        ("03", "06"),
        ("06", "10"),
    ]
    assert split_window("2026-01-01 00:00:00", "2026-01-01 00:00:10", 1) == [
        {"window_start": "2026-01-01 00:00:00", "window_end": "2026-01-01 00:00:10"}
    ]
    assert part_key("p", 2, 3, ".jsonl") == "p/part-00002-of-00003.jsonl"


@given(
    start=st.datetimes(
        min_value=datetime(2000, 1, 1),
        max_value=datetime(2090, 1, 1),
        timezones=st.just(timezone.utc),
    ).map(lambda d: d.replace(microsecond=0)),
    seconds=st.integers(min_value=1, max_value=400 * 86400),
    parts=st.integers(min_value=1, max_value=MAX_PARTS),
)
def test_parts_tile_the_window_exactly(start: datetime, seconds: int, parts: int) -> None:
    end = start + timedelta(seconds=seconds)
    if parts > seconds:
        with pytest.raises(ConpeekConfigError, match="parts="):
            split_window(start, end, parts)
        return
    windows = split_window(start, end, parts, key_prefix="p")
    assert len(windows) == parts
    assert windows[0]["window_start"] == start.strftime("%Y-%m-%d %H:%M:%S")
    assert windows[-1]["window_end"] == end.strftime("%Y-%m-%d %H:%M:%S")
    for before, after in itertools.pairwise(windows):
        assert before["window_end"] == after["window_start"]  # no gap, no overlap
        assert before["window_start"] < before["window_end"]  # never empty
        assert before["s3_key"] < after["s3_key"]  # keys sort in window order
    assert windows[-1]["window_start"] < windows[-1]["window_end"]
    check_coverage(  # the manifest accepts exactly what split_window makes
        [_returned(w) for w in windows],
        Window("created_date", windows[0]["window_start"], windows[-1]["window_end"]),
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"parts": 0}, "parts must be between 1 and 1000, got 0"),
        ({"parts": True}, "parts must be a whole number"),
        ({"parts": "4"}, "parts must be a whole number of sub-windows, got '4'"),
        ({"parts": MAX_PARTS + 1}, "between 1 and 1000"),
        ({"window_end": "2026-01-01 00:00:00"}, "empty or reversed"),
        ({"window_end": "2025-12-31 00:00:00"}, "empty or reversed"),
        ({"window_end": "2026-01-01 00:00:03"}, "parts=4 is more than the window's 3 seconds"),
        ({"window_start": datetime(2026, 1, 1)}, "window_start: naive datetime"),
        ({"window_end": "tomorrow"}, "window_end: 'tomorrow' is not a recognised date-time"),
        ({"key_prefix": "{{ ds }}"}, "unrendered template"),
        ({"key_prefix": "s3://b/p"}, "is a URL"),
        ({"key_prefix": "/"}, "non-empty S3 key prefix"),
        ({"compression": "zstd"}, "compression must be one of gzip, none"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs: dict[str, Any], message: str) -> None:
    arguments: dict[str, Any] = {
        "window_start": "2026-01-01 00:00:00",
        "window_end": "2026-01-02 00:00:00",
        "parts": 4,
        **kwargs,
    }
    with pytest.raises(ConpeekConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        split_window(**arguments)


# -- the manifest's checks (no I/O) ------------------------------------------------------------


def _returned(window: dict[str, str], records: int = 1) -> dict[str, Any]:
    """What the extract of one sub-window returns (its XCom)."""
    return {
        "s3_uri": f"s3://b/{window.get('s3_key', 'k')}",
        "records": records,
        "bytes": 10,
        "pages": 1,
        "window": {
            "date_property": "created_date",
            "start": window["window_start"],
            "end": window["window_end"],
        },
    }


DAY_WINDOW = Window("created_date", "2026-01-01 00:00:00", "2026-01-02 00:00:00")


def test_coverage_refuses_a_gap_an_overlap_a_short_end_and_another_property() -> None:
    parts = [_returned(w) for w in split_window(DAY_WINDOW.start, DAY_WINDOW.end, 3)]
    check_coverage(check_parts(reversed(parts)), DAY_WINDOW)  # sorted by start first
    with pytest.raises(ConpeekConfigError, match="a gap"):
        check_coverage([parts[0], parts[2]], DAY_WINDOW)
    overlap = [parts[0], {**parts[1], "window": {**parts[1]["window"], "start": "2026-01-01"}}]
    with pytest.raises(ConpeekConfigError, match="an overlap"):
        check_coverage(overlap, DAY_WINDOW)
    with pytest.raises(ConpeekConfigError, match="parts end at 2026-01-01 16:00:00"):
        check_coverage(parts[:2], DAY_WINDOW)
    other = {**parts[0], "window": {**parts[0]["window"], "date_property": "closed_date"}}
    with pytest.raises(ConpeekConfigError, match="on 'closed_date'"):
        check_coverage([other, *parts[1:]], DAY_WINDOW)


@pytest.mark.parametrize(
    ("parts", "message"),
    [
        ("[1, 2]", "parts must be the list the mapped extracts returned"),
        ({"s3_uri": "s3://b/k"}, "parts must be the list"),
        ([], "parts is empty"),
        ([{"s3_uri": "s3://b/k", "records": 1}], r"parts\[0\] is not what"),
        ([{"s3_uri": "b/k", "records": 1, "bytes": 1, "window": {}}], r"parts\[0\]"),
        ([{**_returned({"window_start": "a", "window_end": "b"}), "s3_uri": "s3://b"}], "parts"),
    ],
)
def test_parts_that_are_not_extract_results_are_refused(parts: Any, message: str) -> None:
    with pytest.raises(ConpeekConfigError, match=message):
        check_parts(parts)


# -- the example DAG through Airflow -----------------------------------------------------------


def _run(dag_id: str) -> Any:
    dag = dag_bag(EXAMPLE_DAGS).get_dag(dag_id)
    return run_dag_test(dag, DAY.add(days=1))  # CronDataIntervalTimetable: [DAY, DAY + 1)


def _lines(body: bytes) -> list[bytes]:
    return gzip.decompress(body).splitlines()


def _tries(run: Any) -> dict[int, int]:
    """map index -> try number of the run's mapped extract."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        query = select(TaskInstance.map_index, TaskInstance.try_number).where(
            TaskInstance.dag_id == SPLIT_DAG_ID,
            TaskInstance.run_id == run.run_id,
            TaskInstance.task_id == "extract_part",
        )
        return dict(session.execute(query).all())  # type: ignore[arg-type]


def _part_windows_requested(sandbox: Any) -> list[str]:
    """The ``filter`` of every first-page request, in order (one per extract try)."""
    return [e.params["filter"][0] for e in sandbox.request_log if e.params.get("offset") == ["0"]]


@pytest.mark.e2e
def test_split_interval_parts_equal_the_single_extract_and_reruns_rewrite_them(
    airflow_db: Path,
    airflow_connections: Any,
    s3_server: Any,
    s3_bucket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sandbox = airflow_connections
    monkeypatch.setenv("CONPEEK_S3_BUCKET", s3_bucket)
    assert _run(DAILY_DAG_ID).state == "success"
    single = _lines(s3_server.read(s3_bucket, SINGLE_KEY))
    assert single  # the day holds records

    # The first extract request of the run is refused with a malformed page: that part's
    # task fails its first try, and Airflow retries that part alone.
    sandbox.clear_log()
    sandbox.set_faults(FaultConfig(rules=[FaultRule("malformed", first=1)]))
    run = _run(SPLIT_DAG_ID)
    assert run.state == "success"
    tries = _tries(run)
    assert sorted(tries) == list(range(PARTS))
    assert sorted(tries.values()) == [1] * (PARTS - 1) + [2], tries  # only one part again
    requested = _part_windows_requested(sandbox)
    assert len(requested) == PARTS + 1  # every part once, the failed one twice
    assert len(set(requested)) == PARTS

    manifest_body = s3_server.read(s3_bucket, f"{PREFIX}/manifest.json")
    manifest = json.loads(manifest_body)
    keys = [f"{PREFIX}/part-{i:05d}-of-{PARTS:05d}.jsonl.gz" for i in range(PARTS)]
    assert [p["key"] for p in manifest["parts"]] == keys
    assert sorted(k for k in s3_server.keys(s3_bucket) if k.startswith(PREFIX)) == [
        *[f"{PREFIX}/{name}" for name in ("manifest.json",)],
        *keys,
    ]
    bodies = [s3_server.read(s3_bucket, key) for key in keys]
    union = [line for body in bodies for line in _lines(body)]
    assert union == single  # record for record, in the same order
    assert manifest["records"] == len(single) == sum(p["records"] for p in manifest["parts"])
    assert [p["records"] for p in manifest["parts"]] == [len(_lines(b)) for b in bodies]
    assert [p["bytes"] for p in manifest["parts"]] == [len(b) for b in bodies]
    assert manifest["window"] == {
        "date_property": "created_date",
        "start": "2026-01-02 00:00:00",
        "end": "2026-01-03 00:00:00",
    }
    windows = [p["window"] for p in manifest["parts"]]
    assert windows[0]["start"] == manifest["window"]["start"]
    assert windows[-1]["end"] == manifest["window"]["end"]
    assert all(a["end"] == b["start"] for a, b in itertools.pairwise(windows))

    # A rerun extracts every part again into the same keys: same bytes, same manifest.
    sandbox.set_faults(None)
    sandbox.clear_log()
    again = _run(SPLIT_DAG_ID)
    assert again.state == "success"
    assert sorted(set(_part_windows_requested(sandbox))) == sorted(set(requested))
    assert [s3_server.read(s3_bucket, key) for key in keys] == bodies
    assert s3_server.read(s3_bucket, f"{PREFIX}/manifest.json") == manifest_body
    assert len([k for k in s3_server.keys(s3_bucket) if k.startswith(PREFIX)]) == PARTS + 1


@pytest.mark.e2e
def test_manifest_is_not_written_when_a_part_fails(
    airflow_db: Path,
    airflow_connections: Any,
    s3_server: Any,
    s3_bucket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONPEEK_S3_BUCKET", s3_bucket)
    # Part 2's key already holds another window's object: the collision guard fails that
    # part (no retry can help), the others succeed, and no manifest names a missing part.
    taken = f"{PREFIX}/part-00002-of-{PARTS:05d}.jsonl.gz"
    s3_server.client().put_object(
        Bucket=s3_bucket,
        Key=taken,
        Body=b"theirs",
        Metadata={
            "conpeek-date-property": "created_date",
            "conpeek-window-start": "2020-01-01T00:00:00Z",
            "conpeek-window-end": "2020-01-02T00:00:00Z",
        },
    )
    run = _run(SPLIT_DAG_ID)
    assert run.state == "failed"
    keys = set(s3_server.keys(s3_bucket))
    assert f"{PREFIX}/manifest.json" not in keys
    assert {f"{PREFIX}/part-{i:05d}-of-{PARTS:05d}.jsonl.gz" for i in (0, 1, 3)} <= keys
    assert s3_server.read(s3_bucket, taken) == b"theirs"


def test_manifest_refuses_a_part_overwritten_after_its_extract(
    s3_server: Any, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_conpeek.destination import ObjectStamp
    from airflow_provider_conpeek.operators.manifest import VoiceCampaignSummaryManifestOperator

    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", s3_server.connection_json())
    windows = split_window(DAY_WINDOW.start, DAY_WINDOW.end, 2, key_prefix="p")
    parts = []
    for window in windows:  # what two extracts wrote and returned
        part = _returned(window, records=3)
        sub = part["window"]
        stamp = ObjectStamp.for_window(Window("created_date", sub["start"], sub["end"]), [])
        s3_server.client().put_object(
            Bucket=s3_bucket,
            Key=window["s3_key"],
            Body=b"x" * part["bytes"],
            Metadata=stamp.metadata(records=3),
        )
        parts.append({**part, "s3_uri": f"s3://{s3_bucket}/{window['s3_key']}"})
    context = {"data_interval_start": DAY.subtract(days=1), "data_interval_end": DAY}
    manifest = VoiceCampaignSummaryManifestOperator(
        task_id="m", s3_bucket=s3_bucket, s3_key="p/manifest.json", parts=parts
    )
    assert manifest.execute(context)["records"] == 6  # type: ignore[arg-type]
    # With the ETag its extract returned, even a same-size, same-count rewrite is caught.
    first = windows[0]["s3_key"]
    etag = s3_server.client().head_object(Bucket=s3_bucket, Key=first)["ETag"]
    parts[0] = {**parts[0], "etag": etag}
    assert manifest.execute(context)["parts"] == 2  # type: ignore[arg-type]
    s3_server.client().put_object(
        Bucket=s3_bucket,
        Key=first,
        Body=b"y" * parts[0]["bytes"],
        Metadata=ObjectStamp.for_window(
            Window("created_date", parts[0]["window"]["start"], parts[0]["window"]["end"]), []
        ).metadata(records=3),
    )
    with pytest.raises(ConpeekConfigError, match=r"part-00000-of-00002.jsonl.gz no longer holds"):
        manifest.execute(context)  # type: ignore[arg-type]
    parts[0].pop("etag")
    # The second part is overwritten by an extract with other results: refused, named.
    s3_server.client().put_object(
        Bucket=s3_bucket,
        Key=windows[1]["s3_key"],
        Body=b"x" * 11,
        Metadata=stamp.metadata(records=4),
    )
    with pytest.raises(ConpeekConfigError, match=r"part-00001-of-00002.jsonl.gz no longer holds"):
        manifest.execute(context)  # type: ignore[arg-type]
    s3_server.client().delete_object(Bucket=s3_bucket, Key=windows[1]["s3_key"])
    with pytest.raises(ConpeekConfigError, match=r"part-00001-of-00002.jsonl.gz does not exist"):
        manifest.execute(context)  # type: ignore[arg-type]
