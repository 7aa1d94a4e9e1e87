"""ConpeekClient against the sandbox over real HTTP: auth, URLs, paging, filters, errors,
retries (on a fake clock), concurrency, has_at_least and secret hygiene."""

from __future__ import annotations

import http.server
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from email.utils import formatdate
from typing import Any

import pytest
from clienthelpers import clients
from fakeclock import FakeClock

from airflow_provider_conpeek import __version__
from airflow_provider_conpeek.client import ConpeekClient
from airflow_provider_conpeek.client.auth import new_session
from airflow_provider_conpeek.client.paging import flatten
from airflow_provider_conpeek.exceptions import (
    ConpeekAPIError,
    ConpeekAuthError,
    ConpeekBadRequestError,
    ConpeekConfigError,
    ConpeekNotFoundError,
    ConpeekPagingError,
    ConpeekTransientError,
)
from airflow_provider_conpeek.filters import (
    call_request_ids,
    contact_numbers,
    date_window,
    encode_filter,
    project_ids,
    voice_campaign_ids,
)
from airflow_provider_conpeek.hooks.conpeek import ConpeekHook
from airflow_provider_conpeek.testing.sandbox import (
    FaultConfig,
    FaultRule,
    RequestLogEntry,
    SandboxServer,
)

Factory = Callable[..., SandboxServer]
KEY = "sk-LEAK-7f3a9c1e5b2d"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def connect(connect_hook: Any, clock: FakeClock) -> Iterator[Callable[..., ConpeekClient]]:
    """Point connection ``conn_id`` at ``server``; a client on its settings, fake clock."""
    yield from clients(connect_hook, clock)


def api_log(server: SandboxServer) -> list[RequestLogEntry]:
    return [e for e in server.request_log if e.path.endswith("voice_campaign_request_summary")]


def asked(server: SandboxServer) -> list[tuple[int, int]]:
    """(offset, limit) of every API request, in arrival order."""
    return [(int(e.params["offset"][0]), int(e.params["limit"][0])) for e in api_log(server)]


def records(client: ConpeekClient, filters: Any = None, **kwargs: Any) -> list[dict[str, Any]]:
    return [r for page in client.iter_pages(filters, **kwargs) for r in page]


# -- auth, headers, URLs ------------------------------------------------------------------


def test_raw_key_user_agent_and_content_type(
    conpeek_sandbox_factory: Factory, connect: Callable[..., ConpeekClient]
) -> None:
    server = conpeek_sandbox_factory(records=5, api_key=KEY)
    client = connect(server)
    assert records(client, concurrency=1) == server.expected_records()
    (first, *_) = api_log(server)
    assert first.status == 200
    assert first.headers["Authorization"] == KEY  # raw, no "Bearer"
    assert first.headers["User-Agent"].startswith(f"airflow-provider-conpeek/{__version__} ")
    assert first.headers["Content-Type"] == "application/json"


@pytest.mark.parametrize("prefix", ["", "/api/v1_3"])
@pytest.mark.parametrize("trailing_slash", [False, True])
def test_base_url_joined_with_path(
    conpeek_sandbox_factory: Factory,
    connect: Callable[..., ConpeekClient],
    prefix: str,
    trailing_slash: bool,
) -> None:
    server = conpeek_sandbox_factory(records=3, path_prefix=prefix)
    host = server.url + ("/" if trailing_slash else "")
    client = connect(server, host=host)
    assert records(client) == server.expected_records()
    assert {e.path for e in api_log(server)} == {f"{prefix}/voice_campaign_request_summary"}
    assert all(e.status == 200 for e in api_log(server))
    assert client.settings.endpoint_url == f"{server.url}/voice_campaign_request_summary"


