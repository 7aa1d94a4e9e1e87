"""Tests of the Conpeek sandbox server, its CLI and pytest fixtures (real HTTP)."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any
from urllib.parse import quote

import pytest
import requests
from processes import wait_for

from airflow_provider_conpeek.testing.cli import faults_from_argv
from airflow_provider_conpeek.testing.cli import main as cli_main
from airflow_provider_conpeek.testing.generation import GeneratedRecords
from airflow_provider_conpeek.testing.http_server import SandboxHandler
from airflow_provider_conpeek.testing.records import FilterError, RecordStore
from airflow_provider_conpeek.testing.sandbox import FaultConfig, FaultRule, SandboxServer

Factory = Callable[..., SandboxServer]
D1, D2, D3 = "2026-01-01", "2026-01-02", "2026-01-03"


def cond(prop: str, value: Any, op: str | None = None) -> dict[str, Any]:
    c: dict[str, Any] = {"property": prop, "value": value}
    if op is not None:
        c["operator"] = op
    return c


def get(
    server: SandboxServer,
    filters: list[dict[str, Any]] | None = None,
    session: requests.Session | None = None,
    key: str | None = None,
    **params: Any,
) -> requests.Response:
    if filters is not None:
        params["filter"] = json.dumps(filters, separators=(",", ":"))
    headers = {"Authorization": server.api_key if key is None else key}
    return (session or requests).get(server.endpoint_url, params=params, headers=headers)


def fetch_all(
    server: SandboxServer, filters: list[dict[str, Any]] | None = None, limit: int = 37
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    with requests.Session() as s:
        while True:
            r = get(server, filters, session=s, limit=limit, offset=len(out))
            assert r.status_code == 200, r.text
            page = r.json()["data"]
            out += page
            if len(page) < limit:
                return out


@pytest.fixture
def sb(conpeek_sandbox: SandboxServer) -> SandboxServer:
    return conpeek_sandbox


@pytest.fixture(scope="module")
def shared() -> Iterator[SandboxServer]:
    """Read-only server (no faults, no additions) shared by the filter tests."""
    with SandboxServer(1000, days=3) as server:
        yield server


@pytest.fixture(scope="module")
def all_records(shared: SandboxServer) -> list[dict[str, Any]]:
    return fetch_all(shared, limit=1000)


# -- basics ----------------------------------------------------------------------------
def test_fixture_server_and_response_format(sb: SandboxServer) -> None:
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/api/v1_3", sb.url)
    r = get(sb, limit=5)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json; charset=utf-8"
    assert int(r.headers["Content-Length"]) == len(r.content)
    data = r.json()["data"]
    assert [d["call_request_id"] for d in data] == [f"cr-0-{i:08d}" for i in range(5)]
    assert data[0]["created_date"] == "2026-01-01 00:00:00"
    assert set(data[0]) == {
        "call_request_id", "voice_campaign_id", "voice_campaign_name", "project_id",
        "contact_number", "state", "agent_name", "created_date", "closed_date",
        "duration_seconds",
    }  # fmt: skip
    # non-ASCII is sent unescaped as UTF-8
    body = fetch_all(sb, limit=1000)
    names = {d["voice_campaign_name"] for d in body} | {d["agent_name"] for d in body}
    assert any(not n.isascii() for n in names)
    raw = get(sb, limit=1000).content
    assert b"\\u" not in raw
    assert "ż".encode() in raw
    conn = json.loads(sb.airflow_connection_json())
    assert conn == {"conn_type": "conpeek", "host": sb.url, "password": "sandbox-key"}
    env = sb.airflow_connection_env("my_conn", read_timeout=5)
    assert json.loads(env["AIRFLOW_CONN_MY_CONN"])["extra"] == {"read_timeout": 5}


@pytest.mark.parametrize("key", ["", "wrong", "Bearer sandbox-key", "sandbox-key "])
def test_auth_401(sb: SandboxServer, key: str) -> None:
    r = get(sb, key=key)
    assert r.status_code == 401
    assert r.json()["error"] == "unauthorized"
    assert requests.get(sb.endpoint_url).status_code == 401  # no header at all


def test_404_and_empty_prefix(sb: SandboxServer, conpeek_sandbox_factory: Factory) -> None:
    h = {"Authorization": sb.api_key}
    for url in (sb.url + "/voice_campaign_request_summar", sb.url, sb.admin_url[:-9] + "/x"):
        r = requests.get(url, headers=h)
        assert r.status_code == 404, url
        assert r.json()["error"] == "not_found"
    bare = conpeek_sandbox_factory(records=10, path_prefix="")
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", bare.url)
    assert len(get(bare).json()["data"]) == 10
    assert (
        requests.get(bare.url + "/api/v1_3/voice_campaign_request_summary", headers=h).status_code
        == 404
    )
    assert requests.post(sb.endpoint_url, headers=h).status_code == 405


def test_limit_offset_slicing(shared: SandboxServer, all_records: list[dict[str, Any]]) -> None:
    assert len(all_records) == 1000
    assert len(get(shared).json()["data"]) == 100  # default limit
    assert get(shared, offset=5).json()["data"] == all_records[5:105]
    assert get(shared, limit=7, offset=995).json()["data"] == all_records[995:]
    assert get(shared, limit=1, offset=999).json()["data"] == all_records[999:]
    assert get(shared, limit=10, offset=1000).json()["data"] == []
    assert get(shared, limit=10**9).json()["data"] == all_records
    assert all_records == shared.expected_records([])
    keys = [(d["created_date"], d["call_request_id"]) for d in all_records]
    assert keys == sorted(keys)
    assert len({d["call_request_id"] for d in all_records}) == 1000


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=-1", "limit=abc", "limit=1.5", "limit=", "offset=-1", "offset=x",
     "offset=1e3", "limit=+5", "limit=5&limit=6"],
)  # fmt: skip
def test_bad_limit_offset_400(shared: SandboxServer, query: str) -> None:
    r = requests.get(f"{shared.endpoint_url}?{query}", headers={"Authorization": shared.api_key})
    assert r.status_code == 400
    body = r.json()
    assert body["error"] == "invalid_parameter"
    assert body["message"]


def test_max_limit_clamps(conpeek_sandbox_factory: Factory) -> None:
    server = conpeek_sandbox_factory(records=300, max_limit=50)
    assert len(get(server, limit=100).json()["data"]) == 50
    assert len(get(server, limit=20).json()["data"]) == 20
    page = get(server, limit=100, offset=260).json()["data"]
    assert [d["call_request_id"] for d in page] == [f"cr-0-{i:08d}" for i in range(260, 300)]


def test_reject_limit_above_answers_400(conpeek_sandbox_factory: Factory) -> None:
    server = conpeek_sandbox_factory(records=300, reject_limit_above=100)
    assert len(get(server, limit=100).json()["data"]) == 100
    r = get(server, limit=101)
    assert r.status_code == 400
    assert r.json() == {
        "error": "invalid_parameter",
        "message": "limit must be at most 100, got 101",
    }


# -- filters -----------------------------------------------------------------------------
def test_created_date_boundaries(shared: SandboxServer, all_records: list[dict[str, Any]]) -> None:
    # day 0: indices 0..332, day 1: 333..665, day 2: 666..999
    first_d2, last_d1 = all_records[333], all_records[332]
    assert first_d2["created_date"] == f"{D2} 00:00:00"
    assert last_d1["created_date"] == f"{D1} 23:59:59"
    assert all_records[999]["created_date"] == f"{D3} 23:59:59"

    def ids(filters: list[dict[str, Any]]) -> list[str]:
        return [d["call_request_id"] for d in fetch_all(shared, filters)]

    assert ids([cond("created_date", f"{D2} 00:00:00", "gte")])[0] == first_d2["call_request_id"]
    assert (
        ids([cond("created_date", f"{D2} 00:00:00", "gt")])[0]
        == all_records[334]["call_request_id"]
    )
    assert ids([cond("created_date", f"{D1} 23:59:59", "lte")])[-1] == last_d1["call_request_id"]
    assert (
        ids([cond("created_date", f"{D1} 23:59:59", "lt")])[-1]
        == all_records[331]["call_request_id"]
    )
    day = [
        cond("created_date", f"{D2} 00:00:00", "gte"),
        cond("created_date", f"{D3} 00:00:00", "lt"),
    ]
    assert ids(day) == [d["call_request_id"] for d in all_records[333:666]]
    empty = [
        cond("created_date", f"{D2} 00:00:00", "gt"),
        cond("created_date", f"{D2} 00:00:00", "lt"),
    ]
    assert ids(empty) == []


def test_closed_date_filter(shared: SandboxServer, all_records: list[dict[str, Any]]) -> None:
    open_recs = [d for d in all_records if d["closed_date"] is None]
    assert 20 <= len(open_recs) <= 90
    assert all(d["state"] == "open" for d in open_recs)
    compare: dict[str, Callable[[str, str], bool]] = {
        "gte": lambda c, v: c >= v,
        "gt": lambda c, v: c > v,
        "lt": lambda c, v: c < v,
        "lte": lambda c, v: c <= v,
    }
    for op, fn in compare.items():
        value = all_records[400]["closed_date"]
        got = fetch_all(shared, [cond("closed_date", value, op)])
        want = [
            d for d in all_records if d["closed_date"] is not None and fn(d["closed_date"], value)
        ]
        assert got, op
        assert got == want, op
        assert got == shared.expected_records([cond("closed_date", value, op)])
    # strings of this format compare like dates; check deltas too
    for d in all_records:
        if d["closed_date"]:
            closed = datetime.strptime(d["closed_date"], "%Y-%m-%d %H:%M:%S")
            created = datetime.strptime(d["created_date"], "%Y-%m-%d %H:%M:%S")
            assert 10 <= (closed - created).total_seconds() <= 900


def test_list_filters_and_and(shared: SandboxServer, all_records: list[dict[str, Any]]) -> None:
    nums = [all_records[3]["contact_number"], all_records[700]["contact_number"]]
    cases: list[tuple[list[dict[str, Any]], Callable[[dict[str, Any]], bool]]] = [
        ([cond("contact_number_list", nums)], lambda d: d["contact_number"] in nums),
        ([cond("contact_number", nums[0])], lambda d: d["contact_number"] == nums[0]),
        (
            [cond("voice_campaign_id_list", ["vc-101", "vc-104"])],
            lambda d: d["voice_campaign_id"] in ("vc-101", "vc-104"),
        ),
        ([cond("project_id_list", [12, 14])], lambda d: d["project_id"] in (12, 14)),
        (
            [cond("call_request_id_list", ["cr-0-00000007", "cr-0-00000500", "nope"])],
            lambda d: d["call_request_id"] in ("cr-0-00000007", "cr-0-00000500"),
        ),
        ([cond("project_id_list", [])], lambda d: False),
        (
            [cond("project_id_list", [11]), cond("created_date", f"{D2} 00:00:00", "gte"),
             cond("closed_date", f"{D3} 12:00:00", "lt")],
            lambda d: d["project_id"] == 11 and d["created_date"] >= f"{D2} 00:00:00"
            and d["closed_date"] is not None and d["closed_date"] < f"{D3} 12:00:00",
        ),
    ]  # fmt: skip
    for filters, pred in cases:
        want = [d for d in all_records if pred(d)]
        assert fetch_all(shared, filters) == want, filters
        assert shared.expected_records(filters) == want
    assert len(fetch_all(shared, cases[2][0])) > 100
    assert {d["project_id"] for d in all_records} == {11, 12, 13, 14}
    assert len({d["voice_campaign_id"] for d in all_records}) == 6
    assert all(re.fullmatch(r"\d{9}", d["contact_number"]) for d in all_records)


def test_vendor_encodeuri_filter(shared: SandboxServer, all_records: list[dict[str, Any]]) -> None:
    num = all_records[10]["contact_number"]
    raw = quote(json.dumps([cond("contact_number", num)], separators=(",", ":")), safe=":,")
    r = requests.get(
        f"{shared.endpoint_url}?filter={raw}", headers={"Authorization": shared.api_key}
    )
    assert r.status_code == 200
    assert [d["contact_number"] for d in r.json()["data"]] == [
        d["contact_number"] for d in all_records if d["contact_number"] == num
    ]


BAD_FILTERS = [
    "[{\"property\":\"agent_name\",\"value\":\"x\"}]",
    "[{\"property\":\"contact_number_list\",\"value\":\"500000000\"}]",
    "[{\"property\":\"contact_number_list\",\"value\":[500000000]}]",
    "[{\"property\":\"project_id_list\",\"value\":[\"11\"]}]",
    "[{\"property\":\"project_id_list\",\"value\":[true]}]",
    "[{\"property\":\"contact_number\",\"value\":[\"1\"]}]",
    "[{\"property\":\"created_date\",\"value\":\"2026-01-01 00:00:00\",\"operator\":\"eq\"}]",
    "[{\"property\":\"created_date\",\"value\":\"2026-01-01 00:00:00\"}]",
    "[{\"property\":\"project_id_list\",\"value\":[11],\"operator\":\"gte\"}]",
    "[{\"property\":\"closed_date\",\"value\":\"2026-01-01T00:00:00\",\"operator\":\"gt\"}]",
    "[{\"property\":\"closed_date\",\"value\":\"2026-13-01 00:00:00\",\"operator\":\"gt\"}]",
    "[{\"property\":\"created_date\",\"value\":\"2026-01-01\",\"operator\":\"gt\"}]",
    "[{\"property\":\"created_date\",\"value\":20260101,\"operator\":\"gt\"}]",
    "[{\"property\":\"project_id_list\"}]",
    "[{\"property\":\"project_id_list\",\"value\":[11],\"x\":1}]",
    "[\"created_date\"]",
    "{\"property\":\"project_id_list\",\"value\":[11]}",
    "[{\"property\":",
    "",
]  # fmt: skip


@pytest.mark.parametrize("raw", BAD_FILTERS)
def test_bad_filter_400(shared: SandboxServer, raw: str) -> None:
    r = requests.get(
        f"{shared.endpoint_url}?filter={quote(raw, safe='')}",
        headers={"Authorization": shared.api_key},
    )
    assert r.status_code == 400, raw
    body = r.json()
    assert body["error"] == "invalid_filter"
    assert isinstance(body["message"], str)
    assert body["message"]
    if raw.startswith("[{") and raw.endswith("}]"):
        with pytest.raises(FilterError):
            shared.expected_records(json.loads(raw))


def test_plus_sign_must_be_percent_encoded(shared: SandboxServer) -> None:
    value = f"{D2} 00:00:00".replace(" ", "+")  # a literal '+' decodes to a space: still valid
    raw = f'[{{"property":"created_date","operator":"gte","value":"{value}"}}]'
    r = requests.get(
        f"{shared.endpoint_url}?filter={raw}", headers={"Authorization": shared.api_key}
    )
    assert r.status_code == 200
    r = requests.get(
        f"{shared.endpoint_url}?filter={quote(raw, safe='')}",
        headers={"Authorization": shared.api_key},
    )
    assert r.status_code == 400  # '%2B' stays '+': not a valid date


# -- runtime additions / ground truth ----------------------------------------------------
def test_add_records_ordering(sb: SandboxServer) -> None:
    base = sb.expected_records([])
    sb.add_records([{"call_request_id": "added-1", "created_date": f"{D2} 00:00:00"}])
    r = requests.post(
        sb.admin_url + "/records",
        json=[
            {"call_request_id": "added-0", "created_date": f"{D1} 00:00:00", "closed_date": None},
            {"call_request_id": "added-2", "created_date": f"{D3} 23:59:59", "note": "żółw"},
        ],
    )
    assert r.status_code == 200
    assert r.json()["added"] == 2
    assert requests.post(sb.admin_url + "/records", json=[{"x": 1}]).status_code == 400
    got = fetch_all(sb, limit=41)
    ids = [d["call_request_id"] for d in got]
    assert len(got) == 1003
    assert got == sb.expected_records([])
    # added records follow generated ones of the same second
    same_d1 = sum(1 for d in base if d["created_date"] == f"{D1} 00:00:00")
    assert ids.index("added-0") == same_d1
    assert ids.index("added-1") == 1 + 333 + 1  # added-0, day 0, first record of day 1
    assert got[ids.index("added-1") + 1]["created_date"] > f"{D2} 00:00:00"
    assert ids[-1] == "added-2"
    assert got[-1]["note"] == "żółw"
    window = [
        cond("created_date", f"{D2} 00:00:00", "gte"),
        cond("created_date", f"{D3} 00:00:00", "lt"),
    ]
    assert [d["call_request_id"] for d in fetch_all(sb, window, limit=10)][:2] == [
        "cr-0-00000333",
        "added-1",
    ]
    assert fetch_all(sb, [cond("call_request_id_list", ["added-2"])]) == [got[-1]]
    assert (
        fetch_all(
            sb,
            [
                cond("closed_date", f"{D1} 00:00:00", "gte"),
                cond("call_request_id_list", ["added-0"]),
            ],
        )
        == []
    )


def test_added_record_with_list_field_matches_no_member_filter(sb: SandboxServer) -> None:
    sb.add_records(
        [{"call_request_id": "odd", "created_date": f"{D1} 00:00:00", "project_id": [11]}]
    )
    got = fetch_all(sb, [cond("project_id_list", [11])])  # a 200, not a dropped connection
    assert got == [d for d in sb.expected_records([]) if d["project_id"] == 11]
    assert "odd" not in {d["call_request_id"] for d in got}


def test_expected_records_matches_paging(shared: SandboxServer) -> None:
    filters = [
        cond("created_date", f"{D1} 12:00:00", "gte"),
        cond("created_date", f"{D3} 06:00:00", "lt"),
        cond("voice_campaign_id_list", ["vc-101", "vc-102", "vc-103"]),
    ]
    want = shared.expected_records(filters)
    assert len(want) > 100
    for limit in (1, 13, 100):
        assert fetch_all(shared, filters, limit=limit) == want


def test_determinism_by_seed(conpeek_sandbox_factory: Factory) -> None:
    a = conpeek_sandbox_factory(records=200, seed=7)
    b = conpeek_sandbox_factory(records=200, seed=7)
    c = conpeek_sandbox_factory(records=200, seed=8)
    ra, rb, rc = fetch_all(a, limit=200), fetch_all(b, limit=200), fetch_all(c, limit=200)
    assert ra == rb
    assert [d["contact_number"] for d in ra] != [d["contact_number"] for d in rc]
    assert [d["created_date"] for d in ra] == [d["created_date"] for d in rc]  # layout is seed-free
    assert RecordStore(200, seed=7).record(42) == ra[42]


def test_million_records_lazy_and_bisected(
    conpeek_sandbox_factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing is generated up front; a deep page of a window generates only itself.

    (How fast that is, is ``make bench``'s business; this checks why it is fast.)
    """
    calls = {"record": 0, "created_ts": 0}
    for name in calls:
        real = getattr(GeneratedRecords, name)

        def spy(self: GeneratedRecords, i: int, _real: Any = real, _name: str = name) -> Any:
            calls[_name] += 1
            return _real(self, i)

        monkeypatch.setattr(GeneratedRecords, name, spy)
    server = conpeek_sandbox_factory(records=1_000_000)
    assert calls == {"record": 0, "created_ts": 0}
    window = [
        cond("created_date", f"{D2} 00:00:00", "gte"),
        cond("created_date", f"{D3} 00:00:00", "lt"),
    ]
    page = get(server, window, limit=1000, offset=150_000).json()["data"]
    assert len(page) == 1000
    assert page[0]["call_request_id"] == f"cr-0-{333_333 + 150_000:08d}"
    assert (
        f"{D2} 00:00:00" <= page[0]["created_date"] <= page[-1]["created_date"] < f"{D3} 00:00:00"
    )
    # the page's 1000 records, not the 483,333 before them; two bisections of ~20 steps
    assert calls["record"] == 1000
    assert 1000 < calls["created_ts"] <= 1000 + 2 * 25
    calls.update(record=0, created_ts=0)
    tail = get(server, window, limit=1000, offset=333_000).json()["data"]
    assert len(tail) == 333
    assert tail[-1]["created_date"] == f"{D2} 23:59:59"
    assert calls["record"] == 333


