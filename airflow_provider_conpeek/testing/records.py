"""Deterministic, lazily generated voice campaign request summaries for the sandbox.

Record ``i`` (``0 <= i < count``) is a pure function of ``(seed, i)``; nothing is
materialised up front, so a store of millions of records costs nothing to create.
``created_date`` is non-decreasing in index order, so a ``created_date`` window maps
to an index range by bisection. Records added at runtime live in a small sorted side
list and are merged into the order (created_date, then index; added records count as
indices after every generated one, in insertion order).

Filter parsing and matching (:func:`parse_filters`, :class:`Filters`) implement the
endpoint's ``filter`` semantics and are shared by the server and
:meth:`RecordStore.expected`.
"""

from __future__ import annotations

import bisect
import calendar
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any

DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
"""Format of ``created_date`` / ``closed_date`` values and of date filter values."""

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
_CLOSED_STATES = ("closed", "closed", "closed", "no_answer", "busy", "failed")
_CONTACT_POOL = 2003
_M64 = (1 << 64) - 1
_DAY = 86400
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
OPERATORS = ("gt", "gte", "lt", "lte")
LIST_PROPERTIES: dict[str, tuple[str, type]] = {
    "contact_number_list": ("contact_number", str),
    "voice_campaign_id_list": ("voice_campaign_id", str),
    "call_request_id_list": ("call_request_id", str),
    "project_id_list": ("project_id", int),
}
"""List filter property -> (record field, element type)."""
DATE_PROPERTIES = ("created_date", "closed_date")


def _mix(x: int) -> int:
    """SplitMix64 finaliser: a fast, well-spread 64-bit hash."""
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def parse_date(value: str) -> int:
    """Parse ``YYYY-MM-DD HH:mm:ss`` (UTC) to epoch seconds; ValueError if malformed."""
    if not isinstance(value, str) or not _DATE_RE.fullmatch(value):
        raise ValueError(f"expected 'YYYY-MM-DD HH:mm:ss', got {value!r}")
    dt = datetime.strptime(value, DATE_FORMAT)
    return calendar.timegm(dt.timetuple())


def format_ts(ts: int) -> str:
    """Format epoch seconds as ``YYYY-MM-DD HH:mm:ss`` (UTC)."""
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime(DATE_FORMAT)


def to_midnight_utc(start: datetime | date | str) -> int:
    """Epoch seconds of UTC midnight of ``start`` (str: ISO date or date-time)."""
    if isinstance(start, str):
        start = datetime.fromisoformat(start.replace("Z", "+00:00"))
    if not isinstance(start, datetime):
        start = datetime(start.year, start.month, start.day)
    if start.tzinfo is not None:
        start = start.astimezone(timezone.utc).replace(tzinfo=None)
    return calendar.timegm(start.date().timetuple())


class FilterError(ValueError):
    """A ``filter`` value the endpoint rejects with 400 ``invalid_filter``.

    Example::

        with pytest.raises(FilterError):
            parse_filters([{"property": "nope", "value": 1}])
    """


@dataclass
class Filters:
    """Parsed filters: half-open epoch windows plus membership tests, all ANDed.

    Example::

        filters = parse_filters([{"property": "project_id_list", "value": [11]}])
        filters.matches(record)  # True when record["project_id"] == 11 (and dates match)
    """

    created_lo: int | None = None
    created_hi: int | None = None
    closed_lo: int | None = None
    closed_hi: int | None = None
    has_closed: bool = False
    members: list[tuple[str, frozenset[Any]]] = field(default_factory=list)

    @property
    def created_only(self) -> bool:
        """True if only created_date conditions are present (index-range fast path)."""
        return not self.has_closed and not self.members

    def matches(self, record: dict[str, Any]) -> bool:
        """True if ``record`` passes every non-created_date condition."""
        for name, allowed in self.members:
            value = record.get(name)
            if isinstance(value, bool) or value not in allowed:
                return False
        if self.has_closed:
            closed = record.get("closed_date")
            try:
                ts = parse_date(closed) if isinstance(closed, str) else None
            except ValueError:
                ts = None
            if ts is None:
                return False
            if self.closed_lo is not None and ts < self.closed_lo:
                return False
            if self.closed_hi is not None and ts >= self.closed_hi:
                return False
        return True


