"""TLS failures over real TLS on loopback: which are fatal, which are retried, and what the
message says. Certificates are made at test time; the sandbox serves HTTPS (``tls=``) and
cuts handshakes short on demand (``handshake_eof``/``handshake_reset`` faults)."""

from __future__ import annotations

import gzip
import json
import ssl
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import requests
import urllib3
from airflow_compat import run_dag_file
from clienthelpers import clients
from fakeclock import FakeClock
from faultproxy import UploadCuttingProxy

from airflow_provider_conpeek.client import ConpeekClient
from airflow_provider_conpeek.client.responses import tls_failure
from airflow_provider_conpeek.exceptions import (
    ConpeekConfigError,
    ConpeekTransientError,
    is_fatal,
)
from airflow_provider_conpeek.testing.sandbox import FaultConfig, FaultRule, SandboxServer
from airflow_provider_conpeek.testing.tls import self_signed_cert

Factory = Callable[..., SandboxServer]
KEY = "sk-TLS-3e8b1c"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def connect(connect_hook: Any, clock: FakeClock) -> Iterator[Callable[..., ConpeekClient]]:
    """A client on connection ``conn_id`` pointed at ``server`` (an env var), fake clock."""
    yield from clients(connect_hook, clock)


def records(client: ConpeekClient) -> list[Any]:
    return [r for page in client.iter_pages(None, page_size=40, concurrency=1) for r in page]


def served(server: SandboxServer) -> int:
    return len([e for e in server.request_log if e.status == 200])


# -- fatal: the certificate ----------------------------------------------------------------


def test_certificate_that_does_not_verify_is_fatal_with_the_hint(
    conpeek_sandbox_factory: Factory, connect: Callable[..., ConpeekClient], clock: FakeClock
) -> None:
    server = conpeek_sandbox_factory(records=10, tls=True)
    client = connect(server, "conpeek_tls", password=KEY, extra={"max_retries": 3})
    with pytest.raises(ConpeekConfigError) as info:
        records(client)
    message = str(info.value)
    assert "TLS failed for https://127.0.0.1:" in message
    assert "conpeek_tls" in message
    assert "self-signed certificate" in message  # OpenSSL's reason
    assert "Fix the certificate, or set 'ca_bundle' in the connection extra." in message
    assert KEY not in message
    assert is_fatal(info.value)  # no task retry either
    assert clock.waits() == []  # and no HTTP retry
    assert server.request_log == []


def test_trusted_certificate_serves_every_record(
    conpeek_sandbox_factory: Factory, connect: Callable[..., ConpeekClient]
) -> None:
    server = conpeek_sandbox_factory(records=100, tls=True)
    assert server.url.startswith("https://")
    assert server.ca_file is not None
    client = connect(server, extra={"ca_bundle": server.ca_file})
    assert records(client) == server.expected_records()
    # The certificate names localhost too.
    localhost = server.url.replace("127.0.0.1", "localhost")
    client = connect(
        server, "conpeek_localhost", host=localhost, extra={"ca_bundle": server.ca_file}
    )
    assert records(client) == server.expected_records()


def test_hostname_mismatch_is_fatal(
    conpeek_sandbox_factory: Factory,
    connect: Callable[..., ConpeekClient],
    clock: FakeClock,
    tmp_path: Path,
) -> None:
    cert, key = self_signed_cert(tmp_path, names=("api.conpeek.example",))
    server = conpeek_sandbox_factory(records=10, tls=(cert, key))
    client = connect(server, extra={"ca_bundle": cert})  # trusted, but for another name
    with pytest.raises(ConpeekConfigError) as info:
        records(client)
    message = str(info.value)
    assert "mismatch" in message
    assert "'127.0.0.1'" in message
    assert "does not name this host" in message
    assert "Fix the certificate, or set 'ca_bundle' in the connection extra." in message
    assert is_fatal(info.value)
    assert clock.waits() == []
    assert server.request_log == []


# -- retried: the handshake cut short ------------------------------------------------------


@pytest.mark.parametrize("kind", ["handshake_eof", "handshake_reset"])
def test_handshake_cut_short_is_retried_then_succeeds(
    conpeek_sandbox_factory: Factory,
    connect: Callable[..., ConpeekClient],
    clock: FakeClock,
    kind: str,
) -> None:
    server = conpeek_sandbox_factory(
        records=100, tls=True, faults=FaultConfig(rules=[FaultRule(kind, first=2)])
    )
    client = connect(server, extra={"ca_bundle": server.ca_file, "max_retries": 3})
    assert records(client) == server.expected_records()
    assert server.connection_faults == [kind, kind]
    assert len(clock.waits()) == 2  # two retries, with the client's backoff
    assert served(server) == 4  # pages 0, 40, 80 and the empty one: each once


def test_handshake_eof_every_time_gives_up_as_transient(
    conpeek_sandbox_factory: Factory, connect: Callable[..., ConpeekClient], clock: FakeClock
) -> None:
    server = conpeek_sandbox_factory(
        records=10, tls=True, faults=FaultConfig(rules=[FaultRule("handshake_eof")])
    )
    client = connect(server, extra={"ca_bundle": server.ca_file, "max_retries": 2})
    with pytest.raises(ConpeekTransientError) as info:
        records(client)
    message = str(info.value)
    assert "after 3 tries" in message
    assert "TLS connection closed or reset by the server before it answered" in message
    assert "EOF" in message  # OpenSSL's reason, e.g. SSLEOFError: UNEXPECTED_EOF_WHILE_READING
    assert not is_fatal(info.value)  # Airflow's task retries still apply
    assert server.connection_faults == ["handshake_eof"] * 3


