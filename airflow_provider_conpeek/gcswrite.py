"""The Google Cloud Storage side of an extract, on a ``google.cloud.storage.Client``: check
first, then one conditional write.

:class:`GCSDestination` makes the calls, in this order:

1. ``buckets.get`` before any Conpeek request: the bucket exists and the credentials reach it.
2. ``objects.get``: what the object holds now (its generation and custom metadata), and
   :func:`~.destination.decide_write` on it.
3. After paging, one conditional write of the whole file, with ``ifGenerationMatch=0``
   (nothing may have appeared meanwhile) or ``ifGenerationMatch=<generation>`` (the object
   decided on is still the one there): a multipart upload (one request) below
   :attr:`~GCSDestination.chunk_size` (and 8 MiB), else a resumable upload sent chunk by
   chunk from the file. The object exists only once the last chunk is sent; the cancel
   event is checked before every chunk, and the object is looked at once more before the
   last one (GCS may evaluate the precondition when the session starts). A failed or
   cancelled resumable upload is cancelled (``DELETE`` on the session URL); one left
   behind by a process killed outright is never visible, and GCS expires it. When the
   precondition fails (HTTP 412), the object is looked at again and decided again, so a
   concurrent writer is never silently overwritten.

The order, the re-decision and the recognition of a resent write live in
:class:`~.objectwrite.ObjectDestination`; this module holds the GCS calls. The Google
provider and client libraries are imported only inside functions: they are the optional
extra ``airflow-provider-conpeek[google]``.

Example::

    client, credentials = gcs_client("google_cloud_default", None, "ToGCSOperator")
    dest = GCSDestination(client, "contact-centre", key, credentials=credentials)
    dest.check_bucket()
    dest.prepare(stamp, replace=True)       # raises if the object holds another window
    ...                                    # page into path
    generation = dest.write(path, stamp, records=n, content_type="application/gzip")
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from airflow_provider_conpeek.destination import GCS, Existing, WriteCondition
from airflow_provider_conpeek.exceptions import ConpeekConfigError
from airflow_provider_conpeek.objectwrite import (
    ExtractCancelled,
    ObjectDestination,
    Refusal,
    capital,
)

__all__ = ["GCSDestination", "gcs_client", "generation_args"]

log = logging.getLogger(__name__)

CHUNK_MULTIPLE = 256 * 1024
"""A resumable upload's chunks are multiples of 256 KiB (all but the last)."""
MULTIPART_MAX = 8 * 1024 * 1024
"""The largest file sent in one multipart request (python-storage's own limit)."""
PERMISSIONS = (
    "storage.buckets.get on the bucket and storage.objects.get, storage.objects.create "
    "and storage.objects.delete (to replace an object) on its objects"
)


def gcs_client(
    gcp_conn_id: str | None,
    impersonation_chain: str | Sequence[str] | None,
    caller: str,
) -> tuple[Any, str]:
    """The ``google.cloud.storage.Client`` of the Airflow connection ``gcp_conn_id`` (through
    ``GCSHook``), and how messages name its credentials.

    ``None`` means Google's default credentials (Application Default Credentials) on
    purpose: no Airflow connection is looked up. The Google provider is imported here, not at
    module import: it is the optional extra ``airflow-provider-conpeek[google]``.

    :param gcp_conn_id: the Airflow connection (conn_type ``google_cloud_platform``), or
        ``None`` for the default credentials.
    :param impersonation_chain: a service account to impersonate, or a chain of them.
    :param caller: the operator, named in messages (``VoiceCampaignSummaryToGCSOperator``).
    :raises ConpeekConfigError: when the Google provider is not installed, the connection
        does not exist or no credentials are found.

    Example::

        client, credentials = gcs_client("google_cloud_default", None, "MyOperator")
        GCSDestination(client, "contact-centre", key, credentials=credentials)
    """
    if gcp_conn_id is not None and (not isinstance(gcp_conn_id, str) or not gcp_conn_id.strip()):
        raise ConpeekConfigError(
            "gcp_conn_id must be the id of a Google Cloud connection, or None for Google's "
            f"default credentials, got {gcp_conn_id!r}."
        )
    try:
        from airflow.providers.google.cloud.hooks.gcs import GCSHook
    except ImportError as exc:
        raise ConpeekConfigError(
            f"{caller} writes to Google Cloud Storage with the Google provider, which is not "
            f"installed ({exc}). Install it with: pip install 'airflow-provider-conpeek[google]'."
        ) from None
    if gcp_conn_id is None:
        return _default_client(impersonation_chain)
    from airflow.providers.common.compat.sdk import AirflowNotFoundException

    credentials = f"the Google Cloud connection {gcp_conn_id!r}"
    try:
        hook = GCSHook(gcp_conn_id=gcp_conn_id, impersonation_chain=impersonation_chain)
    except AirflowNotFoundException:
        raise ConpeekConfigError(
            f"The Google Cloud connection {gcp_conn_id!r} (gcp_conn_id) does not exist. Create "
            "it (conn_type 'google_cloud_platform', with a key file, key JSON or none for the "
            "default credentials), fix the name, or pass gcp_conn_id=None to use Google's "
            "default credentials on purpose."
        ) from None
    try:
        client = hook.get_conn()
    except Exception as exc:
        raise ConpeekConfigError(
            f"{capital(credentials)} (gcp_conn_id) gives no Cloud Storage client: "
            f"{type(exc).__name__}: {_first_line(exc)} Fix its key file, key JSON, project or "
            "impersonation chain."
        ) from None
    return client, credentials