def _narrow(lo: int | None, hi: int | None, op: str, ts: int) -> tuple[int | None, int | None]:
    if op in ("gt", "gte"):
        bound = ts + 1 if op == "gt" else ts
        return (bound if lo is None else max(lo, bound)), hi
    bound = ts + 1 if op == "lte" else ts
    return lo, (bound if hi is None else min(hi, bound))


def parse_filters(raw: Any) -> Filters:
    """Validate a decoded ``filter`` JSON value; raise :class:`FilterError` if invalid.

    >>> parse_filters([{"property": "created_date", "operator": "gte",
    ...                 "value": "2026-01-01 00:00:00"}]).created_lo
    1767225600
    """
    if not isinstance(raw, list):
        raise FilterError("filter must be a JSON list of objects")
    out = Filters()
    for n, item in enumerate(raw):
        where = f"filter[{n}]"
        if not isinstance(item, dict):
            raise FilterError(f"{where} must be an object")
        if "property" not in item or "value" not in item:
            raise FilterError(f"{where} must have the keys 'property' and 'value'")
        extra = set(item) - {"property", "value", "operator"}
        if extra:
            raise FilterError(f"{where} has unknown keys {sorted(extra)}")
        prop, value = item["property"], item["value"]
        if prop in DATE_PROPERTIES:
            op = item.get("operator")
            if op not in OPERATORS:
                raise FilterError(f"{where} ({prop}) needs operator in {list(OPERATORS)}")
            try:
                ts = parse_date(value)
            except ValueError as exc:
                raise FilterError(f"{where} ({prop}): {exc}") from None
            if prop == "created_date":
                out.created_lo, out.created_hi = _narrow(out.created_lo, out.created_hi, op, ts)
            else:
                out.has_closed = True
                out.closed_lo, out.closed_hi = _narrow(out.closed_lo, out.closed_hi, op, ts)
            continue
        if "operator" in item:
            raise FilterError(f"{where} ({prop!r}) does not take an operator")
        if prop == "contact_number":
            if not isinstance(value, str):
                raise FilterError(f"{where} (contact_number) value must be a string")
            out.members.append(("contact_number", frozenset([value])))
        elif prop in LIST_PROPERTIES:
            name, typ = LIST_PROPERTIES[prop]
            if not isinstance(value, list) or not all(
                isinstance(v, typ) and not isinstance(v, bool) for v in value
            ):
                raise FilterError(f"{where} ({prop}) value must be a list of {typ.__name__}")
            out.members.append((name, frozenset(value)))
        else:
            raise FilterError(f"{where}: unknown property {prop!r}")
    return out


def _dumps(record: dict[str, Any]) -> bytes:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()


@dataclass(frozen=True)
class _Added:
    ts: int
    seq: int
    record: dict[str, Any]
    data: bytes


class _TsView:
    """Sequence view ``i -> created epoch of generated record i`` for bisect."""

    def __init__(self, store: RecordStore) -> None:
        self._store = store

    def __len__(self) -> int:
        return self._store.count

    def __getitem__(self, i: int) -> int:
        return self._store.created_ts(i)


