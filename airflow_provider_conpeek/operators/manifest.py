"""VoiceCampaignSummaryManifestOperator: the manifest of a window extracted in parts.

Downstream of ``VoiceCampaignSummaryToS3Operator.partial(...).expand_kwargs(split_window(...))``
(:mod:`~airflow_provider_conpeek.split`), it runs only when every part succeeded (Airflow's
default ``all_success``), checks that the parts cover the window exactly and that each object
in S3 is the one its task reported, then writes one small JSON object naming them. Readers
read the manifest, never a listing of the prefix: a listing may hold a part still being
rewritten, or the parts of an earlier split into another number of parts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_conpeek._compat import BaseOperator
from airflow_provider_conpeek.destination import check_destination, check_replace
from airflow_provider_conpeek.exceptions import ConpeekConfigError
from airflow_provider_conpeek.window import Window, resolve_window

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_conpeek.destination import ObjectStamp

MANIFEST_VERSION = 1
"""``manifest_version`` in every manifest; raised only when its meaning changes."""


class VoiceCampaignSummaryManifestOperator(BaseOperator):
    """Write ``manifest.json`` for the part objects of one window, once all of them exist.

    The manifest lists every part in window order (key, sub-window, records, bytes, ETag),
    the window, the filters and the totals. It is written only if the parts' sub-windows
    are contiguous and cover ``[window_start, window_end)`` exactly, on one date property
    with the same filters, and if each object's S3 metadata still says what its task
    returned (``HeadObject``, no download); otherwise the task fails naming the part.
    Its content depends only on the parts, so a rerun writes the same bytes. The object
    carries the window's metadata, and the same collision guard as the extracts applies.

    :param s3_bucket: bucket of the manifest (templated).
    :param s3_key: key of the manifest (templated), e.g. ``<prefix>/manifest.json``
        (:func:`~airflow_provider_conpeek.split.manifest_key`).
    :param parts: what the mapped extracts returned (templated): pass their ``.output``.
    :param window_start: the whole window's start (templated; default
        ``data_interval_start``), in the forms the extract takes.
    :param window_end: the whole window's end (templated; default ``data_interval_end``).
    :param aws_conn_id: the AWS connection used by ``S3Hook`` (``None``: default
        credentials).
    :param replace: as the extract's: ``True`` overwrites this window's manifest only.

    Returns (XCom) ``s3_uri``, ``parts``, ``records``, ``bytes`` (of the parts), ``window``.

    Lineage: an S3 outlet (:func:`~airflow_provider_conpeek.lineage.s3_asset`) gets an event
    naming the manifest, with the window and the parts' total records.

    Example::

        parts = VoiceCampaignSummaryToS3Operator.partial(
            task_id="extract_part", s3_bucket="contact-centre"  # s3_key: from each item
        ).expand_kwargs(sub_windows)
        VoiceCampaignSummaryManifestOperator(
            task_id="manifest",
            s3_bucket="contact-centre",
            s3_key="conpeek/summary/{{ data_interval_start | ts_nodash }}/manifest.json",
            parts=parts.output,
        )
    """

    template_fields: Sequence[str] = (
        "s3_bucket",
        "s3_key",
        "parts",
        "window_start",
        "window_end",
    )
    ui_color = "#e8f4fd"

    def __init__(
        self,
        *,
        s3_bucket: str,
        s3_key: str,
        parts: Any,
        window_start: Any = None,
        window_end: Any = None,
        aws_conn_id: str | None = "aws_default",
        replace: bool | str = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.s3_bucket = s3_bucket
        self.s3_key = s3_key
        self.parts = parts
        self.window_start = window_start
        self.window_end = window_end
        self.aws_conn_id = aws_conn_id
        self.replace = replace

    def execute(self, context: Context) -> dict[str, Any]:
        """Check the parts (no I/O), then each object (``HeadObject``), then write."""
        from airflow_provider_conpeek import __version__
        from airflow_provider_conpeek.destination import check_aws_connection
        from airflow_provider_conpeek.lineage import event_extra, s3_outlets
        from airflow_provider_conpeek.s3write import S3Destination, s3_hook
        from airflow_provider_conpeek.tempfiles import ExtractDir

        bucket, key = check_destination(self.s3_bucket, self.s3_key)
        outlets = s3_outlets(self.outlets, bucket, key)
        replace = check_replace(self.replace)
        parts = check_parts(self.parts)
        window = resolve_window(
            context, self.window_start, self.window_end, parts[0]["window"]["date_property"]
        )
        check_coverage(parts, window)

        s3 = s3_hook(self.aws_conn_id, type(self).__name__)
        check_aws_connection(self.aws_conn_id, s3.get_connection)
        client = s3.get_conn()
        credentials = (
            f"the AWS connection {self.aws_conn_id!r}"
            if self.aws_conn_id
            else "the default AWS credentials (aws_conn_id=None)"
        )
        dest = S3Destination(client, bucket, key, credentials=credentials)
        dest.check_bucket()
        listed, stamps = [], []
        for part in parts:
            stamp, etag = _check_object(client, part, credentials)
            stamps.append(stamp)
            listed.append({**_entry(part), "etag": etag})
        if len({(s.filters, s.filters_sha256) for s in stamps}) != 1:
            raise ConpeekConfigError(
                "parts: the part objects were extracted with different filters "
                f"({', '.join(sorted({s.filters for s in stamps}))}); a manifest covers one "
                "extract. Rerun the parts with the same filters."
            )
        stamp = _window_stamp(window, stamps[0])
        records = sum(int(p["records"]) for p in parts)
        size = sum(int(p["bytes"]) for p in parts)
        manifest = {
            "manifest_version": MANIFEST_VERSION,
            "endpoint": "voice_campaign_request_summary",
            "window": window.as_dict(),
            "filters": stamp.filters,
            "filters_sha256": stamp.filters_sha256,
            "records": records,
            "bytes": size,
            "parts": listed,
            "provider_version": __version__,
        }
        body = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
        dest.prepare(stamp, replace=replace)
        with ExtractDir() as tmp:
            path = tmp.path / "manifest.json"
            path.write_bytes(body)
            dest.write(path, stamp, records=records, content_type="application/json")
        self.log.info(
            "Wrote %s: %d parts, %d records in [%s, %s) UTC",
            dest.uri,
            len(parts),
            records,
            window.start,
            window.end,
        )
        if outlets:
            extra = event_extra(
                bucket,
                key,
                records=records,
                size=len(body),
                window=window.as_dict(),
                version=__version__,
            )
            for outlet in outlets:
                context["outlet_events"][outlet].extra = extra
        return {
            "s3_uri": dest.uri,
            "parts": len(parts),
            "records": records,
            "bytes": size,
            "window": window.as_dict(),
        }


def check_parts(parts: Any) -> list[dict[str, Any]]:
    """The extracts' return values as a list sorted by window start; no I/O.

    :raises ConpeekConfigError: naming ``parts`` and the bad item.
    """
    if isinstance(parts, (str, bytes, Mapping)) or not hasattr(parts, "__iter__"):
        raise ConpeekConfigError(
            f"parts must be the list the mapped extracts returned (pass "
            f"<mapped extract>.output), got {type(parts).__name__}: {str(parts)[:200]!r}."
        )
    items = list(parts)
    if not items:
        raise ConpeekConfigError(
            "parts is empty: no mapped extract ran. Check the task that splits the window."
        )
    for index, item in enumerate(items):
        window = item.get("window") if isinstance(item, Mapping) else None
        if (
            not isinstance(window, Mapping)
            or not isinstance(item.get("s3_uri"), str)
            or not str(item["s3_uri"]).startswith("s3://")
            or "/" not in str(item["s3_uri"])[len("s3://") :].strip("/")
            or not all(isinstance(window.get(k), str) for k in ("date_property", "start", "end"))
            or any(
                isinstance(item.get(k), bool) or not isinstance(item.get(k), int)
                for k in ("records", "bytes")
            )
        ):
            raise ConpeekConfigError(
                f"parts[{index}] is not what VoiceCampaignSummaryToS3Operator returns (a dict "
                f"with s3_uri, records, bytes and window): {str(item)[:300]!r}. Pass the "
                "mapped extract's .output as parts."
            )
    return sorted((dict(item) for item in items), key=lambda item: item["window"]["start"])


def check_coverage(parts: Sequence[Mapping[str, Any]], window: Window) -> None:
    """The parts' windows (sorted) tile ``window`` exactly: same date property, no gap, no
    overlap, first start and last end on the window's bounds.

    :raises ConpeekConfigError: naming the first part that breaks it.
    """
    edge = window.start
    for part in parts:
        sub = part["window"]
        where = f"parts: {part['s3_uri']} covers [{sub['start']}, {sub['end']})"
        if sub["date_property"] != window.date_property:
            raise ConpeekConfigError(
                f"{where} on {sub['date_property']!r}, but the other parts and the manifest "
                f"use {window.date_property!r}. Extract every part on one date_property."
            )
        if sub["start"] != edge:
            problem = "a gap" if sub["start"] > edge else "an overlap"
            stale = (
                " An overlap after the number of parts was lowered and the run cleared: "
                "Airflow still hands over the results of the removed map indexes; rerun "
                "the whole DAG run (clear it with its past results) instead."
                if problem == "an overlap"
                else ""
            )
            raise ConpeekConfigError(
                f"{where}, but the previous part ends at {edge}: {problem}. The parts must "
                f"tile [{window.start}, {window.end}) exactly; make them with split_window() "
                f"over the same window.{stale}"
            )
        edge = sub["end"]
    if edge != window.end:
        raise ConpeekConfigError(
            f"parts end at {edge}, but the window [{window.start}, {window.end}) ends at "
            f"{window.end}. Split the same window the manifest covers (window_start / "
            "window_end, default the data interval)."
        )


def _entry(part: Mapping[str, Any]) -> dict[str, Any]:
    bucket, key = part["s3_uri"][len("s3://") :].split("/", 1)
    return {
        "s3_uri": part["s3_uri"],
        "bucket": bucket,
        "key": key,
        "window": dict(part["window"]),
        "records": part["records"],
        "bytes": part["bytes"],
    }


def _check_object(client: Any, part: Mapping[str, Any], credentials: str) -> tuple[Any, str]:
    """The part object's stamp and ETag, checked against what its task returned."""
    from airflow_provider_conpeek.destination import ObjectStamp
    from airflow_provider_conpeek.s3write import S3Destination

    entry = _entry(part)
    found = S3Destination(client, entry["bucket"], entry["key"], credentials=credentials).head()
    uri = part["s3_uri"]
    if found is None:
        raise ConpeekConfigError(
            f"parts: {uri} does not exist, though its extract reported it. It was deleted "
            "or moved since; clear that part's task to extract it again."
        )
    sub = part["window"]
    expected = ObjectStamp.for_window(Window(sub["date_property"], sub["start"], sub["end"]), [])
    if (
        found.stamp is None
        or found.stamp.window != expected.window
        or found.records != str(part["records"])
        or found.size != part["bytes"]
        or ("etag" in part and found.etag != part["etag"])
    ):
        raise ConpeekConfigError(
            f"parts: {uri} no longer holds what its extract wrote ({expected.describe()}, "
            f"{part['records']} records, {part['bytes']} bytes): it was overwritten since. "
            "Clear that part's task to extract it again, then this one."
        )
    return found.stamp, found.etag


def _window_stamp(window: Window, part: ObjectStamp) -> ObjectStamp:
    """The manifest's own stamp: the whole window, the parts' filters."""
    from airflow_provider_conpeek.destination import ObjectStamp

    whole = ObjectStamp.for_window(window, [])
    return ObjectStamp(
        date_property=whole.date_property,
        start=whole.start,
        end=whole.end,
        filters=part.filters,
        filters_sha256=part.filters_sha256,
    )
