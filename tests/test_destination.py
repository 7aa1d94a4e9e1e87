"""The S3 destination, checked before the first Conpeek request, and one object per interval.

Against the sandbox and moto's S3 server over HTTP; the schedules run through ``dag.test()``.
A concurrent writer is simulated by writing to S3 from the sandbox's request thread, while
the extract pages: after the operator's checks, before its write.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pendulum
import pytest
from airflow_compat import DAG_IMPORT, AirflowFailException, load_dag, run_dag_test
from harness import REGION

from airflow_provider_conpeek import __version__
from airflow_provider_conpeek.destination import FILTERS_MAX_CHARS
from airflow_provider_conpeek.exceptions import ConpeekConfigError
from airflow_provider_conpeek.operators.voice_campaign_summary import (
    VoiceCampaignSummaryToS3Operator,
)
from airflow_provider_conpeek.testing.sandbox import FaultConfig

DAY1 = pendulum.datetime(2026, 1, 1, tz="UTC")
DAY2 = DAY1.add(days=1)
KEY = "out/day.jsonl.gz"
EXAMPLE_DAGS = Path(__file__).resolve().parent.parent / "example_dags"
MIB = 1024 * 1024


def ctx(start: Any = DAY1, end: Any = DAY2) -> dict[str, Any]:
    return {"data_interval_start": start, "data_interval_end": end}


def make(bucket: str, key: str = KEY, **kwargs: Any) -> VoiceCampaignSummaryToS3Operator:
    kwargs.setdefault("concurrency", 2)
    kwargs.setdefault("page_size", 100)
    return VoiceCampaignSummaryToS3Operator(
        task_id="extract", s3_bucket=bucket, s3_key=key, **kwargs
    )


def aws_conn(endpoint_url: str, **extra: Any) -> str:
    return json.dumps(
        {
            "conn_type": "aws",
            "extra": {"endpoint_url": endpoint_url, "region_name": REGION, **extra},
        }
    )


MULTIPART = {
    "service_config": {
        "s3": {
            "transfer_config_args": {"multipart_threshold": 5 * MIB, "multipart_chunksize": 5 * MIB}
        }
    }
}


# -- item 2: checked before the first request -------------------------------------------------


@pytest.mark.parametrize(
    ("bucket", "hint"),
    [
        ("s3://my-bucket", "s3_bucket='my-bucket'"),
        ("S3://my-bucket/exports/", "s3_bucket='my-bucket'"),
        ("my-bucket/exports", "start s3_key with 'exports/'"),
    ],
)
def test_bucket_url_or_path_is_refused_before_any_io(
    airflow_connections: Any, monkeypatch: pytest.MonkeyPatch, bucket: str, hint: str
) -> None:
    sandbox = airflow_connections
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", aws_conn("http://127.0.0.1:9"))  # no S3
    with pytest.raises(ConpeekConfigError, match="s3_bucket") as info:
        make(bucket).execute(ctx())
    assert hint in str(info.value)
    assert sandbox.request_log == []


def test_missing_bucket_fails_before_any_request(airflow_connections: Any, s3_server: Any) -> None:
    sandbox = airflow_connections
    with pytest.raises(ConpeekConfigError, match="'no-such-bucket' does not exist") as info:
        make("no-such-bucket").execute(ctx())
    assert isinstance(info.value, AirflowFailException)  # no retry can create it
    assert sandbox.request_log == []


@pytest.mark.e2e
def test_example_dag_with_a_missing_bucket_fails_without_paging(
    airflow_db: Any, airflow_connections: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through ``dag.test()``: the sensor's one-record probe is the only Conpeek request, and
    the extract fails once (AirflowFailException: its two task retries are not spent)."""
    sandbox = airflow_connections
    monkeypatch.setenv("CONPEEK_S3_BUCKET", "no-such-bucket")
    dag = load_dag(EXAMPLE_DAGS, "example_conpeek_daily_extract")
    run = run_dag_test(dag, DAY2)
    assert run.state == "failed"
    states = {ti.task_id: (str(ti.state), ti.try_number) for ti in run.get_task_instances()}
    assert states["extract_voice_campaign_request_summary"] == ("failed", 1)
    assert [entry.params.get("limit") for entry in sandbox.request_log] == [["1"]]


