"""Error messages that point the right way: a page size the server refuses, a key sent with
``Bearer ``, filters rendered by templates; against the sandbox, and through ``dag.test()``."""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from airflow_compat import run_dag_file, without_airflow_30_mask_secret_lines
from clienthelpers import clients

from airflow_provider_conpeek.client import ConpeekClient
from airflow_provider_conpeek.exceptions import (
    ConpeekAuthError,
    ConpeekBadRequestError,
    is_fatal,
)
from airflow_provider_conpeek.filters import date_window, encode_filter
from airflow_provider_conpeek.testing.sandbox import SandboxServer

Factory = Callable[..., SandboxServer]
KEY = "sk-MSG-91c2d7e4"
DAY = ("2026-01-01 00:00:00", "2026-01-02 00:00:00")


@pytest.fixture
def connect(connect_hook: Any) -> Iterator[Callable[..., ConpeekClient]]:
    """A client on connection ``conn_id`` pointed at ``server`` (an env var), fake clock."""
    yield from clients(connect_hook)


def api_requests(server: SandboxServer) -> int:
    return len(server.request_log)


# -- page_size above what the server accepts ------------------------------------------------


def test_page_size_the_server_refuses_says_lower_page_size(
    conpeek_sandbox_factory: Factory, connect: Callable[..., ConpeekClient]
) -> None:
    server = conpeek_sandbox_factory(records=50, reject_limit_above=500)
    client = connect(server)
    with pytest.raises(ConpeekBadRequestError) as info:
        list(client.iter_pages(None, page_size=1000))
    message = str(info.value)
    assert "HTTP 400" in message
    assert "limit must be at most 500, got 1000" in message  # the server's answer
    assert "The server refused limit=1000, the page size: lower page_size" in message
    assert "this request sent 1000" in message
    assert is_fatal(info.value)
    assert api_requests(server) == 1  # not retried
    assert sum(map(len, client.iter_pages(None, page_size=500))) == 50


def test_other_400_hints_at_page_size_only_when_it_is_large(
    conpeek_sandbox: SandboxServer, connect: Callable[..., ConpeekClient]
) -> None:
    client = connect(conpeek_sandbox)
    bogus = encode_filter([{"property": "nonsense", "value": [1]}])
    with pytest.raises(ConpeekBadRequestError) as info:
        client.fetch_page(offset=0, limit=50, encoded_filter=bogus)
    assert "page_size" not in str(info.value)  # the filter's fault, and 50 is modest
    with pytest.raises(ConpeekBadRequestError) as info:
        client.fetch_page(offset=0, limit=2000, encoded_filter=bogus)
    message = str(info.value)
    assert "unknown property 'nonsense'" in message
    assert "If page_size (2000) is more than the server accepts, lower it" in message


# -- a key sent with "Bearer " --------------------------------------------------------------


def test_bearer_prefix_refused_says_send_the_raw_key(
    conpeek_sandbox_factory: Factory, connect: Callable[..., ConpeekClient]
) -> None:
    server = conpeek_sandbox_factory(records=5, api_key=KEY)
    client = connect(server, "conpeek_bearer", password=f"Bearer {KEY}")
    with pytest.raises(ConpeekAuthError) as info:
        client.fetch_page(offset=0, limit=1)
    err = info.value
    message = str(err)
    assert err.status == 401
    assert "conpeek_bearer" in message
    assert "starts with 'Bearer '" in message
    assert "the API wants the raw key" in message
    assert "remove 'Bearer '" in message
    for text in (message, err.body, err.url):
        assert KEY not in text
    assert server.request_log[0].headers["Authorization"] == f"Bearer {KEY}"
    # Without the prefix it works; a plain wrong key gets the plain hint.
    assert len(connect(server, "conpeek_raw", password=KEY).fetch_page(offset=0, limit=1)) == 1
    with pytest.raises(ConpeekAuthError) as info:
        connect(server, "conpeek_wrong", password="not-the-key").fetch_page(offset=0, limit=1)
    assert "Bearer" not in str(info.value)
    assert "Check the key in the connection's 'API key' (password) field." in str(info.value)


# -- a closed_date window holds closed requests only ----------------------------------------


def test_closed_date_window_never_holds_open_requests(conpeek_sandbox: SandboxServer) -> None:
    created = conpeek_sandbox.expected_records(date_window(*DAY))
    still_open = [r for r in created if r["closed_date"] is None]
    assert still_open, "the sandbox has open requests on day 1"
    closed = conpeek_sandbox.expected_records(date_window(*DAY, property="closed_date"))
    assert closed
    assert all(r["closed_date"] is not None for r in closed)
    ids = {r["call_request_id"] for r in closed}
    assert not ids & {r["call_request_id"] for r in still_open}


