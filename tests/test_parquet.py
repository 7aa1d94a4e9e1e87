"""JSON Lines to Parquet (``airflow_provider_conpeek.parquet``): the schema read in a first
pass, every value kept, read back with pyarrow and DuckDB, byte-identical reruns."""

from __future__ import annotations

import gzip
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from airflow_provider_conpeek.parquet import Column, SchemaObserver, jsonl_to_parquet


def convert(tmp_path: Path, records: list[Any], **kwargs: Any) -> tuple[list[Column], Path]:
    """The records as a gzip JSON Lines file in ``tmp_path``, converted to Parquet there."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    source = tmp_path / "records.jsonl.gz"
    with gzip.open(source, "wb") as out:
        for record in records:
            out.write(json.dumps(record).encode() + b"\n")
    observer = SchemaObserver()
    for record in records:
        observer.observe(record)
    typed = kwargs.pop("typed_timestamps", False)
    columns = observer.columns(typed_timestamps=typed)
    target = tmp_path / "records.parquet"
    assert jsonl_to_parquet(source, target, columns, **kwargs) == len(records)
    return columns, target


def test_types_follow_the_values_and_late_or_changing_fields_lose_nothing(
    tmp_path: Path,
) -> None:
    records = [
        {"id": 1, "ok": True, "score": 1, "created_date": "2026-01-01 00:00:00", "x": "a"},
        {"id": 2, "ok": False, "score": 2.5, "created_date": "2026-01-01 00:00:01", "x": 7},
        {"id": 3, "note": {"k": [1, 2]}, "created_date": None, "big": 2**60, "x": None},
        {"id": 4, "late": "only here", "big": 1.5},
    ]
    columns, path = convert(tmp_path, records, row_group_records=3)
    assert [(c.name, c.type) for c in columns] == [
        ("id", "int64"),
        ("ok", "bool"),
        ("score", "double"),
        ("created_date", "string"),
        ("x", "json"),
        ("note", "json"),
        ("big", "json"),  # 2**60 does not survive a double: kept exactly as JSON text
        ("late", "string"),
    ]
    table = pq.read_table(path)
    assert pq.ParquetFile(path).metadata.num_row_groups == 2
    rows = table.to_pylist()
    assert [r["id"] for r in rows] == [1, 2, 3, 4]
    assert [r["score"] for r in rows] == [1.0, 2.5, None, None]
    assert rows[0]["created_date"] == "2026-01-01 00:00:00"  # as sent
    assert [r["x"] for r in rows] == ['"a"', "7", None, None]
    assert [json.loads(r["x"]) if r["x"] else None for r in rows] == ["a", 7, None, None]
    assert json.loads(rows[2]["note"]) == {"k": [1, 2]}
    assert json.loads(rows[2]["big"]) == 2**60
    assert [r["late"] for r in rows] == [None, None, None, "only here"]


def test_typed_timestamps_only_for_columns_of_api_date_times(tmp_path: Path) -> None:
    records = [
        {"created_date": "2026-01-01 00:00:00", "closed_date": None, "other": "2026-01-01"},
        {"created_date": "2026-01-01 23:59:59", "closed_date": "2026-01-02 01:00:00"},
    ]
    columns, path = convert(tmp_path, records, typed_timestamps=True)
    assert {c.name: c.type for c in columns} == {
        "created_date": "timestamp",
        "closed_date": "timestamp",
        "other": "string",
    }
    rows = pq.read_table(path).to_pylist()
    assert rows[1]["created_date"] == datetime(2026, 1, 1, 23, 59, 59, tzinfo=timezone.utc)
    assert rows[0]["closed_date"] is None


def test_same_records_same_bytes_and_an_empty_window_is_a_valid_file(tmp_path: Path) -> None:
    records = [{"id": i, "project_id": f"p{i % 3}"} for i in range(1000)]
    _, first = convert(tmp_path / "a", records, row_group_records=300)
    _, second = convert(tmp_path / "b", records, row_group_records=300)
    assert first.read_bytes() == second.read_bytes()
    _, empty = convert(tmp_path / "c", [])
    assert pq.read_table(empty).num_rows == 0


@pytest.mark.parametrize("slice_records", [1, 7, 100, 300, 5000])
def test_row_groups_do_not_depend_on_how_records_are_sliced_while_parsed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, slice_records: int
) -> None:
    """Each row group is built from slices of parsed records (memory); the slices, whether
    they divide a row group or not, change nothing in the file."""
    from airflow_provider_conpeek import parquet

    records = [{"id": i, "project_id": f"p{i % 3}", "n": i / 7} for i in range(1000)]
    _, reference = convert(tmp_path / "ref", records, row_group_records=300)
    monkeypatch.setattr(parquet, "SLICE_RECORDS", slice_records)
    _, sliced = convert(tmp_path / "sliced", records, row_group_records=300)
    assert sliced.read_bytes() == reference.read_bytes()
    meta = pq.ParquetFile(sliced).metadata
    groups = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    assert groups == [300, 300, 300, 100]


def test_duckdb_reads_the_parquet_and_the_json_lines_alike(tmp_path: Path) -> None:
    import duckdb

    records = [{"id": i, "project_id": f"p{i % 3}", "n": i * 1.5} for i in range(300)]
    _, path = convert(tmp_path, records)
    con = duckdb.connect()
    query = "SELECT project_id, count(*) FROM {} GROUP BY 1 ORDER BY 1"
    from_parquet = con.execute(query.format(f"read_parquet('{path}')")).fetchall()
    from_jsonl = con.execute(
        query.format(f"read_ndjson('{tmp_path / 'records.jsonl.gz'}', compression='gzip')")
    ).fetchall()
    assert from_parquet == from_jsonl == [("p0", 100), ("p1", 100), ("p2", 100)]


# -- the operator writing Parquet into S3 (sandbox, moto) ---------------------------------------

DAY = {"data_interval_start": datetime(2026, 1, 1, tzinfo=timezone.utc)}
DAY["data_interval_end"] = datetime(2026, 1, 2, tzinfo=timezone.utc)


def test_operator_writes_parquet_equal_to_the_json_lines_extract(
    airflow_connections: Any, s3_server: Any, s3_bucket: str, tmp_path: Path
) -> None:
    import duckdb

    from airflow_provider_conpeek.operators.voice_campaign_summary import (
        VoiceCampaignSummaryToS3Operator as Extract,
    )

    common = {"task_id": "extract", "s3_bucket": s3_bucket, "page_size": 50}
    jsonl = Extract(s3_key="day.jsonl.gz", **common).execute(DAY)  # type: ignore[arg-type]
    parquet = Extract(s3_key="day.parquet", file_format="parquet", **common).execute(DAY)  # type: ignore[arg-type]
    assert parquet["records"] == jsonl["records"] > 0
    (tmp_path / "day.parquet").write_bytes(s3_server.read(s3_bucket, "day.parquet"))
    (tmp_path / "day.jsonl.gz").write_bytes(s3_server.read(s3_bucket, "day.jsonl.gz"))
    sent = [
        json.loads(line)
        for line in gzip.decompress(s3_server.read(s3_bucket, "day.jsonl.gz")).splitlines()
    ]
    table = pq.read_table(tmp_path / "day.parquet")
    columns = {field.name: str(field.type) for field in table.schema}
    for row, record in zip(table.to_pylist(), sent, strict=True):  # record for record
        for name, value in record.items():
            got = row[name]
            if value is not None and not isinstance(value, (str, int, float, bool)):
                got = json.loads(got)  # nested values: their JSON text
            assert got == value, (name, columns[name])
    head = s3_server.client().head_object(Bucket=s3_bucket, Key="day.parquet")
    assert head["ContentType"] == "application/vnd.apache.parquet"
    query = "SELECT project_id, count(*) FROM {} GROUP BY 1 ORDER BY 1"
    con = duckdb.connect()
    assert con.execute(query.format(f"read_parquet('{tmp_path / 'day.parquet'}')")).fetchall() == (
        con.execute(
            query.format(f"read_ndjson('{tmp_path / 'day.jsonl.gz'}', compression='gzip')")
        ).fetchall()
    )
    # A rerun writes the same bytes.
    before = s3_server.read(s3_bucket, "day.parquet")
    Extract(s3_key="day.parquet", file_format="parquet", **common).execute(DAY)  # type: ignore[arg-type]
    assert s3_server.read(s3_bucket, "day.parquet") == before


def test_parquet_arguments_are_checked_before_any_request(
    airflow_connections: Any, s3_bucket: str
) -> None:
    from airflow_provider_conpeek.exceptions import ConpeekConfigError
    from airflow_provider_conpeek.operators.voice_campaign_summary import (
        VoiceCampaignSummaryToS3Operator as Extract,
    )

    sandbox = airflow_connections
    cases = [
        ({"s3_key": "d.jsonl.gz", "file_format": "parquet"}, "does not end with '.parquet'"),
        ({"s3_key": "d.parquet", "file_format": "parquet", "compression": "gzip"}, "Leave"),
        ({"s3_key": "d.parquet", "file_format": "csv"}, "file_format must be"),
        ({"s3_key": "d.parquet", "file_format": "parquet", "parquet_timestamps": "yes"}, "True"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ConpeekConfigError, match=message):
            Extract(task_id="x", s3_bucket=s3_bucket, **kwargs).execute(DAY)  # type: ignore[arg-type]
    assert sandbox.request_log == []