class Forbidden(BaseHTTPRequestHandler):
    """An S3 endpoint that denies everything, as S3 does for credentials without access."""

    def _deny(self) -> None:
        body = b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
        self.send_response(403)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", "0" if self.command == "HEAD" else str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_HEAD = do_GET = do_PUT = do_POST = _deny

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def forbidding_s3() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Forbidden)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_no_access_fails_before_any_request(
    airflow_connections: Any, forbidding_s3: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = airflow_connections
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", aws_conn(forbidding_s3))
    with pytest.raises(ConpeekConfigError, match="may not use bucket 'contact-centre'") as info:
        make("contact-centre").execute(ctx())
    assert "s3:PutObject" in str(info.value)
    assert sandbox.request_log == []


def test_unknown_aws_conn_id_is_named_and_none_means_default_credentials(
    airflow_connections: Any,
    s3_server: Any,
    s3_bucket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sandbox = airflow_connections
    with pytest.raises(
        ConpeekConfigError, match=r"'aws_typo' \(aws_conn_id\) does not exist"
    ) as info:
        make(s3_bucket, aws_conn_id="aws_typo").execute(ctx())
    assert "aws_conn_id=None" in str(info.value)
    assert sandbox.request_log == []

    # None on purpose: boto3's default chain (here the environment) finds the credentials.
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server.endpoint_url)
    assert make(s3_bucket, aws_conn_id=None).execute(ctx())["records"] > 0


def test_replace_must_be_true_false_or_always(airflow_connections: Any, s3_bucket: str) -> None:
    with pytest.raises(ConpeekConfigError, match="replace must be True, False or 'always'"):
        make(s3_bucket, replace="yes").execute(ctx())
    assert airflow_connections.request_log == []


# -- item 3: what an object says, and who may overwrite it ------------------------------------


def test_object_carries_its_window_filters_count_version_and_type(
    airflow_connections: Any, s3_server: Any, s3_bucket: str
) -> None:
    extra = [{"property": "project_id_list", "value": [11, 13]}]
    result = make(s3_bucket, filters=extra).execute(ctx())
    head = s3_server.client().head_object(Bucket=s3_bucket, Key=KEY)
    filters_json = '[{"property":"project_id_list","value":[11,13]}]'
    assert re.fullmatch(r"[0-9a-f]{32}", head["Metadata"].pop("conpeek-write-id"))
    assert head["Metadata"] == {
        "conpeek-endpoint": "voice_campaign_request_summary",
        "conpeek-date-property": "created_date",
        "conpeek-window-start": "2026-01-01T00:00:00Z",
        "conpeek-window-end": "2026-01-02T00:00:00Z",
        "conpeek-filters": filters_json,
        "conpeek-filters-sha256": hashlib.sha256(filters_json.encode()).hexdigest(),
        "conpeek-records": str(result["records"]),
        "conpeek-provider-version": __version__,
    }
    # A .gz file, not a transfer encoding: no client unzips it behind the reader's back.
    assert head["ContentType"] == "application/gzip"
    assert "ContentEncoding" not in head

    make(s3_bucket, "plain.jsonl", compression="none").execute(ctx())
    plain = s3_server.client().head_object(Bucket=s3_bucket, Key="plain.jsonl")
    assert plain["ContentType"] == "application/x-ndjson"
    assert plain["Metadata"]["conpeek-filters"] == "[]"


def test_long_filters_are_cut_in_metadata_but_hashed_whole(
    airflow_connections: Any, s3_server: Any, s3_bucket: str
) -> None:
    numbers = [f"48{n:09d}" for n in range(150)]
    extra = [{"property": "contact_number_list", "value": numbers}]
    make(s3_bucket, filters=extra).execute(ctx())
    meta = s3_server.client().head_object(Bucket=s3_bucket, Key=KEY)["Metadata"]
    whole = json.dumps(extra, sort_keys=True, separators=(",", ":"))
    assert len(whole) > FILTERS_MAX_CHARS
    assert meta["conpeek-filters"] == whole[: FILTERS_MAX_CHARS - 3] + "..."
    assert meta["conpeek-filters-sha256"] == hashlib.sha256(whole.encode()).hexdigest()
    assert sum(len(k) + len(v) for k, v in meta.items()) < 2048  # S3's limit, ASCII


def test_another_windows_object_is_not_overwritten(
    airflow_connections: Any, s3_server: Any, s3_bucket: str
) -> None:
    sandbox = airflow_connections
    make(s3_bucket).execute(ctx(DAY1, DAY2))
    first = s3_server.read(s3_bucket, KEY)
    sandbox.clear_log()
    with pytest.raises(ConpeekConfigError) as info:
        make(s3_bucket).execute(ctx(DAY2, DAY2.add(days=1)))
    message = str(info.value)
    assert "created_date in [2026-01-01T00:00:00Z, 2026-01-02T00:00:00Z)" in message
    assert "created_date in [2026-01-02T00:00:00Z, 2026-01-03T00:00:00Z)" in message
    assert "{{ data_interval_start | ts_nodash }}" in message
    assert sandbox.request_log == []  # before any request
    assert s3_server.read(s3_bucket, KEY) == first

    # Another date property is another window too; replace='always' overwrites anyway.
    with pytest.raises(ConpeekConfigError, match="closed_date in"):
        make(s3_bucket, date_property="closed_date").execute(ctx(DAY1, DAY2))
    make(s3_bucket, replace="always").execute(ctx(DAY2, DAY2.add(days=1)))
    meta = s3_server.client().head_object(Bucket=s3_bucket, Key=KEY)["Metadata"]
    assert meta["conpeek-window-start"] == "2026-01-02T00:00:00Z"


def test_same_window_is_rewritten_even_with_other_filters(
    airflow_connections: Any, s3_server: Any, s3_bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    make(s3_bucket).execute(ctx())
    result = make(s3_bucket, filters=[{"property": "project_id_list", "value": [11]}]).execute(
        ctx()
    )
    raw = s3_server.read(s3_bucket, KEY)
    assert len(gzip.decompress(raw).splitlines()) == result["records"]
    assert "holds this window's extract with other filters" in caplog.text


def test_an_object_not_written_by_the_operator_is_refused_unless_replace_always(
    airflow_connections: Any, s3_server: Any, s3_bucket: str
) -> None:
    sandbox = airflow_connections
    s3_server.client().put_object(Bucket=s3_bucket, Key=KEY, Body=b"someone else's")
    with pytest.raises(ConpeekConfigError, match="was not written by this operator") as info:
        make(s3_bucket).execute(ctx())
    assert "replace='always'" in str(info.value)
    assert sandbox.request_log == []
    assert s3_server.read(s3_bucket, KEY) == b"someone else's"
    result = make(s3_bucket, replace="always").execute(ctx())
    assert len(gzip.decompress(s3_server.read(s3_bucket, KEY)).splitlines()) == result["records"]


# -- conditional writes: a concurrent writer between the checks and the write ------------------


def server_supports(s3_server: Any, bucket: str, header: str) -> bool:
    """Whether this S3 server honours ``IfNoneMatch``/``IfMatch`` on PutObject (moto 5.1.5+,
    the floor in pyproject.toml, does; 5.0.x ignored them): the tests' premise, checked."""
    client = s3_server.client()
    client.put_object(Bucket=bucket, Key="probe", Body=b"1")
    args = {"IfNoneMatch": "*"} if header == "IfNoneMatch" else {"IfMatch": '"0"'}
    try:
        client.put_object(Bucket=bucket, Key="probe", Body=b"2", **args)
    except client.exceptions.ClientError:
        return True
    finally:
        client.delete_object(Bucket=bucket, Key="probe")
    return False


@pytest.fixture
def meanwhile(
    conpeek_sandbox_factory: Callable[..., Any], s3_server: Any, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Any]:
    """``meanwhile(action, records=...)``: a sandbox as ``conpeek_default`` that runs
    ``action`` once, while answering the first page: after the operator's checks."""

    def start(action: Callable[[], object], **kwargs: Any) -> Any:
        done = threading.Event()

        def sleep(_: float) -> None:
            if not done.is_set():
                done.set()
                action()

        kwargs.setdefault("records", 1000)
        sandbox = conpeek_sandbox_factory(faults=FaultConfig(latency=0.001), sleep=sleep, **kwargs)
        monkeypatch.setenv("AIRFLOW_CONN_CONPEEK_DEFAULT", sandbox.airflow_connection_json())
        monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", s3_server.connection_json())
        return sandbox

    return start


WINDOW_DAY1 = [
    {"property": "created_date", "operator": "gte", "value": "2026-01-01 00:00:00"},
    {"property": "created_date", "operator": "lt", "value": "2026-01-02 00:00:00"},
]


def stamped(day: pendulum.DateTime) -> dict[str, str]:
    return {
        "conpeek-date-property": "created_date",
        "conpeek-window-start": day.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "conpeek-window-end": day.add(days=1).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


@pytest.mark.parametrize("multipart", [False, True], ids=["put", "multipart"])
def test_replace_false_is_atomic(
    meanwhile: Callable[..., Any],
    s3_server: Any,
    s3_bucket: str,
    monkeypatch: pytest.MonkeyPatch,
    multipart: bool,
) -> None:
    assert server_supports(s3_server, s3_bucket, "IfNoneMatch"), "moto 5.1.5+ honours it"
    client = s3_server.client()
    key = "out/day.jsonl" if multipart else KEY
    kwargs: dict[str, Any] = {"replace": False, "page_size": 1000}
    meanwhile(
        lambda: client.put_object(Bucket=s3_bucket, Key=key, Body=b"theirs"),
        records=25_000 if multipart else 1000,
    )
    if multipart:  # ~7 MB of plain records: two 5 MiB parts, If-None-Match on completion
        monkeypatch.setenv(
            "AIRFLOW_CONN_AWS_DEFAULT", aws_conn(s3_server.endpoint_url, **MULTIPART)
        )
        kwargs["compression"] = "none"
    with pytest.raises(ConpeekConfigError, match="already exists and replace=False"):
        make(s3_bucket, key, **kwargs).execute(ctx(DAY1, DAY1.add(days=3)))
    assert s3_server.read(s3_bucket, key) == b"theirs"
    assert client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []


def test_another_window_written_meanwhile_is_not_overwritten(
    meanwhile: Callable[..., Any], s3_server: Any, s3_bucket: str
) -> None:
    assert server_supports(s3_server, s3_bucket, "IfNoneMatch"), "moto 5.1.5+ honours it"
    client = s3_server.client()
    meanwhile(
        lambda: client.put_object(Bucket=s3_bucket, Key=KEY, Body=b"day 2", Metadata=stamped(DAY2))
    )
    with pytest.raises(ConpeekConfigError, match="holds the extract of another window") as info:
        make(s3_bucket).execute(ctx())
    assert "[2026-01-02T00:00:00Z, 2026-01-03T00:00:00Z)" in str(info.value)
    assert s3_server.read(s3_bucket, KEY) == b"day 2"


def test_the_same_window_written_meanwhile_is_replaced(
    meanwhile: Callable[..., Any], s3_server: Any, s3_bucket: str
) -> None:
    assert server_supports(s3_server, s3_bucket, "IfNoneMatch"), "moto 5.1.5+ honours it"
    client = s3_server.client()
    sandbox = meanwhile(
        lambda: client.put_object(Bucket=s3_bucket, Key=KEY, Body=b"rerun", Metadata=stamped(DAY1))
    )
    make(s3_bucket).execute(ctx())  # a concurrent run of the same interval: last one wins
    expected = sandbox.expected_records(
        [
            {"property": "created_date", "operator": "gte", "value": "2026-01-01 00:00:00"},
            {"property": "created_date", "operator": "lt", "value": "2026-01-02 00:00:00"},
        ]
    )
    lines = gzip.decompress(s3_server.read(s3_bucket, KEY)).splitlines()
    assert [json.loads(line) for line in lines] == expected


def test_the_object_deleted_meanwhile_is_written_anew(
    meanwhile: Callable[..., Any], s3_server: Any, s3_bucket: str
) -> None:
    """The key held this window's object at the check (``If-Match``); it was deleted while
    the extract paged: S3 answers 404 to the conditional write, and the key is empty now."""
    client = s3_server.client()
    meanwhile(lambda: None)
    make(s3_bucket).execute(ctx())
    sandbox = meanwhile(lambda: client.delete_object(Bucket=s3_bucket, Key=KEY))
    result = make(s3_bucket).execute(ctx())
    lines = gzip.decompress(s3_server.read(s3_bucket, KEY)).splitlines()
    assert len(lines) == result["records"] == len(sandbox.expected_records(WINDOW_DAY1))


def test_a_resent_write_that_had_landed_is_this_extracts_own(
    s3_server: Any, s3_bucket: str, tmp_path: Path
) -> None:
    """A PutObject whose answer was lost lands; botocore resends it with the same
    ``If-None-Match: *`` and S3 refuses: the object carries this extract's write id, so
    the write is done (with replace=False, not "already exists")."""
    from airflow_provider_conpeek.destination import ObjectStamp
    from airflow_provider_conpeek.s3write import S3Destination

    dest = S3Destination(s3_server.client(), s3_bucket, KEY)
    stamp = ObjectStamp.from_metadata(stamped(DAY1))
    assert stamp is not None
    assert dest.prepare(stamp, replace=False) is None
    path = tmp_path / "records.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"id": 1}\n'))
    first = dest.write(path, stamp, records=1, content_type="application/x-ndjson")
    assert (
        dest.write(path, stamp, records=1, content_type="application/x-ndjson") == first
    )  # the "resend"
    other = S3Destination(s3_server.client(), s3_bucket, KEY)  # another extract: refused
    with pytest.raises(ConpeekConfigError, match="replace=False"):
        other.prepare(stamp, replace=False)


@pytest.mark.parametrize("multipart", [False, True], ids=["put", "multipart"])
def test_an_object_replaced_meanwhile_is_not_overwritten(
    meanwhile: Callable[..., Any],
    s3_server: Any,
    s3_bucket: str,
    monkeypatch: pytest.MonkeyPatch,
    multipart: bool,
) -> None:
    """The key held this window's object at the check (``If-Match: <etag>``); another
    window's object replaced it while the extract paged."""
    if not multipart:
        assert server_supports(s3_server, s3_bucket, "IfMatch"), "moto 5.1.5+ honours it"
    client = s3_server.client()
    key = "out/day.jsonl" if multipart else KEY
    kwargs: dict[str, Any] = {"page_size": 1000}
    if multipart:
        kwargs["compression"] = "none"
    window = ctx(DAY1, DAY1.add(days=3))
    meanwhile(lambda: None, records=25_000)
    if multipart:
        monkeypatch.setenv(
            "AIRFLOW_CONN_AWS_DEFAULT", aws_conn(s3_server.endpoint_url, **MULTIPART)
        )
    make(s3_bucket, key, **kwargs).execute(window)  # this window's object, then a rerun:
    etag = client.head_object(Bucket=s3_bucket, Key=key)["ETag"]
    assert etag.endswith('-2"') == multipart  # two parts, or one PutObject

    other = {**stamped(DAY2), "conpeek-window-end": "2026-01-05T00:00:00Z"}
    meanwhile(
        lambda: client.put_object(Bucket=s3_bucket, Key=key, Body=b"other", Metadata=other),
        records=25_000,
    )
    if multipart:  # moto ignores If-Match on CompleteMultipartUpload: the re-check holds
        monkeypatch.setenv(
            "AIRFLOW_CONN_AWS_DEFAULT", aws_conn(s3_server.endpoint_url, **MULTIPART)
        )
    with pytest.raises(ConpeekConfigError, match="holds the extract of another window"):
        make(s3_bucket, key, **kwargs).execute(window)
    assert s3_server.read(s3_bucket, key) == b"other"
    assert client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []


# -- through Airflow: keys unique for any schedule ---------------------------------------------

DAG_TEMPLATE = """
import os

import pendulum
from airflow.timetables.interval import CronDataIntervalTimetable

from airflow_provider_conpeek.operators.voice_campaign_summary import (
    VoiceCampaignSummaryToS3Operator,
)
{dag_import}
with DAG(
    dag_id="{dag_id}",
    schedule=CronDataIntervalTimetable("{cron}", timezone="{tz}"),
    start_date=pendulum.datetime(2024, 1, 1, tz="{tz}"),
    catchup=False,
) as dag:
    VoiceCampaignSummaryToS3Operator(
        task_id="extract",
        s3_bucket=os.environ["DEST_TEST_BUCKET"],
        s3_key="conpeek/{{{{ data_interval_start | {filter} }}}}.jsonl.gz",
    )
"""


@pytest.fixture
def schedule_dag(
    airflow_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Any]:
    """``schedule_dag(dag_id, cron, tz, key_filter)``: the DAG, in a fresh DAGs folder."""
    from airflow import settings

    folder = tmp_path / "dags"
    folder.mkdir()
    monkeypatch.setattr(settings, "DAGS_FOLDER", str(folder))
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(folder))

    def write(dag_id: str, cron: str, tz: str, key_filter: str) -> Any:
        source = DAG_TEMPLATE.format(
            dag_import=DAG_IMPORT, dag_id=dag_id, cron=cron, tz=tz, filter=key_filter
        )
        (folder / f"{dag_id}.py").write_text(source)
        return load_dag(folder, dag_id)

    return write


def window_of(s3_server: Any, bucket: str, key: str) -> tuple[str, str]:
    meta = s3_server.client().head_object(Bucket=bucket, Key=key)["Metadata"]
    return meta["conpeek-window-start"], meta["conpeek-window-end"]


@pytest.mark.e2e
def test_hourly_runs_write_one_object_each_with_the_example_key(
    schedule_dag: Callable[..., Any],
    airflow_connections: Any,
    s3_server: Any,
    s3_bucket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DEST_TEST_BUCKET", s3_bucket)
    dag = schedule_dag("dest_hourly", "@hourly", "UTC", "ts_nodash")
    for hour in (1, 2, 3):  # the run at hh:00 covers the hour before it
        assert run_dag_test(dag, DAY1.add(hours=hour)).state == "success"
    keys = sorted(s3_server.keys(s3_bucket))
    assert keys == [f"conpeek/20260101T0{h}0000.jsonl.gz" for h in (0, 1, 2)]
    assert [window_of(s3_server, s3_bucket, k)[0] for k in keys] == [
        f"2026-01-01T0{h}:00:00Z" for h in (0, 1, 2)
    ]


@pytest.mark.e2e
def test_hourly_runs_with_a_daily_key_fail_instead_of_overwriting(
    schedule_dag: Callable[..., Any],
    airflow_connections: Any,
    s3_server: Any,
    s3_bucket: str,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DEST_TEST_BUCKET", s3_bucket)
    dag = schedule_dag("dest_hourly_ds", "@hourly", "UTC", "ds")
    assert run_dag_test(dag, DAY1.add(hours=1)).state == "success"
    capfd.readouterr()
    assert run_dag_test(dag, DAY1.add(hours=2)).state == "failed"
    out = capfd.readouterr()
    assert "holds the extract of another window" in out.out + out.err
    assert s3_server.keys(s3_bucket) == ["conpeek/2026-01-01.jsonl.gz"]
    assert window_of(s3_server, s3_bucket, "conpeek/2026-01-01.jsonl.gz") == (
        "2026-01-01T00:00:00Z",
        "2026-01-01T01:00:00Z",
    )


@pytest.mark.e2e
def test_a_warsaw_day_is_filed_under_its_utc_start(
    schedule_dag: Callable[..., Any],
    conpeek_sandbox_factory: Callable[..., Any],
    s3_server: Any,
    s3_bucket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sandbox = conpeek_sandbox_factory(records=500, days=3, start="2024-02-28")
    monkeypatch.setenv("AIRFLOW_CONN_CONPEEK_DEFAULT", sandbox.airflow_connection_json())
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", s3_server.connection_json())
    monkeypatch.setenv("DEST_TEST_BUCKET", s3_bucket)
    dag = schedule_dag("dest_warsaw", "@daily", "Europe/Warsaw", "ts_nodash")
    # The run of the local day 2024-03-01 (00:00 Warsaw is 23:00 UTC the day before).
    run = run_dag_test(dag, pendulum.datetime(2024, 3, 2, tz="Europe/Warsaw"))
    assert run.state == "success"
    assert s3_server.keys(s3_bucket) == ["conpeek/20240229T230000.jsonl.gz"]
    start, end = window_of(s3_server, s3_bucket, "conpeek/20240229T230000.jsonl.gz")
    assert (start, end) == ("2024-02-29T23:00:00Z", "2024-03-01T23:00:00Z")


def test_s3_client_names_the_operator_without_walking_the_stack(
    airflow_connections: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Amazon provider's User-Agent names the caller; ours is given, not searched for
    with inspect.stack() (about 0.1 s per client)."""
    import inspect

    from airflow_provider_conpeek.s3write import s3_hook

    def no_stack_walk(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("inspect.stack() called")

    monkeypatch.setattr(inspect, "stack", no_stack_walk)
    client = s3_hook("aws_default", "VoiceCampaignSummaryToS3Operator").get_conn()
    assert "Caller/VoiceCampaignSummaryToS3Operator" in client.meta.config.user_agent_extra


def test_multipart_object_holds_every_record_streamed_part_by_part(
    meanwhile: Callable[..., Any], s3_server: Any, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """~7 MB of plain records in two 5 MiB parts, each read from the file as it is sent."""
    sandbox = meanwhile(lambda: None, records=25_000)
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", aws_conn(s3_server.endpoint_url, **MULTIPART))
    key = "out/multipart.jsonl"
    make(s3_bucket, key, compression="none", page_size=1000).execute(ctx(DAY1, DAY1.add(days=3)))
    client = s3_server.client()
    assert client.head_object(Bucket=s3_bucket, Key=key)["ETag"].endswith('-2"')
    body = s3_server.read(s3_bucket, key)
    assert [json.loads(line) for line in body.splitlines()] == sandbox.expected_records()


def test_file_part_reads_seeks_and_rewinds_within_its_bounds(tmp_path: Path) -> None:
    from airflow_provider_conpeek.objectwrite import FilePart

    path = tmp_path / "data"
    path.write_bytes(bytes(range(256)) * 4)  # 1024 bytes
    with path.open("rb") as f:
        middle, last = FilePart(f, 400, 400, 1024), FilePart(f, 800, 400, 1024)
        assert (len(middle), len(last)) == (400, 224)  # the last part is shorter
        assert middle.read(10) == (bytes(range(256)) * 4)[400:410]
        assert middle.tell() == 10
        assert last.read() == (bytes(range(256)) * 4)[800:]  # parts share one file object
        assert middle.read() == (bytes(range(256)) * 4)[410:800]  # its own position holds
        assert middle.read(5) == b""
        assert middle.seek(0, 2) == 400
        assert middle.seek(-10, 1) == 390
        assert middle.seek(0) == 0
        assert middle.read(None) == (bytes(range(256)) * 4)[400:800]