# -- paging -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "expected_calls"),
    [
        (0, [(0, 10)]),
        (1, [(0, 10), (1, 10)]),  # a short page is confirmed by one more request
        (9, [(0, 10), (9, 10)]),
        (10, [(0, 10), (10, 10)]),
        (11, [(0, 10), (10, 10), (11, 10)]),
        (35, [(0, 10), (10, 10), (20, 10), (30, 10), (35, 10)]),
    ],
)
def test_paging_exact_requests(
    conpeek_sandbox_factory: Factory,
    connect: Callable[..., ConpeekClient],
    n: int,
    expected_calls: list[tuple[int, int]],
) -> None:
    server = conpeek_sandbox_factory(records=n)
    client = connect(server)
    got = records(client, page_size=10, concurrency=1)
    assert got == server.expected_records()
    assert len(got) == n
    assert asked(server) == expected_calls


def test_default_page_size_is_100(
    conpeek_sandbox_factory: Factory, connect: Callable[..., ConpeekClient]
) -> None:
    server = conpeek_sandbox_factory(records=250)
    client = connect(server)
    assert records(client, concurrency=1) == server.expected_records()
    assert asked(server) == [(0, 100), (100, 100), (200, 100), (250, 100)]


@pytest.mark.parametrize("concurrency", [2, 4, 8])
def test_concurrent_paging_reads_every_record_once(
    conpeek_sandbox_factory: Factory, connect: Callable[..., ConpeekClient], concurrency: int
) -> None:
    server = conpeek_sandbox_factory(records=1234)
    client = connect(server)
    got = records(client, page_size=50, concurrency=concurrency)
    assert got == server.expected_records()
    needed = [(o, 50) for o in range(0, 1201, 50)] + [(1234, 50)]
    assert set(needed) <= set(asked(server))
    assert asked(server)[0] == (0, 50)  # nothing speculative before the first full page
    # Speculation overshoots the end by fewer than `concurrency` pages.
    assert len(asked(server)) < len(needed) + concurrency


@pytest.mark.parametrize("concurrency", [1, 4])
def test_server_page_cap_loses_nothing(
    conpeek_sandbox_factory: Factory, connect: Callable[..., ConpeekClient], concurrency: int
) -> None:
    server = conpeek_sandbox_factory(records=95, max_limit=20)
    client = connect(server)
    got = records(client, page_size=50, concurrency=concurrency)
    assert got == server.expected_records()
    assert len({r["call_request_id"] for r in got}) == 95
    if concurrency == 1:
        assert asked(server) == [(0, 50), (20, 50), (40, 20), (60, 20), (80, 20), (95, 20)]


@pytest.mark.parametrize("concurrency", [1, 4])
def test_server_ignoring_offset_raises(
    conpeek_sandbox_factory: Factory, connect: Callable[..., ConpeekClient], concurrency: int
) -> None:
    server = conpeek_sandbox_factory(
        records=100, faults=FaultConfig(rules=[FaultRule("ignore_offset")])
    )
    client = connect(server)
    with pytest.raises(ConpeekPagingError, match="ignore 'offset'"):
        records(client, page_size=10, concurrency=concurrency)
    assert len(asked(server)) <= 2 + concurrency


def test_more_pages_than_max_pages_raises(
    conpeek_sandbox_factory: Factory, connect: Callable[..., ConpeekClient]
) -> None:
    server = conpeek_sandbox_factory(records=100)
    with pytest.raises(ConpeekPagingError, match="max_pages=3"):
        records(connect(server, max_pages=3), page_size=10, concurrency=1)
    # Exactly max_pages pages of data (plus the empty page that ends them) is fine.
    server.clear_log()
    client = connect(server, max_pages=10)
    assert records(client, page_size=10, concurrency=1) == server.expected_records()
    # The ceiling also comes from the connection extra.
    with pytest.raises(ConpeekPagingError, match="max_pages=2"):
        records(connect(server, extra={"max_pages": 2}), page_size=10)


@pytest.mark.parametrize(("concurrency", "bound"), [(1, 1), (3, 3), (8, 8), (None, 16)])
def test_memory_is_bounded_by_pages_in_flight(
    conpeek_sandbox_factory: Factory,
    connect: Callable[..., ConpeekClient],
    concurrency: int | None,
    bound: int,
) -> None:
    server = conpeek_sandbox_factory(records=1000)
    client = connect(server)
    it = flatten(client.iter_pages(page_size=10, concurrency=concurrency))
    assert next(it) == server.expected_records()[0]
    time.sleep(0.2)  # let any runaway prefetching show in the log
    # Never more than the limit (max_concurrency when adaptive) ahead of the page being read.
    assert len(api_log(server)) <= bound + 1
    it.close()
    settled = len(api_log(server))
    time.sleep(0.1)
    assert len(api_log(server)) == settled  # closing the iterator stops every worker


