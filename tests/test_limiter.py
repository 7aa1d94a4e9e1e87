"""The limit on requests in flight: each rule alone, then whole extracts against model
servers in simulated time (no threads, no clock: the outcome depends on the algorithm only)."""

from __future__ import annotations

import heapq
import random
import threading
from dataclasses import dataclass, field

import pytest

from airflow_provider_conpeek.client.limiter import (
    BACKOFF,
    INITIAL_LIMIT,
    LATENCY_FLOOR,
    PROBE_AFTER,
    RTT_REFRESH_EVERY,
    AdaptiveLimit,
    ConcurrencyLimit,
    Ticket,
    check_concurrency,
    make_limit,
)
from airflow_provider_conpeek.exceptions import ConpeekConfigError


def fill(limit: ConcurrencyLimit) -> list[Ticket]:
    """Take every free slot (none may be taken already)."""
    tickets = []
    while len(tickets) < limit.current:
        ticket = limit.acquire()
        assert ticket is not None
        tickets.append(ticket)
    return tickets


def _set_event() -> threading.Event:
    event = threading.Event()
    event.set()
    return event


def grow_to(limit: AdaptiveLimit, level: int, rtt: float = 0.02) -> None:
    """Saturated clean answers until the limit reaches ``level``."""
    for _ in range(1000):
        if limit.current >= level:
            return
        for ticket in fill(limit):
            limit.release(ticket, "ok", rtt)
    raise AssertionError(f"stuck at {limit.current}")


# -- rules -----------------------------------------------------------------------------------


def test_pinned_limit_blocks_at_its_value_and_never_changes() -> None:
    limit = ConcurrencyLimit(2)
    a, b = limit.acquire(), limit.acquire()
    assert a is not None
    assert b is not None
    assert limit.acquire(cancel=_set_event()) is None  # full: a cancelled wait gives up
    got: list[Ticket | None] = []
    waiter = threading.Thread(target=lambda: got.append(limit.acquire()))
    waiter.start()
    assert not limit.release(a, "overload")  # nothing to lower: back off as usual
    waiter.join(10)
    assert got
    assert got[0] is not None
    assert limit.current == 2
    assert limit.stats.overloads == 1
    assert limit.stats.peak_in_flight == 2
    assert "pinned" in limit.describe()


def test_adaptive_starts_small_and_doubles_each_round_until_the_cap() -> None:
    limit = AdaptiveLimit(maximum=16)
    assert limit.current == INITIAL_LIMIT
    rounds = []
    while limit.current < 16:
        for ticket in fill(limit):
            limit.release(ticket, "ok", 0.02)
        rounds.append(limit.current)
    assert rounds == [4, 8, 16]
    grow_to(limit, 16)
    for ticket in fill(limit):
        limit.release(ticket, "ok", 0.02)
    assert limit.current == 16  # capped
    assert limit.stats.cuts == 0
    assert limit.stats.peak_limit == 16


def test_answers_sent_below_the_limit_do_not_make_it_grow() -> None:
    limit = AdaptiveLimit(maximum=16)
    for _ in range(50):  # one request at a time: the limit of 2 was never used
        ticket = limit.acquire()
        assert ticket is not None
        limit.release(ticket, "ok", 0.02)
    assert limit.current == INITIAL_LIMIT


def test_overload_cuts_once_per_round_and_repeats_are_absorbed() -> None:
    limit = AdaptiveLimit(maximum=16, initial=10)
    tickets = fill(limit)
    assert limit.release(tickets[-1], "overload")  # the 10th in flight refused: cut now
    assert limit.current == int(10 * BACKOFF) == 7
    assert limit.release(tickets[-2], "overload")  # sent before the cut: already answered
    assert limit.current == 7
    assert limit.stats.cuts == 1
    assert limit.stats.overloads == 2
    for ticket in tickets[:-2]:
        limit.release(ticket, "ok", 0.02)  # answers of the old round teach nothing
    assert limit.current == 7


