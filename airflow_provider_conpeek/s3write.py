"""The S3 side of an extract, on a boto3 client: check first, then one conditional write.

:class:`S3Destination` makes the calls, in this order:

1. ``HeadBucket`` before any Conpeek request: the bucket exists and the credentials reach it.
2. ``HeadObject``: what the key holds now, and :func:`~.destination.decide_write` on it.
3. After paging, one conditional write of the whole file: ``PutObject``, or above the
   multipart threshold ``CreateMultipartUpload``/``UploadPart``.../``CompleteMultipartUpload``,
   with ``If-None-Match: *`` (nothing may have appeared meanwhile) or ``If-Match: <etag>``
   (the object decided on is still the one there). When the precondition fails, the key is
   looked at again and decided again, so a concurrent writer is never silently overwritten.

A multipart upload that fails or is cancelled is aborted (:meth:`S3Destination.abort` is safe
to call from another thread, e.g. ``on_kill``). Only a process killed outright (SIGKILL)
leaves one behind: an ``AbortIncompleteMultipartUpload`` lifecycle rule removes it.

Example::

    dest = S3Destination(s3_hook.get_conn(), "contact-centre", key)
    dest.check_bucket()
    dest.prepare(stamp, replace=True)       # raises if the key holds another window
    ...                                    # page into path
    etag = dest.write(path, stamp, records=n, content_type="application/gzip")
"""

from __future__ import annotations

import logging
import math
import threading
import uuid
from pathlib import Path
from typing import Any, BinaryIO

from airflow_provider_conpeek.destination import (
    META,
    Existing,
    ObjectStamp,
    Replace,
    WriteCondition,
    decide_write,
)
from airflow_provider_conpeek.exceptions import ConpeekConfigError, ConpeekError

log = logging.getLogger(__name__)

MAX_PARTS = 10_000
CONFLICT_RETRIES = 3
PRECONDITION_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict", "412"})
WRITE_ID = "conpeek-write-id"
"""Object metadata naming the extract that wrote it (a random id per extract)."""


class ExtractCancelled(ConpeekError):
    """The extract was stopped (the task was killed) before its object was written."""


class FilePart:
    """Part of an open file, read as a file by ``UploadPart``: the part is streamed from
    disk, never held in memory (an 8 MiB part would be, as ``bytes``, and again by the
    checksum), so memory stays flat whatever the object's size.

    :param file: the whole file, opened for binary reading.
    :param start: where the part begins.
    :param size: the most bytes the part holds.
    :param total: the file's size (the last part is shorter).

    Example::

        with open(path, "rb") as f:
            client.upload_part(..., PartNumber=2, Body=FilePart(f, 8 << 20, 8 << 20, total))
    """

    def __init__(self, file: BinaryIO, start: int, size: int, total: int) -> None:
        self._file, self._start = file, start
        self._size = max(0, min(size, total - start))
        self._pos = 0

    def __len__(self) -> int:
        return self._size

    def read(self, n: int | None = -1) -> bytes:
        """Up to ``n`` bytes from the current position (all that is left by default)."""
        left = self._size - self._pos
        if n is None or n < 0 or n > left:
            n = left
        self._file.seek(self._start + self._pos)
        data = self._file.read(n)
        self._pos += len(data)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        """Move within the part (botocore rewinds it for checksums and retries)."""
        base = (0, self._pos, self._size)[whence]
        self._pos = min(max(0, base + offset), self._size)
        return self._pos

    def tell(self) -> int:
        """The position within the part."""
        return self._pos


def s3_hook(aws_conn_id: str | None, caller: str) -> Any:
    """``S3Hook(aws_conn_id=aws_conn_id)`` that knows who calls it.

    The Amazon provider names the calling operator in boto3's User-Agent by walking the
    call stack with ``inspect.stack()``, which reads the source file of every frame: about
    0.1 s when the client is made (``make bench``, section 3), more in a task runner's deep
    stack. The caller is known here, so it is given instead of searched for. (Without that
    private method, in some other provider version, the hook just searches as before.)

    Example::

        s3 = s3_hook("aws_default", "VoiceCampaignSummaryToS3Operator")
        client = s3.get_conn()
    """
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    class KnownCallerS3Hook(S3Hook):  # type: ignore[misc]
        def _get_caller(self, target_function_name: str = "execute") -> str:
            return caller

    return KnownCallerS3Hook(aws_conn_id=aws_conn_id)


