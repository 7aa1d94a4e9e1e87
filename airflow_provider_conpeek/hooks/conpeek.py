"""ConpeekHook: an Airflow connection turned into authenticated, retried, paged requests.

The whole path of a request: :meth:`ConpeekHook.settings` reads and validates the
connection; :class:`ConpeekKeyAuth` sets the ``Authorization`` header;
:meth:`ConpeekHook.fetch_page` sends one ``limit``/``offset`` request with retries;
:func:`airflow_provider_conpeek.paging.iter_pages` decides which pages to ask for.
"""

from __future__ import annotations

import json
import logging
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
from airflow_provider_conpeek.paging import DEFAULT_CONCURRENCY, Page, iter_pages
from airflow_provider_conpeek.retry import RETRYABLE_STATUSES, Gate, RetryPolicy

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
    retry: RetryPolicy = RetryPolicy()
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
        self._sessions: list[requests.Session] = []
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
        extra = _read_extra(self.conpeek_conn_id, conn.extra_dejson)
        values = {**extra, **{k: v for k, v in self._overrides.items() if v is not None}}
        for name in ("connect_timeout", "read_timeout", "max_retry_wait"):
            _check_positive(name, values.get(name), number=True)
        for name in ("max_retries",):
            _check_positive(name, values.get(name), minimum=0)
        _check_positive("max_pages", values.get("max_pages"))
        verify: bool | str = values.get("ca_bundle") or values.get("verify", True)
        return ConpeekSettings(
            conn_id=self.conpeek_conn_id,
            base_url=_base_url(self.conpeek_conn_id, conn.host, conn.schema, conn.port),
            api_key=api_key,
            connect_timeout=float(values.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT)),
            read_timeout=float(values.get("read_timeout", DEFAULT_READ_TIMEOUT)),
            max_pages=int(values.get("max_pages", DEFAULT_MAX_PAGES)),
            retry=RetryPolicy(
                max_retries=int(values.get("max_retries", DEFAULT_MAX_RETRIES)),
                max_wait=float(values.get("max_retry_wait", DEFAULT_MAX_RETRY_WAIT)),
            ),
            verify=verify,
            proxy=values.get("proxy") or None,
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
            with self._sessions_lock:
                self._sessions.append(session)
        return session

    def close(self) -> None:
        """Close every session this hook opened."""
        with self._sessions_lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()
        self._local = threading.local()

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
        :param encoded_filter: the output of :func:`~airflow_provider_conpeek.filters.encode_filter`;
            placed in the query string as is, so it is encoded exactly once.
        :param cancel: when set, a failing request stops retrying.
        """
        settings = self.settings
        query = f"limit={limit}&offset={offset}"
        if encoded_filter:
            query += f"&filter={encoded_filter}"
        url = f"{settings.endpoint_url}?{query}"
        policy = settings.retry
        attempt = 0
        while True:
            self._gate.wait()
            problem, retry_after, response = self._send(url)
            if response is not None and problem is None:
                return _parse_page(response, url)
            attempt += 1
            if attempt > policy.max_retries or (cancel is not None and cancel.is_set()):
                raise ConpeekTransientError(
                    f"Giving up on {_redact(url, settings.api_key)} after {attempt} tries: "
                    f"{problem}. The server or the network kept failing; the task can be "
                    "retried, or raise 'max_retries' in the connection extra.",
                    status=response.status_code if response is not None else None,
                    body=_excerpt(response, settings.api_key),
                    url=_redact(url, settings.api_key),
                )
            wait = policy.wait_before_retry(attempt, retry_after)
            log.warning(
                "Conpeek request (offset=%d, limit=%d) failed: %s; retry %d of %d in %.1f s",
                offset,
                limit,
                problem,
                attempt,
                policy.max_retries,
                wait,
            )
            self._gate.defer(wait)

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
            return f"timed out ({type(exc).__name__})", None, None
        except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError):
            return "connection failed or was dropped", None, None
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
        encoded = encode_filter(validate_filters(filters)) if filters else None
        settings = self.settings
        cancel = threading.Event()

        def fetch(offset: int, limit: int) -> Page:
            return self.fetch_page(
                offset=offset, limit=limit, encoded_filter=encoded, cancel=cancel
            )

        return iter_pages(
            fetch,
            page_size=page_size,
            concurrency=concurrency,
            max_pages=settings.max_pages,
            cancel=cancel,
        )

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
        for page in self.iter_pages(filters, page_size=page_size, concurrency=concurrency):
            yield from page

    def has_at_least(self, filters: Sequence[Any] | None, min_records: int) -> bool:
        """Whether at least ``min_records`` records match, in one ``limit=1`` request."""
        if isinstance(min_records, bool) or not isinstance(min_records, int) or min_records < 1:
            raise ConpeekConfigError(
                f"min_records must be a positive integer, got {min_records!r}."
            )
        encoded = encode_filter(validate_filters(filters)) if filters else None
        return bool(self.fetch_page(offset=min_records - 1, limit=1, encoded_filter=encoded))

    def test_connection(self) -> tuple[bool, str]:
        """One cheap ``limit=1`` request, for the UI's Test button."""
        try:
            started = time.monotonic()
            self.fetch_page(offset=0, limit=1)
            elapsed = time.monotonic() - started
        except Exception as exc:  # the UI shows the message; never the key
            return False, str(exc)
        return True, f"Connected to {self.settings.base_url}; API key accepted ({elapsed:.2f} s)."

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


