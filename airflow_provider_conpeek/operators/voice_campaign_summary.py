"""VoiceCampaignSummaryToS3Operator: one data interval of records, streamed into S3.

Heavy imports (requests, boto3) happen in ``execute()``, so a DAG file that uses the
operator parses fast.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_conpeek._compat import BaseOperator
from airflow_provider_conpeek.client.paging import DEFAULT_CONCURRENCY, validate_paging_args
from airflow_provider_conpeek.connection import DEFAULT_CONN_ID
from airflow_provider_conpeek.exceptions import ConpeekConfigError
from airflow_provider_conpeek.window import WINDOW_TEMPLATE_FIELDS, WindowArguments

if TYPE_CHECKING:
    from airflow.sdk import Context

PROGRESS_EVERY_SECONDS = 10.0


class VoiceCampaignSummaryToS3Operator(WindowArguments, BaseOperator):
    """Extract one window of voice campaign request summaries into one S3 object.

    The window is half-open, ``[window_start, window_end)``, on ``date_property`` (UTC), and
    defaults to the run's data interval, so consecutive runs neither overlap nor leave a gap.
    Records are written verbatim as JSON Lines (gzip by default) into a temporary file, page
    by page, then uploaded with the Amazon provider's ``S3Hook``: memory stays flat however
    many records the window holds, and a failed run leaves no object and no temporary file.

    Use a timetable with real data intervals: in Airflow 3 ``schedule="@daily"`` gives runs a
    zero-length interval, which this operator refuses.

    :param s3_bucket: destination bucket (templated).
    :param s3_key: destination key (templated); ends in ``.gz`` exactly when
        ``compression="gzip"``.
    :param conpeek_conn_id: the Conpeek connection.
    :param aws_conn_id: the AWS connection used by ``S3Hook``.
    :param filters: see :class:`~airflow_provider_conpeek.window.WindowArguments`.
    :param date_property: see :class:`~airflow_provider_conpeek.window.WindowArguments`.
    :param window_start: see :class:`~airflow_provider_conpeek.window.WindowArguments`.
    :param window_end: see :class:`~airflow_provider_conpeek.window.WindowArguments`.
    :param page_size: records per request.
    :param concurrency: requests in flight at once; 1 pages sequentially.
    :param compression: ``"gzip"`` (default) or ``"none"``.
    :param replace: overwrite an existing object (default ``True``: reruns rewrite their
        interval). With ``False`` an existing object fails the task before any request.

    Returns (XCom) a small dict: ``s3_uri``, ``records``, ``bytes``, ``pages``, ``window``.

    .. seealso:: :doc:`/operator`

    Example::

        VoiceCampaignSummaryToS3Operator(
            task_id="extract",
            s3_bucket="contact-centre",
            s3_key="conpeek/voice_campaign_request_summary/{{ ds }}.jsonl.gz",
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
        concurrency: int = DEFAULT_CONCURRENCY,
        compression: str = "gzip",
        replace: bool = True,
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
        self.compression = compression
        self.replace = replace

    def execute(self, context: Context) -> dict[str, Any]:
        """Validate everything, then page the window into a temp file and upload it."""
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        from airflow_provider_conpeek.hooks.conpeek import ConpeekHook
        from airflow_provider_conpeek.jsonlines import JsonLinesFile, check_compression

        bucket, key = _check_destination(self.s3_bucket, self.s3_key)
        compression = check_compression(self.compression, key)
        validate_paging_args(self.page_size, self.concurrency)
        window, filters = self.resolve_window_filters(context)
        hook = ConpeekHook(conpeek_conn_id=self.conpeek_conn_id)
        hook.settings  # noqa: B018 - fail on a bad connection before any request
        s3 = S3Hook(aws_conn_id=self.aws_conn_id)
        if not self.replace and s3.check_for_key(key, bucket):
            raise ConpeekConfigError(
                f"s3://{bucket}/{key} already exists and replace=False. Delete it, or pass "
                "replace=True to overwrite it."
            )

        uri = f"s3://{bucket}/{key}"
        self.log.info(
            "Extracting %s in [%s, %s) UTC into %s",
            window.date_property,
            window.start,
            window.end,
            uri,
        )
        started = time.monotonic()
        pages = 0
        with (
            tempfile.TemporaryDirectory(prefix="conpeek-") as tmp,
            hook.get_conn() as client,
        ):
            with JsonLinesFile(tmp, compression=compression) as out:
                last_report = started
                for page in client.iter_pages(
                    filters, page_size=self.page_size, concurrency=self.concurrency
                ):
                    out.write_page(page)
                    pages += 1
                    now = time.monotonic()
                    if now - last_report >= PROGRESS_EVERY_SECONDS:
                        last_report = now
                        self._log_progress("Progress", pages, out.records, now - started)
            client.close()  # before the upload: nothing of Conpeek's is held meanwhile
            size = out.bytes_written
            s3.load_file(filename=str(out.path), key=key, bucket_name=bucket, replace=True)
        elapsed = time.monotonic() - started
        self._log_progress(f"Wrote {uri} ({size} bytes):", pages, out.records, elapsed)
        return {
            "s3_uri": uri,
            "records": out.records,
            "bytes": size,
            "pages": pages,
            "window": window.as_dict(),
        }

    def _log_progress(self, what: str, pages: int, records: int, elapsed: float) -> None:
        rate = records / elapsed if elapsed > 0 else 0.0
        self.log.info(
            "%s %d pages, %d records in %.1f s (%.0f records/s)",
            what,
            pages,
            records,
            elapsed,
            rate,
        )


def _check_destination(bucket: Any, key: Any) -> tuple[str, str]:
    """Bucket and key as rendered: non-empty strings, the key not a full URL."""
    for name, value in (("s3_bucket", bucket), ("s3_key", key)):
        if not isinstance(value, str) or not value.strip():
            raise ConpeekConfigError(
                f"{name} is empty after rendering (got {value!r}). Give it a value, or check "
                "the template that renders it."
            )
    if key.startswith("s3://"):
        raise ConpeekConfigError(
            f"s3_key {key!r} is a full URL. Pass the bucket as s3_bucket and only the key "
            "(for example 'conpeek/{{ ds }}.jsonl.gz') as s3_key."
        )
    return bucket.strip(), key.lstrip("/")