class S3Destination:
    """One key of one bucket, through a boto3 S3 client (``S3Hook.get_conn()``).

    :param client: a boto3 S3 client.
    :param bucket: the bucket (checked by :func:`~.destination.check_destination`).
    :param key: the key.
    :param credentials: how messages name the credentials, e.g. "the AWS connection
        'aws_default'".
    :param multipart_threshold: files this large or larger are uploaded in parts.
    :param part_size: bytes per part (raised when the file would need over 10,000 parts).
    :param cancel: when set, no further part is sent and the upload is aborted.
    """

    def __init__(
        self,
        client: Any,
        bucket: str,
        key: str,
        *,
        credentials: str = "the AWS connection 'aws_default'",
        multipart_threshold: int = 8 * 1024 * 1024,
        part_size: int = 8 * 1024 * 1024,
        cancel: threading.Event | None = None,
    ) -> None:
        self.client, self.bucket, self.key = client, bucket, key
        self.uri = f"s3://{bucket}/{key}"
        self.credentials = credentials
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size
        self.cancel = cancel or threading.Event()
        self.replace: Replace = True
        self.condition = WriteCondition(if_none_match=True)
        self._lock = threading.Lock()
        self._upload_id: str | None = None
        # Marks this extract's own object: a write whose answer was lost, retried by botocore
        # and refused by its own precondition is recognised as done (see :meth:`write`).
        self.write_id = uuid.uuid4().hex

    # -- before paging -----------------------------------------------------------------------

    def check_bucket(self) -> None:
        """``HeadBucket``: a missing bucket or no access fails here, naming what to fix."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as exc:
            status, code = _status(exc)
            where = f"at {self.client.meta.endpoint_url}"
            if status == 404 or code == "NoSuchBucket":
                raise ConpeekConfigError(
                    f"The bucket {self.bucket!r} does not exist {where} (as seen with "
                    f"{self.credentials}). Create it, or fix s3_bucket or the connection's "
                    "region/endpoint."
                ) from None
            if status in (401, 403):
                raise ConpeekConfigError(
                    f"{_capital(self.credentials)} may not use bucket "
                    f"{self.bucket!r} {where} (HTTP {status} on HeadBucket). Grant "
                    "s3:ListBucket on the bucket and s3:GetObject, s3:PutObject and "
                    "s3:AbortMultipartUpload on its keys, or fix the credentials."
                ) from None
            if type(exc).__name__ in ("NoCredentialsError", "PartialCredentialsError"):
                raise ConpeekConfigError(
                    f"No AWS credentials were found for {self.credentials}: {exc}. Set them "
                    "in the connection, or in the environment."
                ) from None
            raise

    def head(self) -> Existing | None:
        """What the key holds now (``HeadObject``), or ``None``."""
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self.key)
        except Exception as exc:
            status, code = _status(exc)
            if status == 404 or code in ("404", "NoSuchKey", "NotFound"):
                return None
            if status == 403:
                raise ConpeekConfigError(
                    f"{_capital(self.credentials)} may not read {self.uri} (HTTP 403 on "
                    "HeadObject). Grant s3:GetObject on the keys and s3:ListBucket on the "
                    "bucket."
                ) from None
            raise
        metadata = {k.lower(): v for k, v in head.get("Metadata", {}).items()}
        return Existing(
            etag=head["ETag"],
            stamp=ObjectStamp.from_metadata(metadata),
            records=metadata.get(f"{META}records"),
            size=head.get("ContentLength"),
        )

    def prepare(self, stamp: ObjectStamp, *, replace: Replace) -> Existing | None:
        """Decide, from what the key holds now, whether and how this extract may write it.

        :raises ConpeekConfigError: if it may not (before any Conpeek request).
        """
        self.replace = replace
        existing = self.head()
        self.condition = decide_write(existing, stamp, replace=replace, uri=self.uri)
        if existing is not None and existing.stamp is not None and existing.stamp != stamp:
            log.warning(
                "%s holds this window's extract with other filters (%s); this run "
                "replaces it with filters %s.",
                self.uri,
                existing.stamp.filters,
                stamp.filters,
            )
        return existing

    # -- the write ---------------------------------------------------------------------------

    def write(
        self, path: Path, stamp: ObjectStamp, *, records: int, extra_args: dict[str, str]
    ) -> str:
        """Upload ``path`` under the condition :meth:`prepare` chose; return the ETag.

        On a failed precondition the key is decided again (:meth:`prepare`): the same
        window's object is replaced, anything else raises.

        :param extra_args: ``ContentType`` and the like, for ``PutObject`` and
            ``CreateMultipartUpload``.
        """
        metadata = {**stamp.metadata(records=records), WRITE_ID: self.write_id}
        args = {**extra_args, "Metadata": metadata}
        for attempt in range(1, CONFLICT_RETRIES + 1):
            try:
                return self._upload(path, args, self.condition)
            except Exception as exc:
                status, code = _status(exc)
                gone = self.condition.if_match is not None and (
                    status == 404 or code in ("404", "NoSuchKey")
                )  # the object the write was to replace was deleted meanwhile
                if code not in PRECONDITION_CODES and status != 412 and not gone:
                    if status == 501 and self.condition.put_args():
                        raise ConpeekConfigError(
                            f"The S3 server of {self.uri} does not support conditional "
                            f"writes ({code}). Pass replace='always' to write without a "
                            "condition (nothing then guards against concurrent writers)."
                        ) from exc
                    raise
                own = self._own_etag()
                if own is not None:  # the refused write was a resend of one that landed
                    return own
                if attempt == CONFLICT_RETRIES:
                    raise
                log.warning(
                    "%s changed while this run paged (%s); looking at it again.", self.uri, code
                )
                self.prepare(stamp, replace=self.replace)
        raise AssertionError("unreachable")  # pragma: no cover

    def _own_etag(self) -> str | None:
        """The ETag of the key if it holds this extract's own write, else ``None``."""
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self.key)
        except Exception:
            return None
        metadata = {k.lower(): v for k, v in head.get("Metadata", {}).items()}
        return str(head["ETag"]) if metadata.get(WRITE_ID) == self.write_id else None

    def _upload(self, path: Path, args: dict[str, Any], condition: WriteCondition) -> str:
        self._check_cancel()
        size = path.stat().st_size
        if size < self.multipart_threshold:
            with path.open("rb") as body:
                response = self.client.put_object(
                    Bucket=self.bucket, Key=self.key, Body=body, **args, **condition.put_args()
                )
            return str(response["ETag"])
        return self._multipart(path, size, args, condition)

    def _multipart(
        self, path: Path, size: int, args: dict[str, Any], condition: WriteCondition
    ) -> str:
        part_size = max(self.part_size, math.ceil(size / MAX_PARTS))
        checksum = _default_checksum(self.client)
        created = self.client.create_multipart_upload(
            Bucket=self.bucket, Key=self.key, **args, **checksum
        )
        with self._lock:
            self._upload_id = upload_id = created["UploadId"]
        try:
            parts = []
            with path.open("rb") as source:
                for number in range(1, math.ceil(size / part_size) + 1):
                    self._check_cancel()
                    answer = self.client.upload_part(
                        Bucket=self.bucket,
                        Key=self.key,
                        UploadId=upload_id,
                        PartNumber=number,
                        Body=FilePart(source, (number - 1) * part_size, part_size, size),
                        **checksum,
                    )
                    part = {"ETag": answer["ETag"], "PartNumber": number}
                    if checksum and "ChecksumCRC32" in answer:
                        part["ChecksumCRC32"] = answer["ChecksumCRC32"]
                    parts.append(part)
            self._check_cancel()
            if condition.if_match is not None or condition.if_none_match:
                # moto (and perhaps other stores) ignores If-Match on this call; AWS does not.
                # Looking once more narrows the race where a header is not honoured.
                now = self.head()
                expected = condition.if_match  # None: the key must still be empty
                if (now.etag if now is not None else None) != expected:
                    raise _precondition_failed()
            done = self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
                **condition.put_args(),
            )
        except BaseException:
            self.abort()
            raise
        with self._lock:
            self._upload_id = None
        return str(done["ETag"])

    def abort(self) -> None:
        """Abort the multipart upload in progress, if any. Never raises; idempotent."""
        with self._lock:
            upload_id, self._upload_id = self._upload_id, None
        if upload_id is None:
            return
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=upload_id)
        except Exception as exc:  # the lifecycle rule is the backstop
            log.warning("Could not abort the multipart upload of %s: %s", self.uri, exc)
        else:
            log.info("Aborted the incomplete multipart upload of %s.", self.uri)

    def _check_cancel(self) -> None:
        if self.cancel.is_set():
            raise ExtractCancelled(f"Stopped before {self.uri} was written: the task was killed.")


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _status(exc: BaseException) -> tuple[int | None, str]:
    """HTTP status and error code of a botocore ``ClientError`` (``(None, "")`` otherwise)."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None, ""
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return status, str(response.get("Error", {}).get("Code", ""))


def _precondition_failed() -> Exception:
    from botocore.exceptions import ClientError

    error: Exception = ClientError(
        {"Error": {"Code": "PreconditionFailed", "Message": "The object changed meanwhile"}},
        "CompleteMultipartUpload",
    )
    return error


def _default_checksum(client: Any) -> dict[str, str]:
    """CRC32 part checksums when botocore sends checksums by default, as s3transfer does."""
    setting = getattr(client.meta.config, "request_checksum_calculation", None)
    return {"ChecksumAlgorithm": "CRC32"} if setting == "when_supported" else {}
