"""Retry-After parsing and backoff bounds."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
from fakeclock import FakeClock

from airflow_provider_conpeek.client.retry import (
    RETRYABLE_STATUSES,
    Clock,
    Gate,
    RetryPolicy,
    parse_retry_after,
)

NOW = datetime(2026, 11, 27, 12, 0, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3", 3.0),
        (" 2.5 ", 2.5),
        ("0", None),
        ("-4", None),
        ("garbage", None),
        ("", None),
        (None, None),
        ("nan", None),
        (format_datetime(NOW + timedelta(seconds=7), usegmt=True), 7.0),
        (format_datetime(NOW - timedelta(seconds=7), usegmt=True), None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    policy = RetryPolicy(max_retries=10, base_wait=1.0, max_wait=5.0)
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0), (50, 5.0)]:
        waits = {policy.wait_before_retry(attempt, None) for _ in range(50)}
        assert all(ceiling / 2 <= w <= ceiling for w in waits)
        assert len(waits) > 1  # jittered


def test_retry_after_wins_but_is_capped() -> None:
    policy = RetryPolicy(max_wait=5.0)
    assert policy.wait_before_retry(1, "3") == 3.0
    assert policy.wait_before_retry(1, "3600") == 5.0
    assert policy.wait_before_retry(1, "0") <= policy.base_wait


def test_statuses() -> None:
    assert {429, 500, 502, 503, 504} <= RETRYABLE_STATUSES
    assert not {400, 401, 403, 404, 501} & RETRYABLE_STATUSES


def test_gate_holds_every_sender() -> None:
    clock = FakeClock()
    gate = Gate(clock)
    assert gate.wait() is True  # open: no sleep
    assert clock.waits() == []
    gate.defer(2.0)
    gate.defer(0.5)  # a shorter deferral never shortens the wait
    assert gate.remaining() == 2.0
    assert gate.wait() is True
    assert clock.waits() == [2.0]
    assert gate.remaining() == 0.0


def test_gate_rereads_a_deferral_made_while_waiting() -> None:
    clock = FakeClock()
    gate = Gate(clock)
    gate.defer(1.0)
    # While this caller sleeps, another request's 429 pushes the gate 3 s further on.
    clock.on_sleep = lambda name, seconds: gate.defer(3.0) if len(clock.sleeps) == 1 else None
    assert gate.wait() is True
    assert clock.waits() == [1.0, 2.0]  # woke at 1 s, saw the new deadline (3 s), slept on


def test_gate_wait_stops_when_cancelled() -> None:
    clock = FakeClock()
    gate = Gate(clock)
    cancel = threading.Event()
    assert gate.wait(cancel) is True  # open
    gate.defer(5.0)
    clock.on_sleep = lambda name, seconds: cancel.set()  # cancelled while asleep
    assert gate.wait(cancel) is False
    assert clock.waits() == [5.0]  # one sleep, then gave up instead of sending


def test_system_clock_sleep_is_cut_short_by_cancel() -> None:
    cancel = threading.Event()
    cancel.set()
    Clock().sleep(3600, cancel)  # returns at once: the event is already set
    assert Clock().now().tzinfo is not None