def _read_extra(conn_id: str, extra: dict[str, Any]) -> dict[str, Any]:
    """The known extras, with UI prefixes and empty form values removed.

    Unknown keys raise: a typo such as ``read_timout`` must never be silently ignored.
    """
    prefix = f"extra__{CONN_TYPE}__"
    values: dict[str, Any] = {}
    for raw_key, value in extra.items():
        key = raw_key.removeprefix(prefix)
        if key not in EXTRA_FIELDS:
            raise ConpeekConfigError(
                f"Connection {conn_id!r} has an unknown extra field {raw_key!r}. "
                f"Known extras: {', '.join(sorted(EXTRA_FIELDS))}. Remove or rename it."
            )
        if value is None or value == "":
            continue
        values[key] = _coerce(conn_id, key, value)
    return values


def _coerce(conn_id: str, key: str, value: Any) -> Any:
    kind = EXTRA_FIELDS[key]["schema"]["type"][0]
    try:
        if kind == "boolean":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("true", "1", "yes"):
                return True
            if text in ("false", "0", "no"):
                return False
            raise ValueError(value)
        if kind == "integer":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            return int(value)
        if kind == "number":
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        raise ConpeekConfigError(
            f"Connection {conn_id!r}: extra {key!r} must be of type {kind}, got {value!r}."
        ) from None


def _check_positive(name: str, value: Any, *, number: bool = False, minimum: int = 1) -> None:
    if value is None:
        return
    if number:
        if value <= 0:
            raise ConpeekConfigError(f"{name} must be a positive number of seconds, got {value!r}.")
    elif value < minimum:
        raise ConpeekConfigError(f"{name} must be an integer >= {minimum}, got {value!r}.")


def _base_url(conn_id: str, host: str | None, schema: str | None, port: int | None) -> str:
    """The base URL from the connection, without a trailing slash."""
    example = "https://tenant.cloud.conpeek.com/api/v1_3"
    text = (host or "").strip()
    if not text:
        raise ConpeekConfigError(
            f"Connection {conn_id!r} has no host. Set the host to the API's base URL, "
            f"for example {example}."
        )
    if "://" not in text:  # URI form: conpeek://:KEY@tenant.cloud.conpeek.com/api%2Fv1_3
        netloc = f"{text}:{port}" if port else text
        path = (schema or "").strip("/")
        text = f"https://{netloc}/{path}" if path else f"https://{netloc}"
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConpeekConfigError(
            f"Connection {conn_id!r}: host {text!r} is not an http(s) URL. Use the base URL, "
            f"for example {example}."
        )
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ConpeekConfigError(
            f"Connection {conn_id!r}: the host URL must not contain credentials, a query or a "
            f"fragment; put the API key in the password field. Example: {example}."
        )
    return text.rstrip("/")


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