def _default_client(impersonation_chain: str | Sequence[str] | None) -> tuple[Any, str]:
    """A client on Google's default credentials (``gcp_conn_id=None``)."""
    credentials = "Google's default credentials (gcp_conn_id=None)"
    if impersonation_chain:
        raise ConpeekConfigError(
            "impersonation_chain needs a Google Cloud connection: pass gcp_conn_id too, or "
            "leave impersonation_chain unset with gcp_conn_id=None."
        )
    from google.cloud import storage

    try:
        return storage.Client(), credentials
    except Exception as exc:
        raise ConpeekConfigError(
            f"No Google credentials were found for {credentials}: {type(exc).__name__}: "
            f"{_first_line(exc)} Set GOOGLE_APPLICATION_CREDENTIALS, or pass a gcp_conn_id."
        ) from None


class GCSDestination(ObjectDestination):
    """One object of one bucket, through a ``google.cloud.storage.Client``
    (``GCSHook.get_conn()``, or :func:`gcs_client`).

    :param client: a ``google.cloud.storage.Client``.
    :param bucket: the bucket (checked by :func:`~.destination.check_destination`).
    :param key: the object name.
    :param credentials: how messages name the credentials, e.g. "the Google Cloud connection
        'google_cloud_default'".
    :param chunk_size: bytes per chunk of a resumable upload (a multiple of 256 KiB); smaller
        files (and at most 8 MiB) are sent in one multipart request.
    :param cancel: when set, no further chunk is sent and the upload is cancelled.

    Example::

        dest = GCSDestination(client, "contact-centre", "conpeek/20260101T000000.jsonl.gz")
        dest.check_bucket()
    """

    version_name = "generation"

    def __init__(
        self,
        client: Any,
        bucket: str,
        key: str,
        *,
        credentials: str = "the Google Cloud connection 'google_cloud_default'",
        chunk_size: int = 8 * 1024 * 1024,
        cancel: threading.Event | None = None,
    ) -> None:
        super().__init__(f"gs://{bucket}/{key}", names=GCS, credentials=credentials, cancel=cancel)
        if chunk_size <= 0 or chunk_size % CHUNK_MULTIPLE:
            raise ValueError(f"chunk_size must be a multiple of 256 KiB, got {chunk_size}.")
        self.client, self.bucket, self.key = client, bucket, key
        self.chunk_size = chunk_size
        self._lock = threading.Lock()
        self._session: tuple[Any, Any] | None = None  # (ResumableUpload, transport)

    # -- before paging -----------------------------------------------------------------------

    def check_bucket(self) -> None:
        """``buckets.get``: a missing bucket or no access fails here, naming what to fix."""
        try:
            self.client.bucket(self.bucket).reload()
        except Exception as exc:
            status = _status(exc)
            where = f"at {getattr(self.client, 'api_endpoint', 'Google Cloud Storage')}"
            if status == 404:
                raise ConpeekConfigError(
                    f"The bucket {self.bucket!r} does not exist {where} (as seen with "
                    f"{self.credentials}). Create it, or fix bucket_name (or the connection's "
                    "project)."
                ) from None
            if status in (401, 403):
                raise ConpeekConfigError(
                    f"{capital(self.credentials)} may not use bucket {self.bucket!r} {where} "
                    f"(HTTP {status} on buckets.get). Grant {PERMISSIONS} (e.g. the role "
                    "roles/storage.objectAdmin, plus storage.buckets.get), or fix the "
                    "credentials."
                ) from None
            if type(exc).__module__ == "google.auth.exceptions":  # no usable credentials
                raise ConpeekConfigError(
                    f"No usable Google credentials for {self.credentials}: "
                    f"{type(exc).__name__}: {_first_line(exc)} Fix the connection's key, or "
                    "the environment's default credentials."
                ) from None
            raise

    def head(self) -> Existing | None:
        """What the object holds now (``objects.get``), or ``None``."""
        try:
            blob = self.client.bucket(self.bucket).get_blob(self.key)
        except Exception as exc:
            status = _status(exc)
            if status == 404:
                return None
            if status in (401, 403):
                raise ConpeekConfigError(
                    f"{capital(self.credentials)} may not read {self.uri} (HTTP {status} on "
                    f"objects.get). Grant {PERMISSIONS}."
                ) from None
            raise
        if blob is None:
            return None
        return Existing.from_metadata(str(blob.generation), blob.metadata or {}, blob.size)

    # -- the write ---------------------------------------------------------------------------

    def _refusal(self, exc: BaseException) -> Refusal | None:
        status = _status(exc)
        if status == 412:
            return "precondition"
        if status == 404 and self.condition.if_match is not None:
            return "gone"
        return None

    def _upload(
        self, path: Path, metadata: dict[str, str], content_type: str, condition: WriteCondition
    ) -> str:
        self.check_cancel()
        blob = self.client.bucket(self.bucket).blob(self.key)
        blob.metadata = metadata
        size = path.stat().st_size
        if size < min(self.chunk_size, MULTIPART_MAX):
            with path.open("rb") as body:
                blob.upload_from_file(
                    body, size=size, content_type=content_type, **generation_args(condition)
                )
            return str(blob.generation)
        return self._resumable(blob, path, size, content_type, condition)

    def _resumable(
        self, blob: Any, path: Path, size: int, content_type: str, condition: WriteCondition
    ) -> str:
        """A resumable upload, chunk by chunk from the file; the last chunk finalises it."""
        from google.cloud.storage.retry import DEFAULT_RETRY

        args = generation_args(condition)
        # python-storage retries uploads only under a generation precondition (a resend is
        # then refused, never applied twice): the same policy as its own upload calls.
        retry = DEFAULT_RETRY if condition.guarded else None
        try:
            with path.open("rb") as source:
                with _api_errors():
                    # What BlobWriter (blob.open("wb")) calls. BlobWriter itself will not
                    # do: its close() drops the final answer (the generation), and its
                    # terminate() sends DELETE to the start URL, not to the session's.
                    session = blob._initiate_resumable_upload(
                        self.client,
                        source,
                        content_type,
                        size,
                        chunk_size=self.chunk_size,
                        retry=retry,
                        **args,
                    )
                with self._lock:
                    self._session = session
                upload, transport = session
                response = None
                while not upload.finished:
                    self.check_cancel()
                    if upload.bytes_uploaded + self.chunk_size >= size and condition.guarded:
                        # The last chunk creates the object. GCS may have evaluated the
                        # precondition when the session started: look once more.
                        now = self.head()
                        if (now.etag if now is not None else None) != condition.if_match:
                            raise _api().PreconditionFailed(f"{self.uri} changed meanwhile")
                    with _api_errors():
                        response = upload.transmit_next_chunk(transport)
        except BaseException as exc:
            self.abort()
            if self.cancel.is_set() and not isinstance(exc, ExtractCancelled):
                raise ExtractCancelled(
                    f"Stopped before {self.uri} was written: the task was killed."
                ) from exc
            raise
        with self._lock:
            self._session = None
        generation = response.json().get("generation") if response is not None else None
        return str(generation)

    def abort(self) -> None:
        """Cancel the resumable upload in progress, if any. Never raises; idempotent.

        Safe from another thread (``on_kill``): the upload's next request then fails, and
        the object is never finalised.
        """
        with self._lock:
            session, self._session = self._session, None
        if session is None:
            return
        upload, transport = session
        try:
            url = upload.resumable_url
            if url:
                transport.delete(url, timeout=30)
        except Exception as exc:  # GCS expires an abandoned session anyway
            log.warning("Could not cancel the resumable upload of %s: %s", self.uri, exc)
        else:
            log.info("Cancelled the unfinished resumable upload of %s.", self.uri)


