"""ConpeekHook: an Airflow connection turned into authenticated, retried, paged requests.

The whole path of a request: :meth:`ConpeekHook.settings` reads and validates the
connection; :class:`ConpeekKeyAuth` sets the ``Authorization`` header;
:meth:`ConpeekHook.fetch_page` sends one ``limit``/``offset`` request with retries;
:func:`airflow_provider_conpeek.paging.iter_pages` decides which pages to ask for.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

import requests
from airflow.sdk import BaseHook

from airflow_provider_conpeek import __version__
from airflow_provider_conpeek.connection import (
    CONN_TYPE,
    DEFAULT_CONN_ID,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_PAGES,
    DEFAULT_MAX_RETRIES,
    DEFAULT_MAX_RETRY_WAIT,
    DEFAULT_READ_TIMEOUT,
    EXTRA_FIELDS,
    HOOK_NAME,
    ui_field_behaviour,
)
from airflow_provider_conpeek.exceptions import (
    ConpeekAPIError,
    ConpeekAuthError,
    ConpeekBadRequestError,
    ConpeekConfigError,
    ConpeekNotFoundError,
    ConpeekPagingError,
    ConpeekTransientError,
)
from airflow_provider_conpeek.filters import encode_filter, validate_filters
from airflow_provider_conpeek.paging import (
    DEFAULT_CONCURRENCY,
    Page,
    iter_pages,
    validate_paging_args,
)
from airflow_provider_conpeek.retry import (
    RETRYABLE_STATUSES,
    Gate,
    RetryPolicy,
    parse_retry_after,
)

log = logging.getLogger(__name__)

ENDPOINT = "voice_campaign_request_summary"
USER_AGENT = f"airflow-provider-conpeek/{__version__} python-requests/{requests.__version__}"
_BODY_EXCERPT = 2000


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


@dataclass(frozen=True)
class ConpeekSettings:
    """Everything a request needs, read from the connection and the hook's arguments."""

    conn_id: str
    base_url: str
    api_key: str = field(repr=False)
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    read_timeout: float = DEFAULT_READ_TIMEOUT
    max_pages: int = DEFAULT_MAX_PAGES
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    verify: bool | str = True
    proxy: str | None = None

    @property
    def endpoint_url(self) -> str:
        """The endpoint's URL: the base URL (with any path prefix) joined with the path."""
        return f"{self.base_url}/{ENDPOINT}"


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
        conn = self.get_connection(self.conpeek_conn_id)
        api_key = conn.password or ""
        if not api_key.strip():
            raise ConpeekConfigError(
                f"Connection {self.conpeek_conn_id!r} has no API key. Put the key in the "
                "connection's password field (labelled 'API key' in the UI)."
            )
        _mask_secret(api_key)
        conn_id = self.conpeek_conn_id
        base_url = _base_url(conn_id, conn.host, conn.schema, conn.port)
        extra = _read_extra(conn_id, conn.extra)
        for name, value in self._overrides.items():
            if value is not None:
                where = f"ConpeekHook argument {name!r} (connection {conn_id!r})"
                extra[name] = _check_type(where, name, value)
        values = {**_DEFAULTS, **extra}
        for name in ("connect_timeout", "read_timeout", "max_retry_wait"):
            _check_range(conn_id, name, values[name], minimum=0, exclusive=True)
        _check_range(conn_id, "max_retries", values["max_retries"], minimum=0)
        _check_range(conn_id, "max_pages", values["max_pages"], minimum=1)
        verify: bool | str = values.get("ca_bundle") or values.get("verify", True)
        proxy = values.get("proxy") or None
        if proxy:
            _mask_url_password(proxy)
        return ConpeekSettings(
            conn_id=conn_id,
            base_url=base_url,
            api_key=api_key,
            connect_timeout=float(values["connect_timeout"]),
            read_timeout=float(values["read_timeout"]),
            max_pages=int(values["max_pages"]),
            retry=RetryPolicy(
                max_retries=int(values["max_retries"]),
                max_wait=float(values["max_retry_wait"]),
            ),
            verify=verify,
            proxy=proxy,
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
            session.verify = settings.verify
            session.trust_env = settings.proxy is None
            if settings.proxy:
                session.proxies = {"http": settings.proxy, "https": settings.proxy}
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
                return _parse_page(response, url)
            attempt += 1
            status = response.status_code if response is not None else None
            if attempt > policy.max_retries or (cancel is not None and cancel.is_set()):
                raise ConpeekTransientError(
                    f"Giving up on {url} after {attempt} tries: {problem}. The server or "
                    "the network kept failing; the task can be retried, or raise "
                    f"'max_retries' in the extra of connection {settings.conn_id!r}.",
                    status=status,
                    body=_excerpt(response, settings.api_key),
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
            return f"connection failed or was dropped ({_reason(e)})", None, None
        status = response.status_code
        if status in RETRYABLE_STATUSES:
            return f"HTTP {status}", response.headers.get("Retry-After"), response
        if status >= 400:
            raise _api_error(response, settings)
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

    def has_at_least(self, filters: Sequence[Any] | None, min_records: int) -> bool:
        """Whether at least ``min_records`` records match, in one ``limit=1`` request."""
        if isinstance(min_records, bool) or not isinstance(min_records, int) or min_records < 1:
            raise ConpeekConfigError(
                f"min_records must be a positive integer, got {min_records!r}."
            )
        encoded = encode_filter(validate_filters(filters)) if filters else None
        return bool(self.fetch_page(offset=min_records - 1, limit=1, encoded_filter=encoded))

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
                message = _redact(message, key.api_key)
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


# -- helpers ------------------------------------------------------------------------------


def _mask_secret(secret: str) -> None:
    """Register the key with Airflow's secrets masker, so logs print *** instead."""
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # pragma: no cover - older task SDKs
        return
    mask_secret(secret)


_DEFAULTS: dict[str, Any] = {
    "connect_timeout": DEFAULT_CONNECT_TIMEOUT,
    "read_timeout": DEFAULT_READ_TIMEOUT,
    "max_retries": DEFAULT_MAX_RETRIES,
    "max_retry_wait": DEFAULT_MAX_RETRY_WAIT,
    "max_pages": DEFAULT_MAX_PAGES,
}


def _records(pages: Iterator[Page]) -> Iterator[Any]:
    """Flatten pages; closing this generator closes ``pages`` (and stops its workers)."""
    try:
        for page in pages:
            yield from page
    finally:
        close = getattr(pages, "close", None)
        if close is not None:
            close()


def _read_extra(conn_id: str, raw: str | None) -> dict[str, Any]:
    """The known extras, with UI prefixes and empty form values removed, type-checked.

    Unknown keys raise: a typo such as ``read_timout`` must never be silently ignored.
    """
    if not raw or not raw.strip():
        return {}
    try:
        extra = json.loads(raw)
    except ValueError:
        raise ConpeekConfigError(
            f"Connection {conn_id!r}: the extra is not valid JSON. Use a JSON object such as "
            '{"read_timeout": 60}.'
        ) from None
    if extra is None:
        return {}
    if not isinstance(extra, dict):
        raise ConpeekConfigError(
            f"Connection {conn_id!r}: the extra must be a JSON object, got "
            f'{type(extra).__name__}. Example: {{"read_timeout": 60}}.'
        )
    prefix = f"extra__{CONN_TYPE}__"
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for raw_key, value in extra.items():
        key = str(raw_key).removeprefix(prefix)
        if key not in EXTRA_FIELDS:
            raise ConpeekConfigError(
                f"Connection {conn_id!r} has an unknown extra field {raw_key!r}. "
                f"Known extras: {', '.join(sorted(EXTRA_FIELDS))}. Remove or rename it."
            )
        if value is None or (isinstance(value, str) and not value.strip()):
            continue  # an empty form field means "use the default"
        coerced = _check_type(f"Connection {conn_id!r}: extra {raw_key!r}", key, value)
        if key in values and values[key] != coerced:
            raise ConpeekConfigError(
                f"Connection {conn_id!r}: extras {sources[key]!r} and {raw_key!r} disagree "
                f"({values[key]!r} vs {coerced!r}). Keep only one of them."
            )
        values[key], sources[key] = coerced, str(raw_key)
    return values


def _check_type(where: str, key: str, value: Any) -> Any:
    """``value`` as the type of extra ``key``; strings (from the UI form) are converted."""
    kind = EXTRA_FIELDS[key]["schema"]["type"][0]
    try:
        if kind == "boolean":
            if isinstance(value, bool):
                return value
            if not isinstance(value, str):
                raise ValueError(value)
            text = value.strip().lower()
            if text in ("true", "1", "yes"):
                return True
            if text in ("false", "0", "no"):
                return False
            raise ValueError(value)
        if kind in ("integer", "number"):
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise ValueError(value)
            number = float(value)
            if not math.isfinite(number):
                raise ValueError(value)
            if kind == "number":
                return number
            if not number.is_integer():
                raise ValueError(value)
            return int(number)
        if not isinstance(value, str):
            raise ValueError(value)
        return value.strip()
    except (TypeError, ValueError):
        expected = {"number": "a finite number", "integer": "an integer"}.get(kind, f"a {kind}")
        raise ConpeekConfigError(
            f"{where} must be {expected}, got {type(value).__name__} {value!r}."
        ) from None


def _check_range(
    conn_id: str, name: str, value: float, *, minimum: float, exclusive: bool = False
) -> None:
    if value < minimum or (exclusive and value == minimum):
        bound = f"> {minimum:g}" if exclusive else f">= {minimum:g}"
        raise ConpeekConfigError(
            f"Connection {conn_id!r}: {name} must be {bound}, got {value!r}. Set it in the "
            "connection extra or as a hook argument."
        )


def _mask_url_password(url: str) -> None:
    try:
        password = urlsplit(url).password
    except ValueError:
        return
    if password:
        _mask_secret(password)


def _reason(exc: BaseException) -> str:
    """The innermost cause of a connection error, e.g. ``Connection refused``."""
    seen: set[int] = set()
    current: BaseException | None = exc
    reason = type(exc).__name__
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            reason = current.strerror
        inner = getattr(current, "reason", None)
        nxt = inner if isinstance(inner, BaseException) else None
        if nxt is None and current.args and isinstance(current.args[0], BaseException):
            nxt = current.args[0]
        current = nxt or current.__cause__ or current.__context__
    if reason == type(exc).__name__:
        text = str(exc)
        for marker in ("Connection refused", "Name or service not known", "RemoteDisconnected"):
            if marker in text:
                return marker
    return reason


def _base_url(conn_id: str, host: str | None, schema: str | None, port: int | None) -> str:
    """The base URL from the connection, without a trailing slash.

    The host is normally the whole base URL. In the URI form of a connection
    (``conpeek://:KEY@tenant.cloud.conpeek.com/api%2Fv1_3``) Airflow splits it into host,
    port and schema (the path); then ``https`` is assumed and the parts are put back together.
    """
    example = "https://tenant.cloud.conpeek.com/api/v1_3"
    text = (host or "").strip()
    if not text:
        raise ConpeekConfigError(
            f"Connection {conn_id!r} has no host. Set the host to the API's base URL, "
            f"for example {example}."
        )
    if "://" not in text:
        text = f"https://{text}"
    try:
        parts = urlsplit(text)
        url_port = parts.port
    except ValueError:
        parts, url_port = None, None
    if parts is not None and (parts.username is not None or parts.password is not None):
        raise ConpeekConfigError(
            f"Connection {conn_id!r}: the host URL must not contain credentials; put the API "
            f"key in the password field and the plain base URL in the host, e.g. {example}."
        )
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConpeekConfigError(
            f"Connection {conn_id!r}: host {host!r} is not an http(s) URL. Use the base URL, "
            f"for example {example}."
        )
    if parts.query or parts.fragment:
        raise ConpeekConfigError(
            f"Connection {conn_id!r}: the host URL must not contain a query or a fragment. "
            f"Example: {example}."
        )
    netloc, path = parts.netloc, parts.path.strip("/")
    if port:
        if url_port is None:
            netloc = f"{netloc}:{port}"
        elif url_port != port:
            raise ConpeekConfigError(
                f"Connection {conn_id!r}: the host URL says port {url_port} but the port "
                f"field says {port}. Keep the port in the host URL only."
            )
    extra_path = (schema or "").strip().strip("/")
    if extra_path:
        if path and path != extra_path:
            raise ConpeekConfigError(
                f"Connection {conn_id!r}: the host URL has the path {path!r} but the schema "
                f"field says {extra_path!r}. Put the whole base URL in the host, e.g. {example}."
            )
        path = extra_path
    return f"{parts.scheme}://{netloc}/{path}" if path else f"{parts.scheme}://{netloc}"


def _redact(text: str, secret: str) -> str:
    return text.replace(secret, "***") if secret else text


def _excerpt(response: requests.Response | None, secret: str) -> str:
    if response is None:
        return ""
    return _redact(response.text[:_BODY_EXCERPT], secret)


def _api_error(response: requests.Response, settings: ConpeekSettings) -> ConpeekAPIError:
    status = response.status_code
    url = _redact(response.url, settings.api_key)
    body = _excerpt(response, settings.api_key)
    kwargs: dict[str, Any] = {"status": status, "body": body, "url": url}
    if status == 400:
        return ConpeekBadRequestError(
            f"Conpeek rejected the request (HTTP 400) at {url}: {body}", **kwargs
        )
    if status in (401, 403):
        return ConpeekAuthError(
            f"Conpeek refused the API key of connection {settings.conn_id!r} (HTTP {status}). "
            "Check the key in the connection's 'API key' (password) field.",
            **kwargs,
        )
    if status == 404:
        return ConpeekNotFoundError(
            f"Not found (HTTP 404): {url}. The base URL of connection {settings.conn_id!r} "
            f"({settings.base_url}) is probably wrong; it should end with the API's path "
            "prefix, for example https://tenant.cloud.conpeek.com/api/v1_3.",
            **kwargs,
        )
    return ConpeekAPIError(f"Conpeek answered HTTP {status} at {url}: {body}", **kwargs)


def _parse_page(response: requests.Response, url: str) -> Page:
    """The ``data`` list of a 200 response; anything else is a clear error."""
    try:
        body = json.loads(response.content)
    except ValueError:
        body = None
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        raise ConpeekPagingError(
            f"Malformed response from {response.url}: expected a JSON object with a 'data' "
            f"list, got {response.content[:200]!r}. Nothing was written."
        )
    return data