def test_overload_cuts_below_what_was_in_flight_when_refused() -> None:
    """A server allowing 3 at once refuses the 4th: the limit goes to 3, not 0.7 x 10."""
    limit = AdaptiveLimit(maximum=16, initial=10)
    tickets = fill(limit)
    assert limit.release(tickets[3], "overload")
    assert limit.current == 3


def test_a_lone_refused_request_is_a_rate_limit_and_backs_off() -> None:
    limit = AdaptiveLimit(maximum=4)
    ticket = limit.acquire()
    assert ticket is not None
    assert not limit.release(ticket, "overload")  # alone and refused: back off
    assert limit.current == 1  # and the limit drops to 1
    ticket = limit.acquire()
    assert ticket is not None
    assert not limit.release(ticket, "overload")  # nothing left to cut: back off
    assert limit.current == 1


def test_a_429_after_the_limit_rose_again_is_cut_again() -> None:
    """A new round (a round at half the limit, growth) is not a cut: a refusal after it
    cuts again instead of being taken as already answered."""
    limit = AdaptiveLimit(maximum=16, initial=8)
    tickets = fill(limit)
    assert limit.release(tickets[-1], "overload")  # cut to 5
    for ticket in tickets[:-1]:
        limit.release(ticket, "ok", 0.02)
    grow_to(limit, 6)
    cuts = limit.stats.cuts
    tickets = fill(limit)
    assert limit.release(tickets[-1], "overload")
    assert limit.stats.cuts == cuts + 1


def test_other_failures_say_nothing_about_load() -> None:
    limit = AdaptiveLimit(maximum=8)
    grow_to(limit, 8)
    for ticket in fill(limit):
        assert not limit.release(ticket, "other")
    assert limit.current == 8
    assert limit.stats.cuts == 0


def test_a_round_of_slow_answers_cuts_the_limit_but_not_below_the_floor() -> None:
    limit = AdaptiveLimit(maximum=16, initial=8)
    limit._slow_start = False  # a limit of 8 reached and held
    for _ in range(3):  # rounds at 20 ms: the baseline
        for ticket in fill(limit):
            limit.release(ticket, "ok", 0.020)
    level = limit.current  # grown a little meanwhile
    for ticket in fill(limit):  # the round's mean above 1.5x the fastest round + 3 ms
        limit.release(ticket, "ok", 0.020 * 1.5 + 0.004)
    assert limit.current == int(level * BACKOFF)
    assert limit.stats.overloads == 0
    assert limit.stats.cuts == 1
    for _ in range(10):  # ever slower rounds: latency alone stops at the floor
        for ticket in fill(limit):
            limit.release(ticket, "ok", 1.0)
    assert limit.current == LATENCY_FLOOR


def test_jitter_below_the_tolerance_is_not_load() -> None:
    limit = AdaptiveLimit(maximum=16)
    grow_to(limit, 8, rtt=0.020)
    for _ in range(20):
        for ticket in fill(limit):
            limit.release(ticket, "ok", 0.020 * 1.5 + 0.002)  # within tolerance + slack
    assert limit.stats.cuts == 0
    assert limit.current == 16


def test_the_trouble_level_is_probed_rarely_and_ever_more_rarely() -> None:
    limit = AdaptiveLimit(maximum=16, initial=5)
    tickets = fill(limit)
    limit.release(tickets[-1], "overload")  # trouble at 5: cut to 3
    for ticket in tickets[1:]:
        limit.release(ticket, "ok", 0.02)
    assert limit.current == 3
    grow_to(limit, 4)  # additive increase up to just below the trouble level

    def clean_answers_until_probe() -> int:
        n = 0
        while limit.current < 5:
            for ticket in fill(limit):
                limit.release(ticket, "ok", 0.02)
                n += 1
        return n

    first = clean_answers_until_probe()
    assert PROBE_AFTER <= first < PROBE_AFTER + 5
    tickets = fill(limit)  # the probe at 5 fails again
    limit.release(tickets[-1], "overload")
    for ticket in tickets[1:]:
        limit.release(ticket, "ok", 0.02)
    grow_to(limit, 4)
    second = clean_answers_until_probe()
    assert 2 * PROBE_AFTER <= second < 2 * PROBE_AFTER + 5


