"""When to retry a Conpeek request, and how long to wait.

Retries are for failures that a later try can cure: HTTP 429 and 5xx, dropped connections
and timeouts. Waits grow exponentially with jitter; a server's ``Retry-After`` hint (in
seconds or as an HTTP-date) replaces the computed wait when it is a positive number. Every
wait is capped, and so is the number of tries.

A :class:`Gate` is shared by every request of one extract: a 429 pushes the gate back, and
every concurrent request waits for it, so rate limiting slows the whole extract down instead
of multiplying the load.

Every wait goes through a :class:`Clock`, so tests replace time with a fake one and run
retries instantly and deterministically.

Example::

    policy = RetryPolicy(max_retries=5, max_wait=60)
    wait = policy.wait_before_retry(attempt=1, retry_after="2")  # 2.0 seconds
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

RETRYABLE_STATUSES = frozenset({408, 429, *range(500, 600)} - {501})
"""Statuses a later try may cure: 408, 429 and 5xx except 501 (Not Implemented).

:meta hide-value:
"""


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait according to a ``Retry-After`` header, or ``None`` for no usable hint.

    Both forms of RFC 9110 are understood: delay-seconds (``"120"``) and an HTTP-date
    (``"Wed, 21 Oct 2026 07:28:00 GMT"``). Zero, negative, past or unparsable values are
    treated as no hint, so the caller falls back to its own backoff.

    >>> parse_retry_after("3")
    3.0
    >>> parse_retry_after("0") is None, parse_retry_after("soon") is None
    (True, True)
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - (now or datetime.now(timezone.utc))).total_seconds()
    if seconds != seconds or seconds <= 0:  # NaN, zero, negative or in the past
        return None
    return seconds


@dataclass(frozen=True)
class RetryPolicy:
    """How many times to retry and how long to wait between tries.

    :param max_retries: retries after the first try (0 disables retrying).
    :param base_wait: the first computed wait, in seconds, before jitter.
    :param max_wait: cap on any single wait, ``Retry-After`` included.

    Example::

        RetryPolicy(max_retries=3, base_wait=0.5, max_wait=30).wait_before_retry(2, None)
    """

    max_retries: int = 5
    base_wait: float = 0.5
    max_wait: float = 60.0

    def wait_before_retry(
        self, attempt: int, retry_after: str | None, *, now: datetime | None = None
    ) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based).

        A usable ``Retry-After`` hint wins; otherwise exponential backoff with "equal
        jitter" (half fixed, half random), so waits grow but concurrent clients spread out.
        """
        hint = parse_retry_after(retry_after, now=now)
        if hint is not None:
            return min(hint, self.max_wait)
        ceiling = min(self.max_wait, self.base_wait * 2.0 ** min(attempt - 1, 60))
        return ceiling / 2 + random.uniform(0, ceiling / 2)


class Clock:
    """Time as the client sees it: the system's. Tests pass a subclass with fake time.

    Example::

        class FakeClock(Clock):
            def __init__(self) -> None:
                self.t, self.slept = 0.0, []

            def monotonic(self) -> float:
                return self.t

            def sleep(self, seconds: float, cancel: threading.Event | None = None) -> None:
                self.slept.append(seconds)
                self.t += seconds

        ConpeekClient(settings, clock=FakeClock())
    """

    def monotonic(self) -> float:
        """Seconds from an arbitrary start; never goes back."""
        return time.monotonic()

    def now(self) -> datetime:
        """The current UTC date-time (for ``Retry-After`` given as an HTTP-date)."""
        return datetime.now(timezone.utc)

    def sleep(self, seconds: float, cancel: threading.Event | None = None) -> None:
        """Sleep ``seconds``, or until ``cancel`` is set."""
        if cancel is None:
            time.sleep(seconds)
        else:
            cancel.wait(seconds)


SYSTEM_CLOCK = Clock()


class Gate:
    """A point in time before which no request of an extract may be sent.

    :param clock: where time comes from (the system's by default).

    Example::

        gate = Gate()
        gate.defer(2.0)  # after a 429 with Retry-After: 2
        gate.wait()  # every sender now waits about 2 s
    """

    def __init__(self, clock: Clock = SYSTEM_CLOCK) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._not_before = 0.0

    def defer(self, seconds: float) -> None:
        """Hold every request back for at least ``seconds`` from now."""
        with self._lock:
            self._not_before = max(self._not_before, self._clock.monotonic() + seconds)

    def remaining(self) -> float:
        """Seconds until the gate opens (0 when open)."""
        with self._lock:
            return max(0.0, self._not_before - self._clock.monotonic())

    def wait(self, cancel: threading.Event | None = None) -> bool:
        """Sleep until the gate is open; ``False`` if ``cancel`` was set first.

        The deadline is re-read after every sleep, so a deferral made meanwhile (another
        request's 429) holds this caller back too.
        """
        while True:
            if cancel is not None and cancel.is_set():
                return False
            remaining = self.remaining()
            if remaining <= 0:
                return True
            self._clock.sleep(remaining, cancel)
