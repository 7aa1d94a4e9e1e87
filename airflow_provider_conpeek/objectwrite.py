"""What every object store destination does, in the same order: check first, one guarded write.

:class:`ObjectDestination` holds the part of a write that does not depend on the store:

1. :meth:`~ObjectDestination.check_bucket` (the store's own call) before any Conpeek request.
2. :meth:`~ObjectDestination.prepare`: what the key holds now (:meth:`~ObjectDestination.head`)
   and :func:`~.destination.decide_write` on it, which gives the write's precondition.
3. :meth:`~ObjectDestination.write`: one conditional upload of the whole file. When the
   precondition fails, the key is looked at and decided again (at most
   :data:`CONFLICT_RETRIES` times), so a concurrent writer is never silently overwritten;
   a refused resend of this extract's own write (recognised by its :data:`WRITE_ID`) is
   success.

A store implements :meth:`check_bucket`, :meth:`head`, :meth:`_upload` and
:meth:`_refusal` (and :meth:`abort` if an upload in progress can be abandoned). Each streams
the file from disk in parts (:class:`FilePart`) and checks :attr:`cancel` between parts, so
memory stays flat and a killed task writes no object: :mod:`~.s3write`, :mod:`~.gcswrite`,
:mod:`~.azurewrite`.

Example::

    dest = S3Destination(s3_hook.get_conn(), "contact-centre", key)
    dest.check_bucket()
    dest.prepare(stamp, replace=True)       # raises if the key holds another window
    ...                                    # page into path
    version = dest.write(path, stamp, records=n, content_type="application/gzip")
"""

from __future__ import annotations

import logging
import threading
import uuid
from pathlib import Path
from typing import BinaryIO, Literal

from airflow_provider_conpeek.destination import (
    Existing,
    ObjectStamp,
    Replace,
    StoreNames,
    WriteCondition,
    decide_write,
)
from airflow_provider_conpeek.exceptions import ConpeekError

log = logging.getLogger(__name__)

CONFLICT_RETRIES = 3
WRITE_ID = "conpeek-write-id"
"""Object metadata naming the extract that wrote it (a random id per extract)."""
Refusal = Literal["precondition", "gone"]
"""Why a store refused a conditional write: its precondition failed, or the object the
write was to replace was deleted meanwhile."""


class ExtractCancelled(ConpeekError):
    """The extract was stopped (the task was killed) before its object was written."""


class FilePart:
    """Part of an open file, read as a file by an upload call: the part is streamed from
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
        """Move within the part (clients rewind it for checksums and retries)."""
        base = (0, self._pos, self._size)[whence]
        self._pos = min(max(0, base + offset), self._size)
        return self._pos

    def tell(self) -> int:
        """The position within the part."""
        return self._pos


class ObjectDestination:
    """One key of one bucket (or container) of some object store: the shared write logic.

    :param uri: the object's URI, for messages (``s3://b/k``, ``gs://b/k``, ...).
    :param names: how this store's parameters and metadata are named in messages.
    :param credentials: how messages name the credentials, e.g. "the AWS connection
        'aws_default'".
    :param cancel: when set, no further part is sent and the upload is abandoned.

    Subclasses set :attr:`version_name` (``"etag"``, ``"generation"``): the name of the token
    :meth:`head` returns as :attr:`Existing.etag` and :meth:`write` returns.

    Example::

        class MemoryDestination(ObjectDestination): ...  # check_bucket, head, _upload, _refusal
    """

    version_name = "etag"

    def __init__(
        self,
        uri: str,
        *,
        names: StoreNames,
        credentials: str,
        cancel: threading.Event | None = None,
    ) -> None:
        self.uri, self.names, self.credentials = uri, names, credentials
        self.cancel = cancel or threading.Event()
        self.replace: Replace = True
        self.condition = WriteCondition(if_none_match=True)
        # Marks this extract's own object: a write whose answer was lost, resent by the
        # client and refused by its own precondition is recognised as done (see write()).
        self.write_id = uuid.uuid4().hex

    # -- what a store implements -------------------------------------------------------------

    def check_bucket(self) -> None:
        """The bucket exists and the credentials reach it; else a clear ConpeekConfigError."""
        raise NotImplementedError

    def head(self) -> Existing | None:
        """What the key holds now, or ``None``. Metadata names as written (see
        :meth:`metadata_name`); ``etag`` holds the store's version token."""
        raise NotImplementedError

    def _upload(
        self, path: Path, metadata: dict[str, str], content_type: str, condition: WriteCondition
    ) -> str:
        """Upload ``path`` under ``condition`` (streamed, cancel checked between parts);
        return the new object's version token."""
        raise NotImplementedError

    def _refusal(self, exc: BaseException) -> Refusal | None:
        """Whether ``exc`` is the store refusing the condition (``None``: another error)."""
        raise NotImplementedError

    def abort(self) -> None:
        """Abandon an upload in progress, if the store needs that. Never raises; idempotent."""

    def metadata_name(self, name: str) -> str:
        """A metadata name as this store can carry it (Azure: no hyphens)."""
        return name

    # -- shared ------------------------------------------------------------------------------

    def prepare(self, stamp: ObjectStamp, *, replace: Replace) -> Existing | None:
        """Decide, from what the key holds now, whether and how this extract may write it.

        :raises ConpeekConfigError: if it may not (before any Conpeek request).
        """
        self.replace = replace
        existing = self.head()
        self.condition = decide_write(
            existing, stamp, replace=replace, uri=self.uri, names=self.names
        )
        if existing is not None and existing.stamp is not None and existing.stamp != stamp:
            log.warning(
                "%s holds this window's extract with other filters (%s); this run "
                "replaces it with filters %s.",
                self.uri,
                existing.stamp.filters,
                stamp.filters,
            )
        return existing

    def write(self, path: Path, stamp: ObjectStamp, *, records: int, content_type: str) -> str:
        """Upload ``path`` under the condition :meth:`prepare` chose; return its version.

        On a failed precondition the key is decided again (:meth:`prepare`): the same
        window's object is replaced, anything else raises.
        """
        metadata = {
            self.metadata_name(name): value
            for name, value in {**stamp.metadata(records=records), WRITE_ID: self.write_id}.items()
        }
        for attempt in range(1, CONFLICT_RETRIES + 1):
            try:
                return self._upload(path, metadata, content_type, self.condition)
            except Exception as exc:
                refusal = self._refusal(exc)
                if refusal is None or (refusal == "gone" and self.condition.if_match is None):
                    raise
                own = self._own_version()
                if own is not None:  # the refused write was a resend of one that landed
                    return own
                if attempt == CONFLICT_RETRIES:
                    raise
                log.warning(
                    "%s changed while this run paged (%s); looking at it again.",
                    self.uri,
                    type(exc).__name__,
                )
                self.prepare(stamp, replace=self.replace)
        raise AssertionError("unreachable")  # pragma: no cover

    def _own_version(self) -> str | None:
        """The key's version if it holds this extract's own write, else ``None``."""
        try:
            existing = self.head()
        except Exception:
            return None
        if existing is None or existing.write_id != self.write_id:
            return None
        return existing.etag

    def check_cancel(self) -> None:
        """Raise :class:`ExtractCancelled` once the task was killed."""
        if self.cancel.is_set():
            raise ExtractCancelled(f"Stopped before {self.uri} was written: the task was killed.")


def capital(text: str) -> str:
    """``text`` with its first letter upper-case (messages that start with a credential)."""
    return text[:1].upper() + text[1:]