def test_a_clean_stretch_at_the_trouble_level_forgets_it() -> None:
    limit = AdaptiveLimit(maximum=16, initial=5)
    tickets = fill(limit)
    limit.release(tickets[-1], "overload")
    for ticket in tickets[1:]:
        limit.release(ticket, "ok", 0.02)
    grow_to(limit, 5)  # probed, and the server now copes
    grow_to(limit, 9)  # after a clean stretch there, growth is normal again
    assert limit.stats.cuts == 1


def test_after_trouble_a_round_at_half_the_limit_refreshes_the_baseline() -> None:
    """Every RTT_REFRESH_EVERY answers, one round at half the limit, then back: the fastest
    round trip is measured again on a lightly loaded server."""
    limit = AdaptiveLimit(maximum=16, initial=8)
    tickets = fill(limit)
    limit.release(tickets[-1], "overload")  # trouble at 8: limit 5, slow start over
    for ticket in tickets[:-1]:
        limit.release(ticket, "ok", 0.02)
    levels = []
    answers = 0
    while answers < 2 * RTT_REFRESH_EVERY + RTT_REFRESH_EVERY // 2:
        for ticket in fill(limit):
            limit.release(ticket, "ok", 0.02)
            answers += 1
        levels.append(limit.current)
    dips = [i for i in range(1, len(levels)) if levels[i] < levels[i - 1]]
    assert len(dips) == 2  # one dip per RTT_REFRESH_EVERY answers
    for i in dips:
        assert levels[i] == levels[i - 1] // 2
        assert levels[i + 1] >= levels[i - 1]  # and back after that round
    assert limit.stats.cuts == 1  # dips are not cuts


@pytest.mark.parametrize(
    ("concurrency", "maximum", "message"),
    [
        (0, 16, "concurrency must be None"),
        (-1, 16, "concurrency must be None"),
        (1.5, 16, "concurrency must be None"),
        ("4", 16, "concurrency must be None"),
        (True, 16, "concurrency must be None"),
        (17, 16, "concurrency=17 is above max_concurrency=16"),
    ],
)
def test_concurrency_checked(concurrency: object, maximum: int, message: str) -> None:
    with pytest.raises(ConpeekConfigError, match=message):
        check_concurrency(concurrency, maximum)  # type: ignore[arg-type]


def test_make_limit() -> None:
    assert isinstance(make_limit(None, 16), AdaptiveLimit)
    assert make_limit(None, 16).maximum == 16
    pinned = make_limit(3, 16)
    assert not pinned.adaptive
    assert pinned.current == pinned.maximum == 3
    assert not make_limit(None, 1).adaptive  # max_concurrency=1: sequential, nothing to adapt


# -- whole extracts in simulated time ---------------------------------------------------------


@dataclass
class ModelServer:
    """``capacity`` requests at once; beyond it, a 429 at once or a place in the queue.
    Each answer takes ``latency`` plus a random part up to ``jitter`` (seeded)."""

    capacity: int
    mode: str  # "429" or "queue"
    latency: float = 0.025
    jitter: float = 0.0
    busy: list[float] = field(default_factory=list)  # finish times of requests in service
    answered_429: int = 0
    requests: int = 0
    rng: random.Random = field(default_factory=lambda: random.Random(7))

    def arrive(self, now: float) -> tuple[float, str]:
        """When the answer is ready, and what it is."""
        self.requests += 1
        took = self.latency + self.rng.uniform(0, self.jitter)
        self.busy = [t for t in self.busy if t > now]
        if len(self.busy) < self.capacity:
            self.busy.append(now + took)
            return now + took, "ok"
        if self.mode == "429":
            self.answered_429 += 1
            return now + 0.0005, "overload"
        start = sorted(self.busy)[len(self.busy) - self.capacity]  # FIFO: the next free slot
        self.busy.append(start + took)
        return start + took, "ok"


