"""Paging stop conditions, each on its own, and concurrent paging == sequential paging."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_conpeek.client.paging import (
    check_offset_honoured,
    check_page_ceiling,
    is_exhausted,
    is_repeat,
    is_short,
    iter_pages,
    probe_offset,
    validate_page_size,
)
from airflow_provider_conpeek.exceptions import ConpeekConfigError, ConpeekPagingError


class ListSource:
    """An in-memory endpoint: limit/offset over a list, optionally capping the page size."""

    def __init__(self, n: int, *, cap: int | None = None) -> None:
        self.records = [{"id": i} for i in range(n)]
        self.cap = cap
        self.calls: list[tuple[int, int]] = []
        self._lock = threading.Lock()

    def __call__(self, offset: int, limit: int) -> list[dict[str, int]]:
        with self._lock:
            self.calls.append((offset, limit))
        if self.cap is not None:
            limit = min(limit, self.cap)
        return self.records[offset : offset + limit]


def collect(source: ListSource, **kwargs: int) -> list[dict[str, int]]:
    return [record for page in iter_pages(source, **kwargs) for record in page]


def test_stop_conditions_alone() -> None:
    assert is_exhausted([])
    assert not is_exhausted([1])
    assert is_short([1, 2], 3)
    assert not is_short([1, 2, 3], 3)
    assert not is_repeat(None, [1])
    assert not is_repeat([1], [2])
    assert not is_repeat([], [])  # two empty pages are not a loop
    assert is_repeat([1, 2], [1, 2])
    assert probe_offset(20, 10) % 10 != 0  # off the page grid
    assert probe_offset(20, 10) > 10_000  # far ahead
    check_offset_honoured([1, 2], [3], 5)  # the data moves on: a run of equal records
    check_offset_honoured([1, 2], [], 5)
    with pytest.raises(ConpeekPagingError, match="offset 5 is identical"):
        check_offset_honoured([1, 2], [1, 2], 5)
    check_page_ceiling(3, 3)
    with pytest.raises(ConpeekPagingError, match="max_pages=3"):
        check_page_ceiling(4, 3)


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True, None])
def test_page_size_rejected(bad: object) -> None:
    with pytest.raises(ConpeekConfigError, match="page_size must be a positive integer"):
        validate_page_size(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("n", "expected_calls"),
    [
        (0, [(0, 10)]),
        (1, [(0, 10), (1, 10)]),  # short page, confirmed by an empty one
        (9, [(0, 10), (9, 10)]),
        (10, [(0, 10), (10, 10)]),
        (11, [(0, 10), (10, 10), (11, 10)]),
        (35, [(0, 10), (10, 10), (20, 10), (30, 10), (35, 10)]),
    ],
)
def test_sequential_requests_exact(n: int, expected_calls: list[tuple[int, int]]) -> None:
    source = ListSource(n)
    assert collect(source, page_size=10) == source.records
    assert source.calls == expected_calls


def test_server_page_cap_is_detected_and_followed() -> None:
    source = ListSource(95, cap=20)
    assert collect(source, page_size=50) == source.records
    # 20 records for limit 50, confirmed non-empty, then paging at 20 per page.
    assert source.calls[:3] == [(0, 50), (20, 50), (40, 20)]


def test_server_ignoring_offset_raises() -> None:
    records = [{"id": i} for i in range(10)]
    with pytest.raises(ConpeekPagingError, match="ignore 'offset'"):
        collect(lambda offset, limit: records[:limit], page_size=10)  # type: ignore[arg-type]
    # Short first page + ignored offset: the confirmation repeats it.
    with pytest.raises(ConpeekPagingError, match="ignore 'offset'"):
        collect(lambda offset, limit: records[:5], page_size=10)  # type: ignore[arg-type]


@pytest.mark.parametrize("concurrency", [1, 4])
@pytest.mark.parametrize("page_size", [1, 2, 5])
def test_identical_consecutive_records_are_data_not_a_loop(
    page_size: int, concurrency: int
) -> None:
    """Record fields are undocumented: equal records in a row are possible, and kept."""
    source = ListSource(0)
    source.records = [{"id": 0}, {"id": 1}] + [{"id": "dup"}] * 10 + [{"id": i} for i in range(30)]
    got = collect(source, page_size=page_size, concurrency=concurrency)
    assert got == source.records


def test_page_ceiling_stops_an_endless_server() -> None:
    def endless(offset: int, limit: int) -> list[dict[str, int]]:
        return [{"id": offset + i} for i in range(limit)]

    with pytest.raises(ConpeekPagingError, match="max_pages=5"):
        collect(endless, page_size=10, max_pages=5)  # type: ignore[arg-type]


@given(
    n=st.integers(0, 400),
    page_size=st.integers(1, 60),
    concurrency=st.integers(1, 8),
    cap=st.one_of(st.none(), st.integers(1, 60)),
)
def test_concurrent_equals_sequential(
    n: int, page_size: int, concurrency: int, cap: int | None
) -> None:
    expected = list(range(n))
    source = ListSource(n, cap=cap)
    got = [r["id"] for r in collect(source, page_size=page_size, concurrency=concurrency)]
    assert got == expected


@pytest.mark.parametrize("concurrency", [2, 8])
def test_concurrency_overlaps_requests(concurrency: int) -> None:
    # Each request is held until `concurrency` requests are in flight at once (or 10 s
    # pass): paging completes promptly only if it really keeps them in flight together.
    records = [{"id": i} for i in range(400)]
    lock = threading.Lock()
    in_flight = 0
    peak = 0
    all_in = threading.Event()

    def fetch(offset: int, limit: int) -> list[dict[str, int]]:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
            if in_flight >= concurrency:
                all_in.set()
        if offset > 0:  # the first request is alone: nothing is speculated before it
            all_in.wait(10)
        with lock:
            in_flight -= 1
        return records[offset : offset + limit]

    got = [r for page in iter_pages(fetch, page_size=10, concurrency=concurrency) for r in page]
    assert got == records
    assert peak == concurrency


def test_failure_of_a_needed_page_propagates_and_speculation_is_cancelled() -> None:
    cancel = threading.Event()

    def failing(offset: int, limit: int) -> list[dict[str, int]]:
        if offset == 30:
            raise RuntimeError("page 30 failed")
        return [{"id": offset + i} for i in range(limit)]

    with pytest.raises(RuntimeError, match="page 30 failed"):
        for _ in iter_pages(failing, page_size=10, concurrency=4, cancel=cancel):  # type: ignore[arg-type]
            pass
    assert cancel.is_set()


def test_failure_beyond_the_end_is_ignored() -> None:
    def source(offset: int, limit: int) -> list[dict[str, int]]:
        if offset >= 50:
            raise RuntimeError("speculative page beyond the end")
        return [{"id": offset + i} for i in range(min(limit, 45 - offset))] if offset < 45 else []

    pages = list(iter_pages(source, page_size=10, concurrency=4))  # type: ignore[arg-type]
    assert [r["id"] for p in pages for r in p] == list(range(45))


@pytest.mark.parametrize("n", [0, 3, 9])
def test_no_speculation_before_a_full_page(n: int) -> None:
    # A small or empty result (or a failing first request) costs one request, not concurrency.
    source = ListSource(n)
    assert collect(source, page_size=10, concurrency=8) == source.records
    assert source.calls == ([(0, 10), (n, 10)] if n else [(0, 10)])


def test_max_pages_counts_pages_of_data_only() -> None:
    source = ListSource(30)
    assert collect(source, page_size=10, max_pages=3) == source.records  # + 1 empty page
    with pytest.raises(ConpeekPagingError, match="max_pages=2"):
        collect(ListSource(30), page_size=10, max_pages=2)
