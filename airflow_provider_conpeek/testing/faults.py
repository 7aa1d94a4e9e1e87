"""Faults the sandbox can inject: which requests a rule hits, and what it does to them.

A :class:`FaultConfig` (``latency`` and a list of :class:`FaultRule`) is what a user sets;
:class:`FaultState` counts the requests since it was set, picks the rule that hits one
and turns the endpoint's answer into the faulted one. The handshake faults of a TLS sandbox
hit connections instead, before any request: :meth:`FaultState.pick_connection`.

Example::

    FaultConfig(latency=0.025, rules=[FaultRule("429", retry_after="1", every=10)])

.. seealso:: :doc:`/sandbox`, section *Faults*.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

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
    """Faults of a sandbox: a delay on every API request and a list of :class:`FaultRule`.

    :param latency: seconds added to every API request.
    :param rules: the rules, in priority order.
    :param seed: seed of the RNG used by ``probability`` selectors.

    Example::

        cfg = FaultConfig(latency=0.01, rules=[FaultRule("503", retry_after="0", first=1)])
        server.set_faults(cfg)
        FaultConfig.from_dict(cfg.to_dict()) == cfg  # True
    """

    latency: float = 0.0
    rules: list[FaultRule] = field(default_factory=list)
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaultConfig:
        """Build from :meth:`to_dict` output; ValueError on unknown keys or bad values."""
        if not isinstance(data, dict):
            raise ValueError("fault config must be a JSON object")
        unknown = set(data) - {"latency", "rules", "seed"}
        if unknown:
            raise ValueError(f"unknown fault config keys {sorted(unknown)}")
        names = {f.name for f in fields(FaultRule)}
        rules = []
        for raw in data.get("rules") or []:
            if not isinstance(raw, dict) or set(raw) - names or "kind" not in raw:
                raise ValueError(f"invalid fault rule {raw!r}; keys: {sorted(names)}")
            rules.append(FaultRule(**raw))
        return cls(
            latency=float(data.get("latency") or 0.0), rules=rules, seed=int(data.get("seed", 0))
        )


class FaultState:
    """Runtime counters of a :class:`FaultConfig`.

    :meth:`pick`, :meth:`pick_request` and :meth:`pick_connection` must be called under the
    server's lock;
    :meth:`apply` (which sleeps) outside it.

    :param config: the faults whose counters start now.

    Example::

        state = FaultState(FaultConfig(rules=[FaultRule("500", first=1)]))
        state.pick(offset=0).kind, state.pick(offset=100)  # ("500", None)
    """

    def __init__(self, config: FaultConfig) -> None:
        self.config = config
        self.seen: list[dict[str | None, int]] = [{} for _ in config.rules]
        self.fired = [0] * len(config.rules)
        self.rng = random.Random(config.seed)

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
