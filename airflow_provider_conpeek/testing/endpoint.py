"""The ``voice_campaign_request_summary`` endpoint: checking a request and answering it.

:func:`page_reply` is what the sandbox answers when no fault hits: 401 without the key,
400 ``{"error": ..., "message": ...}`` for a bad ``limit``, ``offset`` or ``filter`` (or a
``limit`` above ``reject_limit_above``),
else 200 ``{"data": [...]}``. :class:`Reply` carries an answer to the HTTP handler and
:class:`RequestLogEntry` is what the request log keeps of it.

.. seealso:: :doc:`/sandbox`, section *What it serves*.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import parse_qs

from airflow_provider_conpeek.testing.filter_semantics import FilterError, Filters, parse_filters
from airflow_provider_conpeek.testing.records import RecordStore

ENDPOINT = "voice_campaign_request_summary"
"""The endpoint's path below the API's prefix."""

_INT_RE = re.compile(r"[0-9]+")


def parse_int(raw: str) -> int | None:
    """``raw`` as a non-negative integer if it is one written in plain digits, else None."""
    return int(raw) if _INT_RE.fullmatch(raw) else None


@dataclass(frozen=True)
class Reply:
    """An answer for the HTTP handler to send; ``status`` None: drop the connection.

    Example::

        Reply(429, b'{"error": "http_429", ...}', {"Retry-After": "1"}, fault="429")
    """

    status: int | None
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    fault: str | None = None
    """The fault kind that shaped this answer, if any."""

    @classmethod
    def error(
        cls,
        status: int,
        error: str,
        message: str,
        headers: dict[str, str] | None = None,
        fault: str | None = None,
    ) -> Reply:
        """A JSON error answer ``{"error": error, "message": message}``."""
        body = json.dumps({"error": error, "message": message}, ensure_ascii=False).encode()
        return cls(status, body, headers or {}, fault)


@dataclass(frozen=True)
class RequestLogEntry:
    """One non-admin request: ``status`` is None when the connection was dropped.

    Example::

        entry = server.request_log[-1]
        entry.params["limit"], entry.headers["Authorization"], entry.fault
        entry.in_flight, entry.queued_s  # e.g. 3, 0.0
    """

    method: str
    path: str
    query: str
    headers: dict[str, str]
    status: int | None
    fault: str | None = None
    time: float = 0.0
    in_flight: int = 0
    """API requests in progress or queued when this one arrived, itself included (0 for a
    request to another path or with another method: not counted)."""
    queued_s: float = 0.0
    """Seconds it waited for a free slot (``FaultConfig(over_capacity="queue")``)."""

    @property
    def params(self) -> dict[str, list[str]]:
        """Decoded query parameters (``parse_qs``)."""
        return parse_qs(self.query, keep_blank_values=True)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict."""
        return asdict(self)


def page_reply(
    store: RecordStore,
    params: dict[str, list[str]],
    authorization: str | None,
    *,
    api_key: str,
    max_limit: int | None = None,
    reject_limit_above: int | None = None,
    ignore_offset: bool = False,
) -> Reply:
    """The endpoint's answer to a ``GET`` with these parameters, when no fault hits.

    :param store: the records served.
    :param params: the decoded query (``parse_qs(query, keep_blank_values=True)``).
    :param authorization: the ``Authorization`` header, None if absent.
    :param api_key: the value ``authorization`` must equal.
    :param max_limit: silently clamp larger ``limit`` values to this.
    :param reject_limit_above: answer 400 to a larger ``limit``.
    :param ignore_offset: serve the page as if ``offset`` were 0 (the ``ignore_offset``
        fault), once ``offset`` has been validated.
    """
    if authorization != api_key:
        return Reply.error(
            401, "unauthorized", "missing or invalid Authorization header (raw API key)"
        )
    for name in ("limit", "offset", "filter"):
        if len(params.get(name, [])) > 1:
            return Reply.error(400, "invalid_parameter", f"{name} given more than once")
    nums: dict[str, int] = {}
    for name, default, minimum in (("limit", 100, 1), ("offset", 0, 0)):
        raw = params.get(name, [str(default)])[0]
        value = parse_int(raw)
        if value is None or value < minimum:
            message = f"{name} must be an integer >= {minimum}, got {raw!r}"
            return Reply.error(400, "invalid_parameter", message)
        nums[name] = value
    limit, offset = nums["limit"], 0 if ignore_offset else nums["offset"]
    if reject_limit_above is not None and limit > reject_limit_above:
        message = f"limit must be at most {reject_limit_above}, got {limit}"
        return Reply.error(400, "invalid_parameter", message)
    if max_limit is not None:
        limit = min(limit, max_limit)
    filters = Filters()
    if "filter" in params:
        try:
            raw_filter = json.loads(params["filter"][0])
        except ValueError as exc:
            return Reply.error(400, "invalid_filter", f"filter is not valid JSON: {exc}")
        try:
            filters = parse_filters(raw_filter)
        except FilterError as exc:
            return Reply.error(400, "invalid_filter", str(exc))
    refs = store.query(filters, offset, limit)
    return Reply(200, b'{"data":[' + b",".join(store.as_bytes(r) for r in refs) + b"]}")


__all__ = ["ENDPOINT", "Reply", "RequestLogEntry", "page_reply", "parse_int"]
