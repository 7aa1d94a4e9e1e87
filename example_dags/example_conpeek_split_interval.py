"""One huge day spread over workers: the window split into parts, one mapped extract each,
then a manifest.

For a tenant whose single day holds millions of records. ``split_window`` cuts each run's
data interval into ``PARTS`` contiguous sub-windows; each becomes a mapped task
(``.partial(...).expand_kwargs(...)``) that writes one part object under the interval's
prefix, ``s3://<bucket>/conpeek/voice_campaign_request_summary_parts/<YYYYMMDDTHHMMSS>/
part-00000-of-00004.jsonl.gz`` and so on, on whichever worker is free. A failed part is
retried alone. ``manifest.json`` is written beside them only when every part succeeded;
read the manifest, not a listing of the prefix.

Total load on the API is bounded by an Airflow pool: at most ``<pool slots>`` parts run at
once, across every DAG and run using the pool, each with at most ``max_concurrency``
requests in flight, so the API sees at most ``slots x max_concurrency`` requests at a time.
Create the pool before the first run (the demo and the tests run exactly this)::

    airflow pools set conpeek_api 2 "Conpeek API: extracts running at once"

Without it the scheduler does not start the parts (it logs that the pool does not exist).
"""

# [START howto_conpeek_split_interval]
from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.timetables.interval import CronDataIntervalTimetable

from airflow_provider_conpeek.operators.manifest import VoiceCampaignSummaryManifestOperator
from airflow_provider_conpeek.operators.voice_campaign_summary import (
    VoiceCampaignSummaryToS3Operator,
)
from airflow_provider_conpeek.split import split_window

try:
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.decorators import task

S3_BUCKET = os.environ.get("CONPEEK_S3_BUCKET", "my-data-lake")
PARTS = 4  # mapped extracts per interval: a few per worker
POOL = "conpeek_api"  # caps the parts running at once, across DAGs
MAX_CONCURRENCY = 4  # requests in flight per part: the API sees <= pool slots x 4
PREFIX = "conpeek/voice_campaign_request_summary_parts/{{ data_interval_start | ts_nodash }}"

with DAG(
    dag_id="example_conpeek_split_interval",
    # A whole day per run (not "@daily": in Airflow 3 that has a zero-length interval).
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    default_args={"retries": 2},
    tags=["conpeek", "example"],
) as dag:

    @task
    def sub_windows(
        prefix: str, data_interval_start: Any = None, data_interval_end: Any = None
    ) -> list[dict[str, str]]:
        """The interval's sub-windows, each with its part's key (TaskFlow renders
        ``prefix``; Airflow passes the interval's bounds)."""
        return split_window(data_interval_start, data_interval_end, PARTS, key_prefix=prefix)

    parts = VoiceCampaignSummaryToS3Operator.partial(
        task_id="extract_part",
        conpeek_conn_id="conpeek_default",
        aws_conn_id="aws_default",
        s3_bucket=S3_BUCKET,
        max_concurrency=MAX_CONCURRENCY,
        pool=POOL,
    ).expand_kwargs(sub_windows(prefix=PREFIX))

    VoiceCampaignSummaryManifestOperator(
        task_id="write_manifest",
        aws_conn_id="aws_default",
        s3_bucket=S3_BUCKET,
        s3_key=PREFIX + "/manifest.json",
        parts=parts.output,  # what every part returned; runs only if all succeeded
    )
# [END howto_conpeek_split_interval]
