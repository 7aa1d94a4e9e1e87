"""Tests of VoiceCampaignSummaryTrigger: serialisation and its async run() against the
sandbox over real HTTP."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from typing import Any

import pytest
from airflow.triggers.base import TriggerEvent

from airflow_provider_conpeek.testing.sandbox import FaultConfig, FaultRule, SandboxServer
from airflow_provider_conpeek.triggers.voice_campaign_summary import (
    CLASSPATH,
    VoiceCampaignSummaryTrigger,
)

WINDOW = [
    {"property": "created_date", "value": "2026-02-01 10:00:00", "operator": "gte"},
    {"property": "created_date", "value": "2026-02-01 11:00:00", "operator": "lt"},
]
DAY_ONE = [
    {"property": "created_date", "value": "2026-01-01 00:00:00", "operator": "gte"},
    {"property": "created_date", "value": "2026-01-02 00:00:00", "operator": "lt"},
]


def record(created: str, n: int = 0) -> dict[str, Any]:
    return {"call_request_id": f"cr-{created}-{n}", "created_date": created}


def trigger(**kwargs: Any) -> VoiceCampaignSummaryTrigger:
    kwargs.setdefault("filters", WINDOW)
    kwargs.setdefault("poll_interval", 0.05)
    return VoiceCampaignSummaryTrigger(**kwargs)


def api_requests(server: SandboxServer) -> list[Any]:
    return [e for e in server.request_log if e.path == server.api_path]


async def first_event(t: VoiceCampaignSummaryTrigger, timeout: float = 20) -> TriggerEvent:
    """The trigger's first event, and check that it ends right after it."""
    gen = t.run()
    event = await asyncio.wait_for(anext(gen), timeout)
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(gen), timeout)
    return event


async def add_after_requests(server: SandboxServer, n: int, records: list[dict[str, Any]]) -> None:
    while len(api_requests(server)) < n:
        await asyncio.sleep(0.01)
    server.add_records(records)


# -- serialisation ---------------------------------------------------------------------------


def test_serialize_round_trips() -> None:
    t = VoiceCampaignSummaryTrigger(
        conpeek_conn_id="conpeek_eu",
        filters=[*WINDOW, {"property": "project_id_list", "value": [7, 9]}],
        min_records=25,
        poll_interval=120.0,
    )
    classpath, kwargs = t.serialize()
    assert classpath == CLASSPATH
    assert classpath == "airflow_provider_conpeek.triggers.voice_campaign_summary." + (
        "VoiceCampaignSummaryTrigger"
    )
    assert kwargs == {
        "conpeek_conn_id": "conpeek_eu",
        "filters": [*WINDOW, {"property": "project_id_list", "value": [7, 9]}],
        "min_records": 25,
        "poll_interval": 120.0,
    }
    again = VoiceCampaignSummaryTrigger(**json.loads(json.dumps(kwargs)))  # JSON-safe
    assert again.serialize() == (classpath, kwargs)


def test_serialize_through_airflows_serde_and_classpath_import() -> None:
    from airflow.sdk._shared.module_loading import import_string
    from airflow.sdk.serde import deserialize, serialize

    classpath, kwargs = trigger(min_records=3).serialize()
    cls = import_string(classpath)
    assert cls is VoiceCampaignSummaryTrigger
    restored = deserialize(serialize(kwargs))
    assert isinstance(restored, dict)
    rebuilt = cls(**restored)
    assert rebuilt.serialize() == (classpath, kwargs)


def test_defaults() -> None:
    _, kwargs = VoiceCampaignSummaryTrigger().serialize()
    assert kwargs == {
        "conpeek_conn_id": "conpeek_default",
        "filters": None,
        "min_records": 1,
        "poll_interval": 60.0,
    }


# -- run() -----------------------------------------------------------------------------------


def test_success_immediately(sb: SandboxServer) -> None:
    event = asyncio.run(first_event(trigger(filters=DAY_ONE, min_records=10)))
    assert event.payload == {
        "status": "success",
        "records_at_least": 10,
        "conpeek_conn_id": "conpeek_default",
    }
    (call,) = api_requests(sb)
    assert call.params["limit"] == ["1"]
    assert call.params["offset"] == ["9"]
    assert json.loads(call.params["filter"][0]) == DAY_ONE


def test_success_after_records_appear_while_polling(sb: SandboxServer) -> None:
    async def scenario() -> TriggerEvent:
        adder = asyncio.create_task(
            add_after_requests(
                sb, 3, [record("2026-02-01 10:00:00", 1), record("2026-02-01 10:59:59", 2)]
            )
        )
        event = await first_event(trigger(min_records=2))
        await adder
        return event

    event = asyncio.run(scenario())
    assert event.payload["status"] == "success"
    assert event.payload["records_at_least"] == 2
    calls = api_requests(sb)
    assert len(calls) >= 4
    assert {c.params["offset"][0] for c in calls} == {"1"}
    assert all(c.status == 200 for c in calls)