# -- adaptive concurrency (the default) ------------------------------------------------------


def test_server_allowing_two_in_flight_every_record_few_429s(
    conpeek_sandbox_factory: Factory, connect: Callable[..., ConpeekClient], clock: FakeClock
) -> None:
    """The issue's case: 429 beyond 2 requests at once, no Retry-After. The limit finds 2:
    every record once, in order, and only its probes of 3 are refused."""
    faults = FaultConfig(latency=0.02, capacity=2)  # answers overlap: slow start overshoots
    server = conpeek_sandbox_factory(records=12_000, days=1, faults=faults)
    got = records(connect(server), page_size=100)
    assert got == server.expected_records()
    log = api_log(server)
    refused = [e for e in log if e.fault == "capacity"]
    assert refused  # it did probe above 2
    assert len(refused) <= 0.1 * len(log)
    assert clock.waits() == []  # no 429 paused the extract: each lowered the limit


def test_server_allowing_two_in_flight_with_retry_after_pauses_as_asked(
    conpeek_sandbox_factory: Factory, connect: Callable[..., ConpeekClient], clock: FakeClock
) -> None:
    faults = FaultConfig(latency=0.05, capacity=2, capacity_retry_after="1")
    server = conpeek_sandbox_factory(records=3000, days=1, faults=faults)
    assert records(connect(server), page_size=100) == server.expected_records()
    refused = [e for e in api_log(server) if e.fault == "capacity"]
    assert refused
    assert clock.waits()  # a Retry-After is honoured as before
    assert set(clock.waits()) == {1.0}


def test_server_queueing_beyond_two_makes_the_limit_fall(
    conpeek_sandbox_factory: Factory, connect_hook: Any
) -> None:
    """Latency grows with load (no 429): with the real clock, rounds of slow answers cut
    the limit, and every record still arrives once, in order."""
    from airflow_provider_conpeek.client.limiter import AdaptiveLimit
    from airflow_provider_conpeek.client.paging import iter_pages

    faults = FaultConfig(latency=0.02, capacity=2, over_capacity="queue")
    server = conpeek_sandbox_factory(records=4000, days=1, faults=faults)
    slots = AdaptiveLimit(16)
    with ConpeekClient(connect_hook(server).settings) as client:

        def fetch(offset: int, limit: int) -> list[Any]:
            return client.fetch_page(offset=offset, limit=limit, slots=slots)

        got = [r for page in iter_pages(fetch, page_size=100, concurrency=slots) for r in page]
    assert got == server.expected_records()
    assert slots.stats.cuts >= 1
    assert slots.stats.overloads == 0
    assert max(e.in_flight for e in api_log(server)) <= 16


@pytest.mark.parametrize(
    ("extra", "concurrency", "bound"),
    [({}, None, 16), ({"max_concurrency": 4}, None, 4), ({}, 8, 8), ({}, 1, 1)],
)
def test_requests_beyond_the_end_are_bounded(
    conpeek_sandbox_factory: Factory,
    connect: Callable[..., ConpeekClient],
    extra: dict[str, Any],
    concurrency: int | None,
    bound: int,
) -> None:
    """The empty page that ends the data and the speculative ones beyond it: at most the
    limit in force, never more than max_concurrency."""
    server = conpeek_sandbox_factory(records=2000, days=1)
    got = records(connect(server, extra=extra), page_size=10, concurrency=concurrency)
    assert got == server.expected_records()
    beyond = [offset for offset, _ in asked(server) if offset >= 2000]
    assert 1 <= len(beyond) <= bound


