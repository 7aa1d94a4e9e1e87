"""One extract, stoppable at any moment: pages into a temporary file, then one object write.

The work runs on a worker thread while the task's main thread waits for it. The main thread
is where Airflow delivers SIGTERM (a timeout, a task marked failed, a worker shutting down)
and calls ``on_kill``, which calls :meth:`Extraction.stop`; waiting there, it holds no lock
the handler could need, and it raises at once instead of waiting for a request in flight:

* no further Conpeek request is sent (paging's cancel event: retries and waits end);
* the Conpeek client's sessions are closed;
* an upload in progress is abandoned (an S3 multipart upload aborted);
* the temporary directory is removed.

A request already on the wire finishes (or times out) on its own thread; its answer is
discarded. Without a stop, the worker's own errors are raised in the main thread as they are.

Example::

    extraction = Extraction(client, dest, stamp, filters, compression="gzip", ...)
    result = extraction.run()  # or, from another thread or a signal handler: .stop()
"""

from __future__ import annotations

import threading
import time
from typing import Any, Protocol

from airflow_provider_conpeek.client import ConpeekClient
from airflow_provider_conpeek.client.limiter import ConcurrencyLimit
from airflow_provider_conpeek.client.paging import Page, iter_pages
from airflow_provider_conpeek.destination import CONTENT_TYPES, ObjectStamp
from airflow_provider_conpeek.filters import encode_filter
from airflow_provider_conpeek.jsonlines import JsonLinesFile
from airflow_provider_conpeek.objectwrite import ExtractCancelled, ObjectDestination
from airflow_provider_conpeek.tempfiles import ExtractDir

WAIT_POLL_SECONDS = 0.2
"""How often the main thread looks up from waiting, to notice a stop."""


class Logger(Protocol):
    """What :class:`Extraction` logs progress to (the operator's ``self.log``)."""

    def info(self, msg: Any, /, *args: Any, **kwargs: Any) -> Any:
        """Log at INFO."""


KILLED = (
    "The task was killed (SIGTERM, a timeout or a task marked failed): paging stopped, the "
    "temporary file was removed and no object was written to {uri}."
)


