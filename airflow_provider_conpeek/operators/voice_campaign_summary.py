"""Operators that extract one data interval of records into one object of an object store.

* :class:`VoiceCampaignSummaryToS3Operator` -- Amazon S3 (``S3Hook``).
* :class:`VoiceCampaignSummaryToGCSOperator` -- Google Cloud Storage (``GCSHook``,
  ``pip install airflow-provider-conpeek[google]``).
* :class:`VoiceCampaignSummaryToAzureBlobOperator` -- Azure Blob Storage (``WasbHook``,
  ``pip install airflow-provider-conpeek[azure]``).

One operator per store, as Airflow names its transfers (``LocalFilesystemToGCSOperator``,
``LocalFilesystemToWasbOperator``): each takes its store's own connection id and names its
destination the way that store's hook does, and everything else -- the window, paging, the
formats, the checks and the guarded write -- is shared
(:class:`VoiceCampaignSummaryToObjectOperator`, on
:class:`~airflow_provider_conpeek.objectwrite.ObjectDestination`).

Heavy imports (requests, boto3, the Google and Azure SDKs) happen in ``execute()``, so a DAG
file that uses an operator parses fast. The work is delegated:
:mod:`~airflow_provider_conpeek.destination` and :mod:`~airflow_provider_conpeek.objectwrite`
(the checks, the metadata, the conditional write), :mod:`~airflow_provider_conpeek.s3write`,
:mod:`~airflow_provider_conpeek.gcswrite`, :mod:`~airflow_provider_conpeek.azurewrite` (each
store's calls), :mod:`~airflow_provider_conpeek.extract` (paging into a temporary file,
stoppable by ``on_kill``) and :mod:`~airflow_provider_conpeek.tempfiles`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_conpeek._compat import BaseOperator
from airflow_provider_conpeek.client.paging import validate_page_size
from airflow_provider_conpeek.connection import DEFAULT_CONN_ID
from airflow_provider_conpeek.destination import (
    AZURE,
    GCS,
    S3,
    StoreNames,
    check_destination,
    check_replace,
)
from airflow_provider_conpeek.exceptions import ConpeekConfigError
from airflow_provider_conpeek.lineage import LINEAGE_ATTRIBUTE
from airflow_provider_conpeek.window import WINDOW_TEMPLATE_FIELDS, WindowArguments

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Context

    from airflow_provider_conpeek.extract import Extraction
    from airflow_provider_conpeek.objectwrite import ObjectDestination

PROGRESS_EVERY_SECONDS = 10.0

_COMMON_PARAMS = """\
    :param conpeek_conn_id: the Conpeek connection.
    :param filters: see :class:`~airflow_provider_conpeek.window.WindowArguments`.
    :param date_property: see :class:`~airflow_provider_conpeek.window.WindowArguments`.
    :param window_start: see :class:`~airflow_provider_conpeek.window.WindowArguments`.
    :param window_end: see :class:`~airflow_provider_conpeek.window.WindowArguments`.
    :param page_size: records per request.
    :param concurrency: ``None`` (default): requests in flight adapt to the server, fewer
        when it answers 429 or slows down, up to ``max_concurrency``. A number pins it; 1
        pages sequentially.
    :param max_concurrency: ceiling on requests in flight; ``None`` takes the connection's
        ``max_concurrency`` extra (default 16).
    :param compression: JSON Lines: ``"gzip"`` (the default, also for ``None``) or
        ``"none"``. Leave it unset for Parquet, which compresses inside the file.
    :param file_format: ``"jsonl"`` (default: the records verbatim, one per line) or
        ``"parquet"`` (``pip install airflow-provider-conpeek[parquet]``): one column per
        field, typed from every record of the window; see :doc:`/formats`.
    :param parquet_timestamps: Parquet only: date-time columns as ``timestamp`` (UTC)
        instead of the API's strings, kept as sent by default.
    :param replace: ``True`` (default): overwrite the object of this same window (a rerun),
        never another window's object nor one without the provider's metadata. ``False``:
        never overwrite. ``"always"``: overwrite whatever the key holds. Checked before any
        request, and enforced by the write's precondition.