def test_concurrency_above_max_concurrency_is_refused_before_any_request(
    conpeek_sandbox_factory: Factory, connect: Callable[..., ConpeekClient]
) -> None:
    server = conpeek_sandbox_factory(records=10)
    client = connect(server, extra={"max_concurrency": 3})
    with pytest.raises(ConpeekConfigError, match="concurrency=4 is above max_concurrency=3"):
        records(client, concurrency=4)
    assert api_log(server) == []


# -- filters ------------------------------------------------------------------------------


def _filter_cases(server: SandboxServer) -> list[list[dict[str, Any]]]:
    store = server.store
    r5, r6, r500 = store.record(5), store.record(6), store.record(500)
    created, closed = r500["created_date"], r500["closed_date"]
    cases: list[list[dict[str, Any]]] = []
    for op in ("gt", "gte", "lt", "lte"):
        cases.append([{"property": "created_date", "operator": op, "value": created}])
        cases.append([{"property": "closed_date", "operator": op, "value": closed}])
    cases += [
        [
            {
                "property": "contact_number_list",
                "value": [r5["contact_number"], r6["contact_number"]],
            }
        ],
        [{"property": "voice_campaign_id_list", "value": ["vc-101", "vc-104"]}],
        [{"property": "project_id_list", "value": [11, 14]}],
        [{"property": "call_request_id_list", "value": [r5["call_request_id"], "cr-nope"]}],
        [
            {"property": "created_date", "operator": "gte", "value": "2026-01-02 00:00:00"},
            {"property": "created_date", "operator": "lt", "value": "2026-01-03 00:00:00"},
            {"property": "project_id_list", "value": [13]},
            {"property": "closed_date", "operator": "lte", "value": "2026-01-02 18:00:00"},
        ],
        [*date_window("2026-01-01 06:00:00", "2026-01-01 12:00:00"), *voice_campaign_ids("vc-103")],
        [*contact_numbers(r500["contact_number"]), *project_ids(r500["project_id"])],
        [*call_request_ids(r5["call_request_id"], r500["call_request_id"])],
    ]
    return cases


def test_every_filter_property_and_operator(
    conpeek_sandbox_factory: Factory, connect: Callable[..., ConpeekClient]
) -> None:
    server = conpeek_sandbox_factory(records=1000)
    client = connect(server)
    for filters in _filter_cases(server):
        server.clear_log()
        expected = server.expected_records(filters)
        assert expected, filters  # each case selects something, so it can fail
        assert len(expected) < 1000 or filters[0]["property"] == "closed_date", filters
        assert records(client, filters, page_size=97) == expected, filters
        log = api_log(server)
        assert all(e.status == 200 for e in log)
        assert [json.loads(e.params["filter"][0]) for e in log] == [filters] * len(log)


WEIRD = ["a&b=c+d#e? f", "zażółć gęślą jaźń ✓", "%41%2F", 'q"uo\\te', "x;y/z:1,2", "🙂"]


@pytest.mark.parametrize("concurrency", [1, 4])
def test_filter_encoded_exactly_once(
    conpeek_sandbox_factory: Factory, connect: Callable[..., ConpeekClient], concurrency: int
) -> None:
    server = conpeek_sandbox_factory(records=50)
    client = connect(server)
    filters = [{"property": "call_request_id_list", "value": WEIRD}]
    assert records(client, filters, concurrency=concurrency) == []
    (entry,) = api_log(server)[:1]
    assert entry.status == 200
    assert entry.query == f"limit=100&offset=0&filter={encode_filter(filters)}"
    assert entry.params["filter"] == [
        json.dumps(filters, ensure_ascii=False, separators=(",", ":"))
    ]
    assert json.loads(entry.params["filter"][0]) == filters
    assert sorted(entry.params) == ["filter", "limit", "offset"]


def test_invalid_filters_rejected_before_any_request(
    conpeek_sandbox: SandboxServer, connect: Callable[..., ConpeekClient]
) -> None:
    client = connect(conpeek_sandbox)
    with pytest.raises(ConpeekConfigError, match="contact_number"):
        client.iter_pages([{"property": "contact_number", "value": "1"}])
    with pytest.raises(ConpeekConfigError, match="page_size"):
        client.iter_pages(None, page_size=0)
    with pytest.raises(ConpeekConfigError, match="concurrency"):
        client.iter_pages(None, page_size=10, concurrency=0)
    assert api_log(conpeek_sandbox) == []


