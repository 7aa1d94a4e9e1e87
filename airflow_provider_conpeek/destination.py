"""The destination of an extract, whatever the store, checked before the first Conpeek request.

* :class:`StoreNames` -- how one store's parameters and metadata are named in messages
  (:data:`S3`, :data:`GCS`, :data:`AZURE`).
* :func:`check_destination` -- bucket and key as rendered (no I/O): a bucket is a bare name,
  not a URL and without ``/``; a key is not a URL.
* :func:`check_aws_connection` -- the ``aws_conn_id`` exists (the Amazon provider would
  silently fall back to the default credentials), unless it is ``None`` on purpose.
* :class:`ObjectStamp` -- what an object says about itself in its metadata: the window
  (date property, start, end), the filters, the record count and the provider version.
* :func:`decide_write` -- may this extract write over what the key holds now? It returns the
  condition of the conditional write (nothing there yet, or still the version decided on), so
  the decision still holds when the object is written, an hour of paging later.

Example::

    bucket, key = check_destination("contact-centre", "conpeek/20260101T000000.jsonl.gz", S3)
    stamp = ObjectStamp.for_window(window, extra_filters)
    condition = decide_write(existing, stamp, replace=True, uri=f"s3://{bucket}/{key}")
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

from airflow_provider_conpeek import __version__
from airflow_provider_conpeek.exceptions import ConpeekConfigError
from airflow_provider_conpeek.window import Window

Replace = bool | Literal["always"]
META = "conpeek-"
"""Prefix of every metadata name the provider writes (``x-amz-meta-conpeek-...`` on S3,
``conpeek_...`` on Azure, whose names cannot hold hyphens)."""
FILTERS_MAX_CHARS = 1024
"""Longest ``conpeek-filters`` value; longer filters are cut (the hash stays exact)."""
CONTENT_TYPES = {
    "gzip": "application/gzip",
    "none": "application/x-ndjson",
    "parquet": "application/vnd.apache.parquet",
}
"""Content-Type per compression. A gzip object is a ``.gz`` *file*: no ``Content-Encoding``,
so no HTTP client silently unzips it."""


@dataclass(frozen=True)
class StoreNames:
    """How one store's destination parameters and object metadata are named in messages.

    Example::

        StoreNames("bucket_name", "object_name", "gs", "conpeek-*")
    """

    bucket: str
    """The operator argument naming the bucket or container (``s3_bucket``)."""
    key: str
    """The operator argument naming the object (``s3_key``)."""
    scheme: str
    """The URI scheme of the store's objects (``s3``)."""
    metadata: str
    """How the provider's metadata appears in this store (``x-amz-meta-conpeek-*``)."""

    def unique_key_hint(self) -> str:
        """How to give each interval its own object name."""
        return (
            "Give each interval its own key: template it with the whole interval start, e.g. "
            f"{self.key}='conpeek/voice_campaign_request_summary/"
            "{{ data_interval_start | ts_nodash }}.jsonl.gz' (unique for any schedule), not "
            "'{{ ds }}' (one key per day)."
        )


S3 = StoreNames("s3_bucket", "s3_key", "s3", "x-amz-meta-conpeek-*")
GCS = StoreNames("bucket_name", "object_name", "gs", "conpeek-*")
AZURE = StoreNames("container_name", "blob_name", "wasb", "conpeek_*")
UNIQUE_KEY_HINT = S3.unique_key_hint()


