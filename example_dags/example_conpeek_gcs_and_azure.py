"""Daily extract of Conpeek voice campaign request summaries into Google Cloud Storage (as
Parquet) and Azure Blob Storage (as gzip JSON Lines).

Copy this file into your DAGs folder, install ``airflow-provider-conpeek[google,azure,parquet]``
on the workers, create the ``conpeek_default`` connection (host: your base URL, e.g.
``https://tenant.cloud.conpeek.com/api/v1_3``; password: the API key), a
``google_cloud_default`` connection and a ``wasb_default`` connection, and set
``CONPEEK_GCS_BUCKET`` and ``CONPEEK_AZURE_CONTAINER``. Keep the store you use and delete the
other task: each is independent.

Each run extracts exactly its UTC day, ``[data_interval_start, data_interval_end)``, into
``gs://<bucket>/conpeek/voice_campaign_request_summary/<YYYYMMDDTHHMMSS>.parquet`` and into
the blob ``conpeek/voice_campaign_request_summary/<YYYYMMDDTHHMMSS>.jsonl.gz`` of the
container, with the same guarantees as the S3 operator: no partial object, reruns rewrite
their own interval's object with the same bytes, another interval's object is never
overwritten.
"""

# [START howto_conpeek_gcs_and_azure]
from __future__ import annotations

import os

import pendulum
from airflow.timetables.interval import CronDataIntervalTimetable

from airflow_provider_conpeek.operators.voice_campaign_summary import (
    VoiceCampaignSummaryToAzureBlobOperator,
    VoiceCampaignSummaryToGCSOperator,
)

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.11
    from airflow import DAG

GCS_BUCKET = os.environ.get("CONPEEK_GCS_BUCKET", "my-data-lake")
AZURE_CONTAINER = os.environ.get("CONPEEK_AZURE_CONTAINER", "my-data-lake")
PREFIX = "conpeek/voice_campaign_request_summary/{{ data_interval_start | ts_nodash }}"

with DAG(
    dag_id="example_conpeek_gcs_and_azure",
    # A whole day per run (not schedule="@daily", whose Airflow 3 runs have a zero-length
    # data interval).
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    default_args={"retries": 2},
    tags=["conpeek", "example"],
) as dag:
    to_gcs = VoiceCampaignSummaryToGCSOperator(
        task_id="extract_to_gcs",
        gcp_conn_id="google_cloud_default",
        bucket_name=GCS_BUCKET,
        object_name=PREFIX + ".parquet",
        file_format="parquet",  # one typed column per field; see the formats page
    )
    to_azure = VoiceCampaignSummaryToAzureBlobOperator(
        task_id="extract_to_azure_blob",
        wasb_conn_id="wasb_default",
        container_name=AZURE_CONTAINER,
        blob_name=PREFIX + ".jsonl.gz",
    )
# [END howto_conpeek_gcs_and_azure]
