"""A fake clock for the client: time stands still except when somebody sleeps.

Every sleep is recorded (thread name, seconds) and returns at once, advancing the clock to
the sleeper's wake-up time, so retry and gate tests are instant and deterministic.
``on_sleep`` lets a test act while a thread is "asleep" (block it, look at the server).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from airflow_provider_conpeek.client import Clock

WALL_START = datetime(2026, 1, 5, 12, 0, 0, tzinfo=timezone.utc)


class FakeClock(Clock):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._t = 1000.0
        self.sleeps: list[tuple[str, float]] = []
        self.on_sleep: Callable[[str, float], None] | None = None

    def monotonic(self) -> float:
        with self._lock:
            return self._t

    def now(self) -> datetime:
        return WALL_START + timedelta(seconds=self.monotonic() - 1000.0)

    def sleep(self, seconds: float, cancel: threading.Event | None = None) -> None:
        name = threading.current_thread().name
        with self._lock:
            self.sleeps.append((name, seconds))
            wake = self._t + seconds
        if self.on_sleep is not None:
            self.on_sleep(name, seconds)
        with self._lock:
            self._t = max(self._t, wake)

    def waits(self) -> list[float]:
        """Every sleep's length, in order."""
        with self._lock:
            return [seconds for _, seconds in self.sleeps]
