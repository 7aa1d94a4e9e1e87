"""Load each extracted interval into a SQLite table as soon as its object lands in S3.

This DAG has no clock: it is scheduled on the asset the extract DAG
(``example_conpeek_daily_extract``) declares as its outlet. Each successful extract emits an
asset event whose extra names the object it wrote (``uri``, ``bucket``, ``key``), its
window and its record count; the ``load`` task reads those extras and loads exactly those
objects, each in one transaction that first deletes what an earlier load of the same
object left (a rerun of a day replaces that day's rows, never duplicates them).

Set ``CONPEEK_S3_BUCKET`` as for the extract DAG, and ``CONPEEK_EXAMPLE_SQLITE`` to the
database file (default ``conpeek_example.sqlite`` in the system's temporary directory).
"""

# [START howto_conpeek_load_on_asset]
from __future__ import annotations

import gzip
import os
import sqlite3
import tempfile

import pendulum

from airflow_provider_conpeek.lineage import s3_asset, triggering_extras

try:
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.decorators import task

S3_BUCKET = os.environ.get("CONPEEK_S3_BUCKET", "my-data-lake")
SQLITE_PATH = os.environ.get(
    "CONPEEK_EXAMPLE_SQLITE", os.path.join(tempfile.gettempdir(), "conpeek_example.sqlite")
)
# The same asset as the extract DAG's outlet: a fixed prefix (assets are not templated).
SUMMARY = s3_asset(S3_BUCKET, "conpeek/voice_campaign_request_summary")

with DAG(
    dag_id="example_conpeek_load_on_asset",
    schedule=[SUMMARY],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["conpeek", "example"],
) as dag:

    @task(multiple_outputs=False)  # one XCom: the dict, not one per object URI
    def load(**context: object) -> dict[str, int]:
        """Every object named by the triggering events, into one table; rows per object."""
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        s3 = S3Hook(aws_conn_id="aws_default").get_conn()
        loaded: dict[str, int] = {}
        with sqlite3.connect(SQLITE_PATH) as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS voice_campaign_request_summary ("
                " source_uri TEXT NOT NULL, line INTEGER NOT NULL, record TEXT NOT NULL,"
                " PRIMARY KEY (source_uri, line))"
            )
        for extra in triggering_extras(context, SUMMARY):  # oldest first; maybe several
            body = s3.get_object(Bucket=extra["bucket"], Key=extra["key"])["Body"]
            lines = gzip.GzipFile(fileobj=body) if extra["key"].endswith(".gz") else body
            with sqlite3.connect(SQLITE_PATH) as db:  # one transaction per object
                db.execute(
                    "DELETE FROM voice_campaign_request_summary WHERE source_uri = ?",
                    (extra["uri"],),
                )
                rows = (
                    (extra["uri"], n, line.decode("utf-8").rstrip("\n"))
                    for n, line in enumerate(lines)
                )
                count = db.executemany(
                    "INSERT INTO voice_campaign_request_summary VALUES (?, ?, ?)", rows
                ).rowcount
                if count != extra["records"]:
                    raise ValueError(
                        f"{extra['uri']} holds {count} records, its event says "
                        f"{extra['records']}: not loaded"
                    )
            loaded[extra["uri"]] = count
        return loaded

    load()
# [END howto_conpeek_load_on_asset]
