"""ConpeekHook: an Airflow connection turned into authenticated, retried, paged requests.

The whole path of a request: :attr:`ConpeekHook.settings` reads and validates the
connection (:mod:`airflow_provider_conpeek.settings`); :class:`ConpeekKeyAuth` sets the
``Authorization`` header; :meth:`ConpeekHook.fetch_page` sends one ``limit``/``offset``
request with retries (:mod:`airflow_provider_conpeek.retry`) and turns the answer into
records or a clear error (:mod:`airflow_provider_conpeek.responses`);
:func:`airflow_provider_conpeek.paging.iter_pages` decides which pages to ask for.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from functools import cached_property
from typing import Any

import requests

from airflow_provider_conpeek import __version__
from airflow_provider_conpeek._compat import BaseHook
from airflow_provider_conpeek.connection import (
    CONN_TYPE,
    DEFAULT_CONN_ID,
    EXTRA_FIELDS,
    HOOK_NAME,
    ui_field_behaviour,
)
from airflow_provider_conpeek.exceptions import ConpeekConfigError, ConpeekTransientError
from airflow_provider_conpeek.filters import encode_filter, validate_filters
from airflow_provider_conpeek.paging import (
    DEFAULT_CONCURRENCY,
    Page,
    iter_pages,
    validate_min_records,
    validate_paging_args,
)
from airflow_provider_conpeek.responses import (
    connection_error_reason,
    error_for_response,
    excerpt,
    parse_page,
    redact,
)
from airflow_provider_conpeek.retry import (
    RETRYABLE_STATUSES,
    Gate,
    RetryPolicy,
    parse_retry_after,
)
from airflow_provider_conpeek.settings import ConpeekSettings, read_settings

log = logging.getLogger(__name__)

USER_AGENT = f"airflow-provider-conpeek/{__version__} python-requests/{requests.__version__}"


class ConpeekKeyAuth(requests.auth.AuthBase):
    """Sends the raw API key as the ``Authorization`` header (no ``Bearer`` prefix).

    Example::

        requests.get(url, auth=ConpeekKeyAuth("my-key"), timeout=(10, 60))
    """

    def __init__(self, api_key: str) -> None:
        self._api_key = api_key

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = self._api_key
        return request

    def __repr__(self) -> str:
        return "ConpeekKeyAuth(api_key='***')"


class ConpeekHook(BaseHook):
    """Talks to the Conpeek API through an Airflow connection of type ``conpeek``.

    The connection's host is the base URL (a path prefix such as ``/api/v1_3`` is normal)
    and its password the API key. Timeouts, retries, TLS and proxy settings live in the
    connection extra and may be overridden here.

    :param conpeek_conn_id: the Airflow connection to use.
    :param connect_timeout: seconds to wait for a connection (default from the extra, 10).
    :param read_timeout: seconds to wait between bytes of a response (default 60).
    :param max_retries: retries after the first try on 429/5xx/network errors (default 5).
    :param max_retry_wait: cap on any single wait between tries, seconds (default 60).
    :param max_pages: ceiling on pages per extract (default 100,000).

    Example::

        from airflow_provider_conpeek.filters import date_window

        hook = ConpeekHook(conpeek_conn_id="conpeek_default")
        window = date_window("2026-01-01 00:00:00", "2026-01-02 00:00:00")
        for record in hook.iter_voice_campaign_request_summaries(filters=window):
            print(record)
    """

    conn_name_attr = "conpeek_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = CONN_TYPE
    hook_name = HOOK_NAME

    def __init__(
        self,
        conpeek_conn_id: str = DEFAULT_CONN_ID,
        *,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
        max_retries: int | None = None,
        max_retry_wait: float | None = None,
        max_pages: int | None = None,
    ) -> None:
        super().__init__()
        self.conpeek_conn_id = conpeek_conn_id
        self._overrides: dict[str, Any] = {
            "connect_timeout": connect_timeout,
            "read_timeout": read_timeout,
            "max_retries": max_retries,
            "max_retry_wait": max_retry_wait,
            "max_pages": max_pages,
        }
        self._local = threading.local()
        self._sessions: list[tuple[threading.Thread, requests.Session]] = []
        self._sessions_lock = threading.Lock()
        self._gate = Gate()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(conpeek_conn_id={self.conpeek_conn_id!r})"

    # -- connection -------------------------------------------------------------------------

    @cached_property
    def settings(self) -> ConpeekSettings:
        """The validated connection settings (read once, on first use)."""
        return read_settings(
            self.conpeek_conn_id, self.get_connection(self.conpeek_conn_id), self._overrides
        )

    def get_conn(self) -> requests.Session:
        """The calling thread's authenticated session (one per thread: sessions are not
        thread-safe)."""
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            settings = self.settings
            session = requests.Session()
            session.auth = ConpeekKeyAuth(settings.api_key)
            session.headers.update(
                {
                    "User-Agent": USER_AGENT,
                    "Accept": "application/json",
                    # Every vendor example sends it, even on a GET with no body.
                    "Content-Type": "application/json",
                }
            )
            # The environment is read once here, not by requests on every request.
            session.trust_env = False
            session.verify = settings.session_verify()
            session.proxies = settings.session_proxies()
            self._local.session = session
            self._close_sessions(only_dead_threads=True)
            with self._sessions_lock:
                self._sessions.append((threading.current_thread(), session))
        return session

    def close(self) -> None:
        """Close every session this hook opened. The hook stays usable."""
        self._close_sessions(only_dead_threads=False)
        self._local = threading.local()

    def _close_sessions(self, *, only_dead_threads: bool) -> None:
        """Close sessions (of finished worker threads only, or all of them)."""
        with self._sessions_lock:
            keep: list[tuple[threading.Thread, requests.Session]] = []
            drop: list[tuple[threading.Thread, requests.Session]] = []
            for thread, session in self._sessions:
                dead = not thread.is_alive()
                (drop if dead or not only_dead_threads else keep).append((thread, session))
            self._sessions = keep
        for _, session in drop:
            session.close()

    # -- requests ---------------------------------------------------------------------------

    def fetch_page(
        self,
        *,
        offset: int,
        limit: int,
        encoded_filter: str | None = None,
        cancel: threading.Event | None = None,
    ) -> Page:
        """One page of records, retried on 429, 5xx, dropped connections and timeouts.

        :param offset: index of the first record.
        :param limit: records asked for.
        :param encoded_filter: the output of
            :func:`~airflow_provider_conpeek.filters.encode_filter`; placed in the query
            string as is, so it is encoded exactly once.
        :param cancel: when set, no further try is sent (a try in progress finishes).
        """
        settings = self.settings
        url = self._page_url(offset=offset, limit=limit, encoded_filter=encoded_filter)
        return self._get_page(url, settings.retry, cancel, what=f"offset={offset}, limit={limit}")

    def _page_url(self, *, offset: int, limit: int, encoded_filter: str | None) -> str:
        # Built by hand: the filter is already percent-encoded and must not be encoded again.
        query = f"limit={int(limit)}&offset={int(offset)}"
        if encoded_filter:
            query += f"&filter={encoded_filter}"
        return f"{self.settings.endpoint_url}?{query}"

    def _get_page(
        self,
        url: str,
        policy: RetryPolicy,
        cancel: threading.Event | None = None,
        *,
        what: str = "",
    ) -> Page:
        """GET ``url`` until it answers 200 or the retry policy gives up.

        A 429 (or any answer with a usable ``Retry-After``) pushes back the gate shared by
        every request of this hook, so concurrent workers all pause; other failures back off
        in the failing thread only.
        """
        settings = self.settings
        attempt = 0
        while True:
            if not self._gate.wait(cancel):
                raise ConpeekTransientError(
                    f"Cancelled before requesting {url}: paging had ended.", url=url
                )
            problem, retry_after, response = self._send(url)
            if response is not None and problem is None:
                return parse_page(response, settings.api_key)
            attempt += 1
            status = response.status_code if response is not None else None
            if attempt > policy.max_retries or (cancel is not None and cancel.is_set()):
                raise ConpeekTransientError(
                    f"Giving up on {url} after {attempt} tries: {problem}. The server or "
                    "the network kept failing; the task can be retried, or raise "
                    f"'max_retries' in the extra of connection {settings.conn_id!r}.",
                    status=status,
                    body=excerpt(response, settings.api_key),
                    url=url,
                )
            wait = policy.wait_before_retry(attempt, retry_after)
            shared = status == 429 or parse_retry_after(retry_after) is not None
            log.warning(
                "Conpeek request (%s) failed: %s; retry %d of %d in %.2f s%s",
                what or url,
                problem,
                attempt,
                policy.max_retries,
                wait,
                " (every request of this extract waits)" if shared else "",
            )
            if shared:
                self._gate.defer(wait)
            elif cancel is not None:
                cancel.wait(wait)
            else:
                time.sleep(wait)

    def _send(self, url: str) -> tuple[str | None, str | None, requests.Response | None]:
        """Send once. Returns (retryable problem or None, Retry-After, response)."""
        settings = self.settings
        try:
            response = self.get_conn().get(
                url, timeout=(settings.connect_timeout, settings.read_timeout)
            )
        except requests.exceptions.SSLError as exc:
            raise ConpeekConfigError(
                f"TLS failed for {settings.base_url} (connection {settings.conn_id!r}): "
                f"{type(exc).__name__}. Fix the certificate, or set 'ca_bundle' in the "
                "connection extra."
            ) from None
        except requests.exceptions.Timeout as exc:
            limit = settings.connect_timeout
            if not isinstance(exc, requests.exceptions.ConnectTimeout):
                limit = settings.read_timeout
            return f"timed out after {limit:g} s ({type(exc).__name__})", None, None
        except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError) as e:
            return f"connection failed or was dropped ({connection_error_reason(e)})", None, None
        status = response.status_code
        if status in RETRYABLE_STATUSES:
            return f"HTTP {status}", response.headers.get("Retry-After"), response
        if status >= 400:
            raise error_for_response(response, settings)
        return None, None, response

    def iter_pages(
        self,
        filters: Sequence[Any] | None = None,
        *,
        page_size: int = 100,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> Iterator[Page]:
        """Every non-empty page of matching records, in order (see :mod:`.paging`)."""
        validate_paging_args(page_size, concurrency)
        encoded = encode_filter(validate_filters(filters)) if filters else None
        settings = self.settings  # read (and validated) now, before any worker thread
        cancel = threading.Event()

        def fetch(offset: int, limit: int) -> Page:
            return self.fetch_page(
                offset=offset, limit=limit, encoded_filter=encoded, cancel=cancel
            )

        pages = iter_pages(
            fetch,
            page_size=page_size,
            concurrency=concurrency,
            max_pages=settings.max_pages,
            cancel=cancel,
        )
        return self._closing(pages)

    def _closing(self, pages: Iterator[Page]) -> Iterator[Page]:
        """Yield ``pages``; on exhaustion, error or close, stop the workers and close the
        sessions of finished worker threads."""
        try:
            yield from pages
        finally:
            close = getattr(pages, "close", None)
            if close is not None:
                close()
            self._close_sessions(only_dead_threads=True)

    def iter_voice_campaign_request_summaries(
        self,
        filters: Sequence[Any] | None = None,
        page_size: int = 100,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> Iterator[Any]:
        """Every record matching ``filters``, verbatim, in the server's order.

        Memory is bounded by ``concurrency + 1`` pages, never by the result.

        :param filters: filter objects (the API's dict form or the helpers of
            :mod:`airflow_provider_conpeek.filters`); validated before any request.
        :param page_size: records per request (the API's ``limit``).
        :param concurrency: pages fetched at once; 1 is sequential.
        """
        pages = self.iter_pages(filters, page_size=page_size, concurrency=concurrency)
        return _records(pages)

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

    def test_connection(self) -> tuple[bool, str]:
        """One cheap ``limit=1`` request, for the UI's Test button.

        Tried once, without retries, so the button answers within the timeouts.
        """
        try:
            settings = self.settings
            url = self._page_url(offset=0, limit=1, encoded_filter=None)
            started = time.monotonic()
            self._get_page(url, RetryPolicy(max_retries=0, max_wait=settings.retry.max_wait))
            elapsed = time.monotonic() - started
        except Exception as exc:  # the UI shows the message; never the key
            message = str(exc)
            key = self.__dict__.get("settings")
            if isinstance(key, ConpeekSettings):
                message = redact(message, key.api_key)
            return False, message
        return True, f"Connected to {settings.base_url}; API key accepted ({elapsed:.2f} s)."

    # -- connection form (Airflow 3.0-3.1; 3.2+ reads the provider metadata) -----------------

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Relabel host and password, hide unused fields, show placeholders."""
        return ui_field_behaviour()

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The documented extras as form fields (needs wtforms, as Airflow 3.0-3.1 has)."""
        try:
            from wtforms import BooleanField, IntegerField, StringField
        except ImportError:  # Airflow 3.2+: the form comes from the provider metadata
            return {}
        kinds = {"integer": IntegerField, "boolean": BooleanField}
        widgets: dict[str, Any] = {}
        for name, spec in EXTRA_FIELDS.items():
            field_class = kinds.get(spec["schema"]["type"][0], StringField)
            widgets[name] = field_class(spec["label"], description=spec["description"])
        return widgets


def _records(pages: Iterator[Page]) -> Iterator[Any]:
    """Flatten pages; closing this generator closes ``pages`` (and stops its workers)."""
    try:
        for page in pages:
            yield from page
    finally:
        close = getattr(pages, "close", None)
        if close is not None:
            close()