"""


def _common_params(cls: type[Any]) -> type[Any]:
    """Put the parameters every store operator shares into its docstring, at ``{COMMON}``
    (written once, shown in full on each operator's page)."""
    cls.__doc__ = (cls.__doc__ or "").replace("    {COMMON}\n", _COMMON_PARAMS)
    return cls


class VoiceCampaignSummaryToObjectOperator(WindowArguments, BaseOperator):
    """What the three store operators share; use one of them, not this class.

    The window is half-open, ``[window_start, window_end)``, on ``date_property`` (UTC), and
    defaults to the run's data interval, so consecutive runs neither overlap nor leave a gap.
    Records are written as JSON Lines (gzip by default) or Parquet into a temporary file,
    page by page, then uploaded in one conditional write: memory stays flat however many
    records the window holds, and a failed or killed run leaves no object and no temporary
    file.

    Before the first Conpeek request, the destination is checked (the bucket or container
    exists and is reachable) and so is what the key holds: an object of *another* window is
    never overwritten. The object carries its window, filters, record count and the
    provider version as metadata.

    Use a timetable with real data intervals: in Airflow 3 ``schedule="@daily"`` gives runs a
    zero-length interval, which these operators refuse.
    """

    names: ClassVar[StoreNames] = S3
    """How this store's destination arguments are named (in messages too)."""
    uri_key: ClassVar[str] = "uri"
    """The XCom key of the object's URI."""
    asset_hint: ClassVar[str] = ""
    """The asset function call an outlet error suggests."""
    template_fields_renderers = {"filters": "json"}
    ui_color = "#e8f4fd"

    def __init__(
        self,
        *,
        conpeek_conn_id: str = DEFAULT_CONN_ID,
        filters: list[dict[str, Any]] | None = None,
        date_property: str = "created_date",
        window_start: Any = None,
        window_end: Any = None,
        page_size: int = 100,
        concurrency: int | None = None,
        max_concurrency: int | None = None,
        compression: str | None = None,
        file_format: str = "jsonl",
        parquet_timestamps: bool = False,
        replace: bool | str = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.conpeek_conn_id = conpeek_conn_id
        self.filters = filters
        self.date_property = date_property
        self.window_start = window_start
        self.window_end = window_end
        self.page_size = page_size
        self.concurrency = concurrency
        self.max_concurrency = max_concurrency
        self.compression = compression
        self.file_format = file_format
        self.parquet_timestamps = parquet_timestamps
        self.replace = replace

    # -- what each store operator supplies ---------------------------------------------------

    def _rendered_target(self) -> tuple[Any, Any]:
        """The bucket (or container) and key arguments, as rendered."""
        raise NotImplementedError

    def _destination(self, bucket: str, key: str, cancel: threading.Event) -> ObjectDestination:
        """The destination, on the store's hook: its connection is read (it must exist),
        but no request is sent yet."""
        raise NotImplementedError

    def _object_uri(self, bucket: str, key: str) -> str | None:
        """The object's URI, if known without the connection (Azure's needs the account)."""
        return None

    def _output_dataset(self, bucket: str, key: str) -> tuple[str, str] | None:
        """OpenLineage's ``(namespace, name)`` of the object (no I/O), if known."""
        uri = self._object_uri(bucket, key)
        return None if uri is None else dataset_name(uri)

    # -- shared ------------------------------------------------------------------------------

    def execute(self, context: Context) -> dict[str, Any]:
        """Validate everything, check the destination, then page the window and upload it."""
        try:
            return self._execute(context, self._kill_event())
        finally:  # the next try, if it runs in this process (dag.test()), starts unkilled
            self.__dict__.pop("_kill", None)

    def _execute(self, context: Context, killed: threading.Event) -> dict[str, Any]:
        from airflow_provider_conpeek.client.limiter import make_limit
        from airflow_provider_conpeek.destination import ObjectStamp
        from airflow_provider_conpeek.extract import KILLED, Extraction
        from airflow_provider_conpeek.hooks.conpeek import ConpeekHook
        from airflow_provider_conpeek.jsonlines import check_format
        from airflow_provider_conpeek.lineage import event_extra, input_dataset, s3_outlets
        from airflow_provider_conpeek.objectwrite import ExtractCancelled

        # ``killed`` is set by on_kill, also before this method starts: never forgotten.
        self._extraction: Extraction | None = None
        # Everything that needs no I/O first, then the connections, then the store, then
        # Conpeek.
        bucket, key = check_destination(*self._rendered_target(), self.names)
        lineage: dict[str, Any] = {"bucket": bucket, "key": key}  # for OpenLineage, no I/O
        self.__dict__[LINEAGE_ATTRIBUTE] = lineage
        uri = self._object_uri(bucket, key)
        if uri is not None:
            lineage["output"] = dataset_name(uri)
            outlets = s3_outlets(self.outlets, bucket, key, uri=uri, hint=self.asset_hint)
        file_format, compression = check_format(
            self.file_format, self.compression, key, key_name=self.names.key
        )
        if not isinstance(self.parquet_timestamps, bool):
            raise ConpeekConfigError(
                f"parquet_timestamps must be True or False, got {self.parquet_timestamps!r}."
            )
        if file_format == "parquet":
            _require_pyarrow()
        replace = check_replace(self.replace)
        validate_page_size(self.page_size)
        window, filters = self.resolve_window_filters(context)
        hook = ConpeekHook(self.conpeek_conn_id, max_concurrency=self.max_concurrency)
        slots = make_limit(self.concurrency, hook.settings.max_concurrency)
        lineage.update(input_dataset(hook.settings), filters=filters)
        dest = self._destination(bucket, key, killed)
        if uri is None:
            lineage["output"] = dataset_name(dest.uri)
            outlets = s3_outlets(self.outlets, bucket, key, uri=dest.uri, hint=self.asset_hint)
        dest.check_bucket()
        stamp = ObjectStamp.for_window(window, filters[len(window.filters) :])
        dest.prepare(stamp, replace=replace)
        if killed.is_set():
            raise ExtractCancelled(KILLED.format(uri=dest.uri))

        self.log.info(
            "Extracting %s in [%s, %s) UTC into %s",
            window.date_property,
            window.start,
            window.end,
            dest.uri,
        )
        self._extraction = Extraction(
            hook.get_conn(),
            dest,
            stamp,
            filters,
            page_size=self.page_size,
            slots=slots,
            compression=compression,
            file_format=file_format,
            parquet_timestamps=self.parquet_timestamps,
            log=self.log,
            progress_every=PROGRESS_EVERY_SECONDS,
        )
        try:
            done = self._extraction.run()
        finally:
            self._extraction = None  # nothing unpicklable stays on the task
        lineage.update(records=done["records"], bytes=done["bytes"])
        if outlets:
            from airflow_provider_conpeek import __version__

            extra = event_extra(
                bucket,
                key,
                records=done["records"],
                size=done["bytes"],
                window=window.as_dict(),
                version=__version__,
                uri=dest.uri,
            )
            for outlet in outlets:  # the declared objects themselves: Airflow keys by them
                context["outlet_events"][outlet].extra = extra
        return {
            self.uri_key: dest.uri,
            "records": done["records"],
            "bytes": done["bytes"],
            "pages": done["pages"],
            "window": window.as_dict(),
            dest.version_name: done[dest.version_name],
        }

    def get_openlineage_facets_on_start(self) -> OperatorLineage[Any, Any]:
        """OpenLineage (called by its provider when the task starts): the object."""
        from airflow_provider_conpeek._openlineage import on_start

        return on_start(self)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage[Any, Any]:
        """OpenLineage (called by its provider when the task ends, also on failure): the
        Conpeek endpoint and its filters read, the object written and its statistics."""
        from airflow_provider_conpeek._openlineage import on_complete

        return on_complete(self)

    def _kill_event(self) -> threading.Event:
        """The task's kill flag, made on first use (an Event cannot be deep-copied, so not
        in ``__init__``): ``on_kill`` may run before ``execute`` starts."""
        return self.__dict__.setdefault("_kill", threading.Event())  # type: ignore[no-any-return]

    def on_kill(self) -> None:
        """Stop at once: no further request, client closed, upload abandoned, temp file gone.

        Airflow calls this on SIGTERM (a timeout, a task marked failed or cleared, a worker
        shutting down); then ``execute()`` raises.
        """
        self._kill_event().set()
        extraction = getattr(self, "_extraction", None)
        if extraction is not None:
            extraction.stop()


@_common_params
class VoiceCampaignSummaryToS3Operator(VoiceCampaignSummaryToObjectOperator):
    """Extract one window of voice campaign request summaries into one S3 object.

    The window is half-open, ``[window_start, window_end)``, on ``date_property`` (UTC), and
    defaults to the run's data interval, so consecutive runs neither overlap nor leave a gap.
    Records are written verbatim as JSON Lines (gzip by default) into a temporary file, page
    by page, then uploaded in one conditional write: memory stays flat however many records
    the window holds, and a failed or killed run leaves no object and no temporary file.

    Before the first Conpeek request, the bucket is checked (``HeadBucket``) and so is what
    the key holds: an object of *another* window is never overwritten. The object carries
    its window, filters, record count and the provider version as S3 metadata.

    Use a timetable with real data intervals: in Airflow 3 ``schedule="@daily"`` gives runs a
    zero-length interval, which this operator refuses.

    :param s3_bucket: destination bucket, a bare name (templated).
    :param s3_key: destination key (templated), unique per interval, e.g. with
        ``{{ data_interval_start | ts_nodash }}``; ends in ``.gz`` exactly when
        ``compression="gzip"``, in ``.parquet`` with ``file_format="parquet"``.
    :param aws_conn_id: the AWS connection used by ``S3Hook``; it must exist. ``None`` uses
        the default AWS credentials (environment, instance profile...) on purpose.
    {COMMON}
    Returns (XCom) a small dict: ``s3_uri``, ``records``, ``bytes``, ``pages``, ``window``,
    ``etag`` (of the object written).

    Lineage: give ``outlets=[s3_asset(bucket, prefix)]``
    (:func:`~airflow_provider_conpeek.lineage.s3_asset`) and each successful run emits an
    asset event whose extra names the object, its window and counts
    (:func:`~airflow_provider_conpeek.lineage.event_extra`), for DAGs scheduled on it.

    .. seealso:: :doc:`/operator`

    Example::

        VoiceCampaignSummaryToS3Operator(
            task_id="extract",
            s3_bucket="contact-centre",
            s3_key="conpeek/summary/{{ data_interval_start | ts_nodash }}.jsonl.gz",
        )
    """

    names = S3
    uri_key = "s3_uri"
    template_fields: Sequence[str] = ("s3_bucket", "s3_key", *WINDOW_TEMPLATE_FIELDS)

    def __init__(
        self,
        *,
        s3_bucket: str,
        s3_key: str,
        aws_conn_id: str | None = "aws_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.s3_bucket = s3_bucket
        self.s3_key = s3_key
        self.aws_conn_id = aws_conn_id

    def _rendered_target(self) -> tuple[Any, Any]:
        return self.s3_bucket, self.s3_key

    def _destination(self, bucket: str, key: str, cancel: threading.Event) -> ObjectDestination:
        from airflow_provider_conpeek.destination import check_aws_connection
        from airflow_provider_conpeek.s3write import S3Destination, s3_hook

        s3 = s3_hook(self.aws_conn_id, type(self).__name__)
        check_aws_connection(self.aws_conn_id, s3.get_connection)
        transfer = s3.transfer_config
        return S3Destination(
            s3.get_conn(),
            bucket,
            key,
            credentials=(
                f"the AWS connection {self.aws_conn_id!r}"
                if self.aws_conn_id
                else "the default AWS credentials (aws_conn_id=None)"
            ),
            multipart_threshold=transfer.multipart_threshold,
            part_size=transfer.multipart_chunksize,
            cancel=cancel,
        )

    def _object_uri(self, bucket: str, key: str) -> str | None:
        return f"s3://{bucket}/{key}"


@_common_params
class VoiceCampaignSummaryToGCSOperator(VoiceCampaignSummaryToObjectOperator):
    """Extract one window of voice campaign request summaries into one Google Cloud Storage
    object, with every promise of :class:`VoiceCampaignSummaryToS3Operator`.

    Needs the Google provider: ``pip install airflow-provider-conpeek[google]``. The object
    is written with a generation precondition (``ifGenerationMatch``: 0 when nothing may be
    there, else the generation decided on), streamed in resumable chunks that are finalised
    only once the whole file is sent, so a failed or killed run leaves no object. The
    window, filters and counts are the object's custom metadata (``conpeek-*``).

    :param bucket_name: destination bucket, a bare name (templated).
    :param object_name: destination object (templated), unique per interval, e.g. with
        ``{{ data_interval_start | ts_nodash }}``; ends in ``.gz`` exactly when
        ``compression="gzip"``, in ``.parquet`` with ``file_format="parquet"``.
    :param gcp_conn_id: the Google Cloud connection used by ``GCSHook``; it must exist.
        ``None`` uses Google's default credentials (environment, metadata server) on purpose.
    :param impersonation_chain: a service account to impersonate (or a chain of them), as
        every Google operator takes it (templated).
    {COMMON}
    Returns (XCom) a small dict: ``gcs_uri``, ``records``, ``bytes``, ``pages``, ``window``,
    ``generation`` (of the object written).

    Lineage: ``outlets=[gcs_asset(bucket, prefix)]``
    (:func:`~airflow_provider_conpeek.lineage.gcs_asset`), as for S3.

    Example::

        VoiceCampaignSummaryToGCSOperator(
            task_id="extract",
            bucket_name="contact-centre",
            object_name="conpeek/summary/{{ data_interval_start | ts_nodash }}.parquet",
            file_format="parquet",
        )
    """

    names = GCS
    uri_key = "gcs_uri"
    asset_hint = "gcs_asset(<bucket_name>, <the fixed start of object_name>)"
    template_fields: Sequence[str] = (
        "bucket_name",
        "object_name",
        "impersonation_chain",
        *WINDOW_TEMPLATE_FIELDS,
    )

    def __init__(
        self,
        *,
        bucket_name: str,
        object_name: str,
        gcp_conn_id: str | None = "google_cloud_default",
        impersonation_chain: str | Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.bucket_name = bucket_name
        self.object_name = object_name
        self.gcp_conn_id = gcp_conn_id
        self.impersonation_chain = impersonation_chain

    def _rendered_target(self) -> tuple[Any, Any]:
        return self.bucket_name, self.object_name

    def _destination(self, bucket: str, key: str, cancel: threading.Event) -> ObjectDestination:
        from airflow_provider_conpeek.gcswrite import GCSDestination, gcs_client

        client, credentials = gcs_client(
            self.gcp_conn_id, self.impersonation_chain, type(self).__name__
        )
        return GCSDestination(client, bucket, key, credentials=credentials, cancel=cancel)

    def _object_uri(self, bucket: str, key: str) -> str | None:
        return f"gs://{bucket}/{key}"


@_common_params
class VoiceCampaignSummaryToAzureBlobOperator(VoiceCampaignSummaryToObjectOperator):
    """Extract one window of voice campaign request summaries into one Azure Blob Storage
    blob, with every promise of :class:`VoiceCampaignSummaryToS3Operator`.

    Needs the Microsoft Azure provider: ``pip install airflow-provider-conpeek[azure]``.
    The blob is staged block by block from the temporary file and committed in one
    conditional Put Block List (``If-None-Match: *``, or ``If-Match`` the ETag decided on):
    uncommitted blocks are never visible, so a failed or killed run leaves no blob. The
    window, filters and counts are the blob's metadata, named ``conpeek_*`` (Azure's names
    cannot hold hyphens).

    :param container_name: destination container (templated).
    :param blob_name: destination blob (templated), unique per interval, e.g. with
        ``{{ data_interval_start | ts_nodash }}``; ends in ``.gz`` exactly when
        ``compression="gzip"``, in ``.parquet`` with ``file_format="parquet"``.
    :param wasb_conn_id: the Azure Blob Storage connection used by ``WasbHook``; it must
        exist.
    {COMMON}
    Returns (XCom) a small dict: ``wasb_uri``, ``records``, ``bytes``, ``pages``,
    ``window``, ``etag`` (of the blob written).

    Lineage: ``outlets=[azure_blob_asset(account, container, prefix)]``
    (:func:`~airflow_provider_conpeek.lineage.azure_blob_asset`), as for S3.

    Example::

        VoiceCampaignSummaryToAzureBlobOperator(
            task_id="extract",
            container_name="contact-centre",
            blob_name="conpeek/summary/{{ data_interval_start | ts_nodash }}.jsonl.gz",
        )
    """

    names = AZURE
    uri_key = "wasb_uri"
    asset_hint = "azure_blob_asset(<account>, <container_name>, <the fixed start of blob_name>)"
    template_fields: Sequence[str] = ("container_name", "blob_name", *WINDOW_TEMPLATE_FIELDS)

    def __init__(
        self,
        *,
        container_name: str,
        blob_name: str,
        wasb_conn_id: str = "wasb_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.container_name = container_name
        self.blob_name = blob_name
        self.wasb_conn_id = wasb_conn_id

    def _rendered_target(self) -> tuple[Any, Any]:
        return self.container_name, self.blob_name

    def _destination(self, bucket: str, key: str, cancel: threading.Event) -> ObjectDestination:
        from airflow_provider_conpeek.azurewrite import AzureBlobDestination, wasb_service

        service, credentials = wasb_service(self.wasb_conn_id, type(self).__name__)
        return AzureBlobDestination(service, bucket, key, credentials=credentials, cancel=cancel)


def dataset_name(uri: str) -> tuple[str, str]:
    """OpenLineage's ``(namespace, name)`` of an object: ``s3://b/k`` -> ``("s3://b", "k")``."""
    scheme, rest = uri.split("://", 1)
    container, name = rest.split("/", 1)
    return f"{scheme}://{container}", name


def _require_pyarrow() -> None:
    """Parquet needs pyarrow, an optional dependency: say how to get it, before any request."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise ConpeekConfigError(
            "file_format='parquet' needs pyarrow, which is not installed. Install "
            "airflow-provider-conpeek[parquet] (or pyarrow) on the workers."
        ) from None
