"""VoiceCampaignSummaryToS3Operator: one data interval of records, streamed into S3.

Heavy imports (requests, boto3) happen in ``execute()``, so a DAG file that uses the
operator parses fast. The work is delegated: :mod:`~airflow_provider_conpeek.destination`
and :mod:`~airflow_provider_conpeek.s3write` (the S3 checks, the metadata, the conditional
write), :mod:`~airflow_provider_conpeek.extract` (paging into a temporary file, stoppable by
``on_kill``) and :mod:`~airflow_provider_conpeek.tempfiles` (where temporary files live).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_conpeek._compat import BaseOperator
from airflow_provider_conpeek.client.paging import validate_page_size
from airflow_provider_conpeek.connection import DEFAULT_CONN_ID
from airflow_provider_conpeek.destination import check_destination, check_replace
from airflow_provider_conpeek.exceptions import ConpeekConfigError
from airflow_provider_conpeek.lineage import LINEAGE_ATTRIBUTE
from airflow_provider_conpeek.window import WINDOW_TEMPLATE_FIELDS, WindowArguments

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Context

    from airflow_provider_conpeek.extract import Extraction

PROGRESS_EVERY_SECONDS = 10.0


class VoiceCampaignSummaryToS3Operator(WindowArguments, BaseOperator):
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
    :param conpeek_conn_id: the Conpeek connection.
    :param aws_conn_id: the AWS connection used by ``S3Hook``; it must exist. ``None`` uses
        the default AWS credentials (environment, instance profile...) on purpose.
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
        field, typed from every record of the window; see :mod:`~airflow_provider_conpeek.parquet`.
    :param parquet_timestamps: Parquet only: date-time columns as ``timestamp`` (UTC)
        instead of the API's strings, kept as sent by default.
    :param replace: ``True`` (default): overwrite the object of this same window (a rerun),
        never another window's object nor one without the provider's metadata. ``False``:
        never overwrite. ``"always"``: overwrite whatever the key holds. Checked before any
        request, and enforced by the write's precondition.

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

    template_fields: Sequence[str] = ("s3_bucket", "s3_key", *WINDOW_TEMPLATE_FIELDS)
    template_fields_renderers = {"filters": "json"}
    ui_color = "#e8f4fd"

    def __init__(
        self,
        *,
        s3_bucket: str,
        s3_key: str,
        conpeek_conn_id: str = DEFAULT_CONN_ID,
        aws_conn_id: str | None = "aws_default",
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
        self.s3_bucket = s3_bucket
        self.s3_key = s3_key
        self.conpeek_conn_id = conpeek_conn_id
        self.aws_conn_id = aws_conn_id
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

    def execute(self, context: Context) -> dict[str, Any]:
        """Validate everything, check the destination, then page the window and upload it."""
        try:
            return self._execute(context, self._kill_event())
        finally:  # the next try, if it runs in this process (dag.test()), starts unkilled
            self.__dict__.pop("_kill", None)

    def _execute(self, context: Context, killed: threading.Event) -> dict[str, Any]:
        from airflow_provider_conpeek.client.limiter import make_limit
        from airflow_provider_conpeek.destination import ObjectStamp, check_aws_connection
        from airflow_provider_conpeek.extract import KILLED, Extraction
        from airflow_provider_conpeek.hooks.conpeek import ConpeekHook
        from airflow_provider_conpeek.jsonlines import check_format
        from airflow_provider_conpeek.lineage import event_extra, input_dataset, s3_outlets
        from airflow_provider_conpeek.s3write import ExtractCancelled, S3Destination, s3_hook

        # ``killed`` is set by on_kill, also before this method starts: never forgotten.
        self._extraction: Extraction | None = None
        # Everything that needs no I/O first, then the connections, then S3, then Conpeek.
        bucket, key = check_destination(self.s3_bucket, self.s3_key)
        outlets = s3_outlets(self.outlets, bucket, key)
        lineage: dict[str, Any] = {"bucket": bucket, "key": key}  # for OpenLineage, no I/O
        self.__dict__[LINEAGE_ATTRIBUTE] = lineage
        file_format, compression = check_format(self.file_format, self.compression, key)
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
        s3 = s3_hook(self.aws_conn_id, type(self).__name__)
        check_aws_connection(self.aws_conn_id, s3.get_connection)
        transfer = s3.transfer_config
        dest = S3Destination(
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
            cancel=killed,
        )
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
            )
            for outlet in outlets:  # the declared objects themselves: Airflow keys by them
                context["outlet_events"][outlet].extra = extra
        return {
            "s3_uri": dest.uri,
            "records": done["records"],
            "bytes": done["bytes"],
            "pages": done["pages"],
            "window": window.as_dict(),
            "etag": done["etag"],
        }

    def get_openlineage_facets_on_start(self) -> OperatorLineage[Any, Any]:
        """OpenLineage (called by its provider when the task starts): the S3 object."""
        from airflow_provider_conpeek._openlineage import on_start

        return on_start(self)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage[Any, Any]:
        """OpenLineage (called by its provider when the task ends, also on failure): the
        Conpeek endpoint and its filters read, the S3 object written and its statistics."""
        from airflow_provider_conpeek._openlineage import on_complete

        return on_complete(self)

    def _kill_event(self) -> threading.Event:
        """The task's kill flag, made on first use (an Event cannot be deep-copied, so not
        in ``__init__``): ``on_kill`` may run before ``execute`` starts."""
        return self.__dict__.setdefault("_kill", threading.Event())  # type: ignore[no-any-return]

    def on_kill(self) -> None:
        """Stop at once: no further request, client closed, upload aborted, temp file gone.

        Airflow calls this on SIGTERM (a timeout, a task marked failed or cleared, a worker
        shutting down); then ``execute()`` raises.
        """
        self._kill_event().set()
        extraction = getattr(self, "_extraction", None)
        if extraction is not None:
            extraction.stop()


def _require_pyarrow() -> None:
    """Parquet needs pyarrow, an optional dependency: say how to get it, before any request."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise ConpeekConfigError(
            "file_format='parquet' needs pyarrow, which is not installed. Install "
            "airflow-provider-conpeek[parquet] (or pyarrow) on the workers."
        ) from None