# -- errors -------------------------------------------------------------------------------


def test_400_carries_status_and_server_body(
    conpeek_sandbox: SandboxServer, connect: Callable[..., ConpeekClient]
) -> None:
    client = connect(conpeek_sandbox)
    bogus = encode_filter([{"property": "nonsense", "value": [1]}])
    with pytest.raises(ConpeekBadRequestError) as info:
        client.fetch_page(offset=0, limit=10, encoded_filter=bogus)
    err = info.value
    assert err.status == 400
    assert "unknown property 'nonsense'" in err.body
    assert "unknown property 'nonsense'" in str(err)
    assert "HTTP 400" in str(err)
    assert len(api_log(conpeek_sandbox)) == 1  # never retried
    with pytest.raises(ConpeekBadRequestError, match="offset must be an integer"):
        client.fetch_page(offset=-1, limit=10)


def test_401_names_the_connection_never_the_key(
    conpeek_sandbox_factory: Factory, connect: Callable[..., ConpeekClient]
) -> None:
    server = conpeek_sandbox_factory(records=5, api_key="the-right-key")
    client = connect(server, "conpeek_wrong_key", password=KEY)
    with pytest.raises(ConpeekAuthError) as info:
        records(client)
    err = info.value
    assert err.status == 401
    assert "conpeek_wrong_key" in str(err)
    assert KEY not in str(err)
    assert KEY not in err.body
    assert KEY not in err.url
    assert len(api_log(server)) == 1


class _Status403(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"error": "forbidden"}'
        self.send_response(403)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_403_is_an_auth_error(
    conpeek_sandbox: SandboxServer, connect: Callable[..., ConpeekClient]
) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Status403)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/api"
        client = connect(conpeek_sandbox, "conpeek_forbidden", host=url, password=KEY)
        with pytest.raises(ConpeekAuthError, match="conpeek_forbidden") as info:
            client.fetch_page(offset=0, limit=1)
        assert info.value.status == 403
        assert KEY not in str(info.value)
    finally:
        server.shutdown()
        server.server_close()


def test_404_says_the_base_url_is_probably_wrong(
    conpeek_sandbox: SandboxServer, connect: Callable[..., ConpeekClient]
) -> None:
    base = conpeek_sandbox.url.removesuffix("/api/v1_3")  # path prefix forgotten
    client = connect(conpeek_sandbox, host=base)
    with pytest.raises(ConpeekNotFoundError) as info:
        records(client)
    message = str(info.value)
    assert info.value.status == 404
    assert "base URL" in message
    assert "probably wrong" in message
    assert f"{base}/voice_campaign_request_summary?limit=100&offset=0" in message


def test_malformed_body_is_a_paging_error(
    conpeek_sandbox_factory: Factory, connect: Callable[..., ConpeekClient]
) -> None:
    server = conpeek_sandbox_factory(
        records=5, faults=FaultConfig(rules=[FaultRule("malformed", first=1)])
    )
    with pytest.raises(ConpeekPagingError, match="Malformed response"):
        records(connect(server))


# -- retries ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["429", "500", "502", "503", "drop"])
def test_transient_failures_are_retried(
    conpeek_sandbox_factory: Factory, connect: Callable[..., ConpeekClient], kind: str
) -> None:
    server = conpeek_sandbox_factory(
        records=30, faults=FaultConfig(rules=[FaultRule(kind, first=2)])
    )
    client = connect(server)
    assert records(client, page_size=20, concurrency=1) == server.expected_records()
    assert asked(server) == [(0, 20), (0, 20), (0, 20), (20, 20), (30, 20)]
    assert [e.fault for e in api_log(server)[:3]] == [kind, kind, None]


