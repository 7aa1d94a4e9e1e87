"""ConpeekClient: settings in, records out. Plain Python: no Airflow import.

The whole path of a request: :meth:`ConpeekClient.fetch_page` builds the URL (the filter
encoded exactly once), takes a session from the client's pool (:func:`.auth.new_session`
sets the key and headers), takes a slot of the extract's
:class:`~.limiter.ConcurrencyLimit` (requests in flight, adapted to the server), sends it
with retries (:mod:`.retry`: capped exponential backoff, ``Retry-After``, a
:class:`~.retry.Gate` shared by every request of the client) and turns the answer into
records or a clear error (:mod:`.responses`). :mod:`.paging` decides which pages to ask for.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import requests

from airflow_provider_conpeek.client.auth import new_session
from airflow_provider_conpeek.client.limiter import ConcurrencyLimit, Outcome, make_limit
from airflow_provider_conpeek.client.paging import (
    Page,
    iter_pages,
    validate_min_records,
    validate_page_size,
)
from airflow_provider_conpeek.client.responses import (
    error_for_response,
    excerpt,
    parse_page,
    transport_problem,
)
from airflow_provider_conpeek.client.retry import (
    RETRYABLE_STATUSES,
    SYSTEM_CLOCK,
    Clock,
    Gate,
    RetryPolicy,
    parse_retry_after,
)
from airflow_provider_conpeek.client.settings import ConpeekSettings
from airflow_provider_conpeek.exceptions import ConpeekTransientError
from airflow_provider_conpeek.filters import encode_filter, validate_filters

log = logging.getLogger(__name__)

_Sent = tuple[str | None, str | None, requests.Response | None, Outcome]
"""(retryable problem or None, Retry-After, response, outcome for the limit) of one try."""

OVERLOAD_STATUSES = frozenset({429, 503})
"""Answers that say the server has too much to do: the adaptive limit is cut."""
MAX_LIMITED_RETRIES = 10
"""Tries of one request repeated at once after a 429 that lowered the limit, beyond the
``max_retries`` budget; after these, a 429 backs off like any retryable failure."""


class ConpeekClient:
    """The Conpeek API over HTTP: authentication, retries, paging. One client per extract.

    Sessions are pooled: a request borrows one (sessions are not thread-safe) and returns
    it, so concurrent paging opens at most ``max_concurrency`` of them. :meth:`close` (or
    leaving the ``with`` block) closes them all.

    :param settings: where and how to connect (see
        :func:`airflow_provider_conpeek.settings.read_settings` for an Airflow connection).
    :param clock: time for waits and ``Retry-After`` dates; tests pass a fake one.

    Example::

        from airflow_provider_conpeek.filters import date_window

        with ConpeekClient(settings) as client:
            window = date_window("2026-01-01 00:00:00", "2026-01-02 00:00:00")
            for page in client.iter_pages(window):
                print(len(page))
    """

    def __init__(self, settings: ConpeekSettings, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.settings = settings
        self._clock = clock
        self._gate = Gate(clock)
        self._lock = threading.Lock()
        self._idle: list[requests.Session] = []
        self._open: list[requests.Session] = []

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.settings.base_url!r})"

    def __enter__(self) -> ConpeekClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every session. The client stays usable: a later request opens a new one."""
        with self._lock:
            sessions, self._open, self._idle = self._open, [], []
        for session in sessions:
            session.close()

    @contextmanager
    def _session(self) -> Iterator[requests.Session]:
        with self._lock:
            session = self._idle.pop() if self._idle else None
            if session is None:
                session = new_session(self.settings)
                self._open.append(session)
        try:
            yield session
        finally:
            with self._lock:
                if session in self._open:
                    self._idle.append(session)
                else:  # closed meanwhile
                    session.close()

    # -- one page ---------------------------------------------------------------------------

    def page_url(self, *, offset: int, limit: int, encoded_filter: str | None = None) -> str:
        """The request URL; the filter is already percent-encoded and is not encoded again."""
        query = f"limit={int(limit)}&offset={int(offset)}"
        if encoded_filter:
            query += f"&filter={encoded_filter}"
        return f"{self.settings.endpoint_url}?{query}"

    def fetch_page(
        self,
        *,
        offset: int,
        limit: int,
        encoded_filter: str | None = None,
        cancel: threading.Event | None = None,
        slots: ConcurrencyLimit | None = None,
    ) -> Page:
        """One page of records, retried on 429, 5xx, dropped connections and timeouts.

        :param offset: index of the first record.
        :param limit: records asked for.
        :param encoded_filter: the output of
            :func:`~airflow_provider_conpeek.filters.encode_filter`.
        :param cancel: when set, no further try is sent (a try in progress finishes).
        :param slots: the extract's limit on requests in flight: each try takes a slot and
            reports how it ended. ``None``: no limit (a single request).
        """
        url = self.page_url(offset=offset, limit=limit, encoded_filter=encoded_filter)
        what = f"offset={offset}, limit={limit}"
        return self._get_page(url, self.settings.retry, cancel, what, slots)

    def check(self) -> float:
        """Send one ``limit=1`` request, without retries; return the seconds it took.

        :raises ConpeekError: with the reason, when the API cannot be reached or refuses.
        """
        started = self._clock.monotonic()
        policy = RetryPolicy(max_retries=0, max_wait=self.settings.retry.max_wait)
        self._get_page(self.page_url(offset=0, limit=1), policy, None, "connection test", None)
        return self._clock.monotonic() - started

    def _get_page(
        self,
        url: str,
        policy: RetryPolicy,
        cancel: threading.Event | None,
        what: str,
        slots: ConcurrencyLimit | None,
    ) -> Page:
        """GET ``url`` until it answers 200 or ``policy`` gives up.

        A 429 that made ``slots`` lower its limit is repeated as soon as a slot is free (up
        to :data:`MAX_LIMITED_RETRIES` times): fewer requests in flight is the cure, not a
        pause. Any other 429, or any answer with a usable ``Retry-After``, pushes back the
        gate shared by every request of this client, so concurrent requests all pause; other
        failures back off in the failing request only.
        """
        settings = self.settings
        attempt = limited = 0
        while True:
            if not self._gate.wait(cancel):
                raise ConpeekTransientError(
                    f"Cancelled before requesting {url}: paging had ended.", url=url
                )
            problem, retry_after, response, lowered = self._try(url, cancel, slots)
            if response is not None and problem is None:
                return parse_page(response, settings.api_key)
            status = response.status_code if response is not None else None
            if (
                lowered
                and status == 429
                and limited < MAX_LIMITED_RETRIES
                and parse_retry_after(retry_after, now=self._clock.now()) is None
                and not (cancel is not None and cancel.is_set())
            ):
                limited += 1
                assert slots is not None
                log.info(
                    "Conpeek answered 429 (%s): too many requests at once; now %d in "
                    "flight at most, repeating it",
                    what,
                    slots.current,
                )
                continue
            attempt += 1
            if attempt > policy.max_retries or (cancel is not None and cancel.is_set()):
                raise ConpeekTransientError(
                    f"Giving up on {url} after {attempt + limited} tries: {problem}. The server or "
                    "the network kept failing; the task can be retried, or raise "
                    f"'max_retries' in the extra of connection {settings.conn_id!r}.",
                    status=status,
                    body=excerpt(response, settings.api_key),
                    url=url,
                )
            now = self._clock.now()
            wait = policy.wait_before_retry(attempt, retry_after, now=now)
            shared = status == 429 or parse_retry_after(retry_after, now=now) is not None
            log.warning(
                "Conpeek request (%s) failed: %s; retry %d of %d in %.2f s%s",
                what,
                problem,
                attempt,
                policy.max_retries,
                wait,
                " (every request of this extract waits)" if shared else "",
            )
            if shared:
                self._gate.defer(wait)
            else:
                self._clock.sleep(wait, cancel)

    def _try(
        self, url: str, cancel: threading.Event | None, slots: ConcurrencyLimit | None
    ) -> tuple[str | None, str | None, requests.Response | None, bool]:
        """One try within a slot of ``slots``: (problem, Retry-After, response, whether an
        overload answer lowered the limit). Fatal failures raise."""
        if slots is None:
            problem, retry_after, response, _ = self._send(url)
            return problem, retry_after, response, False
        ticket = slots.acquire(cancel)
        if ticket is None:
            raise ConpeekTransientError(
                f"Cancelled before requesting {url}: paging had ended.", url=url
            )
        outcome: Outcome = "other"
        try:
            started = self._clock.monotonic()
            problem, retry_after, response, outcome = self._send(url)
        finally:
            rtt = self._clock.monotonic() - started if outcome == "ok" else None
            lowered = slots.release(ticket, outcome, rtt)
        return problem, retry_after, response, lowered and outcome == "overload"

    def _send(self, url: str) -> _Sent:
        """Send once. Retryable failures are returned; the others raise."""
        settings = self.settings
        try:
            with self._session() as session:
                response = session.get(
                    url, timeout=(settings.connect_timeout, settings.read_timeout)
                )
        except requests.exceptions.RequestException as exc:
            problem = transport_problem(exc, settings)  # or raises if fatal
            timed_out = isinstance(exc, requests.exceptions.ReadTimeout)
            return problem, None, None, "overload" if timed_out else "other"
        status = response.status_code
        if status in RETRYABLE_STATUSES:
            outcome: Outcome = "overload" if status in OVERLOAD_STATUSES else "other"
            return f"HTTP {status}", response.headers.get("Retry-After"), response, outcome
        if status >= 400:
            raise error_for_response(response, settings)
        return None, None, response, "ok"

    # -- many pages -------------------------------------------------------------------------

    def iter_pages(
        self,
        filters: Sequence[Any] | None = None,
        *,
        page_size: int = 100,
        concurrency: int | None = None,
    ) -> Iterator[Page]:
        """Every non-empty page of records matching ``filters``, in the server's order.

        Validates everything before the first request. Closing the iterator (or reaching
        its end) stops the requests in flight. Memory is bounded by ``max_concurrency + 1``
        pages, never by the result.

        :param filters: filter objects (the API's dict form, or the helpers of
            :mod:`airflow_provider_conpeek.filters`).
        :param page_size: records per request (the API's ``limit``).
        :param concurrency: requests in flight at once (1 is sequential), or ``None`` to
            adapt to the server up to the settings' ``max_concurrency``.
        """
        validate_page_size(page_size)
        slots = make_limit(concurrency, self.settings.max_concurrency)
        encoded = encode_filter(validate_filters(filters)) if filters else None
        cancel = threading.Event()  # set when paging ends: speculative fetches stop retrying

        def fetch(offset: int, limit: int) -> Page:
            return self.fetch_page(
                offset=offset, limit=limit, encoded_filter=encoded, cancel=cancel, slots=slots
            )

        return iter_pages(
            fetch,
            page_size=page_size,
            concurrency=slots,
            max_pages=self.settings.max_pages,
            cancel=cancel,
        )

    def has_at_least(
        self,
        filters: Sequence[Any] | None,
        min_records: int,
        *,
        cancel: threading.Event | None = None,
    ) -> bool:
        """Whether at least ``min_records`` records match, in one ``limit=1`` request.

        :param cancel: when set (for example by a cancelled trigger), retrying stops.
        """
        validate_min_records(min_records)
        encoded = encode_filter(validate_filters(filters)) if filters else None
        page = self.fetch_page(
            offset=min_records - 1, limit=1, encoded_filter=encoded, cancel=cancel
        )
        return bool(page)
