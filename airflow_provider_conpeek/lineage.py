"""Where an extract lands, as an Airflow Asset (a Dataset on Airflow 2.11), and what each
asset event says about it.

Declare the prefix the operator writes under as one of its ``outlets`` (:func:`s3_asset`,
:func:`gcs_asset`, :func:`azure_blob_asset`); every successful run then emits an asset
event whose ``extra`` names the very object it wrote, its window, its record and byte
counts (:func:`event_extra`). A downstream DAG scheduled on the same asset reads those
extras (:func:`triggering_extras`) and loads exactly the new objects, instead of guessing
from the clock.

Outlets are not templated, so the asset is a fixed prefix and the object's key, rendered
per run, travels in the event's extra. An outlet of the operator's store that does not
contain the object it writes is refused before any request: its events would point nowhere.

Example::

    summary = s3_asset("contact-centre", "conpeek/voice_campaign_request_summary")
    VoiceCampaignSummaryToS3Operator(task_id="extract", ..., outlets=[summary])

    with DAG("load", schedule=[summary], ...):  # runs when a new object has landed

        @task
        def load(**context):
            for extra in triggering_extras(context, summary):
                ...  # extra["uri"], extra["records"], extra["window"]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from airflow_provider_conpeek.exceptions import ConpeekConfigError

EVENT_KEYS = ("uri", "bucket", "key", "records", "bytes", "window", "provider_version")
"""The keys of every asset event's ``extra`` written by the operator."""
LINEAGE_ATTRIBUTE = "_conpeek_lineage"
"""Where ``execute()`` keeps, on the task, the plain dict OpenLineage is built from."""


def s3_asset(bucket: str, prefix: str = "") -> Any:
    """The Asset (Dataset on Airflow 2.11) for ``s3://bucket/prefix``.

    Build it once and use the same object as the operator's outlet and the downstream
    DAG's schedule.

    :param bucket: the bare bucket name, as ``s3_bucket``.
    :param prefix: the part of the key every object of this extract starts with, without
        templates (``conpeek/voice_campaign_request_summary``); empty: the whole bucket.
    :raises ConpeekConfigError: for a URL or a path as bucket, or a template in either.
    """
    _check_asset_part("s3_asset", "bucket", bucket, prefix)
    return _asset("s3", bucket.strip(), prefix)


def gcs_asset(bucket: str, prefix: str = "") -> Any:
    """The Asset for ``gs://bucket/prefix`` (the Google provider's scheme), for
    ``VoiceCampaignSummaryToGCSOperator``; as :func:`s3_asset`.

    Example::

        gcs_asset("contact-centre", "conpeek/voice_campaign_request_summary")
    """
    _check_asset_part("gcs_asset", "bucket", bucket, prefix)
    return _asset("gs", bucket.strip(), prefix)


def azure_blob_asset(account: str, container: str, prefix: str = "") -> Any:
    """The Asset for ``wasb://container@account/prefix``, for
    ``VoiceCampaignSummaryToAzureBlobOperator``; as :func:`s3_asset`.

    :param account: the storage account's name (``contactcentre`` of
        ``https://contactcentre.blob.core.windows.net``).
    :param container: the container, as ``container_name``.

    Example::

        azure_blob_asset("contactcentre", "conpeek", "voice_campaign_request_summary")
    """
    _check_asset_part("azure_blob_asset", "account", account, prefix)
    _check_asset_part("azure_blob_asset", "container", container, prefix)
    asset = _asset("wasb", f"{container.strip()}@{account.strip()}", prefix)
    if "@" not in str(asset.uri):  # Airflow 2.11's Dataset and 3.0's Asset drop it
        raise ConpeekConfigError(
            f"azure_blob_asset({account!r}, {container!r}, {prefix!r}): this Airflow's "
            f"Dataset drops the container from wasb://{container}@{account}/... (it keeps "
            f"{asset.uri}), so events of different containers would mix. Azure outlets need "
            "Airflow 3.1 or later (2.11's Datasets and 3.0's Assets drop it); declare no "
            "Azure outlet here (the XCom names the blob)."
        )
    return asset


def _check_asset_part(function: str, name: str, value: Any, prefix: str) -> None:
    if not isinstance(value, str) or not value.strip() or "/" in value or ":" in value:
        raise ConpeekConfigError(
            f"{function}: {name} must be a bare {name} name such as 'contact-centre', got "
            f"{value!r}. Put the path inside it in prefix."
        )
    if "{{" in value or "{{" in prefix:
        raise ConpeekConfigError(
            f"{function}({value!r}, {prefix!r}): Airflow does not render templates in "
            "assets. Give the fixed prefix the templated keys start with; each event's extra "
            "names the rendered object."
        )