def test_read_timeout_is_retried(
    conpeek_sandbox_factory: Factory, connect: Callable[..., ConpeekClient]
) -> None:
    server = conpeek_sandbox_factory(
        records=5, faults=FaultConfig(rules=[FaultRule("stall", first=1, stall_seconds=3)])
    )
    client = connect(server, read_timeout=0.3)
    assert records(client, concurrency=1) == server.expected_records()
    # The stalled request is logged only when the sandbox answers it (after 3 s): the first
    # logged request is the retry, so the client gave up on the stall and did not wait.
    assert asked(server) == [(0, 100), (5, 100)]
    assert [e.fault for e in api_log(server)] == [None, None]


@pytest.mark.parametrize(("kind", "status"), [("500", 500), ("429", 429), ("drop", None)])
def test_tries_are_capped(
    conpeek_sandbox_factory: Factory,
    connect: Callable[..., ConpeekClient],
    clock: FakeClock,
    kind: str,
    status: int | None,
) -> None:
    server = conpeek_sandbox_factory(records=5, faults=FaultConfig(rules=[FaultRule(kind)]))
    client = connect(server, max_retries=2)
    with pytest.raises(ConpeekTransientError, match="after 3 tries") as info:
        records(client, concurrency=1)
    assert info.value.status == status
    assert len(api_log(server)) == 3
    assert len(clock.waits()) == 2  # one wait before each retry


def test_adaptive_lone_429_is_a_rate_limit_and_backs_off(
    conpeek_sandbox_factory: Factory, connect: Callable[..., ConpeekClient], clock: FakeClock
) -> None:
    """Adaptive (the default): a 429 for the only request in flight says "too fast", not "too
    many at once": it backs off like any retry (the limit drops to 1), within the budget."""
    server = conpeek_sandbox_factory(records=5, faults=FaultConfig(rules=[FaultRule("429")]))
    client = connect(server, max_retries=2)
    with pytest.raises(ConpeekTransientError, match="after 3 tries"):
        records(client)
    assert len(api_log(server)) == 3
    assert len(clock.waits()) == 2


def test_max_retries_from_extra_and_zero_disables(
    conpeek_sandbox_factory: Factory, connect: Callable[..., ConpeekClient], clock: FakeClock
) -> None:
    server = conpeek_sandbox_factory(records=5, faults=FaultConfig(rules=[FaultRule("503")]))
    with pytest.raises(ConpeekTransientError, match="after 1 tries"):
        records(connect(server, extra={"max_retries": 0}))
    assert len(api_log(server)) == 1
    assert clock.waits() == []


def test_backoff_grows_exponentially(
    conpeek_sandbox_factory: Factory, connect: Callable[..., ConpeekClient], clock: FakeClock
) -> None:
    server = conpeek_sandbox_factory(
        records=3, faults=FaultConfig(rules=[FaultRule("500", first=3)])
    )
    client = connect(server)  # base wait 0.5 s, equal jitter: [0.25, 0.5], [0.5, 1], [1, 2]
    assert records(client, concurrency=1) == server.expected_records()
    first, second, third = clock.waits()
    assert 0.25 <= first <= 0.5
    assert 0.5 <= second <= 1.0
    assert 1.0 <= third <= 2.0


def test_retry_after_seconds_is_honoured(
    conpeek_sandbox_factory: Factory, connect: Callable[..., ConpeekClient], clock: FakeClock
) -> None:
    server = conpeek_sandbox_factory(
        records=3, faults=FaultConfig(rules=[FaultRule("429", retry_after="7", first=1)])
    )
    client = connect(server, max_retry_wait=30)
    assert records(client, concurrency=1) == server.expected_records()
    assert clock.waits() == [7.0]


def test_retry_after_http_date_is_honoured(
    conpeek_sandbox_factory: Factory, connect: Callable[..., ConpeekClient], clock: FakeClock
) -> None:
    header = formatdate((clock.now() + timedelta(seconds=12)).timestamp(), usegmt=True)
    server = conpeek_sandbox_factory(
        records=3, faults=FaultConfig(rules=[FaultRule("503", retry_after=header, first=1)])
    )
    client = connect(server, max_retry_wait=30)
    assert records(client, concurrency=1) == server.expected_records()
    assert clock.waits() == [12.0]  # measured from the clock's "now", not the system's