def check_destination(bucket: Any, key: Any, names: StoreNames = S3) -> tuple[str, str]:
    """Bucket and key as rendered: non-empty strings, a bare bucket name, a key not a URL."""
    for name, value in ((names.bucket, bucket), (names.key, key)):
        if not isinstance(value, str) or not value.strip():
            raise ConpeekConfigError(
                f"{name} is empty after rendering (got {value!r}). Give it a value, or check "
                "the template that renders it."
            )
    bucket, key = bucket.strip(), key.lstrip("/")
    if "://" in bucket:
        name = bucket.split("://", 1)[1].split("/", 1)[0]
        raise ConpeekConfigError(
            f"{names.bucket} {bucket!r} is a URL, not a bucket name. Pass the bare name, "
            f"{names.bucket}={name!r}, and the path inside it as {names.key}."
        )
    if "/" in bucket:
        name, prefix = bucket.split("/", 1)
        raise ConpeekConfigError(
            f"{names.bucket} {bucket!r} contains '/', which no bucket name can. Pass "
            f"{names.bucket}={name!r} and start {names.key} with {prefix.rstrip('/') + '/'!r}."
        )
    if re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", key):
        raise ConpeekConfigError(
            f"{names.key} {key!r} is a full URL. Pass the bucket as {names.bucket} and only "
            "the path inside it (for example 'conpeek/{{ data_interval_start | ts_nodash }}"
            f".jsonl.gz') as {names.key}."
        )
    return bucket, key


def check_replace(replace: Any) -> Replace:
    """``True``, ``False`` or ``"always"``."""
    if isinstance(replace, bool) or replace == "always":
        return cast(Replace, replace)
    raise ConpeekConfigError(
        f"replace must be True, False or 'always', got {replace!r}. True overwrites this "
        "interval's own object only; 'always' overwrites whatever the key holds."
    )


def check_aws_connection(aws_conn_id: Any, get_connection: Callable[[str], Any]) -> None:
    """Fail, naming it, when ``aws_conn_id`` names no Airflow connection.

    The Amazon provider logs a warning and falls back to the default credentials instead,
    which may reach another account or none. ``None`` means the default credentials on
    purpose and is not checked.
    """
    if aws_conn_id is None:
        return
    if not isinstance(aws_conn_id, str) or not aws_conn_id.strip():
        raise ConpeekConfigError(
            f"aws_conn_id must be a connection id, or None for the default AWS credentials "
            f"(environment, instance profile...), got {aws_conn_id!r}."
        )
    from airflow.providers.common.compat.sdk import AirflowNotFoundException

    try:
        get_connection(aws_conn_id)
    except AirflowNotFoundException:
        raise ConpeekConfigError(
            f"The AWS connection {aws_conn_id!r} (aws_conn_id) does not exist. Create it, fix "
            "the name, or pass aws_conn_id=None to use the default AWS credentials on "
            "purpose."
        ) from None


@dataclass(frozen=True)
class ObjectStamp:
    """What an object written by the operator says about itself (its user metadata).

    ``start`` and ``end`` are ISO 8601 UTC (``2026-01-01T00:00:00Z``); ``filters`` is the
    compact JSON of the extra filters (cut at :data:`FILTERS_MAX_CHARS`), ``filters_sha256``
    the hash of the whole of it. Every value is ASCII, and all of them stay far below S3's
    2 KB metadata limit.

    Example::

        stamp = ObjectStamp.for_window(window, [])
        stamp.metadata(records=20000)["conpeek-window-start"]  # '2026-01-01T00:00:00Z'
    """

    date_property: str
    start: str
    end: str
    filters: str
    filters_sha256: str

    @classmethod
    def for_window(cls, window: Window, extra_filters: Sequence[Any]) -> ObjectStamp:
        """The stamp of an extract of ``window`` with ``extra_filters``."""
        text = json.dumps(
            list(extra_filters), sort_keys=True, separators=(",", ":"), default=str
        )  # ensure_ascii (the default): header values must be ASCII
        shown = text if len(text) <= FILTERS_MAX_CHARS else text[: FILTERS_MAX_CHARS - 3] + "..."
        return cls(
            date_property=window.date_property,
            start=_iso(window.start),
            end=_iso(window.end),
            filters=shown,
            filters_sha256=hashlib.sha256(text.encode("ascii")).hexdigest(),
        )

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str]) -> ObjectStamp | None:
        """The stamp of an existing object, or ``None`` if it carries none (not ours)."""
        meta = normal_metadata(metadata)
        try:
            return cls(
                date_property=meta[f"{META}date-property"],
                start=meta[f"{META}window-start"],
                end=meta[f"{META}window-end"],
                filters=meta.get(f"{META}filters", ""),
                filters_sha256=meta.get(f"{META}filters-sha256", ""),
            )
        except KeyError:
            return None

    @property
    def window(self) -> tuple[str, str, str]:
        """``(date_property, start, end)``: what decides whether two objects may share a key."""
        return (self.date_property, self.start, self.end)

    def describe(self) -> str:
        """``created_date in [2026-01-01T00:00:00Z, 2026-01-02T00:00:00Z)``."""
        return f"{self.date_property} in [{self.start}, {self.end})"

    def metadata(self, *, records: int) -> dict[str, str]:
        """The ``Metadata`` of the object (names without ``x-amz-meta-``)."""
        return {
            f"{META}endpoint": "voice_campaign_request_summary",
            f"{META}date-property": self.date_property,
            f"{META}window-start": self.start,
            f"{META}window-end": self.end,
            f"{META}filters": self.filters,
            f"{META}filters-sha256": self.filters_sha256,
            f"{META}records": str(records),
            f"{META}provider-version": __version__,
        }


