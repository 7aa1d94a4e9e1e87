"""Faults the sandbox can inject: which requests a rule hits, and what it does to them.

Example::

    FaultConfig(latency=0.025, rules=[FaultRule("429", retry_after="1", every=10)])
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field, fields
from typing import Any

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
)
STATUS_FAULTS = {"429": 429, "500": 500, "502": 502, "503": 503}
DEFAULT_MALFORMED_BODY = '{"data": [{"call_request_id": "cr-trunc'


@dataclass
class FaultRule:
    """One fault and the API requests it hits (every set selector must hold).

    A request is *eligible* if its ``offset`` is in ``offsets`` and its ``limit`` in
    ``limits`` (each when set); ``n`` counts eligible requests since the rule was set
    (1-based), per distinct ``filter`` value when ``per_filter`` is true. The rule fires when
    ``n <= first``, ``n % every == 0``, ``rng() < probability`` (those set) and it has
    fired fewer than ``times`` times. The first firing rule wins.

    Kinds: ``429``/``500``/``502``/``503`` (that status), ``drop`` (connection closed, no
    answer), ``stall`` (answer after ``stall_seconds``), ``ignore_offset`` (served as if
    ``offset=0``), ``malformed`` (a 200 whose body is not the API's), ``empty`` (a 200 with
    no records: a window that fills later).

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
    """Body of a ``malformed`` 200 (default: truncated JSON)."""

    def __post_init__(self) -> None:
        self.kind = str(self.kind)
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {FAULT_KINDS}")
        if self.every is not None and self.every < 1:
            raise ValueError("every must be >= 1")
        if self.probability is not None and not 0 <= self.probability <= 1:
            raise ValueError("probability must be within 0..1")


@dataclass
class FaultConfig:
    """Faults of a sandbox: ``latency`` seconds on every API request plus ``rules``.

    Example::

        cfg = FaultConfig(latency=0.01, rules=[FaultRule("503", retry_after="0", first=1)])
        server.set_faults(cfg)
        FaultConfig.from_dict(cfg.to_dict()) == cfg  # True
    """

    latency: float = 0.0
    rules: list[FaultRule] = field(default_factory=list)
    seed: int = 0
    """Seed of the RNG used by ``probability`` selectors."""

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
    """Runtime counters of a FaultConfig (guarded by the server lock).

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
        """The rule that hits this request, if any (and count the request for every rule)."""
        chosen: FaultRule | None = None
        for i, rule in enumerate(self.config.rules):
            if rule.offsets is not None and offset not in rule.offsets:
                continue
            if rule.limits is not None and limit not in rule.limits:
                continue
            counter = filter_text if rule.per_filter else None
            n = self.seen[i][counter] = self.seen[i].get(counter, 0) + 1
            if chosen is not None:
                continue
            ok = rule.times is None or self.fired[i] < rule.times
            ok = ok and (rule.first is None or n <= rule.first)
            ok = ok and (rule.every is None or n % rule.every == 0)
            if rule.probability is not None:
                ok = self.rng.random() < rule.probability and ok
            if ok:
                self.fired[i] += 1
                chosen = rule
        return chosen