def test_retry_after_is_capped_by_max_retry_wait(
    conpeek_sandbox_factory: Factory, connect: Callable[..., ConpeekClient], clock: FakeClock
) -> None:
    server = conpeek_sandbox_factory(
        records=3, faults=FaultConfig(rules=[FaultRule("429", retry_after="3600", first=1)])
    )
    client = connect(server, max_retry_wait=0.3)
    assert records(client, concurrency=1) == server.expected_records()
    assert clock.waits() == [pytest.approx(0.3)]


PAST = formatdate(datetime(2000, 1, 1, tzinfo=timezone.utc).timestamp(), usegmt=True)


@pytest.mark.parametrize("value", ["0", "-3", "soon", "", "nan", PAST])
def test_unusable_retry_after_falls_back_to_backoff(
    conpeek_sandbox_factory: Factory,
    connect: Callable[..., ConpeekClient],
    clock: FakeClock,
    value: str,
) -> None:
    server = conpeek_sandbox_factory(
        records=3, faults=FaultConfig(rules=[FaultRule("429", retry_after=value, first=1)])
    )
    client = connect(server, max_retry_wait=0.2)  # backoff: 0.1..0.2 s before retry 1
    assert records(client, concurrency=1) == server.expected_records()
    (wait,) = clock.waits()
    assert 0.1 <= wait <= 0.2


# -- concurrency --------------------------------------------------------------------------


@pytest.mark.parametrize("concurrency", [4, 8])
def test_concurrent_with_faults_equals_sequential(
    conpeek_sandbox_factory: Factory, connect: Callable[..., ConpeekClient], concurrency: int
) -> None:
    faults = FaultConfig(
        seed=concurrency,
        rules=[
            FaultRule("500", probability=0.15),
            FaultRule("429", probability=0.1),
            FaultRule("503", probability=0.05, retry_after="0"),
            FaultRule("drop", probability=0.05),
        ],
    )
    server = conpeek_sandbox_factory(records=2000, faults=faults)
    filters = date_window("2026-01-01 12:00:00", "2026-01-03 06:00:00")
    client = connect(server, max_retries=20)
    concurrent = records(client, filters, page_size=37, concurrency=concurrency)
    assert {e.fault for e in api_log(server)} >= {"500", "429", "drop"}  # faults did happen
    sequential = records(client, filters, page_size=37, concurrency=1)
    assert concurrent == sequential == server.expected_records(filters)


def test_retry_after_holds_every_request_of_the_client(
    conpeek_sandbox_factory: Factory, connect: Callable[..., ConpeekClient], clock: FakeClock
) -> None:
    # Thread "limited" gets a 429 with Retry-After: 2 and is held asleep; meanwhile another
    # request of the same client must wait for the gate too before it is sent.
    faults = FaultConfig(rules=[FaultRule("429", retry_after="2", offsets=[0], times=1)])
    server = conpeek_sandbox_factory(records=30, faults=faults)
    client = connect(server, max_retry_wait=5)
    asleep, release = threading.Event(), threading.Event()
    log_at_sleep: dict[str, int] = {}

    def on_sleep(name: str, seconds: float) -> None:
        log_at_sleep[name] = len(api_log(server))
        if name == "limited":
            asleep.set()
            assert release.wait(10)

    clock.on_sleep = on_sleep
    pages: dict[str, list[Any]] = {}
    limited = threading.Thread(
        target=lambda: pages.update(first=client.fetch_page(offset=0, limit=10)),
        name="limited",
    )
    limited.start()
    assert asleep.wait(10)
    pages["second"] = client.fetch_page(offset=10, limit=10)
    release.set()
    limited.join(10)
    expected = server.expected_records()
    assert pages == {"first": expected[:10], "second": expected[10:20]}
    me = threading.current_thread().name
    assert sorted(clock.sleeps) == sorted([("limited", 2.0), (me, 2.0)])
    assert log_at_sleep[me] == 1  # this thread slept before sending its request
    assert asked(server)[1:] == [(10, 10), (0, 10)]


