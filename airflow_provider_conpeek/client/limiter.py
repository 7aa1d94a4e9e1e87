"""How many requests an extract keeps in flight: pinned, or adapted to the server.

Conpeek documents no rate limit and no concurrency limit, so any fixed number is a guess:
too low wastes time on a fast server, too high earns a stream of 429s from a server that
allows fewer requests at once (and each 429 used to pause the whole extract). By default an
extract therefore *adapts*, as TCP congestion control does (AIMD):

* it starts small (:data:`INITIAL_LIMIT`) and doubles each round trip while answers come
  back fast and clean ("slow start"), then adds about one request per round trip;
* a 429, a 503 or a timeout (the server says it is overloaded) cuts the limit to
  :data:`BACKOFF` of itself, and below the number of requests in flight when the refused
  one was sent (the server allowed fewer); a 429 with nothing else in flight is a rate
  limit, not a concurrency limit: that request backs off;
* a round trip whose answers took, on average, clearly longer than the fastest round trips
  lately (:data:`RTT_TOLERANCE`: the server queues them) cuts it to :data:`BACKOFF` of
  itself, but never below :data:`LATENCY_FLOOR`: answer times vary for many reasons besides
  load, so latency alone is a weak signal, and it is compared round against round (means
  of as many answers as are in flight), never against the single fastest answer;
* at most one cut per round trip;
* once it has met trouble, every :data:`RTT_REFRESH_EVERY` answers it spends one round
  trip at half the limit, so the fastest round trip is measured on a lightly loaded server
  again (as BBR does): a baseline taken only under load would creep up and hide queueing;
* the level where trouble started is remembered, and probed again only after
  :data:`PROBE_AFTER` clean answers, twice as long after each probe that fails, so a server
  that allows K requests at once sees a 429 now and then, not every few requests;
* :data:`~airflow_provider_conpeek.client.settings.DEFAULT_MAX_CONCURRENCY` (the
  ``max_concurrency`` extra or argument) caps it.

Only answers to requests in flight while the limit was full make it grow: an extract that
never used its limit has shown nothing about a higher one.

:class:`ConcurrencyLimit` pins the number (``concurrency=<n>``; 1 is sequential).
:class:`AdaptiveLimit` adapts it. Both hand out slots: :meth:`~ConcurrencyLimit.acquire`
before sending, :meth:`~ConcurrencyLimit.release` with the outcome afterwards.

Example::

    limit = AdaptiveLimit(maximum=16)
    ticket = limit.acquire()
    ...  # send, time the answer
    limit.release(ticket, "ok", rtt=0.031)
    limit.current, limit.describe()
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass
from typing import Literal

from airflow_provider_conpeek.exceptions import ConpeekConfigError

Outcome = Literal["ok", "overload", "other"]
"""How a try ended: an answer (``ok``), a sign of overload (429, 503, a timeout), or
anything else (a dropped connection, a 500, a refusal), which says nothing about load."""

INITIAL_LIMIT = 2
"""Requests in flight an adaptive extract starts with."""
BACKOFF = 0.7
"""Factor applied to the limit on overload (TCP CUBIC's 0.7: less drastic than halving)."""
RTT_TOLERANCE = 1.5
"""A round trip whose answers took on average more than this times the mean of the fastest
of the last :data:`ROUND_HISTORY` round trips (plus :data:`RTT_SLACK`) counts as overload.
Lower values react to smaller queues, and also to a client machine that is merely busy."""
RTT_SLACK = 0.003
"""Seconds added to the latency threshold, so jitter of a fast server is not taken for load."""
ROUND_HISTORY = 32
"""Round trips over which the fastest (lowest mean answer time) is the baseline (recent
ones: a server's own latency may drift, e.g. grow with the offset)."""
LATENCY_FLOOR = 4
"""Latency alone never takes the limit below this (429s, 503s and timeouts can): 4 in
flight was the fixed default before the limit adapted."""
RTT_REFRESH_EVERY = 128
"""Answers between two round trips at half the limit (only after a first cut)."""
PROBE_AFTER = 16
"""Clean answers before the level where trouble started is tried again."""
PROBE_AFTER_MAX = 256
"""Cap on that wait, which doubles with each failed probe."""
ACQUIRE_POLL = 0.05
"""Seconds between looks at the cancel event while waiting for a slot."""


def check_concurrency(concurrency: int | None, max_concurrency: int) -> None:
    """Refuse a ``concurrency`` that is not ``None`` or a positive integer, or above the cap.

    :raises ConpeekConfigError: naming the argument, its problem and the fix.
    """
    if concurrency is None:
        return
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ConpeekConfigError(
            f"concurrency must be None (adapt to the server, the default) or a positive "
            f"integer, got {concurrency!r}. Pass concurrency=1 for sequential paging."
        )
    if concurrency > max_concurrency:
        raise ConpeekConfigError(
            f"concurrency={concurrency} is above max_concurrency={max_concurrency}. Lower "
            "concurrency, or raise max_concurrency (the operator argument or the "
            "connection's 'max_concurrency' extra)."
        )


def make_limit(concurrency: int | None, max_concurrency: int) -> ConcurrencyLimit:
    """The limit of one extract: pinned to ``concurrency``, or adaptive when it is ``None``.

    Example::

        make_limit(None, 16)  # AdaptiveLimit(2 of at most 16)
        make_limit(1, 16)  # ConcurrencyLimit(1): sequential
    """
    check_concurrency(concurrency, max_concurrency)
    if concurrency is not None:
        return ConcurrencyLimit(concurrency)
    if max_concurrency == 1:
        return ConcurrencyLimit(1)
    return AdaptiveLimit(max_concurrency)


@dataclass(eq=False)
class Ticket:
    """A slot taken by one try: the limit's epoch (round) when it was sent, how many times
    the limit had been full and had been cut by then (only tries in flight while it was full
    make it grow; one cut per round), the tries in flight once it took its slot, and the
    most at any moment while it held it, itself included.

    Threads may send in another order than they took their slots, so a try that took its
    slot alone may reach the server third. When the server refused it with K others in
    progress, those K were in flight here too, and the last of the K+1 slots was taken while
    this one was held: ``peak`` counts them, so a refusal is taken for a lone request's (a
    rate limit) only when nothing else was in flight at all.
    """

    epoch: int
    fills: int
    cuts: int
    in_flight: int
    peak: int


@dataclass
class LimitStats:
    """What a limit saw: tries, overload answers, cuts, and the highest values reached."""

    tries: int = 0
    overloads: int = 0
    cuts: int = 0
    peak_in_flight: int = 0
    peak_limit: int = 0


class ConcurrencyLimit:
    """A fixed number of tries in flight; the base of :class:`AdaptiveLimit`.

    :param limit: tries in flight at once (at least 1).

    Example::

        limit = ConcurrencyLimit(4)
        ticket = limit.acquire()  # blocks while 4 are in flight
        limit.release(ticket, "ok", 0.02)
    """

    adaptive = False

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        self.maximum = limit
        self._limit = float(limit)
        self._cond = threading.Condition()
        self._in_flight = 0
        self._held: set[Ticket] = set()  # the tickets in flight, to update their peak
        self._epoch = 0
        self._fills = 0  # times an acquire took the last free slot
        self.stats = LimitStats(peak_limit=limit)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.current} of at most {self.maximum})"

    @property
    def current(self) -> int:
        """Tries allowed in flight now."""
        return max(1, int(self._limit))

    def acquire(self, cancel: threading.Event | None = None) -> Ticket | None:
        """Wait for a free slot and take it; ``None`` if ``cancel`` was set first."""
        with self._cond:
            while self._in_flight >= self.current:
                if cancel is not None and cancel.is_set():
                    return None
                self._cond.wait(ACQUIRE_POLL)
            if cancel is not None and cancel.is_set():
                return None
            self._in_flight += 1
            n = self._in_flight
            ticket = Ticket(self._epoch, self._fills, self.stats.cuts, n, n)
            for held in self._held:
                held.peak = max(held.peak, self._in_flight)
            self._held.add(ticket)
            if self._in_flight >= self.current:
                self._fills += 1
            stats = self.stats
            stats.tries += 1
            stats.peak_in_flight = max(stats.peak_in_flight, self._in_flight)
            return ticket

    def release(self, ticket: Ticket, outcome: Outcome, rtt: float | None = None) -> bool:
        """Give the slot back with how the try ended.

        :param ticket: what :meth:`acquire` returned.
        :param outcome: see :data:`Outcome`.
        :param rtt: seconds from sending to the whole answer, for ``ok``.
        :returns: whether an overload was answered by lowering the limit (now, or already
            since this try was sent), so the try may be repeated without backing off.
        """
        with self._cond:
            self._in_flight -= 1
            self._held.discard(ticket)
            if outcome == "overload":
                self.stats.overloads += 1
            absorbed = self._update(ticket, outcome, rtt)
            self._cond.notify_all()
            return absorbed

    def _update(self, ticket: Ticket, outcome: Outcome, rtt: float | None) -> bool:
        return False  # pinned: nothing to learn

    def describe(self) -> str:
        """One line for the log: the limit and what it met."""
        return f"{self.current} in flight (pinned), {self.stats.overloads} overload answers"


