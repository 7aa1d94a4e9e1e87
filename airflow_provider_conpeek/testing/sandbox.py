"""A local, standard-library fake of the Conpeek ``voice_campaign_request_summary`` API.

:class:`SandboxServer` serves deterministic records (see :mod:`.records`) over real
HTTP/1.1 with keep-alive, enforces the API key, validates ``limit``/``offset``/``filter``
strictly (400 ``{"error": ..., "message": ...}``), and can inject faults
(:class:`~airflow_provider_conpeek.testing.faults.FaultConfig`) at runtime through Python,
the CLI or admin HTTP endpoints:

* ``POST /_sandbox/faults`` (body: FaultConfig JSON), ``GET /_sandbox/faults``
* ``GET /_sandbox/requests`` (request log), ``POST /_sandbox/reset`` (log and faults)
* ``POST /_sandbox/records`` (body: list of records, or ``{"records": [...]}``)

Admin endpoints need no key, are never faulted and are not logged.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import socketserver
import threading
import time
from dataclasses import asdict, dataclass
from datetime import date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

from airflow_provider_conpeek.testing.faults import (
    DEFAULT_MALFORMED_BODY,
    FAULT_KINDS,
    STATUS_FAULTS,
    FaultConfig,
    FaultRule,
    FaultState,
)
from airflow_provider_conpeek.testing.records import (
    FilterError,
    Filters,
    RecordStore,
    parse_filters,
)

ENDPOINT = "voice_campaign_request_summary"
_INT_RE = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class RequestLogEntry:
    """One non-admin request: ``status`` is None when the connection was dropped.

    Example::

        entry = server.request_log[-1]
        entry.params["limit"], entry.headers["Authorization"], entry.fault
    """

    method: str
    path: str
    query: str
    headers: dict[str, str]
    status: int | None
    fault: str | None = None
    time: float = 0.0

    @property
    def params(self) -> dict[str, list[str]]:
        """Decoded query parameters (``parse_qs``)."""
        return parse_qs(self.query, keep_blank_values=True)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict."""
        return asdict(self)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    sandbox: SandboxServer

    def server_bind(self) -> None:
        # Skip HTTPServer's getfqdn() (a DNS lookup that can take seconds).
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ConpeekSandbox/1.0"
    timeout = 120

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sb.track(self.connection, True)

    def finish(self) -> None:
        self.sb.track(self.connection, False)
        super().finish()

    @property
    def sb(self) -> SandboxServer:
        return cast(_Server, self.server).sandbox

    def log_message(self, format: str, *args: Any) -> None:
        if self.sb.verbose:
            super().log_message(format, *args)

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        """Write status line, headers and body in ONE write (no Nagle/delayed-ACK stall)."""
        lines = [
            f"{self.protocol_version} {status} {self.responses.get(status, ('',))[0]}",
            f"Server: {self.server_version}",
            "Content-Type: application/json; charset=utf-8",
            f"Content-Length: {len(body)}",
        ]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.log_request(status, len(body))
        try:
            self.wfile.write(head + body)
        except OSError:
            self.close_connection = True

    def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj, ensure_ascii=False).encode(), headers)

    def _read_body(self) -> bytes | None:
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            return None
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.close_connection = True
            return None
        return self.rfile.read(length) if length > 0 else b""

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        body = self._read_body()
        if body is None:
            self._json(400, {"error": "bad_request", "message": "unsupported request body"})
        elif parts.path.startswith("/_sandbox/"):
            self._admin(method, parts.path, body)
        else:
            self.sb._handle_api(self, method, parts.path, parts.query)

    def _admin(self, method: str, path: str, body: bytes) -> None:
        sb = self.sb
        try:
            data = json.loads(body) if body else None
            if (method, path) == ("POST", "/_sandbox/faults"):
                sb.set_faults(FaultConfig.from_dict(data or {}))
                self._json(200, {"ok": True, "faults": sb.faults.to_dict()})
            elif (method, path) == ("GET", "/_sandbox/faults"):
                self._json(200, sb.faults.to_dict())
            elif (method, path) == ("GET", "/_sandbox/requests"):
                self._json(200, {"requests": [e.to_dict() for e in sb.request_log]})
            elif (method, path) == ("POST", "/_sandbox/reset"):
                sb.clear_log()
                sb.set_faults(FaultConfig())
                self._json(200, {"ok": True})
            elif (method, path) == ("POST", "/_sandbox/records"):
                recs = data.get("records") if isinstance(data, dict) else data
                if not isinstance(recs, list):
                    raise ValueError("body must be a list of records or {'records': [...]}")
                sb.add_records(recs)
                self._json(200, {"ok": True, "added": len(recs)})
            else:
                self._json(404, {"error": "not_found", "message": f"no admin route {path}"})
        except (ValueError, TypeError) as exc:
            self._json(400, {"error": "bad_request", "message": str(exc)})