def normal_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    """Metadata names as the provider writes them: lower case, ``conpeek-`` (Azure's
    ``conpeek_window_start`` is ``conpeek-window-start``: its names cannot hold hyphens)."""
    return {k.lower().replace("_", "-"): v for k, v in metadata.items()}


def _iso(api_datetime: str) -> str:
    """``2026-01-01 00:00:00`` (the API's UTC form) -> ``2026-01-01T00:00:00Z``."""
    return api_datetime.replace(" ", "T") + "Z"


@dataclass(frozen=True)
class Existing:
    """An object found at the key: its version (S3's and Azure's ETag, GCS's generation) and
    what its metadata says (``None``: not ours), its record count as its metadata states it,
    its size in bytes and the id of the extract that wrote it."""

    etag: str
    stamp: ObjectStamp | None
    records: str | None = None
    size: int | None = None
    write_id: str | None = None

    @classmethod
    def from_metadata(cls, version: str, metadata: Mapping[str, str], size: int | None) -> Existing:
        """What an object's version, user metadata and size say."""
        meta = normal_metadata(metadata)
        return cls(
            etag=version,
            stamp=ObjectStamp.from_metadata(meta),
            records=meta.get(f"{META}records"),
            size=size,
            write_id=meta.get(f"{META}write-id"),
        )


@dataclass(frozen=True)
class WriteCondition:
    """The precondition of the write: nothing there yet (``If-None-Match: *``), still the
    version decided on (``If-Match: <etag>``), or none. Each store spells it its own way."""

    if_none_match: bool = False
    if_match: str | None = None

    @property
    def guarded(self) -> bool:
        """Whether the write has a precondition at all."""
        return self.if_none_match or self.if_match is not None


def decide_write(
    existing: Existing | None,
    stamp: ObjectStamp,
    *,
    replace: Replace,
    uri: str,
    names: StoreNames = S3,
) -> WriteCondition:
    """How (and whether) this extract may write the key, given what it holds now.

    :raises ConpeekConfigError: when the key holds an object this extract must not replace:
        any object with ``replace=False``; with ``replace=True`` another window's object, or
        an object without the provider's metadata.
    """
    if replace == "always":
        return WriteCondition()
    if existing is None:
        return WriteCondition(if_none_match=True)
    if replace is False:
        raise ConpeekConfigError(
            f"{uri} already exists and replace=False. Delete it, or pass replace=True to "
            "overwrite it."
        )
    if existing.stamp is None:
        raise ConpeekConfigError(
            f"{uri} already exists and was not written by this operator (it has no "
            f"{names.metadata} metadata: an upload by another tool, or by an earlier "
            "version of this provider), so replace=True does not overwrite it. Delete it, "
            f"choose another {names.key}, or pass replace='always' to overwrite whatever is "
            "there."
        )
    if existing.stamp.window != stamp.window:
        raise ConpeekConfigError(
            f"{uri} holds the extract of another window ({existing.stamp.describe()}); this "
            f"run extracts {stamp.describe()} and will not overwrite it. Two intervals "
            f"render the same key. {names.unique_key_hint()} Or pass replace='always' to overwrite "
            "it anyway."
        )
    return WriteCondition(if_match=existing.etag)