def test_connection_closed_before_the_handshake_is_retried(
    conpeek_sandbox_factory: Factory, connect: Callable[..., ConpeekClient], clock: FakeClock
) -> None:
    server = conpeek_sandbox_factory(records=60, tls=True)
    # A load balancer dropping the first three new connections; it cuts no upload.
    front = UploadCuttingProxy(server.port, closes=3)
    try:
        host = server.url.replace(f":{server.port}/", f":{front.port}/")
        client = connect(server, host=host, extra={"ca_bundle": server.ca_file, "max_retries": 4})
        assert records(client) == server.expected_records()
    finally:
        front.stop()
    assert front.closed == 3
    assert len(clock.waits()) == 3


# -- fatal: https:// to a plain-HTTP server -------------------------------------------------


@pytest.mark.parametrize("scheme", ["https://", ""])
def test_https_url_on_a_plain_http_server_says_use_http(
    conpeek_sandbox: SandboxServer,
    connect: Callable[..., ConpeekClient],
    clock: FakeClock,
    scheme: str,
) -> None:
    plain = conpeek_sandbox.url  # http://127.0.0.1:PORT/api/v1_3
    host = scheme + plain.removeprefix("http://")  # no scheme means https
    client = connect(conpeek_sandbox, "conpeek_scheme", host=host, password=KEY)
    with pytest.raises(ConpeekConfigError) as info:
        records(client)
    message = str(info.value)
    assert "the server answered in plain HTTP" in message
    assert f"use {plain} as the connection's host" in message
    assert "a host without a scheme means https://" in message
    assert "certificate" not in message
    assert "conpeek_scheme" in message
    assert KEY not in message
    assert is_fatal(info.value)
    assert clock.waits() == []


# -- the classification, for what other OpenSSL and urllib3 versions say ----------------------


def wrapped(inner: BaseException) -> requests.exceptions.SSLError:
    """``inner`` wrapped as requests and urllib3 wrap a TLS failure."""
    url = "/api/v1_3/voice_campaign_request_summary"
    reason = urllib3.exceptions.SSLError(inner)
    return requests.exceptions.SSLError(urllib3.exceptions.MaxRetryError(None, url, reason))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("inner", "kind"),
    [
        (
            ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)"),
            "plain_http",
        ),
        (
            ssl.SSLError(1, "[SSL: RECORD_LAYER_FAILURE] record layer failure (_ssl.c:1010)"),
            "plain_http",
        ),
        (
            ssl.SSLError(1, "[SSL: PACKET_LENGTH_TOO_LONG] packet length too long (_ssl.c:1000)"),
            "plain_http",
        ),
        (ssl.SSLError(1, "[SSL: UNKNOWN_PROTOCOL] unknown protocol (_ssl.c:590)"), "plain_http"),
        (ssl.SSLEOFError(8, "EOF occurred in violation of protocol (_ssl.c:1129)"), "eof"),
        (ssl.SSLZeroReturnError(6, "TLS/SSL connection has been closed (EOF)"), "eof"),
        (ConnectionResetError(104, "Connection reset by peer"), "eof"),
        (
            ssl.SSLCertVerificationError(1, "certificate verify failed: certificate has expired"),
            "verify",
        ),
        (ssl.CertificateError("hostname 'a.example' doesn't match 'b.example'"), "hostname"),
        (
            ssl.SSLError(1, "[SSL: SSLV3_ALERT_HANDSHAKE_FAILURE] sslv3 alert handshake failure"),
            "other",
        ),
    ],
)
def test_tls_failures_are_classified_across_versions(inner: BaseException, kind: str) -> None:
    assert tls_failure(wrapped(inner))[0] == kind


# -- through Airflow: dag.test() with an Airflow connection ------------------------------------


@pytest.fixture
def run_dag(
    airflow_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Any]:
    """Write a DAG file into a fresh DAGs folder and run it with ``dag.test()``."""
    at = datetime(2026, 1, 5, tzinfo=timezone.utc)
    return lambda dag_id, body: run_dag_file(tmp_path, monkeypatch, dag_id, body, at)


@pytest.mark.e2e
def test_dag_extract_survives_handshake_eofs(
    conpeek_sandbox_factory: Factory,
    run_dag: Callable[..., Any],
    s3_server: Any,
    s3_bucket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = conpeek_sandbox_factory(
        records=300, tls=True, faults=FaultConfig(rules=[FaultRule("handshake_eof", first=2)])
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_CONPEEK_DEFAULT",
        server.airflow_connection_json(
            ca_bundle=server.ca_file, max_retries=3, max_retry_wait=0.05
        ),
    )
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", s3_server.connection_json())
    run = run_dag(
        "conpeek_tls_handshake_eof",
        f"""
        import pendulum
        from airflow_provider_conpeek.operators.voice_campaign_summary import (
            VoiceCampaignSummaryToS3Operator,
        )

        with DAG(
            dag_id="conpeek_tls_handshake_eof",
            schedule=None,
            start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        ) as dag:
            VoiceCampaignSummaryToS3Operator(
                task_id="extract",
                s3_bucket="{s3_bucket}",
                s3_key="tls/day.jsonl.gz",
                window_start="2026-01-01 00:00:00",
                window_end="2026-01-02 00:00:00",
                page_size=40,
                retries=0,  # only the client's own retries may save it
            )
        """,
    )
    assert run.state == "success"
    assert server.connection_faults == ["handshake_eof", "handshake_eof"]
    window = [
        {"property": "created_date", "operator": "gte", "value": "2026-01-01 00:00:00"},
        {"property": "created_date", "operator": "lt", "value": "2026-01-02 00:00:00"},
    ]
    raw = gzip.decompress(s3_server.read(s3_bucket, "tls/day.jsonl.gz"))
    assert [json.loads(line) for line in raw.splitlines()] == server.expected_records(window)