def test_keepalive_one_connection_one_write_per_answer(
    sb: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No Nagle/delayed-ACK stall on keep-alive: TCP_NODELAY, and each answer in ONE write.

    (A stall would cost ~40 ms a request; ``make bench`` measures the latency itself.)
    """
    nodelay: list[int] = []
    writes: list[int] = []
    setup = SandboxHandler.setup

    def spying_setup(self: SandboxHandler) -> None:
        setup(self)
        nodelay.append(self.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        write = self.wfile.write

        def counted(data: Any) -> Any:
            writes.append(len(data))
            return write(data)

        self.wfile.write = counted  # type: ignore[method-assign]

    monkeypatch.setattr(SandboxHandler, "setup", spying_setup)
    with requests.Session() as s:
        responses = [get(sb, session=s, limit=5, offset=i) for i in range(20)]
    assert [r.status_code for r in responses] == [200] * 20
    assert len(nodelay) == 1  # one connection served all 20 requests
    assert nodelay[0] != 0
    assert len(writes) == 20
    assert all(n > len(r.content) for n, r in zip(writes, responses, strict=True))  # head + body


def test_stop_closes_keepalive_connections(conpeek_sandbox_factory: Factory) -> None:
    server = conpeek_sandbox_factory(records=10)
    with requests.Session() as s:
        assert get(server, session=s).status_code == 200
        server.stop()
        with pytest.raises(requests.ConnectionError):
            get(server, session=s)


# -- faults ------------------------------------------------------------------------------
def statuses(server: SandboxServer, n: int, **params: Any) -> list[int]:
    with requests.Session() as s:
        return [get(server, session=s, **params).status_code for _ in range(n)]


@pytest.mark.parametrize("kind", ["429", "500", "502", "503"])
def test_status_faults(sb: SandboxServer, kind: str) -> None:
    sb.set_faults(FaultConfig(rules=[FaultRule(kind, retry_after="garbage", first=2)]))
    r = get(sb)
    assert r.status_code == int(kind)
    assert r.headers.get("Retry-After") == ("garbage" if kind in ("429", "503") else None)
    assert statuses(sb, 3) == [int(kind), 200, 200]
    assert [e.fault for e in sb.request_log] == [kind, kind, None, None]


def test_retry_after_verbatim_and_every_times(sb: SandboxServer) -> None:
    date = "Wed, 21 Oct 2026 07:28:00 GMT"
    sb.set_faults(FaultConfig(rules=[FaultRule("503", retry_after=date, every=2, times=2)]))
    assert statuses(sb, 7) == [200, 503, 200, 503, 200, 200, 200]
    sb.set_faults(FaultConfig(rules=[FaultRule("429", retry_after="-3")]))
    r = get(sb)
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "-3"


def test_probability_is_seeded(conpeek_sandbox_factory: Factory) -> None:
    runs = []
    for _ in range(2):
        server = conpeek_sandbox_factory(records=10)
        server.set_faults(FaultConfig(seed=3, rules=[FaultRule("500", probability=0.5)]))
        runs.append(statuses(server, 40))
    assert runs[0] == runs[1]
    assert 8 <= runs[0].count(500) <= 32
    server.set_faults(FaultConfig(rules=[FaultRule("500", probability=0.0)]))
    assert statuses(server, 5) == [200] * 5


def test_drop_fault(sb: SandboxServer) -> None:
    sb.set_faults(FaultConfig(rules=[FaultRule("drop", times=1)]))
    with requests.Session() as s:
        with pytest.raises(requests.ConnectionError):
            get(sb, session=s)
        assert get(sb, session=s).status_code == 200
    assert [e.status for e in sb.request_log] == [None, 200]


def test_stall_fault_exceeds_read_timeout(sb: SandboxServer) -> None:
    sb.set_faults(FaultConfig(rules=[FaultRule("stall", stall_seconds=3600.0, first=1)]))
    with pytest.raises(requests.ReadTimeout):
        requests.get(sb.endpoint_url, headers={"Authorization": sb.api_key}, timeout=(30, 0.2))
    assert get(sb).status_code == 200  # only the first request stalls
    assert [e.fault for e in sb.request_log] == [None]  # the stalled answer is still held back
    sb.stop()  # ends the stall: the held-back answer is logged (and sent to nobody)
    for _ in range(3000):
        if len(sb.request_log) == 2:
            break
        time.sleep(0.01)
    assert [e.fault for e in sb.request_log] == [None, "stall"]


def test_ignore_offset_for_selected_offsets(sb: SandboxServer) -> None:
    sb.set_faults(FaultConfig(rules=[FaultRule("ignore_offset", offsets=[10])]))
    first = get(sb, limit=10).json()["data"]
    assert get(sb, limit=10, offset=10).json()["data"] == first
    assert get(sb, limit=10, offset=20).json()["data"][0]["call_request_id"] == "cr-0-00000020"


def test_malformed_fault(sb: SandboxServer) -> None:
    sb.set_faults(FaultConfig(rules=[FaultRule("malformed", first=1)]))
    r = get(sb)
    assert r.status_code == 200
    with pytest.raises(requests.JSONDecodeError):
        r.json()
    sb.set_faults(FaultConfig(rules=[FaultRule("malformed", body='{"data": 5}')]))
    assert get(sb).json() == {"data": 5}


def test_empty_fault_per_filter_and_limit(sb: SandboxServer) -> None:
    """A window that fills later: each filter's first one-record probe finds nothing."""
    late = FaultRule("empty", limits=[1], first=1, per_filter=True)
    sb.set_faults(FaultConfig(rules=[late]))
    day1 = '[{"property":"created_date","operator":"gte","value":"2026-01-01 00:00:00"}]'
    day2 = '[{"property":"created_date","operator":"gte","value":"2026-01-02 00:00:00"}]'
    assert get(sb, limit=1, filter=day1).json() == {"data": []}
    assert len(get(sb, limit=1, filter=day1).json()["data"]) == 1
    assert get(sb, limit=1, filter=day2).json() == {"data": []}  # counted per filter
    assert len(get(sb, limit=10, filter=day2).json()["data"]) == 10  # other limits untouched
    assert [e.fault for e in sb.request_log] == ["empty", None, "empty", None]


def test_latency_and_stall_delay_the_answer(conpeek_sandbox_factory: Factory) -> None:
    """The delays go to the injected ``sleep``, before the answer is logged and sent."""
    delays: list[tuple[float, int]] = []  # (seconds, answers logged when the delay began)

    def sleep(seconds: float) -> None:
        delays.append((seconds, len(server.request_log)))

    faults = FaultConfig(latency=0.2, rules=[FaultRule("stall", stall_seconds=30.0, first=1)])
    server = conpeek_sandbox_factory(records=10, faults=faults, sleep=sleep)
    assert statuses(server, 2) == [200, 200]
    assert delays == [(0.2, 0), (30.0, 0), (0.2, 1)]
    assert [e.fault for e in server.request_log] == ["stall", None]
    server.set_faults(None)
    assert get(server).status_code == 200
    assert len(delays) == 3  # no faults, no delay


def test_tls_sandbox_and_handshake_faults(conpeek_sandbox_factory: Factory) -> None:
    server = conpeek_sandbox_factory(
        records=10,
        tls=True,
        faults=FaultConfig(
            rules=[FaultRule("handshake_eof", first=1), FaultRule("handshake_reset", every=3)]
        ),
    )
    assert server.url.startswith("https://127.0.0.1:")
    assert server.admin_url.startswith("https://")
    url, headers = server.endpoint_url, {"Authorization": server.api_key}
    with pytest.raises(requests.exceptions.SSLError, match="EOF"):  # connection 1
        requests.get(url, headers=headers, verify=server.ca_file)
    with pytest.raises(requests.exceptions.SSLError, match="certificate verify failed"):
        requests.get(url, headers=headers)  # connection 2: served, but not trusted
    with pytest.raises(requests.exceptions.ConnectionError, match="reset"):  # connection 3
        requests.get(url, headers=headers, verify=server.ca_file)
    r = requests.get(url, headers=headers, verify=server.ca_file)  # connection 4
    assert len(r.json()["data"]) == 10
    assert server.connection_faults == ["handshake_eof", "handshake_reset"]
    assert len(server.request_log) == 1  # handshake faults are not requests
    server.clear_log()
    assert server.connection_faults == []


def test_handshake_faults_need_tls_and_no_request_selectors(sb: SandboxServer) -> None:
    with pytest.raises(ValueError, match="TLS sandbox"):
        sb.set_faults(FaultConfig(rules=[FaultRule("handshake_eof")]))
    r = requests.post(sb.admin_url + "/faults", json={"rules": [{"kind": "handshake_reset"}]})
    assert r.status_code == 400
    for selector in ({"offsets": [0]}, {"limits": [1]}, {"per_filter": True}):
        with pytest.raises(ValueError, match="before any request"):
            FaultRule("handshake_eof", **selector)


def test_fault_config_round_trip_and_validation() -> None:
    rules = [FaultRule("429", retry_after="1", first=2), FaultRule("drop", offsets=[0], times=1)]
    cfg = FaultConfig(latency=0.1, seed=4, rules=rules)
    assert FaultConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    for bad in ({"rules": [{"kind": "418"}]}, {"bogus": 1}, {"rules": [{"kind": "500", "x": 1}]}):
        with pytest.raises(ValueError, match=r"fault|kind|key"):
            FaultConfig.from_dict(bad)


# -- capacity ----------------------------------------------------------------------------
class Gate:
    """A ``SandboxServer`` ``sleep`` holding every delay until the test lets it pass, so
    requests stay in progress exactly as long as the test wants (no wall clock)."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self._cond = threading.Condition()
        self._passes = 0
        self._open = False

    def __call__(self, seconds: float) -> None:
        with self._cond:
            self.delays.append(seconds)
            self._cond.wait_for(lambda: self._open or self._passes > 0, timeout=60)
            if not self._open and self._passes > 0:
                self._passes -= 1

    def let_one_pass(self) -> None:
        with self._cond:
            self._passes += 1
            self._cond.notify_all()

    def open(self) -> None:
        with self._cond:
            self._open = True
            self._cond.notify_all()


@pytest.fixture
def gate() -> Iterator[Gate]:
    g = Gate()
    yield g
    g.open()  # a failed test leaves no request held


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(8) as executor:
        yield executor


WAIT_S = 30.0
"""Deadline of a wait for the sandbox's state (a hang guard, generous for a busy machine)."""


def log_by_query(server: SandboxServer) -> dict[str, tuple[int | None, str | None, int]]:
    return {e.query: (e.status, e.fault, e.in_flight) for e in server.request_log}


def ids_of(r: requests.Response) -> list[str]:
    return [d["call_request_id"] for d in r.json()["data"]]


@pytest.mark.parametrize("retry_after", [None, "1"])
def test_capacity_429_beyond_capacity(
    conpeek_sandbox_factory: Factory, gate: Gate, pool: ThreadPoolExecutor, retry_after: str | None
) -> None:
    faults = FaultConfig(latency=0.5, capacity=2, capacity_retry_after=retry_after)
    server = conpeek_sandbox_factory(records=100, faults=faults, sleep=gate)
    first = pool.submit(get, server, limit=3, offset=0)
    wait_for("the first request in progress", lambda: server.load == (1, 0), WAIT_S, interval=0.002)
    second = pool.submit(get, server, limit=3, offset=10)
    wait_for("two requests in progress", lambda: server.load == (2, 0), WAIT_S, interval=0.002)
    rejected = [get(server, limit=3, offset=20), get(server, limit=3, offset=30)]
    for r in rejected:  # answered at once, without latency and without reaching the rules
        assert r.status_code == 429
        assert r.headers.get("Retry-After") == retry_after
        assert r.json()["error"] == "http_429"
    assert gate.delays == [0.5, 0.5]
    assert not first.done()
    assert not second.done()
    assert server.load == (2, 0)
    gate.open()
    held = [first.result(timeout=10), second.result(timeout=10)]
    assert [r.status_code for r in held] == [200, 200]
    assert [ids_of(r) for r in held] == [
        [f"cr-0-{i:08d}" for i in range(3)],
        [f"cr-0-{i:08d}" for i in range(10, 13)],
    ]
    assert server.load == (0, 0)  # no longer counted once the answer is sent
    assert log_by_query(server) == {
        "limit=3&offset=0": (200, None, 1),
        "limit=3&offset=10": (200, None, 2),
        "limit=3&offset=20": (429, "capacity", 3),
        "limit=3&offset=30": (429, "capacity", 3),  # the one before was answered
    }
    assert get(server, limit=3, offset=40).status_code == 200
    assert server.request_log[-1].in_flight == 1
    assert all(e.queued_s == 0.0 for e in server.request_log)


def test_capacity_k_clients_in_flight_never_429(
    conpeek_sandbox_factory: Factory, pool: ThreadPoolExecutor
) -> None:
    """A client keeping K requests in flight never exceeds capacity K: a request stops
    counting before its answer is sent, so the client's next one cannot overlap it."""
    k, n = 4, 50
    server = conpeek_sandbox_factory(records=100, faults=FaultConfig(capacity=k))

    def client(c: int) -> list[int]:
        with requests.Session() as s:
            return [get(server, session=s, limit=2, offset=c).status_code for _ in range(n)]

    results = [f.result(timeout=120) for f in [pool.submit(client, c) for c in range(k)]]
    assert results == [[200] * n] * k
    log = server.request_log
    assert len(log) == k * n
    assert {e.fault for e in log} == {None}
    assert max(e.in_flight for e in log) <= k
    assert server.load == (0, 0)


def test_capacity_queue_waits_for_a_free_slot(
    conpeek_sandbox_factory: Factory, gate: Gate, pool: ThreadPoolExecutor
) -> None:
    faults = FaultConfig(latency=0.5, capacity=1, over_capacity="queue")
    server = conpeek_sandbox_factory(records=100, faults=faults, sleep=gate)
    first = pool.submit(get, server, limit=2, offset=0)
    wait_for("the first request in progress", lambda: server.load == (1, 0), WAIT_S, interval=0.002)
    second = pool.submit(get, server, limit=2, offset=5)
    wait_for("the second request queued", lambda: server.load == (1, 1), WAIT_S, interval=0.002)
    assert gate.delays == [0.5]  # the queued one has not started (no latency yet)
    assert not second.done()
    assert server.request_log == []
    gate.open()
    assert ids_of(first.result(timeout=10)) == ["cr-0-00000000", "cr-0-00000001"]
    assert ids_of(second.result(timeout=10)) == ["cr-0-00000005", "cr-0-00000006"]
    assert gate.delays == [0.5, 0.5]  # then served normally, latency included
    assert server.load == (0, 0)
    entries = {e.query: e for e in server.request_log}
    held, queued = entries["limit=2&offset=0"], entries["limit=2&offset=5"]
    assert (held.status, held.fault, held.in_flight, held.queued_s) == (200, None, 1, 0.0)
    assert (queued.status, queued.fault, queued.in_flight) == (200, None, 2)
    assert queued.queued_s > 0
    log = requests.get(server.admin_url + "/requests").json()["requests"]
    assert {(e["query"], e["in_flight"]) for e in log} == {
        ("limit=2&offset=0", 1),
        ("limit=2&offset=5", 2),
    }
    assert {e["query"] for e in log if e["queued_s"] > 0} == {"limit=2&offset=5"}


def test_capacity_queue_is_first_come_first_served(
    conpeek_sandbox_factory: Factory, gate: Gate, pool: ThreadPoolExecutor
) -> None:
    faults = FaultConfig(latency=0.5, capacity=1, over_capacity="queue")
    server = conpeek_sandbox_factory(records=100, faults=faults, sleep=gate)
    futures = []
    for i in range(4):
        futures.append(pool.submit(get, server, limit=1, offset=i))
        wait_for(f"{i} requests queued", lambda i=i: server.load == (1, i), WAIT_S, interval=0.002)
    for i in range(4):  # one at a time: the log's order is the order they were served in
        gate.let_one_pass()
        wait_for(
            f"answer {i + 1}", lambda i=i: len(server.request_log) == i + 1, WAIT_S, interval=0.002
        )
    assert [r.result(timeout=10).status_code for r in futures] == [200] * 4
    log = server.request_log
    assert [e.query for e in log] == [f"limit=1&offset={i}" for i in range(4)]
    assert [e.in_flight for e in log] == [1, 2, 3, 4]


def test_set_faults_replaces_the_capacity_state(
    conpeek_sandbox_factory: Factory, gate: Gate, pool: ThreadPoolExecutor
) -> None:
    server = conpeek_sandbox_factory(
        records=100, faults=FaultConfig(latency=0.5, capacity=1), sleep=gate
    )
    held = pool.submit(get, server, limit=1)
    wait_for("a request in progress", lambda: server.load == (1, 0), WAIT_S, interval=0.002)
    assert get(server, limit=1).status_code == 429
    server.set_faults(FaultConfig(capacity=1))  # new state: nothing in progress
    assert server.load == (0, 0)
    assert get(server, limit=1).status_code == 200
    gate.open()
    assert held.result(timeout=10).status_code == 200
    assert server.load == (0, 0)  # the held request freed its slot in the old state
    assert [(e.status, e.in_flight) for e in server.request_log] == [
        (429, 2),
        (200, 1),
        (200, 1),
    ]


def test_capacity_counts_api_requests_only(conpeek_sandbox_factory: Factory) -> None:
    server = conpeek_sandbox_factory(records=10, faults=FaultConfig(capacity=1))
    h = {"Authorization": server.api_key}
    assert requests.get(server.url + "/nope", headers=h).status_code == 404
    assert requests.get(server.admin_url + "/faults").json()["capacity"] == 1
    assert get(server).status_code == 200
    assert [(e.status, e.in_flight) for e in server.request_log] == [(404, 0), (200, 1)]


def test_stop_ends_the_wait_of_a_queued_request(
    conpeek_sandbox_factory: Factory, gate: Gate, pool: ThreadPoolExecutor
) -> None:
    faults = FaultConfig(latency=0.5, capacity=1, over_capacity="queue")
    server = conpeek_sandbox_factory(records=10, faults=faults, sleep=gate)
    held = pool.submit(get, server)
    wait_for("a request in progress", lambda: server.load == (1, 0), WAIT_S, interval=0.002)
    queued = pool.submit(get, server, limit=5)
    wait_for("a request queued", lambda: server.load == (1, 1), WAIT_S, interval=0.002)
    server.stop()
    serving = f"conpeek-sandbox-{server.port}"
    assert not any(t.name == serving for t in threading.enumerate())
    with pytest.raises(requests.ConnectionError):
        queued.result(timeout=10)  # the wait ended: the connection is closed, no answer
    wait_for("the queued request to give up", lambda: server.load == (1, 0), WAIT_S, interval=0.002)
    wait_for(
        "the queued request to be logged",
        lambda: len(server.request_log) == 1,
        WAIT_S,
        interval=0.002,
    )
    entry = server.request_log[0]
    assert entry.query == "limit=5"
    assert (entry.status, entry.fault, entry.in_flight) == (None, "capacity", 2)
    gate.open()  # the held request ends too; its answer is sent to nobody
    with pytest.raises(requests.ConnectionError):
        held.result(timeout=10)
    wait_for("the held request to end", lambda: server.load == (0, 0), WAIT_S, interval=0.002)


def test_capacity_config_round_trip_and_validation() -> None:
    for cfg in (
        FaultConfig(latency=0.1, capacity=3, capacity_retry_after="Wed, 21 Oct 2026 07:28:00 GMT"),
        FaultConfig(capacity=1, over_capacity="queue", rules=[FaultRule("500", first=1)]),
    ):
        assert FaultConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert FaultConfig().to_dict() == {
        "latency": 0.0,
        "rules": [],
        "seed": 0,
        "capacity": None,
        "over_capacity": "429",
        "capacity_retry_after": None,
    }
    assert FaultConfig.from_dict({"capacity": 2, "capacity_retry_after": 5}) == FaultConfig(
        capacity=2, capacity_retry_after="5"
    )
    bad: list[dict[str, Any]] = [
        {"capacity": 0},
        {"capacity": -1},
        {"capacity": 1.5},
        {"capacity": "2"},
        {"capacity": True},
        {"capacity": 2, "over_capacity": "drop"},
        {"over_capacity": "queue"},
        {"capacity_retry_after": "1"},
        {"capacity": 1, "over_capacity": "queue", "capacity_retry_after": "1"},
        {"capacity": 1, "capacity_retry_after": "1\r\nX-Injected: 1"},
        {"capacity": 1, "capacity_retry_after": ["1"]},
    ]
    for data in bad:
        with pytest.raises(ValueError, match="capacity"):
            FaultConfig.from_dict(data)
    with pytest.raises(ValueError, match="capacity must be an integer >= 1"):
        FaultConfig(capacity=0)


def test_admin_capacity_keys(sb: SandboxServer) -> None:
    body = {"capacity": 2, "over_capacity": "queue", "latency": 0}
    r = requests.post(sb.admin_url + "/faults", json=body)
    assert r.status_code == 200
    assert r.json()["faults"]["capacity"] == 2
    assert sb.faults == FaultConfig(capacity=2, over_capacity="queue")
    assert requests.get(sb.admin_url + "/faults").json()["over_capacity"] == "queue"
    r = requests.post(sb.admin_url + "/faults", json={"capacity": 0})
    assert r.status_code == 400
    assert "capacity" in r.json()["message"]
    assert get(sb).status_code == 200
    log = requests.get(sb.admin_url + "/requests").json()["requests"]
    assert (log[0]["in_flight"], log[0]["queued_s"]) == (1, 0.0)
    assert requests.post(sb.admin_url + "/reset").status_code == 200
    assert sb.faults.capacity is None


# -- admin -------------------------------------------------------------------------------
def test_admin_endpoints(sb: SandboxServer) -> None:
    adm = sb.admin_url
    r = requests.post(adm + "/faults", json={"rules": [{"kind": "500", "first": 100}]})
    assert r.status_code == 200
    assert sb.faults.rules[0].kind == "500"
    assert requests.get(adm + "/faults").json()["rules"][0]["first"] == 100  # not faulted
    assert get(sb, limit=3, offset=1).status_code == 500
    log = requests.get(adm + "/requests").json()["requests"]
    assert len(log) == 1
    assert log[0]["query"] == "limit=3&offset=1"
    assert log[0]["status"] == 500
    assert log[0]["headers"]["Authorization"] == sb.api_key
    assert log[0]["method"] == "GET"
    assert sb.request_log[0].params == {"limit": ["3"], "offset": ["1"]}
    assert requests.post(adm + "/faults", json={"rules": [{"kind": "nope"}]}).status_code == 400
    assert requests.post(adm + "/faults", data="not json").status_code == 400
    assert requests.get(adm + "/nothing").status_code == 404
    assert requests.post(adm + "/reset").status_code == 200
    assert sb.request_log == []
    assert sb.faults.rules == []
    assert get(sb).status_code == 200
    assert len(sb.request_log) == 1
    sb.clear_log()
    assert sb.request_log == []


# -- CLI -----------------------------------------------------------------------------------
def test_cli_subprocess_start_stop() -> None:
    fault = json.dumps({"rules": [{"kind": "503", "retry_after": "0", "first": 1}]})
    code = "import sys; from airflow_provider_conpeek.testing.cli import main; sys.exit(main())"
    args = ["--port", "0", "--records", "500", "--api-key", "k1", "--max-limit", "20"]
    cmd = [sys.executable, "-c", code, *args, "--fault-json", fault]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        m = re.search(
            r"serving (http://127\.0\.0\.1:\d+/api/v1_3) .*AIRFLOW_CONN_CONPEEK_DEFAULT='(.*)'",
            line,
        )
        assert m, line
        assert json.loads(m.group(2)) == {
            "conn_type": "conpeek",
            "host": m.group(1),
            "password": "k1",
        }
        url = m.group(1) + "/voice_campaign_request_summary"
        r = requests.get(url, headers={"Authorization": "k1"}, params={"limit": 100})
        assert r.status_code == 503
        assert r.headers["Retry-After"] == "0"
        r = requests.get(url, headers={"Authorization": "k1"}, params={"limit": 100})
        assert len(r.json()["data"]) == 20
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_bad_fault_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["--port", "0", "--fault-json", '{"rules": [{"kind": "x"}]}']) == 2
    assert "invalid --fault-json" in capsys.readouterr().err
    handshake = '{"rules": [{"kind": "handshake_eof"}]}'
    assert cli_main(["--port", "0", "--fault-json", handshake]) == 2  # without --tls
    assert "TLS sandbox" in capsys.readouterr().err