class AdaptiveLimit(ConcurrencyLimit):
    """Tries in flight, adapted to the server by AIMD (see the module's description).

    :param maximum: the cap (``max_concurrency``).
    :param initial: where it starts (capped by ``maximum``).

    Example::

        limit = AdaptiveLimit(maximum=16)
        limit.current  # 2
    """

    adaptive = True

    def __init__(self, maximum: int, *, initial: int = INITIAL_LIMIT) -> None:
        super().__init__(maximum)
        self._limit = float(min(initial, maximum))
        self.stats.peak_limit = self.current
        self._slow_start = True
        self._round_means: deque[float] = deque(maxlen=ROUND_HISTORY)
        self._round: list[float] = []  # rtts of this epoch's current round trip
        self._round_size = self.current
        self._trouble_at: int | None = None  # the level where trouble last started
        self._probe_after = PROBE_AFTER
        self._calm = 0  # growth-eligible answers since the limit stopped below that level
        self._clean_at_level = 0  # clean answers while at (or above) that level
        self._answers = 0  # answers since the last round at half the limit
        self._drained_from: float | None = None  # the limit to return to after that round

    def describe(self) -> str:
        s = self.stats
        return (
            f"{self.current} in flight now (adaptive, at most {self.maximum}; highest "
            f"{s.peak_limit}), {s.cuts} cuts, {s.overloads} overload answers"
        )

    def _update(self, ticket: Ticket, outcome: Outcome, rtt: float | None) -> bool:
        if outcome == "overload":  # refused with that many in flight: fewer were allowed
            return self._overload(ticket)
        if outcome != "ok" or rtt is None or ticket.epoch != self._epoch:
            return False  # sent under another limit: it says nothing about this one
        if not self._round:
            self._round_size = self.current
        self._round.append(rtt)
        self._answers += 1
        if len(self._round) >= self._round_size:
            mean = sum(self._round) / len(self._round)
            self._round = []
            baseline = min(self._round_means, default=mean)
            self._round_means.append(mean)
            if self._drained_from is not None:  # measured at half the limit: back up
                self._new_round(self._drained_from)
                self._drained_from = None
                return False
            if mean > baseline * RTT_TOLERANCE + RTT_SLACK and self.current > LATENCY_FLOOR:
                self._cut(max(LATENCY_FLOOR, math.floor(self.current * BACKOFF)))
                return False  # the server queues our requests: fewer at once
            if not self._slow_start and self._answers >= RTT_REFRESH_EVERY and self.current >= 4:
                self._answers = 0
                self._drained_from = self._limit
                self._new_round(float(self.current // 2))
                return False
        if self._fills > ticket.fills:  # the limit was in use while this was in flight
            self._grow()
        return False

    def _new_round(self, limit: float) -> None:
        self._limit = limit
        self._epoch += 1  # answers to requests sent before this say nothing about it
        self._round = []

    def _grow(self) -> None:
        if self._drained_from is not None:
            return
        level = self.current
        if self._trouble_at is not None and level >= self._trouble_at:
            self._clean_at_level += 1
            if self._clean_at_level >= 2 * level:  # a clean stretch there: it moved
                self._trouble_at, self._probe_after = None, PROBE_AFTER
        if self._slow_start:
            self._limit += 1
        elif self._trouble_at is not None and level + 1 >= self._trouble_at:
            self._calm += 1
            if self._calm < self._probe_after:
                return
            self._calm = 0
            self._limit = float(level + 1)  # probe the level where trouble started
        else:
            self._limit += 1 / self._limit
        self._limit = min(self._limit, float(self.maximum))
        self.stats.peak_limit = max(self.stats.peak_limit, self.current)

    def _overload(self, ticket: Ticket) -> bool:
        """Cut below what was in flight when ``ticket`` was refused, once per round; whether
        the refused try may be repeated at once (not for a lone request: a rate limit)."""
        alone = ticket.peak <= 1
        allowed = (ticket.in_flight if ticket.in_flight > 1 else ticket.peak) - 1
        if ticket.cuts != self.stats.cuts:
            return not alone  # already cut since this try was sent
        level = self.current
        if level <= 1:
            return False
        trouble = min(level, allowed + 1)
        if self._trouble_at == trouble:
            self._probe_after = min(2 * self._probe_after, PROBE_AFTER_MAX)
        else:
            self._trouble_at, self._probe_after = trouble, PROBE_AFTER
        self._cut(max(1, min(math.floor(level * BACKOFF), allowed)))
        return not alone

    def _cut(self, limit: int) -> None:
        """Lower the limit to ``limit`` and start a new round."""
        if self._drained_from is not None:  # overloaded even at half: cut from there
            self._drained_from = None
        self._new_round(float(limit))
        self._slow_start = False
        self._calm = self._clean_at_level = 0
        self.stats.cuts += 1