class RecordStore:
    """Lazily generated records plus a sorted side list of runtime additions.

    Example::

        store = RecordStore(1_000_000, seed=0, start="2026-01-01", days=3)
        store.record(0)["created_date"]        # '2026-01-01 00:00:00'
        store.record(333_332)["created_date"]  # '2026-01-01 23:59:59'
    """

    _CACHE_MAX = 200_000

    def __init__(
        self,
        count: int,
        *,
        seed: int = 0,
        start: datetime | date | str = "2026-01-01",
        days: int = 3,
    ) -> None:
        if count < 0 or days < 1:
            raise ValueError("count must be >= 0 and days >= 1")
        self.count = count
        self.seed = seed
        self.days = days
        self.start_ts = to_midnight_utc(start)
        self._seed_mix = _mix(seed & _M64)
        self._added: list[_Added] = []
        self._lock = threading.Lock()
        self._cache: dict[int, bytes] = {}
        self._ts_view = _TsView(self)

    # -- generated records -------------------------------------------------------------
    def _day_start(self, d: int) -> int:
        return d * self.count // self.days

    def created_ts(self, i: int) -> int:
        """Epoch seconds of generated record ``i``'s created_date."""
        d = i * self.days // self.count
        while d + 1 < self.days and self._day_start(d + 1) <= i:
            d += 1
        first, n = self._day_start(d), self._day_start(d + 1) - self._day_start(d)
        sec = 0 if n <= 1 else (i - first) * (_DAY - 1) // (n - 1)
        return self.start_ts + d * _DAY + sec

    def record(self, i: int) -> dict[str, Any]:
        """Generated record ``i`` as a fresh dict."""
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
        """Compact UTF-8 JSON of generated record ``i`` (cached)."""
        data = self._cache.get(i)
        if data is None:
            if len(self._cache) >= self._CACHE_MAX:
                self._cache.clear()
            data = self._cache[i] = _dumps(self.record(i))
        return data

    # -- runtime additions -----------------------------------------------------------
    def add(self, records: list[dict[str, Any]]) -> None:
        """Add records (each needs a valid ``created_date``); they merge into the order."""
        new = []
        for rec in records:
            if not isinstance(rec, dict):
                raise ValueError("each record must be a JSON object")
            ts = parse_date(rec.get("created_date"))  # type: ignore[arg-type]
            clean = json.loads(json.dumps(rec))
            new.append((ts, clean))
        with self._lock:
            seq0 = self.count + len(self._added)
            added = self._added + [
                _Added(ts, seq0 + k, rec, _dumps(rec)) for k, (ts, rec) in enumerate(new)
            ]
            added.sort(key=lambda a: (a.ts, a.seq))
            self._added = added  # copy-on-write: readers hold the old list

    @property
    def total(self) -> int:
        """Generated plus added records."""
        return self.count + len(self._added)

    # -- windows ---------------------------------------------------------------------
    def iter_window(self, lo: int | None, hi: int | None, start: int = 0) -> Iterator[int | _Added]:
        """Records with ``lo <= created < hi`` in order, from merged position ``start``.

        Yields generated indices (``int``) or added entries; O(log n + added) to start.
        """
        a = 0 if lo is None else bisect.bisect_left(self._ts_view, lo)
        b = self.count if hi is None else bisect.bisect_left(self._ts_view, hi)
        b = max(a, b)
        added = [x for x in self._added if (lo is None or x.ts >= lo) and (hi is None or x.ts < hi)]
        pos = [bisect.bisect_right(self._ts_view, x.ts, a, b) - a + j for j, x in enumerate(added)]
        total = (b - a) + len(added)
        k = bisect.bisect_left(pos, start)
        g = a + start - k
        for q in range(start, total):
            if k < len(added) and pos[k] == q:
                yield added[k]
                k += 1
            else:
                yield g
                g += 1

    def as_dict(self, ref: int | _Added) -> dict[str, Any]:
        """The record for a reference yielded by :meth:`iter_window` (a fresh copy)."""
        return self.record(ref) if isinstance(ref, int) else json.loads(ref.data)

    def as_bytes(self, ref: int | _Added) -> bytes:
        """Serialized JSON for a reference yielded by :meth:`iter_window`."""
        return self.record_bytes(ref) if isinstance(ref, int) else ref.data

    def query(self, filters: Filters, offset: int, limit: int) -> list[int | _Added]:
        """References of the page ``[offset, offset + limit)`` of the filtered records."""
        if limit <= 0:
            return []
        it = self.iter_window(
            filters.created_lo, filters.created_hi, offset if filters.created_only else 0
        )
        if filters.created_only:
            return [ref for _, ref in zip(range(limit), it, strict=False)]
        out: list[int | _Added] = []
        skipped = 0
        for ref in it:
            if not filters.matches(self.as_dict(ref) if isinstance(ref, int) else ref.record):
                continue
            if skipped < offset:
                skipped += 1
                continue
            out.append(ref)
            if len(out) >= limit:
                break
        return out

    def expected(self, filters: Filters) -> list[dict[str, Any]]:
        """Every record matching ``filters``, in endpoint order (all pages)."""
        refs = self.query(filters, 0, self.total)
        return [self.as_dict(r) for r in refs]


def day_bounds(start: datetime | date | str, day: int = 0) -> tuple[str, str]:
    """``(first, last)`` created_date strings of layout day ``day`` (00:00:00, 23:59:59)."""
    base = to_midnight_utc(start) + day * _DAY
    return format_ts(base), format_ts(base + _DAY - 1)


__all__ = [
    "AGENTS",
    "CAMPAIGNS",
    "DATE_FORMAT",
    "FilterError",
    "Filters",
    "RecordStore",
    "day_bounds",
    "format_ts",
    "parse_date",
    "parse_filters",
]