class Extraction:
    """Page ``filters`` into a temporary file with ``client``, then write it to ``dest``.

    :param client: the Conpeek client (closed when the extraction ends).
    :param dest: the destination, already checked (:meth:`ObjectDestination.prepare`).
    :param stamp: the object's metadata stamp.
    :param filters: every filter of the request, window first (validated).
    :param page_size: records per request.
    :param slots: the limit on requests in flight (pinned or adaptive, see
        :func:`~airflow_provider_conpeek.client.limiter.make_limit`).
    :param compression: ``"gzip"`` or ``"none"`` (JSON Lines).
    :param file_format: ``"jsonl"`` or ``"parquet"``: then the records are written as plain
        JSON Lines while their fields are observed, and converted once paging ends
        (:mod:`~airflow_provider_conpeek.parquet`).
    :param parquet_timestamps: Parquet: date-time strings as ``timestamp`` columns.
    :param log: where progress goes (the operator's logger).
    :param progress_every: seconds between progress lines.

    Example::

        result = Extraction(client, dest, stamp, filters, page_size=100,
                            slots=make_limit(None, 16), compression="gzip", log=log).run()
        result["records"], result["pages"], result["bytes"]
    """

    def __init__(
        self,
        client: ConpeekClient,
        dest: ObjectDestination,
        stamp: ObjectStamp,
        filters: list[Any],
        *,
        page_size: int,
        slots: ConcurrencyLimit,
        compression: str,
        log: Logger,
        progress_every: float = 10.0,
        file_format: str = "jsonl",
        parquet_timestamps: bool = False,
    ) -> None:
        self.client, self.dest, self.stamp, self.filters = client, dest, stamp, filters
        self.page_size, self.slots, self.compression = page_size, slots, compression
        self.file_format, self.parquet_timestamps = file_format, parquet_timestamps
        self.log, self.progress_every = log, progress_every
        self.stopped = dest.cancel  # set by stop(): the upload checks it between parts
        self._paging_cancel = threading.Event()  # also set when paging ends
        self._tmp: ExtractDir | None = None
        self._result: dict[str, Any] | None = None
        self._error: BaseException | None = None

    def run(self) -> dict[str, Any]:
        """Extract and upload; returns ``records``, ``bytes``, ``pages`` and the object's
        version (``etag``, or what the store calls it: ``generation`` on GCS).

        :raises ExtractCancelled: when :meth:`stop` was called.
        """
        if self.stopped.is_set():  # killed before it started
            raise ExtractCancelled(KILLED.format(uri=self.dest.uri))
        self._tmp = ExtractDir()
        worker = threading.Thread(target=self._work, name="conpeek-extract", daemon=True)
        try:
            worker.start()
            while worker.is_alive():
                worker.join(WAIT_POLL_SECONDS)
                if self.stopped.is_set():
                    raise ExtractCancelled(KILLED.format(uri=self.dest.uri))
        except BaseException:
            self.stop()  # a signal's exception (Airflow 2's SIGTERM, a timeout) lands here
            raise
        if self._error is not None:
            raise self._error
        if self.stopped.is_set() or self._result is None:
            raise ExtractCancelled(KILLED.format(uri=self.dest.uri))
        return self._result

    def stop(self) -> None:
        """Stop everything now, from any thread or a signal handler. Idempotent."""
        self.stopped.set()
        self._paging_cancel.set()
        if self._tmp is not None:  # local clean-up first: Airflow 3 sends SIGKILL after 5 s
            self._tmp.remove()
        self.client.close()
        self.dest.abort()  # an S3 call, last

    # -- the worker thread -------------------------------------------------------------------

    def _work(self) -> None:
        try:
            self._result = self._extract()
        except BaseException as exc:
            self._error = exc
        finally:
            self.client.close()
            if self._tmp is not None:
                self._tmp.remove()

    def _extract(self) -> dict[str, Any]:
        assert self._tmp is not None
        started = last_report = time.monotonic()
        pages = 0
        encoded = encode_filter(self.filters)

        def fetch(offset: int, limit: int) -> Page:
            return self.client.fetch_page(
                offset=offset,
                limit=limit,
                encoded_filter=encoded,
                cancel=self._paging_cancel,
                slots=self.slots,
            )

        observer = None
        if self.file_format == "parquet":
            from airflow_provider_conpeek.parquet import SchemaObserver

            observer = SchemaObserver()
        with JsonLinesFile(self._tmp.path, compression=self.compression) as out:
            all_pages = iter_pages(
                fetch,
                page_size=self.page_size,
                concurrency=self.slots,
                max_pages=self.client.settings.max_pages,
                cancel=self._paging_cancel,
            )
            try:
                for page in all_pages:
                    if self.stopped.is_set():
                        raise ExtractCancelled(KILLED.format(uri=self.dest.uri))
                    out.write_page(page)
                    if observer is not None:
                        for record in page:
                            observer.observe(record)
                    pages += 1
                    now = time.monotonic()
                    if now - last_report >= self.progress_every:
                        last_report = now
                        self.report("Progress", pages, out.records, now - started)
            finally:  # stops the requests in flight, whatever ended the loop
                close = getattr(all_pages, "close", None)
                if close is not None:
                    close()
        self.client.close()  # before the upload: nothing of Conpeek's is held meanwhile
        path, content_type = out.path, CONTENT_TYPES[self.compression]
        if observer is not None:
            from airflow_provider_conpeek.parquet import jsonl_to_parquet

            path, content_type = self._tmp.path / "records.parquet", CONTENT_TYPES["parquet"]
            columns = observer.columns(typed_timestamps=self.parquet_timestamps)
            jsonl_to_parquet(out.path, path, columns, cancel=self.stopped)
            if self.stopped.is_set():
                raise ExtractCancelled(KILLED.format(uri=self.dest.uri))
            out.path.unlink()  # only the Parquet file stays on disk while it uploads
        size = path.stat().st_size
        version = self.dest.write(path, self.stamp, records=out.records, content_type=content_type)
        elapsed = time.monotonic() - started
        self.report(f"Wrote {self.dest.uri} ({size} bytes):", pages, out.records, elapsed)
        self.log.info("Requests: %d tries; %s", self.slots.stats.tries, self.slots.describe())
        return {
            "records": out.records,
            "bytes": size,
            "pages": pages,
            self.dest.version_name: version,
        }

    def report(self, what: str, pages: int, records: int, elapsed: float) -> None:
        """One progress line: pages, records, seconds and rate."""
        rate = records / elapsed if elapsed > 0 else 0.0
        self.log.info(
            "%s %d pages, %d records in %.1f s (%.0f records/s)",
            what,
            pages,
            records,
            elapsed,
            rate,
        )
