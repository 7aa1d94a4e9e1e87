"""Limit/offset paging with explicit stop conditions, sequential or concurrent.

Conpeek's only paging is ``limit``/``offset``; a response carries no total and no "next"
marker. Each rule below is one small function, tested on its own:

* :func:`is_exhausted` -- an empty page ends the data.
* :func:`is_short` -- a page with fewer records than asked for *probably* ends the data.
  The API documents no maximum ``limit``, so a server that silently caps page size would
  make every page look short. A short page is therefore confirmed by one more request at
  the next offset: empty means done; records mean the server capped the page size, and
  paging continues at that size (nothing is skipped, nothing is read twice).
* :func:`is_repeat` and :func:`check_offset_honoured` -- a page identical to the previous
  one may mean the server ignores ``offset`` (or a run of identical records). One probe a
  few pages further on tells them apart; if it holds the same records too, raise instead
  of looping forever.
* :func:`check_page_ceiling` -- more non-empty pages than a ceiling raises instead of
  looping (the empty page that ends the data does not count).

:func:`iter_pages` fetches several pages at once (speculative offsets ahead of the reader,
once a first full page showed there is more) and yields them strictly in offset order, so
the result is identical to sequential paging. How many: a
:class:`~.limiter.ConcurrencyLimit`, pinned or adaptive (:mod:`.limiter`); the pages asked
for ahead follow its current value, so when the data ends, at most that many requests minus
one were sent beyond it. Memory is bounded by ``maximum + 1`` pages.

Example::

    for page in iter_pages(lambda offset, limit: fetch(offset, limit), page_size=100):
        for record in page:
            ...
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from airflow_provider_conpeek.client.limiter import ConcurrencyLimit
from airflow_provider_conpeek.exceptions import ConpeekConfigError, ConpeekPagingError

REPEAT_PROBE_PAGES = 100
REPEAT_PROBE_RECORDS = 10_000

log = logging.getLogger(__name__)

Page = list[Any]
FetchPage = Callable[[int, int], Page]
"""``fetch(offset, limit)`` returns the records of one page."""


def is_exhausted(page: Page) -> bool:
    """An empty page: there is nothing at or after this offset."""
    return not page


def is_short(page: Page, limit: int) -> bool:
    """Fewer records than asked for: the end of the data, or a server-side page cap."""
    return len(page) < limit


def is_repeat(previous: Page | None, page: Page) -> bool:
    """A non-empty page equal to the previous one: either the server ignores ``offset``, or
    the data really holds that many identical records in a row (record fields are not
    documented, so duplicates cannot be ruled out). A probe tells them apart."""
    return previous is not None and bool(page) and page == previous


def probe_offset(offset: int, limit: int) -> int:
    """Where to look after a repeated page: far ahead (a server ignoring ``offset`` answers
    the same page anywhere; real data rarely repeats one record that long), off the grid."""
    return offset + max(REPEAT_PROBE_PAGES * limit, REPEAT_PROBE_RECORDS) + 1


def check_offset_honoured(page: Page, probe: Page, offset: int) -> None:
    """Raise if the probe far ahead holds the very same records as the repeated page."""
    if probe == page:
        raise ConpeekPagingError(
            f"The page at offset {offset} is identical to the previous page, and so is a "
            "page far further on: the server seems to ignore 'offset'. Stopping "
            "instead of reading the same records forever."
        )


def check_page_ceiling(pages_fetched: int, max_pages: int) -> None:
    """Raise once more than ``max_pages`` pages were needed."""
    if pages_fetched > max_pages:
        raise ConpeekPagingError(
            f"More than max_pages={max_pages} pages were needed. Narrow the window or the "
            "filters, raise page_size, or raise 'max_pages' in the connection extra."
        )


def validate_page_size(page_size: int) -> None:
    """Reject a page size that is not a positive integer, before any request is sent."""
    if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1:
        raise ConpeekConfigError(
            f"page_size must be a positive integer, got {page_size!r}. "
            "Pass page_size=1 or more (default 100)."
        )


def validate_min_records(min_records: int) -> None:
    """Reject a record threshold that is not a positive integer, before any request."""
    if isinstance(min_records, bool) or not isinstance(min_records, int) or min_records < 1:
        raise ConpeekConfigError(f"min_records must be a positive integer, got {min_records!r}.")


def iter_pages(
    fetch: FetchPage,
    *,
    page_size: int = 100,
    concurrency: int | ConcurrencyLimit = 1,
    max_pages: int = 100_000,
    cancel: threading.Event | None = None,
) -> Iterator[Page]:
    """Yield every non-empty page in offset order until the data is exhausted.

    :param fetch: ``fetch(offset, limit)`` returning one page (retries are its business).
    :param page_size: the ``limit`` asked for.
    :param concurrency: pages in flight at once (1 is plain sequential paging), or the
        :class:`~.limiter.ConcurrencyLimit` that ``fetch`` takes its slots from.
    :param max_pages: ceiling on non-empty pages; one more raises :class:`ConpeekPagingError`.
    :param cancel: set when paging ends, so a fetch still running (speculative, beyond the
        end) can stop retrying.
    """
    validate_page_size(page_size)
    if not isinstance(concurrency, ConcurrencyLimit):
        concurrency = ConcurrencyLimit(concurrency)
    pages = _Prefetcher(fetch, concurrency)
    limit = page_size
    offset = 0
    fetched = 0
    previous: Page | None = None
    try:
        while True:
            confirming = previous is not None and is_short(previous, limit)
            # Speculate only once a full page proved there is more: a small or empty result,
            # or an error such as a wrong key, then costs one request, not `concurrency`.
            page = pages.get(offset, limit, speculate=previous is not None and not confirming)
            if is_repeat(previous, page):
                probe = pages.get(probe_offset(offset, limit), limit, speculate=False)
                check_offset_honoured(page, probe, offset)
            if is_exhausted(page):
                return
            fetched += 1  # pages of data: the empty page that ends them does not count
            check_page_ceiling(fetched, max_pages)
            if confirming:
                assert previous is not None
                log.warning(
                    "The server returned %d records for limit=%d, yet more exist: it caps the "
                    "page size. Continuing with page_size=%d.",
                    len(previous),
                    limit,
                    len(previous),
                )
                limit = len(previous)
            yield page
            previous = page
            offset += len(page)
    finally:
        if cancel is not None:
            cancel.set()
        pages.close()


def flatten(pages: Iterator[Page]) -> Iterator[Any]:
    """The records of ``pages``; closing this generator closes ``pages`` (stops workers)."""
    try:
        for page in pages:
            yield from page
    finally:
        close = getattr(pages, "close", None)
        if close is not None:
            close()


class _Prefetcher:
    """Pages asked for at speculative offsets, as many as the limit allows now, handed out
    strictly in order."""

    def __init__(self, fetch: FetchPage, limit: ConcurrencyLimit) -> None:
        self._fetch = fetch
        self._limit = limit
        self._executor = (
            ThreadPoolExecutor(limit.maximum, "conpeek-page") if limit.maximum > 1 else None
        )
        self._in_flight: deque[tuple[int, int, Future[Page]]] = deque()

    def get(self, offset: int, limit: int, *, speculate: bool) -> Page:
        if self._executor is None:
            return self._fetch(offset, limit)
        head = self._in_flight[0] if self._in_flight else None
        if head is None or head[:2] != (offset, limit):
            self._discard()  # speculation went past a short page: start again here
            self._submit(offset, limit)
        if speculate:
            while len(self._in_flight) < self._limit.current:
                self._submit(self._in_flight[-1][0] + limit, limit)
        return self._in_flight.popleft()[2].result()

    def _submit(self, offset: int, limit: int) -> None:
        assert self._executor is not None
        self._in_flight.append((offset, limit, self._executor.submit(self._fetch, offset, limit)))

    def _discard(self) -> None:
        while self._in_flight:
            self._in_flight.popleft()[2].cancel()

    def close(self) -> None:
        self._discard()
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
