"""The JSON Lines writer: verbatim records, readable non-ASCII, deterministic gzip bytes."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from airflow_provider_conpeek.exceptions import ConpeekConfigError
from airflow_provider_conpeek.jsonlines import JsonLinesFile, check_compression

RECORDS = [
    {"call_request_id": "cr-1", "voice_campaign_name": "Kampania żółta", "project_id": 7},
    {"call_request_id": "cr-2", "closed_date": None, "nested": {"a": [1, 2.5, True]}},
    {"call_request_id": "cr-3", "note": "half an emoji: \ud83d", "emoji": "\U0001f600"},
]


def write(tmp_path: Path, compression: str) -> bytes:
    with JsonLinesFile(tmp_path, compression=compression) as out:
        assert out.write_page(RECORDS[:2]) == 2
        assert out.write_page([]) == 0
        assert out.write_page(RECORDS[2:]) == 1
    assert out.records == 3
    assert out.bytes_written == out.path.stat().st_size
    return out.path.read_bytes()


def test_plain_lines_round_trip_verbatim(tmp_path: Path) -> None:
    raw = write(tmp_path, "none")
    lines = raw.decode("utf-8").splitlines()
    assert [json.loads(line) for line in lines] == RECORDS  # the lone surrogate too
    assert "Kampania żółta" in lines[0]  # readable, not \\u-escaped
    assert raw.endswith(b"\n")


def test_gzip_is_deterministic(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = write(tmp_path / "a", "gzip")
    second = write(tmp_path / "b", "gzip")
    assert first == second  # no file name, no timestamp in the header
    assert [json.loads(line) for line in gzip.decompress(first).splitlines()] == RECORDS


@pytest.mark.parametrize(
    ("compression", "key", "ok"),
    [
        ("gzip", "x.jsonl.gz", True),
        ("none", "x.jsonl", True),
        (None, "x.jsonl", True),
        ("gzip", "x.jsonl", False),
        ("none", "x.jsonl.gz", False),
        ("bz2", "x.jsonl.bz2", False),
    ],
)
def test_compression_agrees_with_the_key(compression: str | None, key: str, ok: bool) -> None:
    if ok:
        assert check_compression(compression, key) in ("gzip", "none")
    else:
        with pytest.raises(ConpeekConfigError, match=r"compression|s3_key"):
            check_compression(compression, key)
