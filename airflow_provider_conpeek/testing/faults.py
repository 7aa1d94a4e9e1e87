"""Faults the sandbox can inject: which requests a rule hits, and what it does to them.

A :class:`FaultConfig` (``latency``, a list of :class:`FaultRule` and an optional
``capacity``) is what a user sets; :class:`FaultState` counts the requests since it was set
(those in progress included, see :class:`ServerLoad`), picks the rule that hits one and
turns the endpoint's answer into the faulted one. The handshake faults of a TLS sandbox
hit connections instead, before any request: :meth:`FaultState.pick_connection`.

Example::

    FaultConfig(latency=0.025, rules=[FaultRule("429", retry_after="1", every=10)])
    FaultConfig(latency=0.05, capacity=4, over_capacity="queue")  # 4 workers

.. seealso:: :doc:`/sandbox`, section *Faults*.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any, NamedTuple

from airflow_provider_conpeek.testing.endpoint import Reply, parse_int
from airflow_provider_conpeek.testing.tls import HANDSHAKE_FAULTS

FAULT_KINDS = (
    "429",
    "500",
    "502",
    "503",
    "drop",
    "stall",
    "ignore_offset",
    "malformed",
    "empty",
    *HANDSHAKE_FAULTS,
)
"""Every ``FaultRule.kind``."""
STATUS_FAULTS = {"429": 429, "500": 500, "502": 502, "503": 503}
OVER_CAPACITY = ("429", "queue")
"""Every ``FaultConfig.over_capacity``."""
CAPACITY_FAULT = "capacity"
"""The ``fault`` of a request answered 429 because the server was at capacity."""
DEFAULT_MALFORMED_BODY = '{"data": [{"call_request_id": "cr-trunc'
"""Body of a ``malformed`` answer whose rule sets no ``body``: truncated JSON."""


@dataclass
class FaultRule:
    """One fault and the API requests it hits (every selector that is set must hold).

    A request is *eligible* if its ``offset`` is in ``offsets`` and its ``limit`` in
    ``limits``; eligible requests are counted from when the rule was set (``n``, 1-based).
    The first rule that fires wins.

    :param kind: ``429``/``500``/``502``/``503`` (that status), ``drop`` (connection closed,
        no answer), ``stall`` (answer after ``stall_seconds``), ``ignore_offset`` (served
        as if ``offset=0``), ``malformed`` (a 200 whose body is not the API's) or
        ``empty`` (a 200 with no records: a window that fills later); on a TLS sandbox,
        ``handshake_eof``/``handshake_reset`` (a new connection closed or reset during the
        handshake; only ``first``, ``every``, ``probability`` and ``times`` apply, counted
        per connection).
    :param retry_after: ``Retry-After`` value of a ``429``/``503``, sent verbatim.
    :param first: fire for ``n <= first``.
    :param every: fire when ``n % every == 0``.
    :param probability: fire with this probability (seeded by ``FaultConfig.seed``).
    :param offsets: only requests with one of these offsets are eligible.
    :param limits: only requests with one of these limits are eligible.
    :param per_filter: count ``n`` per distinct ``filter`` value.
    :param times: fire at most this many times.
    :param stall_seconds: how long a ``stall`` holds the answer back.
    :param body: body of a ``malformed`` 200 (default: truncated JSON).

    Example::

        FaultRule("429", retry_after="1", first=2)  # first two requests get 429
        FaultRule("drop", every=3, times=1)         # 3rd request: connection dropped
        # Each window's first one-record probe finds nothing (a sensor must wait):
        FaultRule("empty", limits=[1], first=1, per_filter=True)
    """

    kind: str
    retry_after: str | None = None
    first: int | None = None
    every: int | None = None
    probability: float | None = None
    offsets: list[int] | None = None
    limits: list[int] | None = None
    per_filter: bool = False
    times: int | None = None
    stall_seconds: float = 10.0
    body: str | None = None

    def __post_init__(self) -> None:
        self.kind = str(self.kind)
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {FAULT_KINDS}")
        if self.every is not None and self.every < 1:
            raise ValueError("every must be >= 1")
        if self.probability is not None and not 0 <= self.probability <= 1:
            raise ValueError("probability must be within 0..1")
        if self.kind in HANDSHAKE_FAULTS and (
            self.offsets is not None or self.limits is not None or self.per_filter
        ):
            raise ValueError(
                f"{self.kind} hits a connection before any request: offsets, limits and "
                "per_filter do not apply"
            )


@dataclass
class FaultConfig:
    """Faults of a sandbox: a ``latency``, :class:`FaultRule` rules and a ``capacity``.

    :param latency: seconds added to every API request.
    :param rules: the rules, in priority order.
    :param seed: seed of the RNG used by ``probability`` selectors.
    :param capacity: how many API requests the server works on at once (None: no limit).
        A request counts from its arrival until its answer is ready, before it is sent.
    :param over_capacity: what a request arriving while ``capacity`` requests are in
        progress gets: ``"429"``, an immediate HTTP 429 (no ``latency``, no rule; its
        ``fault`` is ``"capacity"``), or ``"queue"``, a wait for a free slot (first come,
        first served), then the normal answer (``latency``, rules).
    :param capacity_retry_after: ``Retry-After`` value of those 429s, sent verbatim
        (None: no header); only with ``over_capacity="429"``.

    Example::

        cfg = FaultConfig(latency=0.01, rules=[FaultRule("503", retry_after="0", first=1)])
        server.set_faults(cfg)
        FaultConfig.from_dict(cfg.to_dict()) == cfg  # True
        FaultConfig(capacity=2, capacity_retry_after="1")  # a third concurrent request: 429
    """

    latency: float = 0.0
    rules: list[FaultRule] = field(default_factory=list)
    seed: int = 0
    capacity: int | None = None
    over_capacity: str = "429"
    capacity_retry_after: str | None = None

    def __post_init__(self) -> None:
        capacity: object = self.capacity
        if capacity is not None and (
            isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1
        ):
            raise ValueError(f"capacity must be an integer >= 1 or None, got {capacity!r}")
        self.over_capacity = str(self.over_capacity)
        if self.over_capacity not in OVER_CAPACITY:
            raise ValueError(
                f"unknown over_capacity {self.over_capacity!r}; expected one of {OVER_CAPACITY}"
            )
        hint: object = self.capacity_retry_after
        if isinstance(hint, int) and not isinstance(hint, bool):
            hint = self.capacity_retry_after = str(hint)  # JSON {"capacity_retry_after": 1}
        if hint is not None and (not isinstance(hint, str) or "\r" in hint or "\n" in hint):
            raise ValueError(f"capacity_retry_after must be a one-line string, got {hint!r}")
        if capacity is None and (self.over_capacity != "429" or hint is not None):
            raise ValueError("over_capacity and capacity_retry_after need a capacity")
        if self.over_capacity == "queue" and hint is not None:
            raise ValueError('capacity_retry_after applies to over_capacity="429" only')

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaultConfig:
        """Build from :meth:`to_dict` output; ValueError on unknown keys or bad values."""
        if not isinstance(data, dict):
            raise ValueError("fault config must be a JSON object")
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown fault config keys {sorted(unknown)}")
        names = {f.name for f in fields(FaultRule)}
        rules = []
        for raw in data.get("rules") or []:
            if not isinstance(raw, dict) or set(raw) - names or "kind" not in raw:
                raise ValueError(f"invalid fault rule {raw!r}; keys: {sorted(names)}")
            rules.append(FaultRule(**raw))
        return cls(
            latency=float(data.get("latency") or 0.0),
            rules=rules,
            seed=int(data.get("seed", 0)),
            capacity=data.get("capacity"),
            over_capacity=data.get("over_capacity", "429"),
            capacity_retry_after=data.get("capacity_retry_after"),
        )


class ServerLoad(NamedTuple):
    """API requests in progress (holding a ``capacity`` slot) and waiting for one.

    Counted per :class:`FaultConfig`: after ``set_faults``, the requests that started
    before are not counted. Without ``capacity``, ``queued`` is always 0.

    Example::

        server.load  # ServerLoad(in_progress=2, queued=1)
        in_progress, queued = server.load
    """

    in_progress: int
    queued: int


class Admission(NamedTuple):
    """What :meth:`FaultState.arrive` decided for an API request.

    Example::

        admission = state.arrive()
        if admission.ticket is not None:  # queued: wait until state.start(ticket)
            ...
    """

    in_flight: int
    """Requests in progress or queued when this one arrived, itself included."""
    admitted: bool
    """True: the request holds a slot now (call :meth:`FaultState.finish` once answered)."""
    ticket: object | None = None
    """Its place in the queue, if it must wait (``over_capacity="queue"``)."""


class FaultState:
    """Runtime counters of a :class:`FaultConfig`, and the API requests in progress.

    :meth:`pick`, :meth:`pick_request`, :meth:`pick_connection` and the capacity methods
    (:meth:`arrive`, :meth:`start`, :meth:`give_up`, :meth:`finish`, :meth:`load`) must be
    called under the server's lock; :meth:`apply` (which sleeps) outside it. A request that
    arrived under this state finishes under it, even after ``set_faults`` replaced it.

    :param config: the faults whose counters start now.

    Example::

        state = FaultState(FaultConfig(rules=[FaultRule("500", first=1)]))
        state.pick(offset=0).kind, state.pick(offset=100)  # ("500", None)
        state = FaultState(FaultConfig(capacity=1))
        [state.arrive().admitted for _ in "ab"]  # [True, False]: the 2nd gets a 429
    """

    def __init__(self, config: FaultConfig) -> None:
        self.config = config
        self.seen: list[dict[str | None, int]] = [{} for _ in config.rules]
        self.fired = [0] * len(config.rules)
        self.rng = random.Random(config.seed)
        self.in_progress = 0
        self.queue: deque[object] = deque()

    # -- capacity ------------------------------------------------------------------------
    def arrive(self) -> Admission:
        """Count an arriving API request: admitted, queued or (``admitted`` false, no
        ``ticket``) to be answered with :meth:`capacity_reply`."""
        in_flight = self.in_progress + len(self.queue) + 1
        capacity = self.config.capacity
        if capacity is None or (self.in_progress < capacity and not self.queue):
            self.in_progress += 1
            return Admission(in_flight, True)
        if self.config.over_capacity == "429":
            return Admission(in_flight, False)
        ticket = object()
        self.queue.append(ticket)
        return Admission(in_flight, False, ticket)

    def start(self, ticket: object) -> bool:
        """Whether the queued ``ticket`` takes a free slot now (first come, first served)."""
        capacity = self.config.capacity
        if self.queue[0] is not ticket or (capacity is not None and self.in_progress >= capacity):
            return False
        self.queue.popleft()
        self.in_progress += 1
        return True

    def give_up(self, ticket: object) -> None:
        """Take the queued request ``ticket`` out of the queue (the server stops)."""
        self.queue.remove(ticket)

    def finish(self) -> None:
        """An admitted request's answer is ready: free its slot."""
        self.in_progress -= 1

    def load(self) -> ServerLoad:
        """The requests in progress and queued."""
        return ServerLoad(self.in_progress, len(self.queue))

    def capacity_reply(self) -> Reply:
        """The 429 of a request that arrived while the server was at capacity."""
        hint = self.config.capacity_retry_after
        headers = {"Retry-After": hint} if hint is not None else {}
        message = f"sandbox at capacity ({self.config.capacity} requests in progress)"
        return Reply.error(429, "http_429", message, headers, CAPACITY_FAULT)

    # -- rules ---------------------------------------------------------------------------
    def pick(
        self, offset: int | None, limit: int | None = None, filter_text: str | None = None
    ) -> FaultRule | None:
        """The rule that hits this request, if any (and count the request for every rule).

        :param offset: the request's ``offset``, None if it is not a valid integer.
        :param limit: the request's ``limit``, None if it is not a valid integer.
        :param filter_text: the raw ``filter`` value (counter key of ``per_filter`` rules).
        """
        chosen: FaultRule | None = None
        for i, rule in enumerate(self.config.rules):
            if rule.kind in HANDSHAKE_FAULTS:
                continue
            if rule.offsets is not None and offset not in rule.offsets:
                continue
            if rule.limits is not None and limit not in rule.limits:
                continue
            counter = filter_text if rule.per_filter else None
            n = self.seen[i][counter] = self.seen[i].get(counter, 0) + 1
            if chosen is None and self._fires(i, rule, n):
                chosen = rule
        return chosen

    def pick_connection(self) -> str | None:
        """The handshake fault that hits a new TLS connection, if any (counts it)."""
        chosen: str | None = None
        for i, rule in enumerate(self.config.rules):
            if rule.kind in HANDSHAKE_FAULTS:
                n = self.seen[i][None] = self.seen[i].get(None, 0) + 1
                if chosen is None and self._fires(i, rule, n):
                    chosen = rule.kind
        return chosen

    def _fires(self, i: int, rule: FaultRule, n: int) -> bool:
        """Whether rule ``i`` hits its ``n``-th eligible request (and count it if so)."""
        ok = rule.times is None or self.fired[i] < rule.times
        ok = ok and (rule.first is None or n <= rule.first)
        ok = ok and (rule.every is None or n % rule.every == 0)
        if rule.probability is not None:
            ok = self.rng.random() < rule.probability and ok
        if ok:
            self.fired[i] += 1
        return ok

    def pick_request(self, params: dict[str, list[str]]) -> FaultRule | None:
        """:meth:`pick` for a decoded query (``parse_qs``); the last of a repeated value counts."""
        return self.pick(
            parse_int(params.get("offset", ["0"])[-1]),
            parse_int(params.get("limit", ["100"])[-1]),
            params.get("filter", [None])[-1],
        )

    def apply(
        self,
        rule: FaultRule | None,
        answer: Callable[[bool], Reply],
        sleep: Callable[[float], object],
    ) -> Reply:
        """The answer to a request after ``latency`` and ``rule``.

        :param rule: what :meth:`pick_request` chose for the request.
        :param answer: the endpoint's answer; its argument is true to ignore ``offset``.
        :param sleep: called with the seconds of the ``latency`` and ``stall`` delays.
        """
        if self.config.latency > 0:
            sleep(self.config.latency)
        if rule is None:
            return answer(False)
        kind = rule.kind
        if kind in STATUS_FAULTS:
            with_hint = rule.retry_after is not None and kind in ("429", "503")
            headers = {"Retry-After": str(rule.retry_after)} if with_hint else {}
            return Reply.error(STATUS_FAULTS[kind], f"http_{kind}", "sandbox fault", headers, kind)
        if kind == "drop":
            return Reply(None, fault=kind)
        if kind == "stall":
            sleep(rule.stall_seconds)
        reply = answer(kind == "ignore_offset")
        body = reply.body
        if reply.status == 200 and kind == "malformed":
            body = (rule.body if rule.body is not None else DEFAULT_MALFORMED_BODY).encode()
        elif reply.status == 200 and kind == "empty":
            body = b'{"data":[]}'
        return Reply(reply.status, body, reply.headers, kind)
