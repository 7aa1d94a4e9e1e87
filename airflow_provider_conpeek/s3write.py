"""The S3 side of an extract, on a boto3 client: check first, then one conditional write.

:class:`S3Destination` makes the calls, in this order:

1. ``HeadBucket`` before any Conpeek request: the bucket exists and the credentials reach it.
2. ``HeadObject``: what the key holds now, and :func:`~.destination.decide_write` on it.
3. After paging, one conditional write of the whole file: ``PutObject``, or above the
   multipart threshold ``CreateMultipartUpload``/``UploadPart``.../``CompleteMultipartUpload``,
   with ``If-None-Match: *`` (nothing may have appeared meanwhile) or ``If-Match: <etag>``
   (the object decided on is still the one there). When the precondition fails, the key is
   looked at again and decided again, so a concurrent writer is never silently overwritten.

The order, the re-decision and the recognition of a resent write live in
:class:`~.objectwrite.ObjectDestination`; this module holds the S3 calls. A multipart upload
that fails or is cancelled is aborted (:meth:`S3Destination.abort` is safe
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
from pathlib import Path
from typing import Any

from airflow_provider_conpeek.destination import S3, Existing, WriteCondition
from airflow_provider_conpeek.exceptions import ConpeekConfigError
from airflow_provider_conpeek.objectwrite import (
    FilePart,
    ObjectDestination,
    Refusal,
    capital,
)

__all__ = ["S3Destination", "put_args", "s3_hook"]

log = logging.getLogger(__name__)

MAX_PARTS = 10_000
PRECONDITION_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict", "412"})


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


class S3Destination(ObjectDestination):
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
        super().__init__(f"s3://{bucket}/{key}", names=S3, credentials=credentials, cancel=cancel)
        self.client, self.bucket, self.key = client, bucket, key
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size
        self._lock = threading.Lock()
        self._upload_id: str | None = None

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
                    f"{capital(self.credentials)} may not use bucket "
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
                    f"{capital(self.credentials)} may not read {self.uri} (HTTP 403 on "
                    "HeadObject). Grant s3:GetObject on the keys and s3:ListBucket on the "
                    "bucket."
                ) from None
            raise
        return Existing.from_metadata(
            head["ETag"], head.get("Metadata", {}), head.get("ContentLength")
        )

    # -- the write ---------------------------------------------------------------------------

    def _refusal(self, exc: BaseException) -> Refusal | None:
        status, code = _status(exc)
        if code in PRECONDITION_CODES or status == 412:
            return "precondition"
        if status == 404 or code in ("404", "NoSuchKey"):
            return "gone"
        if status == 501 and self.condition.guarded:
            raise ConpeekConfigError(
                f"The S3 server of {self.uri} does not support conditional writes ({code}). "
                "Pass replace='always' to write without a condition (nothing then guards "
                "against concurrent writers)."
            ) from exc
        return None

    def _upload(
        self, path: Path, metadata: dict[str, str], content_type: str, condition: WriteCondition
    ) -> str:
        self.check_cancel()
        args = {"ContentType": content_type, "Metadata": metadata}
        size = path.stat().st_size
        if size < self.multipart_threshold:
            with path.open("rb") as body:
                response = self.client.put_object(
                    Bucket=self.bucket, Key=self.key, Body=body, **args, **put_args(condition)
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
                    self.check_cancel()
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
            self.check_cancel()
            if condition.guarded:
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
                **put_args(condition),
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


def put_args(condition: WriteCondition) -> dict[str, str]:
    """The condition as keyword arguments of ``put_object`` / ``complete_multipart_upload``."""
    if condition.if_match is not None:
        return {"IfMatch": condition.if_match}
    return {"IfNoneMatch": "*"} if condition.if_none_match else {}


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