def test_min_records_not_reached_keeps_polling(sb: SandboxServer) -> None:
    sb.add_records([record("2026-02-01 10:30:00")])  # one record; two are needed

    async def scenario() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(anext(trigger(min_records=2).run()), 0.5)

    asyncio.run(scenario())
    assert len(api_requests(sb)) >= 3


def test_bad_key_yields_one_error_event_without_the_key(
    sb: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = sb.airflow_connection_dict()
    conn["password"] = "wrong-key-456"
    monkeypatch.setenv("AIRFLOW_CONN_CONPEEK_DEFAULT", json.dumps(conn))
    event = asyncio.run(first_event(trigger()))
    assert event.payload["status"] == "error"
    assert event.payload["fatal"] is True
    assert event.payload["error_type"] == "ConpeekAuthError"
    assert "refused the API key" in event.payload["message"]
    assert "HTTP 401" in event.payload["message"]
    assert "wrong-key-456" not in json.dumps(event.payload)
    assert len(api_requests(sb)) == 1  # not retried, not polled again


def test_missing_connection_yields_a_non_fatal_error_event(sb: SandboxServer) -> None:
    event = asyncio.run(first_event(trigger(conpeek_conn_id="conpeek_nowhere")))
    assert event.payload["status"] == "error"
    assert event.payload["fatal"] is False
    assert "conpeek_nowhere" in event.payload["message"]
    assert api_requests(sb) == []


def test_invalid_min_records_yields_a_fatal_error_event(sb: SandboxServer) -> None:
    event = asyncio.run(first_event(trigger(min_records=0)))
    assert event.payload["status"] == "error"
    assert event.payload["fatal"] is True
    assert "min_records must be a positive integer" in event.payload["message"]
    assert api_requests(sb) == []


def test_malformed_response_is_an_error_event_but_not_fatal(sb: SandboxServer) -> None:
    sb.set_faults(FaultConfig(rules=[FaultRule("malformed")]))
    event = asyncio.run(first_event(trigger()))
    assert event.payload["status"] == "error"
    assert event.payload["fatal"] is False
    assert event.payload["error_type"] == "ConpeekPagingError"


@pytest.mark.parametrize("kind", ["503", "429"])
def test_keeps_polling_through_transient_errors(sb: SandboxServer, kind: str) -> None:
    sb.add_records([record("2026-02-01 10:30:00")])
    # max_retries=1: each poll makes two tries; the first two polls fail after retrying.
    sb.set_faults(FaultConfig(rules=[FaultRule(kind, retry_after="0", first=4)]))
    event = asyncio.run(first_event(trigger()))
    assert event.payload["status"] == "success"
    assert [c.status for c in api_requests(sb)] == [int(kind)] * 4 + [200]


def test_event_loop_is_never_blocked(sb: SandboxServer) -> None:
    """A ticker on the same loop keeps ticking while each poll takes 300 ms at the server."""
    sb.set_faults(FaultConfig(latency=0.3))

    async def scenario() -> tuple[TriggerEvent, list[float]]:
        ticks: list[float] = []
        stop = asyncio.Event()

        async def ticker() -> None:
            while not stop.is_set():
                ticks.append(time.monotonic())
                await asyncio.sleep(0.01)

        tick_task = asyncio.create_task(ticker())
        adder = asyncio.create_task(add_after_requests(sb, 2, [record("2026-02-01 10:30:00")]))
        try:
            event = await first_event(trigger())
        finally:
            stop.set()
            await tick_task
            await adder
        return event, ticks

    started = time.monotonic()
    event, ticks = asyncio.run(scenario())
    elapsed = time.monotonic() - started
    assert event.payload["status"] == "success"
    calls = api_requests(sb)
    assert len(calls) >= 3
    assert elapsed >= 0.3 * len(calls)  # the latency really applied
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    # A blocking poll would stall the loop for the whole 0.3 s latency; allow a loaded CI.
    assert max(gaps) < 0.25, f"event loop blocked for {max(gaps):.3f} s"
    assert len(ticks) >= elapsed / 0.05  # ~100 ticks/s expected; allow a slow machine


def test_cancellation_stops_the_trigger(sb: SandboxServer) -> None:
    """The triggerer cancels a trigger on timeout: run() must end quietly, closing the hook."""

    async def scenario() -> None:
        gen = trigger(poll_interval=10).run()

        async def first() -> TriggerEvent:
            return await anext(gen)

        task = asyncio.create_task(first())
        while not api_requests(sb):
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # now sleeping until the next poll
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    started = time.monotonic()
    asyncio.run(scenario())
    assert time.monotonic() - started < 5
    assert len(api_requests(sb)) == 1
