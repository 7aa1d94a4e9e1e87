"""Lineage: the S3 asset helper, which outlets get the event, the event's extra, and reading
the triggering events downstream (the end-to-end runs are in test_e2e and test_scheduler)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pytest
from airflow_compat import AIRFLOW_3

from airflow_provider_conpeek._compat import Asset
from airflow_provider_conpeek.exceptions import ConpeekConfigError
from airflow_provider_conpeek.lineage import (
    EVENT_KEYS,
    covers,
    event_extra,
    s3_asset,
    s3_outlets,
    triggering_extras,
)
from airflow_provider_conpeek.operators.voice_campaign_summary import (
    VoiceCampaignSummaryToS3Operator,
)

PREFIX = "conpeek/voice_campaign_request_summary"


@pytest.mark.parametrize(
    ("bucket", "prefix", "uri"),
    [
        ("lake", PREFIX, f"s3://lake/{PREFIX}"),
        ("lake", f"/{PREFIX}/", f"s3://lake/{PREFIX}"),  # slashes trimmed: one asset
        ("lake", "", "s3://lake"),
    ],
)
def test_s3_asset_uri(bucket: str, prefix: str, uri: str) -> None:
    asset = s3_asset(bucket, prefix)
    assert isinstance(asset, Asset)
    assert asset.uri.rstrip("/") == uri
    if AIRFLOW_3:
        assert asset.name == uri  # the same name every time it is built
    assert s3_asset(bucket, prefix) == asset


@pytest.mark.parametrize(
    ("bucket", "prefix", "message"),
    [
        ("s3://lake", PREFIX, "bare bucket name"),
        ("lake/conpeek", "", "bare bucket name"),
        ("", PREFIX, "bare bucket name"),
        ("lake", "conpeek/{{ ds }}", "does not render templates"),
    ],
)
def test_s3_asset_refuses(bucket: str, prefix: str, message: str) -> None:
    with pytest.raises(ConpeekConfigError, match=message):
        s3_asset(bucket, prefix)


def test_covers_and_outlets() -> None:
    key = f"{PREFIX}/20260101T000000.jsonl.gz"
    prefix, whole = s3_asset("lake", PREFIX), s3_asset("lake")
    exact = s3_asset("lake", key)
    assert covers(prefix, "lake", key)
    assert covers(whole, "lake", key)
    assert covers(exact, "lake", key)
    assert not covers(s3_asset("lake", "conpeek/voice"), "lake", key)  # not a path prefix
    other = Asset("file:///tmp/report.csv")
    assert s3_outlets([prefix, other, exact], "lake", key) == [prefix, exact]
    assert s3_outlets([], "lake", key) == []
    with pytest.raises(ConpeekConfigError, match="does not contain s3://lake/" + key):
        s3_outlets([s3_asset("lake", "elsewhere")], "lake", key)
    with pytest.raises(ConpeekConfigError, match="does not contain"):
        s3_outlets([s3_asset("other-bucket", PREFIX)], "lake", key)


def test_event_extra_is_plain_json() -> None:
    window = {"date_property": "created_date", "start": "2026-01-01 00:00:00", "end": "x"}
    extra = event_extra("lake", "k.jsonl.gz", records=3, size=10, window=window, version="1")
    assert tuple(extra) == EVENT_KEYS
    assert json.loads(json.dumps(extra)) == extra
    assert extra["uri"] == "s3://lake/k.jsonl.gz"


@dataclass
class Event:
    extra: dict[str, Any]
    timestamp: datetime = field(default_factory=lambda: datetime.now(timezone.utc))


class ByAsset(Mapping[Any, list[Event]]):
    """Airflow 3's accessor: keyed by Asset (unhashable on 3.0), looked up by equality."""

    def __init__(self, pairs: list[tuple[Any, list[Event]]]) -> None:
        self.pairs = pairs

    def __getitem__(self, key: Any) -> list[Event]:
        for asset, events in self.pairs:
            if asset == key:
                return events
        raise KeyError(key)

    def __iter__(self) -> Iterator[Any]:
        return iter(asset for asset, _ in self.pairs)

    def __len__(self) -> int:
        return len(self.pairs)


def test_triggering_extras_oldest_first_on_either_airflow() -> None:
    asset = s3_asset("lake", PREFIX)
    old = Event({"uri": "a"}, datetime(2026, 1, 1, tzinfo=timezone.utc))
    new = Event({"uri": "b"}, datetime(2026, 1, 2, tzinfo=timezone.utc))
    # Airflow 3: a mapping keyed by the asset; 2.11: by the dataset's URI.
    events = ByAsset([(s3_asset("lake", "other"), [new]), (asset, [new, old])])
    assert triggering_extras({"triggering_asset_events": events}, asset) == [
        {"uri": "a"},
        {"uri": "b"},
    ]
    assert triggering_extras({"triggering_asset_events": ByAsset([])}, asset) == []
    context = {"triggering_dataset_events": {asset.uri: [new, old]}}
    assert [e["uri"] for e in triggering_extras(context, asset)] == ["a", "b"]
    assert triggering_extras({}, asset) == []


def test_an_outlet_elsewhere_fails_before_any_request(airflow_connections: Any) -> None:
    sandbox = airflow_connections
    op = VoiceCampaignSummaryToS3Operator(
        task_id="extract",
        s3_bucket="lake",
        s3_key=f"{PREFIX}/day.jsonl.gz",
        outlets=[s3_asset("lake", "somewhere/else")],
    )
    with pytest.raises(ConpeekConfigError, match="does not contain s3://lake/"):
        op.execute({"data_interval_start": None, "data_interval_end": None})  # type: ignore[arg-type]
    assert sandbox.request_log == []
