"""Tests of VoiceCampaignSummaryTrigger: serialisation and its async run() against the
sandbox over real HTTP."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
from airflow.triggers.base import TriggerEvent
from airflow_compat import deserialize, import_string, serialize

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


async def until(condition: Callable[[], bool], timeout: float = 20) -> None:
    """Yield to the loop until ``condition()`` holds; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, f"condition not met within {timeout} s"
        await asyncio.sleep(0.01)


async def add_after_requests(server: SandboxServer, n: int, records: list[dict[str, Any]]) -> None:
    await until(lambda: len(api_requests(server)) >= n)
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
        "first_poll_after": 0.0,
    }
    again = VoiceCampaignSummaryTrigger(**json.loads(json.dumps(kwargs)))  # JSON-safe
    assert again.serialize() == (classpath, kwargs)


def test_serialize_through_airflows_serde_and_classpath_import() -> None:
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
        "first_poll_after": 0.0,
    }


# -- run() -----------------------------------------------------------------------------------


def test_first_poll_waits_first_poll_after(sb: SandboxServer) -> None:
    """The sensor has just poked: the trigger's first request comes only after the delay."""
    sb.add_records([record("2026-02-01 10:30:00")])

    async def scenario() -> None:
        task = asyncio.create_task(anext(trigger(first_poll_after=3600).run()))
        for _ in range(20):  # let the trigger run as far as it will
            await asyncio.sleep(0.01)
        assert not task.done()
        assert api_requests(sb) == []  # still waiting: no request yet
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    event = asyncio.run(first_event(trigger(first_poll_after=0.01)))
    assert event.payload["status"] == "success"
    assert len(api_requests(sb)) == 1


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
        task = asyncio.create_task(anext(trigger(min_records=2).run()))
        await until(lambda: len(api_requests(sb)) >= 3)  # three polls ...
        assert not task.done()  # ... and still no event
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert {e.query.split("&")[1] for e in api_requests(sb)} == {"offset=1"}


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


class _HeldServer(http.server.ThreadingHTTPServer):
    """Answers each request with one record, but only once ``release`` is set (or 10 s)."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _HeldHandler)
        self.arrived = threading.Event()
        self.release = threading.Event()
        self.released_in_time: list[bool] = []


class _HeldHandler(http.server.BaseHTTPRequestHandler):
    server: _HeldServer

    def do_GET(self) -> None:
        self.server.arrived.set()
        self.server.released_in_time.append(self.server.release.wait(10))
        body = json.dumps({"data": [record("2026-02-01 10:30:00")]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_event_loop_is_never_blocked(monkeypatch: pytest.MonkeyPatch) -> None:
    """While a poll waits for the server, the trigger's event loop keeps running: a
    coroutine on the same loop is what lets the server answer."""
    server = _HeldServer()
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    host = f"http://127.0.0.1:{server.server_address[1]}/api"
    conn = {"conn_type": "conpeek", "host": host, "password": "k"}
    monkeypatch.setenv("AIRFLOW_CONN_CONPEEK_DEFAULT", json.dumps(conn))

    async def release_once_the_request_arrived() -> None:
        await until(server.arrived.is_set)
        server.release.set()

    async def scenario() -> TriggerEvent:
        releaser = asyncio.create_task(release_once_the_request_arrived())
        event = await first_event(trigger())
        await releaser
        return event

    try:
        event = asyncio.run(scenario())
    finally:
        server.shutdown()
        server.server_close()
    assert event.payload["status"] == "success"
    assert server.released_in_time == [True]  # released by the loop, not by the 10 s timeout


def test_cancellation_stops_the_trigger(sb: SandboxServer) -> None:
    """The triggerer cancels a trigger on timeout: run() must end quietly, closing the hook."""

    async def scenario() -> None:
        gen = trigger(poll_interval=3600).run()

        async def first() -> TriggerEvent:
            return await anext(gen)

        task = asyncio.create_task(first())
        while not api_requests(sb):
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # now sleeping until the next poll
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())  # with poll_interval=3600, only cancellation ends it in time
    assert len(api_requests(sb)) == 1
