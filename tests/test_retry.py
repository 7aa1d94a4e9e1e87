"""Retry-After parsing and backoff bounds."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from airflow_provider_conpeek.retry import RETRYABLE_STATUSES, Gate, RetryPolicy, parse_retry_after

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
    gate = Gate()
    gate.wait()  # open
    gate.defer(0.2)
    gate.defer(0.05)  # a shorter deferral never shortens the wait
    started = time.monotonic()
    gate.wait()
    assert time.monotonic() - started >= 0.18


def test_gate_wait_stops_when_cancelled() -> None:
    import threading

    gate = Gate()
    cancel = threading.Event()
    assert gate.wait(cancel) is True  # open
    gate.defer(5.0)
    assert gate.remaining() > 4.5
    threading.Timer(0.05, cancel.set).start()
    started = time.monotonic()
    assert gate.wait(cancel) is False
    assert time.monotonic() - started < 1.0
