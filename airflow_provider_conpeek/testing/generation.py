"""Deterministic, lazily generated voice campaign request summaries.

Record ``i`` (``0 <= i < count``) is a pure function of ``(seed, i)``: nothing is
materialised up front, so millions of records cost nothing to create. The ``count``
records are spread evenly over ``days`` UTC days from ``start`` (midnight), so
``created_date`` is non-decreasing in index order and a ``created_date`` window maps to an
index range by bisection.

The fields are the sandbox's own invention: the real record format is not documented.

.. seealso:: :doc:`/sandbox`, section *What it serves*.
"""

from __future__ import annotations

import json
from dataclasses import KW_ONLY, dataclass
from datetime import date, datetime
from typing import Any, ClassVar

from airflow_provider_conpeek.testing.dates import DAY, format_ts, to_midnight_utc

CAMPAIGNS: tuple[tuple[str, str, int], ...] = (
    ("vc-101", "Kampania żółta", 11),
    ("vc-102", "Kampania zielona", 11),
    ("vc-103", "Odzyskiwanie należności", 12),
    ("vc-104", "Ankieta satysfakcji Łódź", 13),
    ("vc-105", "Przypomnienie o wizycie", 14),
    ("vc-106", "Sprzedaż krzyżowa", 14),
)
"""(voice_campaign_id, voice_campaign_name, project_id) of the generated campaigns."""

AGENTS: tuple[str, ...] = (
    "Łukasz Wójcik",
    "Zofia Nowak",
    "Paweł Kałuża",
    "Anna Żak",
    "Grzegorz Brzęczyszczykiewicz",
    "Maria Kowalska",
    "Jan Kowalski",
    "Małgorzata Szczęsna",
)
"""Agent names of the generated records."""

_CLOSED_STATES = ("closed", "closed", "closed", "no_answer", "busy", "failed")
_CONTACT_POOL = 2003
_M64 = (1 << 64) - 1


def _mix(x: int) -> int:
    """SplitMix64 finaliser: a fast, well-spread 64-bit hash."""
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def dump_record(record: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON of a record, non-ASCII unescaped, as the endpoint sends it."""
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()


class _CreatedView:
    """Sequence view ``i -> created epoch of generated record i``, for ``bisect``."""

    def __init__(self, records: GeneratedRecords) -> None:
        self._records = records

    def __len__(self) -> int:
        return self._records.count

    def __getitem__(self, i: int) -> int:
        return self._records.created_ts(i)


@dataclass(eq=False)
class GeneratedRecords:
    """The ``count`` generated records of a seed, computed on demand.

    :param count: number of records.
    :param seed: seed of every field but ``created_date`` (whose layout is seed-free).
    :param start: first UTC day (a date, a date-time or an ISO string).
    :param days: number of days the records are spread over.

    Example::

        gen = GeneratedRecords(1_000_000, seed=0, start="2026-01-01", days=3)
        gen.record(0)["created_date"]        # '2026-01-01 00:00:00'
        gen.record(333_332)["created_date"]  # '2026-01-01 23:59:59'
    """

    _CACHE_MAX: ClassVar[int] = 200_000

    count: int
    _: KW_ONLY
    seed: int = 0
    start: datetime | date | str = "2026-01-01"
    days: int = 3

    def __post_init__(self) -> None:
        if self.count < 0 or self.days < 1:
            raise ValueError("count must be >= 0 and days >= 1")
        self.start_ts = to_midnight_utc(self.start)
        self._seed_mix = _mix(self.seed & _M64)
        self._cache: dict[int, bytes] = {}
        self._created_view = _CreatedView(self)  # sorted: bisect it

    def _day_start(self, d: int) -> int:
        return d * self.count // self.days

    def created_ts(self, i: int) -> int:
        """Epoch seconds of record ``i``'s created_date.

        Day ``d`` holds records ``d * count // days`` up to the next day's first; they are
        spread evenly from 00:00:00 to 23:59:59.
        """
        d = i * self.days // self.count
        while d + 1 < self.days and self._day_start(d + 1) <= i:
            d += 1
        first, n = self._day_start(d), self._day_start(d + 1) - self._day_start(d)
        sec = 0 if n <= 1 else (i - first) * (DAY - 1) // (n - 1)
        return self.start_ts + d * DAY + sec

    def record(self, i: int) -> dict[str, Any]:
        """Record ``i`` as a fresh dict; IndexError outside ``0 <= i < count``."""
        if not 0 <= i < self.count:
            raise IndexError(i)
        h = _mix(self._seed_mix ^ i)
        h2 = _mix(h)
        cid, cname, project = CAMPAIGNS[h % len(CAMPAIGNS)]
        contact = 500_000_000 + _mix(self._seed_mix ^ (h2 % _CONTACT_POOL) << 32) % 400_000_000
        created = self.created_ts(i)
        is_open = (h >> 20) % 100 < 5
        delta = 10 + (h >> 8) % 891
        state = "open" if is_open else _CLOSED_STATES[(h2 >> 8) % len(_CLOSED_STATES)]
        duration = (h2 >> 16) % (delta + 1) if state in ("closed", "open") else 0
        return {
            "call_request_id": f"cr-{self.seed}-{i:08d}",
            "voice_campaign_id": cid,
            "voice_campaign_name": cname,
            "project_id": project,
            "contact_number": str(contact),
            "state": state,
            "agent_name": AGENTS[(h2 >> 40) % len(AGENTS)],
            "created_date": format_ts(created),
            "closed_date": None if is_open else format_ts(created + delta),
            "duration_seconds": 0 if is_open else duration,
        }

    def record_bytes(self, i: int) -> bytes:
        """:func:`dump_record` of record ``i`` (cached)."""
        data = self._cache.get(i)
        if data is None:
            if len(self._cache) >= self._CACHE_MAX:
                self._cache.clear()
            data = self._cache[i] = dump_record(self.record(i))
        return data


__all__ = ["AGENTS", "CAMPAIGNS", "GeneratedRecords", "dump_record"]
