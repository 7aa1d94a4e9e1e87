"""Every store operator, end to end: the sandbox over HTTP into S3 (moto), Google Cloud Storage
(gcp-storage-emulator) and Azure Blob Storage (Azurite), in both formats, through the
operators' own ``execute()`` and through Airflow (``dag.test()`` of the example DAG).

The destinations' own guarantees (conditions, concurrent writers, streaming, cancel between
parts) are tested per store in test_destination.py, test_gcs.py and test_azure.py; here, that
the operators wire them the same way: the window and its metadata, Parquet equal to JSON
Lines record for record, byte-identical reruns, every check before the first Conpeek request,
and a killed extract leaving no object and no temporary file.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pendulum
import pyarrow.parquet as pq
import pytest
from airflow_compat import dag_bag, run_dag_test
from harness import temp_leftovers

from airflow_provider_conpeek.destination import ObjectStamp, normal_metadata
from airflow_provider_conpeek.exceptions import ConpeekConfigError
from airflow_provider_conpeek.objectwrite import ExtractCancelled
from airflow_provider_conpeek.operators.voice_campaign_summary import (
    VoiceCampaignSummaryToAzureBlobOperator,
    VoiceCampaignSummaryToGCSOperator,
    VoiceCampaignSummaryToS3Operator,
)
from airflow_provider_conpeek.testing.faults import FaultConfig

DAY = {
    "data_interval_start": datetime(2026, 1, 1, tzinfo=timezone.utc),
    "data_interval_end": datetime(2026, 1, 2, tzinfo=timezone.utc),
}
WINDOW = [
    {"property": "created_date", "operator": "gte", "value": "2026-01-01 00:00:00"},
    {"property": "created_date", "operator": "lt", "value": "2026-01-02 00:00:00"},
]
EXAMPLE_DAGS = Path(__file__).resolve().parent.parent / "example_dags"


@dataclass
class Store:
    """One store as the tests see it: its operator, where it writes, how to read it back."""

    name: str
    bucket: str
    operator: Callable[..., Any]
    target: Callable[[str, str], dict[str, str]]
    read: Callable[[str], bytes]
    metadata: Callable[[str], dict[str, str]]
    keys: Callable[[], list[str]]
    conn_env: str
    conn_arg: str
    uri_key: str
    version_key: str

    def make(self, key: str, **kwargs: Any) -> Any:
        kwargs.setdefault("page_size", 50)
        return self.operator(task_id="extract", **self.target(self.bucket, key), **kwargs)


def s3_store(request: pytest.FixtureRequest) -> Store:
    server, bucket = request.getfixturevalue("s3_server"), request.getfixturevalue("s3_bucket")

    def metadata(key: str) -> dict[str, str]:
        found: dict[str, str] = server.client().head_object(Bucket=bucket, Key=key)["Metadata"]
        return found

    def keys() -> list[str]:
        listed = server.client().list_objects_v2(Bucket=bucket).get("Contents", [])
        return sorted(o["Key"] for o in listed)

    return Store(
        "s3",
        bucket,
        VoiceCampaignSummaryToS3Operator,
        lambda b, k: {"s3_bucket": b, "s3_key": k},
        lambda key: server.read(bucket, key),  # type: ignore[no-any-return]
        metadata,
        keys,
        "AIRFLOW_CONN_AWS_DEFAULT",
        "aws_conn_id",
        "s3_uri",
        "etag",
    )


def gcs_store(request: pytest.FixtureRequest) -> Store:
    server, bucket = request.getfixturevalue("gcs_server"), request.getfixturevalue("gcs_bucket")

    def metadata(key: str) -> dict[str, str]:
        return dict(server.client().bucket(bucket).get_blob(key).metadata or {})

    return Store(
        "gcs",
        bucket,
        VoiceCampaignSummaryToGCSOperator,
        lambda b, k: {"bucket_name": b, "object_name": k},
        lambda key: server.read(bucket, key),  # type: ignore[no-any-return]
        metadata,
        lambda: server.keys(bucket),  # type: ignore[no-any-return]
        "AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT",
        "gcp_conn_id",
        "gcs_uri",
        "generation",
    )


def azure_store(request: pytest.FixtureRequest) -> Store:
    server = request.getfixturevalue("azurite")
    container = request.getfixturevalue("azure_container")

    def metadata(key: str) -> dict[str, str]:
        blob = server.service().get_blob_client(container, key)
        return dict(blob.get_blob_properties().metadata)

    return Store(
        "azure",
        container,
        VoiceCampaignSummaryToAzureBlobOperator,
        lambda b, k: {"container_name": b, "blob_name": k},
        lambda key: server.read(container, key),  # type: ignore[no-any-return]
        metadata,
        lambda: sorted(server.blobs(container)),
        "AIRFLOW_CONN_WASB_DEFAULT",
        "wasb_conn_id",
        "wasb_uri",
        "etag",
    )


def connection_json(store: Store, request: pytest.FixtureRequest) -> str:
    server = request.getfixturevalue(
        {"s3": "s3_server", "gcs": "gcs_server"}.get(store.name, "azurite")
    )
    return server.connection_json()  # type: ignore[no-any-return]


@pytest.fixture(params=["s3", "gcs", "azure"])
def store(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, conpeek_sandbox: Any
) -> Store:
    """One store (each test runs on all three), its connection and ``conpeek_default`` (the
    sandbox) as Airflow connections in the environment."""
    made = {"s3": s3_store, "gcs": gcs_store, "azure": azure_store}[request.param](request)
    monkeypatch.setenv("AIRFLOW_CONN_CONPEEK_DEFAULT", conpeek_sandbox.airflow_connection_json())
    monkeypatch.setenv(made.conn_env, connection_json(made, request))
    return made


def test_each_store_gets_the_window_in_both_formats_and_reruns_rewrite_the_same_bytes(
    store: Store,
    conpeek_sandbox: Any,
    tmp_path_factory: pytest.TempPathFactory,
    tmpdir_watch: Path,
) -> None:
    import duckdb

    tmp_path = tmp_path_factory.mktemp("read")

    expected = conpeek_sandbox.expected_records(WINDOW)
    jsonl = store.make("day.jsonl.gz").execute(DAY)
    lines = [json.loads(line) for line in gzip.decompress(store.read("day.jsonl.gz")).splitlines()]
    assert lines == expected  # exactly the window, [start, end), in the API's order
    assert store.bucket in jsonl[store.uri_key]
    assert jsonl[store.uri_key].endswith("/day.jsonl.gz")
    assert jsonl["records"] == len(expected) > 0
    assert jsonl[store.version_key]  # the version written (etag or generation)
    assert json.loads(json.dumps(jsonl)) == jsonl  # XCom-safe, small
    meta = normal_metadata(store.metadata("day.jsonl.gz"))
    stamp = ObjectStamp.from_metadata(meta)
    assert stamp is not None
    assert stamp.window == ("created_date", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z")
    assert meta["conpeek-records"] == str(len(expected))

    parquet = store.make("day.parquet", file_format="parquet").execute(DAY)
    assert parquet["records"] == len(expected)
    (tmp_path / "day.parquet").write_bytes(store.read("day.parquet"))
    (tmp_path / "day.jsonl.gz").write_bytes(store.read("day.jsonl.gz"))
    rows = pq.read_table(tmp_path / "day.parquet").to_pylist()
    for row, record in zip(rows, expected, strict=True):  # record for record
        for name, value in record.items():
            got = row[name]
            if value is not None and not isinstance(value, (str, int, float, bool)):
                got = json.loads(got)  # nested values are kept as their JSON text
            assert got == value, name
    query = "SELECT project_id::VARCHAR, count(*) FROM {} GROUP BY 1 ORDER BY 1"
    con = duckdb.connect()
    parquet_path, jsonl_path = tmp_path / "day.parquet", tmp_path / "day.jsonl.gz"
    from_parquet = con.execute(query.format(f"read_parquet('{parquet_path}')")).fetchall()
    from_jsonl = con.execute(
        query.format(f"read_ndjson('{jsonl_path}', compression='gzip')")
    ).fetchall()
    assert from_parquet == from_jsonl
    assert sum(count for _, count in from_parquet) == len(expected)

    before = {key: store.read(key) for key in ("day.jsonl.gz", "day.parquet")}

    def writers() -> list[str]:  # the extract that wrote each object (a random id per run)
        return [normal_metadata(store.metadata(key))["conpeek-write-id"] for key in before]

    first_writers = writers()
    store.make("day.jsonl.gz").execute(DAY)  # a rerun of the same interval
    store.make("day.parquet", file_format="parquet").execute(DAY)
    assert all(a != b for a, b in zip(writers(), first_writers, strict=True))  # rewritten...
    assert {key: store.read(key) for key in before} == before  # ...with the same bytes
    assert store.keys() == ["day.jsonl.gz", "day.parquet"]
    assert temp_leftovers(tmpdir_watch) == []


def test_each_store_is_checked_before_the_first_conpeek_request(
    store: Store, conpeek_sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another interval's object at the key: never overwritten (replace=True is the default).
    other = {
        "data_interval_start": datetime(2026, 1, 2, tzinfo=timezone.utc),
        "data_interval_end": datetime(2026, 1, 3, tzinfo=timezone.utc),
    }
    store.make("day.jsonl.gz").execute(other)
    kept = store.read("day.jsonl.gz")
    requests_before = len(conpeek_sandbox.request_log)
    with pytest.raises(ConpeekConfigError, match="holds the extract of another window"):
        store.make("day.jsonl.gz").execute(DAY)
    with pytest.raises(ConpeekConfigError, match="replace=False"):
        store.make("day.jsonl.gz", replace=False).execute(other)
    # A bucket (container) that does not exist, named.
    with pytest.raises(ConpeekConfigError, match="does not exist"):
        store.operator(task_id="x", **store.target("no-such-bucket-here", "day.jsonl.gz")).execute(
            DAY
        )
    # A connection id that names no connection, named with its argument.
    with pytest.raises(ConpeekConfigError, match=store.conn_arg):
        store.make("day.jsonl.gz", **{store.conn_arg: "no_such_connection"}).execute(DAY)
    # A URL where a bucket name goes, named with the store's own argument.
    bucket_arg = next(iter(store.target("b", "k")))
    with pytest.raises(ConpeekConfigError, match=f"{bucket_arg} .* is a URL"):
        store.operator(task_id="x", **store.target(f"x://{store.bucket}", "k.jsonl.gz")).execute(
            DAY
        )
    assert len(conpeek_sandbox.request_log) == requests_before  # not one request was sent
    assert store.read("day.jsonl.gz") == kept


def test_a_killed_extract_leaves_no_object_and_no_temporary_file(
    store: Store,
    conpeek_sandbox_factory: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmpdir_watch: Path,
) -> None:
    """``on_kill`` (Airflow's SIGTERM handling) while a request is in progress: the sandbox
    calls it from inside its third request, so the kill lands mid-paging every time."""
    operator = store.make("day.jsonl.gz", concurrency=1)
    delays: list[float] = []

    def kill_on_third_request(seconds: float) -> None:
        delays.append(seconds)
        if len(delays) == 3:
            operator.on_kill()

    sandbox = conpeek_sandbox_factory(
        records=1000, days=3, faults=FaultConfig(latency=0.001), sleep=kill_on_third_request
    )
    monkeypatch.setenv("AIRFLOW_CONN_CONPEEK_DEFAULT", sandbox.airflow_connection_json())
    with pytest.raises(ExtractCancelled, match="no object was written"):
        operator.execute(DAY)
    assert len(delays) >= 3
    assert store.keys() == []
    assert temp_leftovers(tmpdir_watch) == []


@pytest.mark.e2e
def test_the_gcs_and_azure_example_dag_runs_through_airflow(
    airflow_db: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    conpeek_sandbox: Any,
) -> None:
    gcs, azure = gcs_store(request), azure_store(request)
    monkeypatch.setenv("AIRFLOW_CONN_CONPEEK_DEFAULT", conpeek_sandbox.airflow_connection_json())
    for made in (gcs, azure):
        monkeypatch.setenv(made.conn_env, connection_json(made, request))
    monkeypatch.setenv("CONPEEK_GCS_BUCKET", gcs.bucket)
    monkeypatch.setenv("CONPEEK_AZURE_CONTAINER", azure.bucket)
    dag = dag_bag(EXAMPLE_DAGS).get_dag("example_conpeek_gcs_and_azure")
    day = pendulum.datetime(2026, 1, 1, tz="UTC")
    run = run_dag_test(dag, day.add(days=1))  # covers [day, day + 1)
    assert run.state == "success", run
    name = "conpeek/voice_campaign_request_summary/20260101T000000"
    expected = conpeek_sandbox.expected_records(WINDOW)
    blob = gzip.decompress(azure.read(name + ".jsonl.gz"))
    assert [json.loads(line) for line in blob.splitlines()] == expected
    path = request.getfixturevalue("tmp_path") / "day.parquet"
    path.write_bytes(gcs.read(name + ".parquet"))
    created = pq.read_table(path).column("created_date").to_pylist()
    assert created == [r["created_date"] for r in expected]


def store_asset(store: Store, prefix: str) -> Any:
    """The store's asset for ``prefix`` (the Azure account is Azurite's)."""
    from airflow_provider_conpeek.lineage import azure_blob_asset, gcs_asset, s3_asset

    if store.name == "azure":
        return azure_blob_asset("devstoreaccount1", store.bucket, prefix)
    return {"s3": s3_asset, "gcs": gcs_asset}[store.name](store.bucket, prefix)


def test_each_store_names_its_object_in_asset_events_and_openlineage(
    store: Store, conpeek_sandbox: Any
) -> None:
    from types import SimpleNamespace

    from airflow_provider_conpeek._compat import Asset

    if store.name == "azure" and "@" not in str(Asset("wasb://c@a/p").uri):
        with pytest.raises(ConpeekConfigError, match="drops the container"):
            store_asset(store, "conpeek")  # 2.11's Dataset, 3.0's Asset: no container
        return
    outlet = store_asset(store, "conpeek")
    operator = store.make("conpeek/day.jsonl.gz", outlets=[outlet])
    events: dict[str, Any] = {}  # by URI: an Asset is not hashable on every Airflow

    class OutletEvents:
        def __getitem__(self, asset: Any) -> Any:
            return events.setdefault(asset.uri, SimpleNamespace(extra=None))

    result = operator.execute({**DAY, "outlet_events": OutletEvents()})
    uri = result[store.uri_key]
    assert uri.startswith(outlet.uri + "/")
    assert uri.endswith("/conpeek/day.jsonl.gz")
    assert events[outlet.uri].extra["uri"] == uri
    assert events[outlet.uri].extra["records"] == result["records"]
    lineage = operator.get_openlineage_facets_on_complete(None)
    (output,) = lineage.outputs
    assert f"{output.namespace}/{output.name}" == uri
    assert output.outputFacets["outputStatistics"].rowCount == result["records"]

    # An outlet of the same store that does not contain the object: refused, naming it,
    # before any Conpeek request.
    requests = len(conpeek_sandbox.request_log)
    elsewhere = store_asset(store, "somewhere/else")
    with pytest.raises(ConpeekConfigError, match=f"does not contain {re.escape(uri)}"):
        store.make("conpeek/day.jsonl.gz", outlets=[elsewhere]).execute(DAY)
    assert len(conpeek_sandbox.request_log) == requests