def generation_args(condition: WriteCondition) -> dict[str, int]:
    """The condition as the ``if_generation_match`` keyword of python-storage's uploads."""
    if condition.if_match is not None:
        return {"if_generation_match": int(condition.if_match)}
    return {"if_generation_match": 0} if condition.if_none_match else {}


@contextlib.contextmanager
def _api_errors() -> Iterator[None]:
    """Turn the media library's ``InvalidResponse`` into the ``google.api_core`` exception of
    its HTTP status (``PreconditionFailed``, ``NotFound``...), as python-storage's own upload
    calls do."""
    from google.cloud.storage.exceptions import InvalidResponse

    try:
        yield
    except InvalidResponse as exc:
        raise _api().from_http_response(exc.response) from exc


def _api() -> Any:
    """``google.api_core.exceptions`` (untyped; imported when needed)."""
    from google.api_core import exceptions

    return exceptions


def _status(exc: BaseException) -> int | None:
    """The HTTP status of a Google API error (``google.api_core`` or the media library)."""
    code = getattr(exc, "code", None)
    if isinstance(code, int):
        return code
    status = getattr(getattr(exc, "response", None), "status_code", None)
    return status if isinstance(status, int) else None


def _first_line(exc: BaseException) -> str:
    """The first line of an error's message, ending in a full stop (for our messages)."""
    text = (str(exc).strip().splitlines() or [""])[0][:300]
    return text if text.endswith(".") else text + "."
