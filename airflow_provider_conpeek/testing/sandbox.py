"""A local, standard-library fake of the Conpeek ``voice_campaign_request_summary`` API.

:class:`SandboxServer` serves deterministic records (:mod:`.generation`, :mod:`.records`)
over real HTTP/1.1 with keep-alive (:mod:`.http_server`), or HTTPS (:mod:`.tls`), enforces
the API key, validates
``limit``/``offset``/``filter`` strictly (:mod:`.endpoint`, :mod:`.filter_semantics`) and
can inject faults (:mod:`.faults`) set at runtime through Python, the CLI or the admin
HTTP endpoints.

:class:`FaultConfig`, :class:`FaultRule` and :class:`~.faults.ServerLoad` (see
:attr:`SandboxServer.load`) are importable from here too.

.. seealso:: :doc:`/sandbox`: the sandbox from the command line, Python and pytest.
"""

from __future__ import annotations

import contextlib
import json
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import date, datetime
from email.message import Message
from typing import Any
from urllib.parse import parse_qs

from airflow_provider_conpeek.testing.endpoint import (
    ENDPOINT,
    Reply,
    RequestLogEntry,
    page_reply,
)
from airflow_provider_conpeek.testing.faults import (
    CAPACITY_FAULT,
    FAULT_KINDS,
    FaultConfig,
    FaultRule,
    FaultState,
    ServerLoad,
)
from airflow_provider_conpeek.testing.filter_semantics import parse_filters
from airflow_provider_conpeek.testing.http_server import (
    SandboxHandler,
    SandboxHTTPServer,
    SandboxHTTPServer6,
)
from airflow_provider_conpeek.testing.records import RecordStore
from airflow_provider_conpeek.testing.tls import HANDSHAKE_FAULTS, self_signed_cert, server_context