class SandboxServer:
    """Fake Conpeek API on a background thread; ``url`` includes the path prefix.

    Example::

        with SandboxServer(records=1000, days=3) as server:
            r = requests.get(f"{server.url}/voice_campaign_request_summary",
                             params={"limit": 10},
                             headers={"Authorization": server.api_key})
            assert len(r.json()["data"]) == 10
            os.environ["AIRFLOW_CONN_CONPEEK_DEFAULT"] = server.airflow_connection_json()
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
        faults: FaultConfig | None = None,
        verbose: bool = False,
    ) -> None:
        self.store = RecordStore(records, seed=seed, start=start, days=days)
        self._api_key = api_key
        self.path_prefix = "/" + path_prefix.strip("/") if path_prefix.strip("/") else ""
        self.api_path = f"{self.path_prefix}/{ENDPOINT}"
        self.host, self.port = host, port
        self.max_limit = max_limit
        self.verbose = verbose
        self._lock = threading.Lock()
        self._log: list[RequestLogEntry] = []
        self._faults = FaultState(faults or FaultConfig())
        self._conns: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> SandboxServer:
        """Bind and serve on a daemon thread (idempotent); returns self."""
        if self._httpd is not None:
            return self
        cls = _Server6 if ":" in self.host else _Server
        httpd = cls((self.host, self.port), _Handler)
        httpd.sandbox = self
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
        """Stop serving and close every open (keep-alive) connection."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
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
            if add:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)

    # -- public helpers ----------------------------------------------------------------
    @property
    def url(self) -> str:
        """Base URL including the path prefix, e.g. ``http://127.0.0.1:PORT/api/v1_3``."""
        host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(self.host, self.host)  # noqa: S104
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}{self.path_prefix}"

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
    def faults(self) -> FaultConfig:
        """The current fault configuration."""
        return self._faults.config

    def set_faults(self, faults: FaultConfig | None) -> None:
        """Replace the faults; rule counters (``first``, ``every``, ``times``) restart."""
        with self._lock:
            self._faults = FaultState(faults or FaultConfig())

    def add_records(self, records: list[dict[str, Any]]) -> None:
        """Add records at runtime (each needs ``created_date``); merged into the order."""
        self.store.add(records)

    @property
    def request_log(self) -> list[RequestLogEntry]:
        """Snapshot of the non-admin requests served so far, oldest first."""
        with self._lock:
            return list(self._log)

    def clear_log(self) -> None:
        """Forget the request log."""
        with self._lock:
            self._log.clear()

    def expected_records(self, filters: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        """All records the endpoint returns for ``filters`` across all pages, in order.

        Raises :class:`~.records.FilterError` (a ValueError) where the endpoint says 400.
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
    def _record(self, h: _Handler, status: int | None, fault: str | None) -> None:
        entry = RequestLogEntry(
            h.command,
            urlsplit(h.path).path,
            urlsplit(h.path).query,
            dict(h.headers.items()),
            status,
            fault,
            time.time(),
        )
        with self._lock:
            self._log.append(entry)

    def _handle_api(self, h: _Handler, method: str, path: str, query: str) -> None:
        if path != self.api_path:
            self._record(h, 404, None)
            h._json(404, {"error": "not_found", "message": f"unknown path {path}"})
            return
        if method != "GET":
            self._record(h, 405, None)
            h._json(405, {"error": "method_not_allowed", "message": "use GET"}, {"Allow": "GET"})
            return
        params = parse_qs(query, keep_blank_values=True)
        raw_offset = params.get("offset", ["0"])[-1]
        raw_limit = params.get("limit", ["100"])[-1]
        with self._lock:
            state = self._faults
            rule = state.pick(
                int(raw_offset) if _INT_RE.fullmatch(raw_offset) else None,
                int(raw_limit) if _INT_RE.fullmatch(raw_limit) else None,
                params.get("filter", [None])[-1],
            )
        if state.config.latency > 0:
            self._stopping.wait(state.config.latency)
        kind = rule.kind if rule else None
        if rule is not None and kind in STATUS_FAULTS:
            headers = (
                {"Retry-After": rule.retry_after}
                if rule.retry_after is not None and kind in ("429", "503")
                else {}
            )
            self._record(h, STATUS_FAULTS[kind], kind)
            h._json(
                STATUS_FAULTS[kind], {"error": f"http_{kind}", "message": "sandbox fault"}, headers
            )
            return
        if kind == "drop":
            self._record(h, None, kind)
            h.close_connection = True
            with contextlib.suppress(OSError):
                h.connection.shutdown(socket.SHUT_RDWR)
            return
        if rule is not None and kind == "stall":
            self._stopping.wait(rule.stall_seconds)
        status, body = self._answer(h, params, ignore_offset=kind == "ignore_offset")
        if status == 200 and rule is not None and kind == "malformed":
            body = (rule.body if rule.body is not None else DEFAULT_MALFORMED_BODY).encode()
        if status == 200 and kind == "empty":
            body = b'{"data":[]}'

        self._record(h, status, kind)
        h._send(status, body)

    def _answer(
        self, h: _Handler, params: dict[str, list[str]], *, ignore_offset: bool
    ) -> tuple[int, bytes]:
        def err(status: int, error: str, message: str) -> tuple[int, bytes]:
            return status, json.dumps({"error": error, "message": message}).encode()

        if h.headers.get("Authorization") != self._api_key:
            return err(401, "unauthorized", "missing or invalid Authorization header (raw API key)")
        for name in ("limit", "offset", "filter"):
            if len(params.get(name, [])) > 1:
                return err(400, "invalid_parameter", f"{name} given more than once")
        nums: dict[str, int] = {}
        for name, default, minimum in (("limit", 100, 1), ("offset", 0, 0)):
            raw = params.get(name, [str(default)])[0]
            if not _INT_RE.fullmatch(raw) or int(raw) < minimum:
                return err(
                    400, "invalid_parameter", f"{name} must be an integer >= {minimum}, got {raw!r}"
                )
            nums[name] = int(raw)
        limit, offset = nums["limit"], 0 if ignore_offset else nums["offset"]
        if self.max_limit is not None:
            limit = min(limit, self.max_limit)
        filters: Filters = Filters()
        if "filter" in params:
            try:
                raw_filter = json.loads(params["filter"][0])
            except ValueError as exc:
                return err(400, "invalid_filter", f"filter is not valid JSON: {exc}")
            try:
                filters = parse_filters(raw_filter)
            except FilterError as exc:
                return err(400, "invalid_filter", str(exc))
        refs = self.store.query(filters, offset, limit)
        body = b'{"data":[' + b",".join(self.store.as_bytes(r) for r in refs) + b"]}"
        return 200, body


__all__ = [  # FaultConfig and FaultRule are re-exported: users import them from here
    "ENDPOINT",
    "FAULT_KINDS",
    "FaultConfig",
    "FaultRule",
    "RequestLogEntry",
    "SandboxServer",
]