# -- has_at_least ---------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "expected"), [(1, True), (17, True), (18, False), (500, False)])
def test_has_at_least_sends_one_request(
    conpeek_sandbox_factory: Factory, connect: Callable[..., ConpeekClient], n: int, expected: bool
) -> None:
    server = conpeek_sandbox_factory(records=100)
    filters = project_ids(13)
    total = len(server.expected_records(filters))
    assert total == 17  # the parametrization above hinges on it
    client = connect(server)
    assert client.has_at_least(filters, n) is expected
    (entry,) = api_log(server)
    assert entry.query == f"limit=1&offset={n - 1}&filter={encode_filter(filters)}"


def test_has_at_least_without_filters_and_bad_counts(
    conpeek_sandbox_factory: Factory, connect: Callable[..., ConpeekClient]
) -> None:
    server = conpeek_sandbox_factory(records=10)
    client = connect(server)
    assert client.has_at_least(None, 10) is True
    assert client.has_at_least([], 11) is False
    assert [e.query for e in api_log(server)] == ["limit=1&offset=9", "limit=1&offset=10"]
    for bad in (0, -1, 1.5, True, "3"):
        with pytest.raises(ConpeekConfigError, match="min_records"):
            client.has_at_least(None, bad)  # type: ignore[arg-type]
    assert len(api_log(server)) == 2


# -- secrets ------------------------------------------------------------------------------


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    import http.client

    caplog.set_level(logging.DEBUG)
    for name in ("urllib3", "requests", "airflow_provider_conpeek"):
        caplog.set_level(logging.DEBUG, logger=name)
    old = http.client.HTTPConnection.debuglevel
    yield caplog
    http.client.HTTPConnection.debuglevel = old


def test_key_never_leaks(
    conpeek_sandbox_factory: Factory,
    connect: Callable[..., ConpeekClient],
    debug_logs: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    faults = FaultConfig(
        rules=[FaultRule("500", first=1), FaultRule("429", retry_after="0", first=2)]
    )
    server = conpeek_sandbox_factory(records=120, api_key=KEY, faults=faults)
    client = connect(server)
    assert records(client, page_size=50, concurrency=2) == server.expected_records()
    seen: list[str] = [repr(client), repr(client.settings), str(client.settings)]
    session = new_session(client.settings)
    seen += [repr(session.auth), repr(session), str(session.headers.get("Authorization"))]
    seen += [f"{e.path}?{e.query}" for e in server.request_log]
    wrong = connect(server, "conpeek_wrong", password=KEY + "x")
    with pytest.raises(ConpeekAuthError) as auth_err:
        wrong.fetch_page(offset=0, limit=1)
    seen += [str(auth_err.value), auth_err.value.body, auth_err.value.url, repr(auth_err.value)]
    server.set_faults(FaultConfig(rules=[FaultRule("500")]))
    with pytest.raises(ConpeekTransientError) as transient:
        client.fetch_page(offset=0, limit=1)
    seen += [str(transient.value), transient.value.body, transient.value.url]
    seen += [ConpeekHook("conpeek_wrong").test_connection()[1]]
    seen += [ConpeekHook("conpeek_default").test_connection()[1]]
    assert any("retry" in r.getMessage() for r in debug_logs.records)  # logging did happen
    assert any(r.name.startswith("urllib3") for r in debug_logs.records)
    out = capsys.readouterr()
    seen += [debug_logs.text, out.out, out.err]
    seen += [r.getMessage() for r in debug_logs.records]
    for text in seen:
        assert KEY not in text
    assert session.headers.get("Authorization") is None  # only added per request by the auth


def test_client_can_be_closed_and_reused(
    conpeek_sandbox_factory: Factory, connect: Callable[..., ConpeekClient]
) -> None:
    server = conpeek_sandbox_factory(records=30)
    client = connect(server)
    first = records(client, page_size=7, concurrency=3)
    client.close()
    assert records(client, page_size=7, concurrency=3) == first == server.expected_records()


def test_error_types_share_a_base() -> None:
    for cls in (ConpeekAuthError, ConpeekBadRequestError, ConpeekNotFoundError):
        assert issubclass(cls, ConpeekAPIError)
    assert issubclass(ConpeekTransientError, ConpeekAPIError)
