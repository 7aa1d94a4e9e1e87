"""Bad input, before any request: one table over the operator's and the sensor's arguments.

Every case is built without complaint (DAG parsing never validates), then fails in
``execute()`` with a message naming the offending parameter, and the sandbox's request log
shows that no request reached it.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pendulum
import pytest

from airflow_provider_conpeek.operators.voice_campaign_summary import (
    VoiceCampaignSummaryToS3Operator,
)
from airflow_provider_conpeek.sensors.voice_campaign_summary import VoiceCampaignSummarySensor

DAY1 = pendulum.datetime(2026, 1, 1, tz="UTC")
DAY2 = DAY1.add(days=1)
INTERVAL = {"data_interval_start": DAY1, "data_interval_end": DAY2}
BOTH = ("operator", "sensor")


def case(
    kwargs: dict[str, Any],
    names: str,
    *,
    ctx: dict[str, Any] | None = None,
    conn: dict[str, Any] | None = None,
    tasks: tuple[str, ...] = BOTH,
) -> list[Any]:
    """One row per task kind: (task, kwargs, context, connection change, expected text)."""
    return [
        pytest.param(
            task, kwargs, INTERVAL if ctx is None else ctx, conn, names, id=f"{task}-{names}"
        )
        for task in tasks
    ]


CASES = [
    *case({"filters": [{"property": "agent_list", "value": ["x"]}]}, "agent_list"),
    *case({"filters": [{"property": "project_id_list", "value": ["eleven"]}]}, "project_id_list"),
    *case(
        {"filters": [{"property": "voice_campaign_id_list", "value": [7]}]},
        "voice_campaign_id_list",
    ),
    *case(
        {"filters": [{"property": "call_request_id_list", "value": "cr-1"}]}, "call_request_id_list"
    ),
    *case(
        {"filters": [{"property": "project_id_list", "value": [11], "operator": "gte"}]},
        "operator",
    ),
    *case(
        {"filters": [{"property": "contact_number", "value": "452442123"}]}, "contact_number_list"
    ),
    *case({"filters": "project_id_list=11"}, "filter"),
    *case({"window_start": "2026-13-01 00:00:00"}, "window_start"),
    *case({"window_start": "yesterday"}, "window_start"),
    *case({"window_start": datetime(2026, 1, 1)}, "window_start"),  # naive
    *case({"window_end": "2026-01-02T00:00:00"}, "window_end"),  # naive ISO string
    *case({"window_start": "2026-01-03 00:00:00"}, "window_start"),  # after the end
    *case(
        {},
        "CronDataIntervalTimetable",
        ctx={"data_interval_start": DAY1, "data_interval_end": DAY1},
    ),
    *case({}, "window_start", ctx={}),
    *case({"date_property": "updated_date"}, "date_property"),
    *case({"conpeek_conn_id": "conpeek_missing"}, "conpeek_missing"),
    *case({}, "conpeek_default", conn={"host": ""}),
    *case({}, "conpeek_default", conn={"password": ""}),
    *case({}, "conpeek_default", conn={"extra": {"read_timout": 3}}),
    *case({"page_size": 0}, "page_size", tasks=("operator",)),
    *case({"page_size": -5}, "page_size", tasks=("operator",)),
    *case({"concurrency": 0}, "concurrency", tasks=("operator",)),
    *case({"concurrency": 17}, "max_concurrency=16", tasks=("operator",)),
    *case({"concurrency": 5, "max_concurrency": 4}, "max_concurrency=4", tasks=("operator",)),
    *case({"max_concurrency": 0}, "max_concurrency", tasks=("operator",)),
    *case({"max_concurrency": 65}, "max_concurrency", tasks=("operator",)),
    *case(
        {"concurrency": 5},
        "max_concurrency=3",
        conn={"extra": {"max_concurrency": 3}},
        tasks=("operator",),
    ),
    *case({}, "max_concurrency", conn={"extra": {"max_concurrency": "many"}}, tasks=("operator",)),
    *case({"s3_bucket": ""}, "s3_bucket", tasks=("operator",)),
    *case({"s3_key": "   "}, "s3_key", tasks=("operator",)),
    *case({"s3_key": "s3://bucket/day.jsonl.gz"}, "s3_key", tasks=("operator",)),
    *case({"s3_key": "day.jsonl"}, "s3_key", tasks=("operator",)),  # gzip needs .gz
    *case({"compression": "zstd"}, "compression", tasks=("operator",)),
    *case({"compression": "none"}, "s3_key", tasks=("operator",)),  # plain output, .gz key
    *case(
        {
            "filters": [
                {"property": "created_date", "operator": "gte", "value": "2026-01-01 00:00:00"}
            ]
        },
        "window_start/window_end",
    ),
    *case({}, "conpeek_default", conn={"host": "ftp://example.com/api"}),
    *case({}, "read_timeout", conn={"extra": {"read_timeout": "soon"}}),
    *case({"min_records": 0}, "min_records", tasks=("sensor",)),
    *case({"min_records": "5"}, "min_records", tasks=("sensor",)),
]


def build(task: str, kwargs: dict[str, Any]) -> Any:
    if task == "operator":
        base = {"s3_bucket": "bucket", "s3_key": "day.jsonl.gz", "concurrency": 2}
        return VoiceCampaignSummaryToS3Operator(task_id="extract", **{**base, **kwargs})
    return VoiceCampaignSummarySensor(
        task_id="wait", poke_interval=0.05, timeout=5, deferrable=False, **kwargs
    )


@pytest.mark.parametrize(("task", "kwargs", "ctx", "conn", "names"), CASES)
def test_fails_in_execute_naming_the_parameter_and_sends_nothing(
    airflow_connections: Any,
    monkeypatch: pytest.MonkeyPatch,
    task: str,
    kwargs: dict[str, Any],
    ctx: dict[str, Any],
    conn: dict[str, Any] | None,
    names: str,
) -> None:
    sandbox = airflow_connections
    if conn is not None:
        changed = {**json.loads(sandbox.airflow_connection_json()), **conn}
        monkeypatch.setenv("AIRFLOW_CONN_CONPEEK_DEFAULT", json.dumps(changed))
    instance = build(task, kwargs)  # never fails at DAG parse
    with pytest.raises(Exception) as info:  # noqa: PT011 - the message is what matters
        instance.execute(ctx)
    assert names in str(info.value)
    assert sandbox.api_key not in str(info.value)
    assert sandbox.request_log == []
