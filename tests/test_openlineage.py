"""OpenLineage through real Airflow: ``airflow dags test`` in a subprocess (the provider's
listener is switched on per process, at import, by its transport setting), events written
by the provider's file transport and checked field by field; and the same run with the
OpenLineage packages made unimportable, which must change nothing else."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pendulum
import pytest
from airflow_compat import AIRFLOW_3, AIRFLOW_VERSION, DAG_IMPORT
from harness import AirflowHome
from packaging.version import Version

pytestmark = [pytest.mark.processes, pytest.mark.timeout(600)]

DAG_ID = "conpeek_lineage"
DAY = pendulum.datetime(2026, 1, 1, tz="UTC")
KEY = "conpeek/summary/20260101T000000.jsonl.gz"
EXTRA_FILTERS = [{"property": "project_id_list", "value": [11, 13]}]

DAG_SOURCE = """
import os

import pendulum
from airflow.timetables.interval import CronDataIntervalTimetable

from airflow_provider_conpeek.lineage import s3_asset
from airflow_provider_conpeek.operators.voice_campaign_summary import (
    VoiceCampaignSummaryToS3Operator,
)
{dag_import}
with DAG(
    dag_id="{dag_id}",
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
) as dag:
    VoiceCampaignSummaryToS3Operator(
        task_id="extract",
        s3_bucket=os.environ["LINEAGE_BUCKET"],
        s3_key="conpeek/summary/{{{{ data_interval_start | ts_nodash }}}}.jsonl.gz",
        filters={filters!r},
        outlets=[s3_asset(os.environ["LINEAGE_BUCKET"], "conpeek/summary")],
    )
"""

BLOCK_OPENLINEAGE = """
import importlib.metadata
import sys

BLOCKED = (
    "openlineage",
    "apache-airflow-providers-openlineage",
    "apache_airflow_providers_openlineage",
)


class NoOpenLineage:
    \"\"\"As if OpenLineage were not installed: its modules cannot be imported...\"\"\"

    def find_spec(self, name, path=None, target=None):
        blocked = ("openlineage.", "airflow.providers.openlineage")
        if name == "openlineage" or name.startswith(blocked):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None


def without_openlineage(distributions):
    \"\"\"...and its distributions (so no provider entry point) are not listed.\"\"\"

    def listed(*args, **kwargs):
        for dist in distributions(*args, **kwargs):
            name = (dist.metadata["Name"] or "").lower()
            if not name.startswith(BLOCKED):
                yield dist

    return listed


sys.meta_path.insert(0, NoOpenLineage())
importlib.metadata.distributions = without_openlineage(importlib.metadata.distributions)
try:
    import importlib_metadata
except ImportError:
    pass
else:
    importlib_metadata.distributions = without_openlineage(importlib_metadata.distributions)
"""


def run_extract(tmp_path: Path, sandbox: Any, s3_server: Any, bucket: str, **env: str) -> Any:
    home = AirflowHome(
        tmp_path,
        {
            "AIRFLOW_CONN_CONPEEK_DEFAULT": sandbox.airflow_connection_json(),
            "AIRFLOW_CONN_AWS_DEFAULT": s3_server.connection_json(),
            "LINEAGE_BUCKET": bucket,
            **env,
        },
    )
    source = DAG_SOURCE.format(dag_import=DAG_IMPORT, dag_id=DAG_ID, filters=EXTRA_FILTERS)
    (home.dags / f"{DAG_ID}.py").write_text(textwrap.dedent(source))
    home.migrate()
    if Version("3.1") > AIRFLOW_VERSION:  # their dags test does not register the outlet
        home.run("dags", "reserialize")
    home.run("dags", "test", DAG_ID, DAY.add(days=1).to_date_string(), timeout=300)
    return home


def test_events_name_the_endpoint_filters_and_object_never_the_key(
    tmp_path: Path, conpeek_sandbox_factory: Any, s3_server: Any, s3_bucket: str
) -> None:
    pytest.importorskip(
        "airflow.providers.openlineage", reason="the OpenLineage provider is a dev dependency"
    )
    sandbox = conpeek_sandbox_factory(records=3000, days=3, api_key="sk-OL-9c2f71ab44")
    events_file = tmp_path / "openlineage.jsonl"
    transport = {"type": "file", "log_file_path": str(events_file), "append": True}
    run_extract(
        tmp_path,
        sandbox,
        s3_server,
        s3_bucket,
        AIRFLOW__OPENLINEAGE__TRANSPORT=json.dumps(transport),
        AIRFLOW__OPENLINEAGE__NAMESPACE="conpeek-test",
        AIRFLOW__OPENLINEAGE__EXECUTION_TIMEOUT="60",
    )
    text = events_file.read_text()
    assert sandbox.api_key not in text
    events = [json.loads(line) for line in text.splitlines() if line.strip()]
    task = [e for e in events if e["job"]["name"] == f"{DAG_ID}.extract"]
    by_type = {e["eventType"]: e for e in task}
    assert {"START", "COMPLETE"} <= set(by_type), [e["eventType"] for e in task]

    body = s3_server.read(s3_bucket, KEY)
    start = by_type["START"]
    assert [(o["namespace"], o["name"]) for o in start["outputs"]] == [(f"s3://{s3_bucket}", KEY)]

    complete = by_type["COMPLETE"]
    (read,) = complete["inputs"]
    url = urlsplit(sandbox.endpoint_url)
    assert read["namespace"] == f"{url.scheme}://{url.netloc}"
    assert read["name"] == url.path
    window = [
        {"property": "created_date", "operator": "gte", "value": "2026-01-01 00:00:00"},
        {"property": "created_date", "operator": "lt", "value": "2026-01-02 00:00:00"},
    ]
    assert read["facets"]["conpeek_filters"]["filters"] == window + EXTRA_FILTERS
    (written,) = complete["outputs"]
    assert (written["namespace"], written["name"]) == (f"s3://{s3_bucket}", KEY)
    stats = written["outputFacets"]["outputStatistics"]
    expected = sandbox.expected_records(window + EXTRA_FILTERS)
    assert stats["rowCount"] == len(expected) > 0
    assert stats["size"] == len(body)


def test_without_openlineage_the_extract_and_its_asset_event_are_unchanged(
    tmp_path: Path, conpeek_sandbox_factory: Any, s3_server: Any, s3_bucket: str
) -> None:
    blocker = tmp_path / "no-openlineage"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(BLOCK_OPENLINEAGE)
    sandbox = conpeek_sandbox_factory(records=3000, days=3)
    path = os.pathsep.join(p for p in (str(blocker), os.environ.get("PYTHONPATH")) if p)
    home = run_extract(tmp_path, sandbox, s3_server, s3_bucket, PYTHONPATH=path)
    probe = "import airflow.providers.openlineage"
    hidden = subprocess.run(
        [sys.executable, "-c", probe], env=home.env, capture_output=True, text=True, check=False
    )
    assert hidden.returncode != 0, "the OpenLineage provider was importable in that run"
    assert "No module named 'airflow.providers.openlineage" in hidden.stderr
    body = s3_server.read(s3_bucket, KEY)
    table = "asset_event" if AIRFLOW_3 else "dataset_event"
    with sqlite3.connect(home.path / "airflow.db") as db:
        (extra,) = db.execute(f"SELECT extra FROM {table}").fetchone()  # noqa: S608
    event = json.loads(extra)
    assert (event["key"], event["bytes"]) == (KEY, len(body))