def simulate(server: ModelServer, limit: ConcurrencyLimit, pages: int) -> float:
    """Fetch ``pages`` pages as the client does (a 429 absorbed by a cut is repeated at once,
    one that is not waits 0.5 s); returns the simulated seconds it took."""
    now, seq, done = 0.0, 0, 0
    waiting, in_flight = pages, []  # pages not yet sent; (ready, seq, ticket, sent, outcome)
    while done < pages:
        while waiting and limit._in_flight < limit.current:
            ticket = limit.acquire()
            assert ticket is not None
            ready, outcome = server.arrive(now)
            heapq.heappush(in_flight, (ready, seq, ticket, now, outcome))
            seq += 1
            waiting -= 1
        ready, _, ticket, sent, outcome = heapq.heappop(in_flight)
        now = ready
        absorbed = limit.release(ticket, outcome, ready - sent)
        if outcome == "ok":
            done += 1
        elif absorbed:
            waiting += 1
        else:
            now += 0.5
            waiting += 1
    return now


@pytest.mark.parametrize("pages", [30, 120, 1000])
def test_server_allowing_two_in_flight_few_429s_near_its_ceiling(pages: int) -> None:
    """The issue's case: 429 beyond 2 in flight, no Retry-After. Every page, few 429s,
    and most of what 2 in flight allow."""
    server = ModelServer(capacity=2, mode="429")
    took = simulate(server, AdaptiveLimit(16), pages)
    ceiling = pages * server.latency / 2
    assert server.answered_429 <= max(3, 0.1 * server.requests)
    assert ceiling / took >= 0.8


@pytest.mark.parametrize("capacity", [1, 4, 8])
def test_server_whose_latency_grows_with_load(capacity: int) -> None:
    """Beyond ``capacity`` requests queue: the limit settles near it (latency stays near
    the server's own), and throughput stays near what the server can do."""
    server = ModelServer(capacity=capacity, mode="queue")
    limit = AdaptiveLimit(16)
    took = simulate(server, limit, 1000)
    assert (1000 * server.latency / capacity) / took >= 0.9
    # Near the capacity, but latency alone never goes below LATENCY_FLOOR.
    assert limit.current <= max(LATENCY_FLOOR, capacity * 2)


@pytest.mark.parametrize(("latency", "jitter"), [(0.02, 0.04), (0.05, 0.045), (0.06, 0.05)])
def test_answer_times_that_vary_without_load_keep_the_limit_high(
    latency: float, jitter: float
) -> None:
    """Answer times spread widely but independent of load (20-60 ms, 50-95 ms...): no reason
    to send fewer; the limit must not sink towards 1."""
    server = ModelServer(capacity=1000, mode="429", latency=latency, jitter=jitter)
    limit = AdaptiveLimit(16)
    took = simulate(server, limit, 3000)
    mean = latency + jitter / 2
    assert limit.current >= 12
    assert (3000 * mean / 16) / took >= 0.8


def test_fast_server_reaches_the_cap_quickly() -> None:
    server = ModelServer(capacity=1000, mode="429")
    took = simulate(server, AdaptiveLimit(16), 120)
    ideal = 120 * server.latency / 16
    assert took <= ideal + 4 * server.latency  # slow start: a few round trips
    assert server.answered_429 == 0


def test_a_try_that_took_its_slot_alone_but_was_refused_among_others_is_not_lone() -> None:
    """Threads may send out of order: a try that took the first slot can reach the server
    after two later ones and be refused as the third. Not a rate limit: the limit is cut and
    the try repeated at once, no backoff."""
    limit = AdaptiveLimit(maximum=16, initial=4)
    first = limit.acquire()
    later = [limit.acquire(), limit.acquire()]
    assert first is not None
    assert all(t is not None for t in later)
    assert first.in_flight == 1
    assert first.peak == 3
    assert limit.release(first, "overload")  # absorbed: repeat at once
    assert limit.current == 2  # 3 were in flight when it was refused: 2 were allowed
    lone = AdaptiveLimit(maximum=16)
    ticket = lone.acquire()
    assert ticket is not None
    assert not lone.release(ticket, "overload")  # truly alone: a rate limit, back off
