"""The sandbox's records in endpoint order: generated ones plus those added at runtime.

:class:`RecordStore` adds to the generated records (:mod:`.generation`) a small sorted side
list of records added at runtime, merged into the order (created_date, then index; added
records count as indices after every generated one, in insertion order), and answers a
page of a filtered query (:mod:`.filter_semantics`) without scanning what precedes it
when only ``created_date`` is filtered.

The names this module had before it was split (``FilterError``, ``Filters``,
``parse_filters``, ``DATE_FORMAT``, ``parse_date``, ``format_ts``, ``CAMPAIGNS``,
``AGENTS``) are still importable from here.
"""

from __future__ import annotations

import bisect
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from airflow_provider_conpeek.testing.dates import DATE_FORMAT, format_ts, parse_date
from airflow_provider_conpeek.testing.filter_semantics import FilterError, Filters, parse_filters
from airflow_provider_conpeek.testing.generation import (
    AGENTS,
    CAMPAIGNS,
    GeneratedRecords,
    dump_record,
)


@dataclass(frozen=True)
class AddedRecord:
    """A record added at runtime: its created epoch, its place in the order, its JSON.

    Example::

        store.add([{"call_request_id": "mine", "created_date": "2026-01-02 00:00:00"}])
        ref = next(r for r in store.iter_window(None, None) if isinstance(r, AddedRecord))
        ref.record["call_request_id"], ref.seq == store.count  # ('mine', True)
    """

    ts: int
    seq: int
    record: dict[str, Any]
    data: bytes


RecordRef: TypeAlias = int | AddedRecord
"""A generated record's index, or an added record."""


@dataclass(eq=False)
class RecordStore(GeneratedRecords):
    """Lazily generated records plus a sorted side list of runtime additions.

    Takes :class:`~.generation.GeneratedRecords`' arguments: ``count``, ``seed``,
    ``start`` and ``days``.

    Example::

        store = RecordStore(1000, seed=0, start="2026-01-01", days=3)
        store.add([{"call_request_id": "mine", "created_date": "2026-01-02 00:00:00"}])
        page = store.query(parse_filters([]), offset=330, limit=10)
        [store.as_dict(ref)["call_request_id"] for ref in page][:5]
        # ['cr-0-00000330', 'cr-0-00000331', 'cr-0-00000332', 'cr-0-00000333', 'mine']
    """

    _added: list[AddedRecord] = field(default_factory=list, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    # -- runtime additions -----------------------------------------------------------
    def add(self, records: list[dict[str, Any]]) -> None:
        """Add records; they merge into the order by ``created_date``.

        :param records: JSON objects, each with a ``YYYY-MM-DD HH:mm:ss`` ``created_date``.
        :raises ValueError: if one is not an object or its ``created_date`` is invalid
            (then none is added).
        """
        new = []
        for rec in records:
            if not isinstance(rec, dict):
                raise ValueError("each record must be a JSON object")
            new.append((parse_date(rec.get("created_date")), json.loads(json.dumps(rec))))
        with self._lock:
            seq0 = self.count + len(self._added)
            added = self._added + [
                AddedRecord(ts, seq0 + k, rec, dump_record(rec)) for k, (ts, rec) in enumerate(new)
            ]
            added.sort(key=lambda a: (a.ts, a.seq))
            self._added = added  # copy-on-write: readers hold the old list

    @property
    def total(self) -> int:
        """Generated plus added records."""
        return self.count + len(self._added)

    # -- reading ---------------------------------------------------------------------
    def iter_window(self, lo: int | None, hi: int | None, start: int = 0) -> Iterator[RecordRef]:
        """Records with ``lo <= created < hi`` in order, from merged position ``start``.

        Yields generated indices (``int``) or added entries; O(log n + added) to start.
        """
        view, added_all = self._created_view, self._added
        a = 0 if lo is None else bisect.bisect_left(view, lo)
        b = self.count if hi is None else bisect.bisect_left(view, hi)
        b = max(a, b)
        added = [x for x in added_all if (lo is None or x.ts >= lo) and (hi is None or x.ts < hi)]
        pos = [bisect.bisect_right(view, x.ts, a, b) - a + j for j, x in enumerate(added)]
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

    def as_dict(self, ref: RecordRef) -> dict[str, Any]:
        """The record for a reference yielded by :meth:`iter_window` (a fresh copy)."""
        return self.record(ref) if isinstance(ref, int) else json.loads(ref.data)

    def as_bytes(self, ref: RecordRef) -> bytes:
        """Serialized JSON for a reference yielded by :meth:`iter_window`."""
        return self.record_bytes(ref) if isinstance(ref, int) else ref.data

    def query(self, filters: Filters, offset: int, limit: int) -> list[RecordRef]:
        """References of the page ``[offset, offset + limit)`` of the filtered records.

        :param filters: from :func:`~.filter_semantics.parse_filters`.
        :param offset: records of the filtered order to skip.
        :param limit: most records to return.
        """
        if limit <= 0:
            return []
        it = self.iter_window(
            filters.created_lo, filters.created_hi, offset if filters.created_only else 0
        )
        if filters.created_only:
            return [ref for _, ref in zip(range(limit), it, strict=False)]
        out: list[RecordRef] = []
        skipped = 0
        for ref in it:
            if not filters.matches(self.record(ref) if isinstance(ref, int) else ref.record):
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
        return [self.as_dict(r) for r in self.query(filters, 0, self.total)]


__all__ = [
    "AGENTS",
    "CAMPAIGNS",
    "DATE_FORMAT",
    "AddedRecord",
    "FilterError",
    "Filters",
    "RecordRef",
    "RecordStore",
    "format_ts",
    "parse_date",
    "parse_filters",
]