class SandboxServer:
    """Fake Conpeek API on a background thread; ``url`` includes the path prefix.

    :param records: number of generated records.
    :param seed: seed of the generated records.
    :param start: first UTC day of the records (a date, a date-time or an ISO string).
    :param days: number of days the records are spread over, evenly.
    :param api_key: the value the ``Authorization`` header must equal.
    :param path_prefix: path of the API below the host (``""`` for none).
    :param host: address to listen on.
    :param port: port to listen on; 0 picks a free one (see :attr:`port` once started).
    :param max_limit: silently clamp larger ``limit`` values to this.
    :param reject_limit_above: answer HTTP 400 to a larger ``limit``.
    :param tls: serve HTTPS: ``True`` with a self-signed certificate for ``127.0.0.1``,
        ``localhost`` and ``::1`` (see :attr:`ca_file`), or ``(certfile, keyfile)``.
    :param faults: faults to inject from the start.
    :param verbose: log each request to stderr.
    :param sleep: called with the seconds of each ``latency`` and ``stall`` delay, on the
        request's thread, before the answer is logged and sent. The default waits that
        long, or until :meth:`stop`. Tests pass a recorder to check the delays without
        waiting for them, or a function blocking on an event to hold requests in progress.

    Example::

        with SandboxServer(records=1000, days=3) as server:
            r = requests.get(server.endpoint_url, params={"limit": 10},
                             headers={"Authorization": server.api_key})
            assert len(r.json()["data"]) == 10
            os.environ.update(server.airflow_connection_env())  # conpeek_default

    .. seealso:: :doc:`/sandbox`, sections *From Python* and *Faults*.
    """

    def __init__(
        self,
        records: int = 1000,
        *,
        seed: int = 0,
        start: datetime | date | str = "2026-01-01",
        days: int = 3,
        api_key: str = "sandbox-key",
        path_prefix: str = "/api/v1_3",
        host: str = "127.0.0.1",
        port: int = 0,
        max_limit: int | None = None,
        reject_limit_above: int | None = None,
        tls: bool | tuple[str, str] = False,
        faults: FaultConfig | None = None,
        verbose: bool = False,
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        self.store = RecordStore(records, seed=seed, start=start, days=days)
        self._api_key = api_key
        self.path_prefix = "/" + path_prefix.strip("/") if path_prefix.strip("/") else ""
        self.api_path = f"{self.path_prefix}/{ENDPOINT}"
        self.host, self.port = host, port
        self.max_limit, self.reject_limit_above = max_limit, reject_limit_above
        self.verbose = verbose
        self._tls = tls if isinstance(tls, tuple) else None
        self._tls_dir = tempfile.TemporaryDirectory(prefix="conpeek-tls-") if tls is True else None
        if self._tls_dir is not None:  # removed with the server object
            self._tls = self_signed_cert(self._tls_dir.name)
        self._lock = threading.Lock()
        self._slot_freed = threading.Condition(self._lock)  # queued requests wait on it
        self._log: list[RequestLogEntry] = []
        self._conn_faults: list[str] = []
        self._faults = FaultState(FaultConfig())
        self.set_faults(faults)
        self._conns: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._sleep = sleep or self._stopping.wait
        self._httpd: SandboxHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> SandboxServer:
        """Bind and serve on a daemon thread (idempotent); returns self."""
        if self._httpd is not None:
            return self
        cls = SandboxHTTPServer6 if ":" in self.host else SandboxHTTPServer
        httpd = cls((self.host, self.port), SandboxHandler)
        httpd.sandbox = self
        httpd.ssl_context = server_context(*self._tls) if self._tls else None
        self.port = int(httpd.server_address[1])
        self._stopping.clear()
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
            name=f"conpeek-sandbox-{self.port}",
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, end pending delays and close every open (keep-alive) connection."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        with self._lock:
            self._slot_freed.notify_all()  # requests waiting for a slot give up
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            conns, self._conns = list(self._conns), set()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def track(self, conn: socket.socket, add: bool) -> None:
        """Register (or forget) an accepted connection so :meth:`stop` can close it."""
        with self._lock:
            (self._conns.add if add else self._conns.discard)(conn)

    # -- public helpers ----------------------------------------------------------------
    @property
    def url(self) -> str:
        """Base URL including the path prefix, e.g. ``http://127.0.0.1:PORT/api/v1_3``."""
        host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(self.host, self.host)  # noqa: S104
        if ":" in host:
            host = f"[{host}]"
        return f"{'https' if self._tls else 'http'}://{host}:{self.port}{self.path_prefix}"

    @property
    def endpoint_url(self) -> str:
        """Full URL of ``voice_campaign_request_summary``."""
        return f"{self.url}/{ENDPOINT}"

    @property
    def admin_url(self) -> str:
        """Root of the admin endpoints, e.g. ``http://127.0.0.1:PORT/_sandbox``."""
        return self.url[: len(self.url) - len(self.path_prefix)] + "/_sandbox"

    @property
    def api_key(self) -> str:
        """The key the ``Authorization`` header must equal."""
        return self._api_key

    @property
    def ca_file(self) -> str | None:
        """The certificate served over TLS (the CA bundle to trust), or None without TLS."""
        return self._tls[0] if self._tls else None

    @property
    def faults(self) -> FaultConfig:
        """The current fault configuration."""
        return self._faults.config

    @property
    def load(self) -> ServerLoad:
        """API requests in progress and waiting for a ``capacity`` slot, e.g. ``(2, 1)``.

        Counted since the last :meth:`set_faults` (the requests that started before are not).
        """
        with self._lock:
            return self._faults.load()

    def set_faults(self, faults: FaultConfig | None) -> None:
        """Replace the faults; rule counters (``first``, ``every``, ``times``) and the
        count of requests in progress (``capacity``) restart.

        :raises ValueError: for a handshake fault on a sandbox without TLS.
        """
        faults = faults or FaultConfig()
        if not self._tls and any(r.kind in HANDSHAKE_FAULTS for r in faults.rules):
            raise ValueError("handshake faults need a TLS sandbox: SandboxServer(tls=True)")
        with self._lock:
            self._faults = FaultState(faults)

    def connection_fault(self) -> str | None:
        """The handshake fault (if any) for a new TLS connection, recorded when it fires."""
        with self._lock:
            kind = self._faults.pick_connection()
            if kind is not None:
                self._conn_faults.append(kind)
        return kind

    @property
    def connection_faults(self) -> list[str]:
        """The handshake faults that fired, oldest first (not in :attr:`request_log`)."""
        with self._lock:
            return list(self._conn_faults)

    def add_records(self, records: list[dict[str, Any]]) -> None:
        """Add records at runtime (each needs ``created_date``); merged into the order."""
        self.store.add(records)

    @property
    def request_log(self) -> list[RequestLogEntry]:
        """Snapshot of the non-admin requests served so far, oldest first."""
        with self._lock:
            return list(self._log)

    def clear_log(self) -> None:
        """Forget the request log and :attr:`connection_faults`."""
        with self._lock:
            self._log.clear()
            self._conn_faults.clear()

    def expected_records(self, filters: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        """All records the endpoint returns for ``filters`` across all pages, in order.

        :param filters: the ``filter`` value, decoded (a list of condition dicts).
        :raises ~.filter_semantics.FilterError: (a ValueError) where the endpoint says 400.
        """
        return self.store.expected(parse_filters(filters or []))

    def airflow_connection_dict(self, **extra: Any) -> dict[str, Any]:
        """Connection as a dict (``conn_type``, ``host``, ``password`` and ``extra``)."""
        conn: dict[str, Any] = {"conn_type": "conpeek", "host": self.url, "password": self.api_key}
        if extra:
            conn["extra"] = extra
        return conn

    def airflow_connection_json(self, **extra: Any) -> str:
        """JSON for an ``AIRFLOW_CONN_<ID>`` env var; ``extra`` goes to the extras."""
        return json.dumps(self.airflow_connection_dict(**extra))

    def airflow_connection_env(
        self, conn_id: str = "conpeek_default", **extra: Any
    ) -> dict[str, str]:
        """``{"AIRFLOW_CONN_<CONN_ID>": json}``, ready for ``monkeypatch.setenv`` / os.environ."""
        return {f"AIRFLOW_CONN_{conn_id.upper()}": self.airflow_connection_json(**extra)}

    # -- API ---------------------------------------------------------------------------
    def _api_reply(self, method: str, path: str, query: str, headers: Message) -> Reply:
        """The answer to one non-admin request, logged; the HTTP handler sends it.

        An API request counts as in progress (``capacity``) until its answer is ready: it no
        longer counts once this returns, before the handler sends the answer.
        """
        in_flight, queued_s = 0, 0.0
        if path != self.api_path:
            reply = Reply.error(404, "not_found", f"unknown path {path}")
        elif method != "GET":
            reply = Reply.error(405, "method_not_allowed", "use GET", {"Allow": "GET"})
        else:
            params = parse_qs(query, keep_blank_values=True)
            with self._lock:
                state = self._faults  # kept: the slot goes back to this state
                admission = state.arrive()
                in_flight, admitted = admission.in_flight, admission.admitted
                if admission.ticket is not None:
                    queued_since = time.monotonic()
                    admitted = self._wait_for_slot(state, admission.ticket)
                    queued_s = time.monotonic() - queued_since
                rule = state.pick_request(params) if admitted else None

            def answer(ignore_offset: bool) -> Reply:
                return page_reply(
                    self.store,
                    params,
                    headers.get("Authorization"),
                    api_key=self._api_key,
                    max_limit=self.max_limit,
                    reject_limit_above=self.reject_limit_above,
                    ignore_offset=ignore_offset,
                )

            if admitted:
                try:
                    reply = state.apply(rule, answer, self._sleep)
                finally:
                    with self._lock:
                        state.finish()
                        if state.queue:
                            self._slot_freed.notify_all()
            elif admission.ticket is None:
                reply = state.capacity_reply()
            else:  # the server stopped while it waited: no answer
                reply = Reply(None, fault=CAPACITY_FAULT)
        entry = RequestLogEntry(
            method,
            path,
            query,
            dict(headers.items()),
            reply.status,
            reply.fault,
            time.time(),
            in_flight,
            queued_s,
        )
        with self._lock:
            self._log.append(entry)
        return reply

    def _wait_for_slot(self, state: FaultState, ticket: object) -> bool:
        """Wait (holding ``self._lock``) until the queued ``ticket`` takes a slot of ``state``:
        True, or False if the server stops first."""
        while not self._stopping.is_set():
            if state.start(ticket):
                if state.queue:  # more slots may be free: let the next one look
                    self._slot_freed.notify_all()
                return True
            self._slot_freed.wait()
        state.give_up(ticket)
        self._slot_freed.notify_all()
        return False


__all__ = [  # FaultConfig, FaultRule and ServerLoad are re-exported: users import them from here
    "ENDPOINT",
    "FAULT_KINDS",
    "FaultConfig",
    "FaultRule",
    "RequestLogEntry",
    "SandboxServer",
    "ServerLoad",
]