def _asset(scheme: str, bucket: str, prefix: str) -> Any:
    from airflow_provider_conpeek._compat import Asset

    path = prefix.strip().strip("/")
    return Asset(f"{scheme}://{bucket}/{path}" if path else f"{scheme}://{bucket}")


def _uri(outlet: Any) -> str:
    return str(getattr(outlet, "uri", "") or "")


def covers(outlet: Any, bucket: str, key: str, *, uri: str | None = None) -> bool:
    """Whether the asset ``outlet`` is the object (``s3://bucket/key``, or ``uri``) or a
    prefix of it."""
    prefix = _uri(outlet).rstrip("/")
    target = uri or f"s3://{bucket}/{key}"
    return target == prefix or target.startswith(prefix + "/")


def s3_outlets(
    outlets: Iterable[Any], bucket: str, key: str, *, uri: str | None = None, hint: str = ""
) -> list[Any]:
    """The outlets of the object's store that receive this object's event (S3's, or the
    scheme of ``uri``); refuse one that does not contain it.

    Outlets of other schemes (the user's own) are left alone: Airflow emits their events
    as usual, without our extra.

    :param uri: the object's URI when it is not ``s3://bucket/key``.
    :param hint: the asset function call to suggest (default: ``s3_asset(...)``).
    :raises ConpeekConfigError: naming the outlet and the object, before any request.
    """
    target = uri or f"s3://{bucket}/{key}"
    scheme = target.split("://", 1)[0] + "://"
    found = []
    for outlet in outlets or ():
        outlet_uri = _uri(outlet)
        if not outlet_uri.startswith(scheme):
            continue
        if not covers(outlet, bucket, key, uri=target):
            raise ConpeekConfigError(
                f"The outlet {outlet_uri} does not contain {target}, the object this task "
                "writes: its asset events would point elsewhere. Use "
                f"{hint or f's3_asset({bucket!r}, <the fixed start of s3_key>)'} as the outlet."
            )
        found.append(outlet)
    return found


def event_extra(
    bucket: str,
    key: str,
    *,
    records: int,
    size: int,
    window: Mapping[str, str],
    version: str,
    uri: str | None = None,
) -> dict[str, Any]:
    """The ``extra`` of the asset event of one written object (JSON only).

    Example::

        event_extra("b", "k.jsonl.gz", records=20000, size=457974,
                    window={"date_property": "created_date", "start": "...", "end": "..."},
                    version="0.1.0")["uri"]  # 's3://b/k.jsonl.gz'
    """
    return {
        "uri": uri or f"s3://{bucket}/{key}",
        "bucket": bucket,
        "key": key,
        "records": int(records),
        "bytes": int(size),
        "window": {str(k): str(v) for k, v in window.items()},
        "provider_version": version,
    }


def input_dataset(settings: Any) -> dict[str, str]:
    """OpenLineage's name of what an extract reads: ``namespace`` the base URL's scheme and
    host (never a key: the settings refuse credentials in the URL), ``name`` the endpoint's
    path.

    Example::

        input_dataset(settings)  # {"namespace": "https://t.cloud.conpeek.com",
                                 #  "name": "/api/v1_3/voice_campaign_request_summary"}
    """
    from urllib.parse import urlsplit

    parts = urlsplit(settings.endpoint_url)
    return {"namespace": f"{parts.scheme}://{parts.netloc}", "name": parts.path}


def triggering_extras(context: Mapping[str, Any], asset: Any) -> list[dict[str, Any]]:
    """The extras of the events of ``asset`` that triggered this run, oldest first.

    One run may be triggered by several events (Airflow queues them while a run is busy),
    and an object may appear twice (a rerun): loaders should loop over all of them and
    replace per ``uri``.

    :param context: the task's context (``**context`` of a ``@task``).
    :param asset: the asset the DAG is scheduled on (the same object).
    """
    events = context.get("triggering_asset_events")
    if events is None:  # Airflow 2.11: events by dataset URI
        datasets = context.get("triggering_dataset_events") or {}
        found = list(datasets.get(_uri(asset), []))
    else:
        found = list(events[asset]) if asset in events else []
    found.sort(key=lambda event: event.timestamp)
    return [dict(event.extra or {}) for event in found]