def test_cli_capacity_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert faults_from_argv([]) is None
    assert faults_from_argv(["--capacity", "3"]) == FaultConfig(capacity=3)
    assert faults_from_argv(
        ["--latency-ms", "20", "--capacity", "2", "--over-capacity", "queue"]
    ) == FaultConfig(latency=0.02, capacity=2, over_capacity="queue")
    # options given on the command line override --fault-json's fields, the rest is kept
    fault = json.dumps(
        {"latency": 0.5, "capacity": 5, "capacity_retry_after": "9", "rules": [{"kind": "500"}]}
    )
    argv = ["--fault-json", fault, "--capacity", "2", "--capacity-retry-after", "1"]
    assert faults_from_argv(argv) == FaultConfig(
        latency=0.5, capacity=2, capacity_retry_after="1", rules=[FaultRule("500")]
    )
    assert faults_from_argv(["--fault-json", '{"capacity": 4}', "--over-capacity", "queue"]) == (
        FaultConfig(capacity=4, over_capacity="queue")
    )
    with pytest.raises(ValueError, match="need a capacity"):
        faults_from_argv(["--capacity-retry-after", "1"])
    assert cli_main(["--port", "0", "--over-capacity", "queue"]) == 2
    assert "need a capacity" in capsys.readouterr().err
    for argv in (["--capacity", "0"], ["--capacity", "x"], ["--over-capacity", "drop"]):
        with pytest.raises(SystemExit) as exc:
            faults_from_argv(argv)
        assert exc.value.code == 2
    capsys.readouterr()
    with pytest.raises(SystemExit):
        faults_from_argv(["--help"])
    assert "override its fields" in capsys.readouterr().out