# -- templated filters through dag.test() ---------------------------------------------------


@pytest.fixture
def run_dag(
    airflow_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Any]:
    """Write a DAG file into a fresh DAGs folder and run it with ``dag.test()``."""
    at = datetime(2026, 1, 5, tzinfo=timezone.utc)
    return lambda dag_id, body: run_dag_file(tmp_path, monkeypatch, dag_id, body, at)


DAG_BODY = """
import pendulum
from airflow_provider_conpeek.operators.voice_campaign_summary import (
    VoiceCampaignSummaryToS3Operator,
)

with DAG(
    dag_id="conpeek_messages",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    params={{
        "project_id": 13,
        "filters": [{{"property": "project_id_list", "value": [11, 13]}}],
    }},
) as dag:
    def extract(task_id, **kwargs):
        return VoiceCampaignSummaryToS3Operator(
            task_id=task_id,
            s3_bucket="{bucket}",
            s3_key=task_id + ".jsonl.gz",
            window_start="{start}",
            window_end="{end}",
            retries=0,
            **kwargs,
        )

    extract(
        "templated_id",
        filters=[{{"property": "project_id_list", "value": ["{{{{ params.project_id }}}}"]}}],
    )
    extract("templated_list", filters="{{{{ params.filters | tojson }}}}")
    extract("python_text_list", filters="{{{{ params.filters }}}}")
    extract("page_too_large", page_size=5000)
    extract("bearer_key", conpeek_conn_id="conpeek_bearer")
"""


@pytest.mark.e2e
def test_dag_messages_and_templated_filters(
    conpeek_sandbox_factory: Factory,
    run_dag: Callable[..., Any],
    s3_server: Any,
    s3_bucket: str,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    server = conpeek_sandbox_factory(records=600, api_key=KEY, reject_limit_above=1000)
    monkeypatch.setenv("AIRFLOW_CONN_CONPEEK_DEFAULT", server.airflow_connection_json())
    bearer = {**server.airflow_connection_dict(), "password": f"Bearer {KEY}"}
    monkeypatch.setenv("AIRFLOW_CONN_CONPEEK_BEARER", json.dumps(bearer))
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", s3_server.connection_json())

    run = run_dag("conpeek_messages", DAG_BODY.format(bucket=s3_bucket, start=DAY[0], end=DAY[1]))

    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert states == {
        "templated_id": "success",
        "templated_list": "success",
        "python_text_list": "failed",
        "page_too_large": "failed",
        "bearer_key": "failed",
    }

    def written(key: str) -> list[Any]:
        raw = gzip.decompress(s3_server.read(s3_bucket, key))
        return [json.loads(line) for line in raw.splitlines()]

    window = date_window(*DAY)
    one = server.expected_records([*window, {"property": "project_id_list", "value": [13]}])
    two = server.expected_records([*window, {"property": "project_id_list", "value": [11, 13]}])
    assert one
    assert len(two) > len(one)
    assert written("templated_id.jsonl.gz") == one
    assert written("templated_list.jsonl.gz") == two
    assert sorted(s3_server.keys(s3_bucket)) == ["templated_id.jsonl.gz", "templated_list.jsonl.gz"]

    sent = [e.params for e in server.request_log]
    assert any('"value":[13]' in p["filter"][0] for p in sent)  # the templated id, as 13
    assert any(p.get("limit") == ["5000"] for p in sent)  # refused by the server, once

    # Airflow 3.0 prints tracebacks in boxes ("│ ... │"), wrapping long messages: unwrap.
    printed = re.sub(r"[\s│]+", " ", "".join(capfd.readouterr()))
    assert "not JSON" in printed
    assert "'{{ params.filters | tojson }}'" in printed
    assert "render_template_as_native_obj=True" in printed
    assert "lower page_size" in printed
    assert "the API wants the raw key" in printed
    printed = without_airflow_30_mask_secret_lines(printed, KEY)
    assert KEY not in printed
    assert KEY not in printed.replace(" ", "")  # nor split across wrapped lines


def test_a_key_pasted_with_bearer_is_redacted_bare_too() -> None:
    """A 5xx or proxy body echoing the bare key must not carry it into an exception."""
    from airflow_provider_conpeek.client.responses import redact

    text = f"echo: {KEY}; header: Bearer {KEY}"
    assert redact(text, f"Bearer {KEY}") == "echo: ***; header: ***"
    assert redact(text, KEY) == "echo: ***; header: Bearer ***"
