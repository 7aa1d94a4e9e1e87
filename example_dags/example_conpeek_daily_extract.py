"""Daily extract of Conpeek voice campaign request summaries into S3.

Copy this file into your DAGs folder, create the ``conpeek_default`` connection (host: your
base URL, e.g. ``https://tenant.cloud.conpeek.com/api/v1_3``; password: the API key) and an
``aws_default`` connection, and set ``CONPEEK_S3_BUCKET``.

Each run waits until Conpeek holds records for its UTC day (deferred: no worker slot is held
while waiting), then extracts exactly that day, ``[data_interval_start,
data_interval_end)``, into
``s3://<bucket>/conpeek/voice_campaign_request_summary/<YYYYMMDDTHHMMSS>.jsonl.gz``, named by
the interval's start in UTC (``20260101T000000`` for 1 January). Reruns and backfills
overwrite their own interval's object, and no other.

The extract declares that prefix as its outlet, an Airflow Asset: each object it writes
emits an asset event naming it, which ``example_conpeek_load_on_asset`` is scheduled on.
"""

# [START howto_conpeek_daily_extract]
from __future__ import annotations

import os

import pendulum
from airflow.timetables.interval import CronDataIntervalTimetable

from airflow_provider_conpeek.lineage import s3_asset
from airflow_provider_conpeek.operators.voice_campaign_summary import (
    VoiceCampaignSummaryToS3Operator,
)
from airflow_provider_conpeek.sensors.voice_campaign_summary import VoiceCampaignSummarySensor

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.11
    from airflow import DAG

S3_BUCKET = os.environ.get("CONPEEK_S3_BUCKET", "my-data-lake")
# Where every extract of this DAG lands: the asset a loading DAG is scheduled on.
SUMMARY = s3_asset(S3_BUCKET, "conpeek/voice_campaign_request_summary")

with DAG(
    dag_id="example_conpeek_daily_extract",
    # Not schedule="@daily": in Airflow 3 that is CronTriggerTimetable, whose runs have a
    # zero-length data interval. CronDataIntervalTimetable gives each run a whole day.
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=True,
    max_active_runs=3,
    # A failed try leaves no object behind, so retrying is always safe. The delay between
    # tries is Airflow's [core] default_task_retry_delay (300 s unless configured).
    default_args={"retries": 2},
    tags=["conpeek", "example"],
) as dag:
    wait_for_records = VoiceCampaignSummarySensor(
        task_id="wait_for_voice_campaign_records",
        conpeek_conn_id="conpeek_default",
        min_records=1,
        deferrable=True,  # waits in the triggerer, one limit=1 request per poke
        poke_interval=600,
        timeout=6 * 3600,
    )
    extract = VoiceCampaignSummaryToS3Operator(
        task_id="extract_voice_campaign_request_summary",
        conpeek_conn_id="conpeek_default",
        aws_conn_id="aws_default",
        s3_bucket=S3_BUCKET,
        # One key per interval whatever the schedule: the interval's start to the second, in
        # UTC (a Europe/Warsaw day starting 2024-03-01 00:00 local is 20240229T230000).
        s3_key=(
            "conpeek/voice_campaign_request_summary/{{ data_interval_start | ts_nodash }}.jsonl.gz"
        ),
        outlets=[SUMMARY],
    )
    wait_for_records >> extract
# [END howto_conpeek_daily_extract]
