"""One huge window split into contiguous sub-windows, one mapped extract each, and a manifest.

A day that holds millions of records can be spread over several workers with Airflow's
dynamic task mapping: :func:`split_window` cuts ``[start, end)`` into ``parts`` contiguous,
half-open sub-windows on whole seconds (the API's resolution), each with the key of its
part object under the interval's prefix. Its list feeds
``VoiceCampaignSummaryToS3Operator.partial(...).expand_kwargs(...)``: one mapped task per
part, each retried on its own. :class:`~airflow_provider_conpeek.operators.manifest.
VoiceCampaignSummaryManifestOperator` then writes ``manifest.json`` beside the parts, only
when every part succeeded; readers read the manifest, not a listing of the prefix.

The sub-windows neither overlap nor leave a gap, so the union of the parts holds exactly
the records of the window's single-object extract (in the same order too where the API
returns records in ``date_property`` order, as the sandbox does for ``created_date``; the
API documents no order); the same window and ``parts`` always give the same sub-windows and
keys, so a rerun rewrites the same objects.

Example::

    @task
    def sub_windows(data_interval_start=None, data_interval_end=None, prefix=""):
        return split_window(data_interval_start, data_interval_end, 8, key_prefix=prefix)

    windows = sub_windows(prefix="conpeek/summary/{{ data_interval_start | ts_nodash }}")
    parts = VoiceCampaignSummaryToS3Operator.partial(
        task_id="extract_part", s3_bucket="contact-centre"  # s3_key: from each item
    ).expand_kwargs(windows)
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow_provider_conpeek.datetimes import API_DATETIME_FORMAT, format_api_datetime
from airflow_provider_conpeek.exceptions import ConpeekConfigError

MAX_PARTS = 1000
"""The most sub-windows one window is split into (a mapped task each)."""
SUFFIXES = {"gzip": ".jsonl.gz", "none": ".jsonl"}
"""Part object suffix per ``compression`` (the operator's own rule)."""
MANIFEST_NAME = "manifest.json"


def split_window(
    window_start: Any,
    window_end: Any,
    parts: int,
    *,
    key_prefix: str | None = None,
    compression: str = "gzip",
) -> list[dict[str, str]]:
    """``parts`` contiguous sub-windows of ``[window_start, window_end)``, in order.

    Boundaries fall on whole seconds, spread as evenly as the window's length in seconds
    allows; the first sub-window starts at ``window_start``, the last ends at
    ``window_end``. No I/O.

    :param window_start: inclusive start: a time-zone-aware datetime (e.g. the task's
        ``data_interval_start``), an ISO 8601 string with an offset, or
        ``YYYY-MM-DD HH:mm:ss`` in UTC.
    :param window_end: exclusive end, in the same forms.
    :param parts: how many sub-windows, 1 to :data:`MAX_PARTS`, at most one per second of
        the window.
    :param key_prefix: the interval's prefix, e.g.
        ``conpeek/summary/20260101T000000``; given, each item also has ``s3_key``:
        ``<key_prefix>/part-00003-of-00008.jsonl.gz``.
    :param compression: ``"gzip"`` (``.jsonl.gz`` keys) or ``"none"`` (``.jsonl``), as the
        operator's ``compression``.
    :returns: one dict per sub-window, ``{"window_start", "window_end"[, "s3_key"]}``, in the
        API's UTC form: keyword arguments for ``.expand_kwargs()``.
    :raises ConpeekConfigError: naming the argument, for a bad ``parts``, an empty or
        reversed window, or a window shorter than ``parts`` seconds.
    """
    count = _check_parts(parts)
    start = _instant(window_start, "window_start")
    end = _instant(window_end, "window_end")
    seconds = int((end - start).total_seconds())
    if seconds <= 0:
        raise ConpeekConfigError(
            f"split_window: the window [{_api(start)}, {_api(end)}) is empty or reversed; "
            "window_start must be before window_end."
        )
    if seconds < count:
        raise ConpeekConfigError(
            f"split_window: parts={count} is more than the window's {seconds} seconds; the "
            f"API counts whole seconds, so use at most parts={seconds}."
        )
    prefix = None if key_prefix is None else _check_prefix(key_prefix)
    suffix = _suffix(compression)
    bounds = [start + timedelta(seconds=seconds * i // count) for i in range(count + 1)]
    windows = []
    for index in range(count):
        item = {"window_start": _api(bounds[index]), "window_end": _api(bounds[index + 1])}
        if prefix is not None:
            item["s3_key"] = part_key(prefix, index, count, suffix)
        windows.append(item)
    return windows


def part_key(key_prefix: str, index: int, parts: int, suffix: str = ".jsonl.gz") -> str:
    """``<key_prefix>/part-<index>-of-<parts><suffix>``, zero-padded so keys sort in order."""
    return f"{key_prefix.rstrip('/')}/part-{index:05d}-of-{parts:05d}{suffix}"


def manifest_key(key_prefix: str) -> str:
    """``<key_prefix>/manifest.json``: where the manifest of the parts goes."""
    return f"{_check_prefix(key_prefix)}/{MANIFEST_NAME}"


def _check_parts(parts: Any) -> int:
    if isinstance(parts, bool) or not isinstance(parts, int):
        raise ConpeekConfigError(
            f"split_window: parts must be a whole number of sub-windows, got {parts!r} "
            f"({type(parts).__name__}). Pass e.g. parts=8."
        )
    if not 1 <= parts <= MAX_PARTS:
        raise ConpeekConfigError(
            f"split_window: parts must be between 1 and {MAX_PARTS}, got {parts}. Each part "
            "is a mapped task: a few per worker are enough."
        )
    return parts


def _check_prefix(key_prefix: Any) -> str:
    if not isinstance(key_prefix, str) or not key_prefix.strip("/ "):
        raise ConpeekConfigError(
            f"key_prefix must be a non-empty S3 key prefix such as "
            f"'conpeek/summary/20260101T000000', got {key_prefix!r}."
        )
    if "{{" in key_prefix:
        raise ConpeekConfigError(
            f"key_prefix {key_prefix!r} holds an unrendered template. Pass it through an "
            "argument of the @task (TaskFlow arguments are templated), not as a constant."
        )
    if key_prefix.lower().startswith("s3://"):
        raise ConpeekConfigError(
            f"key_prefix {key_prefix!r} is a URL: give the path inside the bucket only."
        )
    return key_prefix.strip("/")


def _suffix(compression: Any) -> str:
    try:
        return SUFFIXES[compression]
    except (KeyError, TypeError):
        raise ConpeekConfigError(
            f"split_window: compression must be one of {', '.join(SUFFIXES)}, got "
            f"{compression!r}, as the operator's compression."
        ) from None


def _instant(value: Any, name: str) -> datetime:
    if isinstance(value, datetime) and value.tzinfo is not None and value.microsecond:
        value = value.replace(microsecond=0)  # as the operator floors Airflow's own bounds
    text = format_api_datetime(value, name=name)  # its errors name the argument and the fix
    return datetime.strptime(text, API_DATETIME_FORMAT)


def _api(value: datetime) -> str:
    return value.isoformat(sep=" ", timespec="seconds")  # naive UTC; zero-padded years
