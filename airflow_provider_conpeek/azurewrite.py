"""The Azure Blob Storage side of an extract, on a ``BlobServiceClient``: check first, then one
conditional write.

:class:`AzureBlobDestination` makes the calls, in this order:

1. ``Get Container Properties`` before any Conpeek request: the container exists and the
   credentials reach it.
2. ``Get Blob Properties``: what the blob holds now, and :func:`~.destination.decide_write` on
   it.
3. After paging, one conditional write of the whole file: ``Put Block`` per block, streamed
   from disk (the cancel event is checked between blocks and while a block is read), then
   ``Put Block List`` with the metadata, the content type and ``If-None-Match: *`` (nothing
   may have appeared meanwhile) or ``If-Match: <etag>`` (the blob decided on is still the one
   there). When the precondition fails, the blob is looked at again and decided again, so a
   concurrent writer is never silently overwritten.

Block ids carry a random prefix per write, so two writers of one blob never stage over each
other's blocks. Staged blocks are never visible until ``Put Block List`` commits them; there is
no abort call: Azure discards blocks that are never committed (and also those left out of
another writer's commit). So a failed, cancelled or killed upload leaves no blob. A commit
whose blocks were discarded by another writer's commit (``InvalidBlockList``) is refused like
a failed precondition and decided again.

Azure metadata names cannot hold hyphens: ``conpeek-window-start`` is written as
``conpeek_window_start`` (:meth:`AzureBlobDestination.metadata_name`), and
:meth:`~.destination.Existing.from_metadata` reads it back.

The order, the re-decision and the recognition of a resent write live in
:class:`~.objectwrite.ObjectDestination`; this module holds the Azure calls.

Example::

    service, credentials = wasb_service("wasb_default", "VoiceCampaignSummaryToAzureOperator")
    dest = AzureBlobDestination(service, "contact-centre", blob, credentials=credentials)
    dest.check_container()
    dest.prepare(stamp, replace=True)       # raises if the blob holds another window
    ...                                    # page into path
    etag = dest.write(path, stamp, records=n, content_type="application/gzip")
"""

from __future__ import annotations

import logging
import math
import threading
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

from airflow_provider_conpeek import __version__
from airflow_provider_conpeek.destination import AZURE, Existing, WriteCondition
from airflow_provider_conpeek.exceptions import ConpeekConfigError
from airflow_provider_conpeek.objectwrite import (
    FilePart,
    ObjectDestination,
    Refusal,
    capital,
)

__all__ = ["AzureBlobDestination", "wasb_service"]

log = logging.getLogger(__name__)

MAX_BLOCKS = 50_000
"""The most blocks one blob may have."""
PRECONDITION_CODES = frozenset({"ConditionNotMet", "BlobAlreadyExists", "InvalidBlockList"})
"""Error codes of a refused commit: its condition failed, or (``InvalidBlockList``) another
writer's commit discarded this write's staged blocks."""
RIGHTS = (
    "Grant the Storage Blob Data Contributor role on the container (or a SAS with read, "
    "write and create rights on it), or fix the credentials."
)


def wasb_service(wasb_conn_id: str, caller: str) -> tuple[Any, str]:
    """The ``BlobServiceClient`` of the Airflow connection ``wasb_conn_id`` (through
    ``WasbHook``), and how messages name its credentials.

    The client's User-Agent names ``caller``. The Azure provider is imported here, not at
    module import: it is the optional extra ``airflow-provider-conpeek[azure]``.

    :param wasb_conn_id: the Airflow connection (conn_type ``wasb``).
    :param caller: the operator, for the User-Agent (``VoiceCampaignSummaryToAzureOperator``).
    :raises ConpeekConfigError: when the Azure provider is not installed, the connection does
        not exist or no client can be made of it. No message holds a secret of the connection.

    Example::

        service, credentials = wasb_service("wasb_default", "VoiceCampaignSummaryToAzureOperator")
        AzureBlobDestination(service, "contact-centre", key, credentials=credentials)
    """
    if not isinstance(wasb_conn_id, str) or not wasb_conn_id.strip():
        raise ConpeekConfigError(
            f"wasb_conn_id must be the id of an Azure Blob Storage connection, got "
            f"{wasb_conn_id!r}."
        )
    try:
        from airflow.providers.microsoft.azure.hooks.wasb import WasbHook
    except ImportError as exc:
        raise ConpeekConfigError(
            "Writing to Azure Blob Storage needs the Microsoft Azure provider, which is not "
            f"installed ({exc}). Install it with: pip install 'airflow-provider-conpeek[azure]'."
        ) from None
    from airflow.providers.common.compat.sdk import AirflowNotFoundException

    credentials = f"the Azure connection {wasb_conn_id!r}"
    hook = WasbHook(wasb_conn_id=wasb_conn_id)
    try:
        service = hook.get_conn()
    except AirflowNotFoundException:
        raise ConpeekConfigError(
            f"The Azure connection {wasb_conn_id!r} (wasb_conn_id) does not exist. Create it "
            "(conn_type 'wasb', e.g. with a connection_string in its extra), or fix the name."
        ) from None
    except Exception as exc:
        secrets = _connection_secrets(hook, wasb_conn_id)
        raise ConpeekConfigError(
            f"{capital(credentials)} (wasb_conn_id) gives no Blob Storage client: "
            f"{type(exc).__name__}: {redact(str(exc), secrets)} Fix its account URL (host), "
            "connection_string, key or SAS token."
        ) from None
    policy = getattr(getattr(service, "_config", None), "user_agent_policy", None)
    if policy is not None and hasattr(policy, "add_user_agent"):  # in this SDK: a private path
        policy.add_user_agent(f"airflow-provider-conpeek/{__version__} Caller/{caller}")
    return service, credentials


def _connection_secrets(hook: Any, conn_id: str) -> list[str]:
    """The connection's password and extra values: what no message may show."""
    try:
        conn = hook.get_connection(conn_id)
        values = [conn.password, *_strings(conn.extra_dejson or {})]
    except Exception:
        return []
    return [value for value in values if isinstance(value, str) and len(value) >= 4]


def _strings(extra: Mapping[str, Any]) -> list[str]:
    found: list[str] = []
    for value in extra.values():
        if isinstance(value, str):
            found.append(value)
            found.extend(part.split("=", 1)[1] for part in value.split(";") if "=" in part)
        elif isinstance(value, Mapping):
            found.extend(_strings(value))
    return found


def redact(text: str, secrets: list[str]) -> str:
    """``text`` with every one of ``secrets`` replaced by ``***`` (longest first)."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


class AzureBlobDestination(ObjectDestination):
    """One blob of one container, through a ``BlobServiceClient`` (``WasbHook.get_conn()``).

    :param service: an ``azure.storage.blob.BlobServiceClient``.
    :param container: the container (checked by :func:`~.destination.check_destination`).
    :param blob: the blob name.
    :param credentials: how messages name the credentials, e.g. "the Azure connection
        'wasb_default'".
    :param block_size: bytes per staged block (raised when the file would need over 50,000).
    :param cancel: when set, no further block is sent and the upload is abandoned.

    Its URI is ``wasb://<container>@<account>/<blob>``; ``wasb://<container>/<blob>`` when the
    client knows no account name.

    Example::

        dest = AzureBlobDestination(service, "contact-centre", "conpeek/day.jsonl.gz")
        dest.check_container()
        dest.prepare(stamp, replace=False)
        etag = dest.write(path, stamp, records=n, content_type="application/gzip")
    """

    version_name = "etag"

    def __init__(
        self,
        service: Any,
        container: str,
        blob: str,
        *,
        credentials: str = "the Azure connection 'wasb_default'",
        block_size: int = 8 * 1024 * 1024,
        cancel: threading.Event | None = None,
    ) -> None:
        account = getattr(service, "account_name", None)
        where = f"{container}@{account}" if account else container
        super().__init__(
            f"wasb://{where}/{blob}", names=AZURE, credentials=credentials, cancel=cancel
        )
        self.service, self.container, self.blob = service, container, blob
        self.block_size = block_size
        self.client: Any = service.get_blob_client(container, blob)
        self._lock = threading.Lock()
        self._uploading = False

    def metadata_name(self, name: str) -> str:
        """``conpeek-window-start`` -> ``conpeek_window_start``: Azure metadata names are C#
        identifiers, without hyphens."""
        return name.replace("-", "_")

    # -- before paging -----------------------------------------------------------------------

    def check_container(self) -> None:
        """``Get Container Properties``: a missing container or no access fails here, naming
        what to fix."""
        try:
            self.service.get_container_client(self.container).get_container_properties()
        except Exception as exc:
            status, code = _status(exc)
            where = f"in the storage account at {_account_url(self.service)}"
            if status == 404 or code == "ContainerNotFound":
                raise ConpeekConfigError(
                    f"The container {self.container!r} does not exist {where} (as seen with "
                    f"{self.credentials}). Create it, or fix container_name or the "
                    "connection's account."
                ) from None
            if status in (401, 403):
                raise ConpeekConfigError(
                    f"{capital(self.credentials)} may not use container {self.container!r} "
                    f"{where} (HTTP {status} {code} on Get Container Properties). {RIGHTS}"
                ) from None
            if _is_auth_error(exc):
                raise ConpeekConfigError(
                    f"No usable Azure credentials were found for {self.credentials}: "
                    f"{type(exc).__name__}: {_first_line(exc)} Set a connection_string, an "
                    "account key, a SAS token or a service principal in the connection."
                ) from None
            raise

    check_bucket = check_container

    def head(self) -> Existing | None:
        """What the blob holds now (``Get Blob Properties``), or ``None``."""
        try:
            props = self.client.get_blob_properties()
        except Exception as exc:
            status, code = _status(exc)
            if status == 404 or code == "BlobNotFound":
                return None
            if status in (401, 403):
                raise ConpeekConfigError(
                    f"{capital(self.credentials)} may not read {self.uri} (HTTP {status} "
                    f"{code} on Get Blob Properties). {RIGHTS}"
                ) from None
            raise
        return Existing.from_metadata(str(props.etag), dict(props.metadata or {}), props.size)

    # -- the write ---------------------------------------------------------------------------

    def _refusal(self, exc: BaseException) -> Refusal | None:
        from azure.core.exceptions import ResourceNotFoundError

        # By error code only: a 409 or 412 for another reason (a lease held on the blob, an
        # immutability policy, an archived blob) is no refused condition: deciding again
        # would upload the whole file again for nothing, then fail with the same error.
        _, code = _status(exc)
        if code in PRECONDITION_CODES:
            return "precondition"
        if isinstance(exc, ResourceNotFoundError) and self.condition.if_match is not None:
            return "gone"
        return None

    def _upload(
        self, path: Path, metadata: dict[str, str], content_type: str, condition: WriteCondition
    ) -> str:
        from azure.storage.blob import ContentSettings

        self.check_cancel()
        size = path.stat().st_size
        block_size = max(self.block_size, math.ceil(size / MAX_BLOCKS))
        prefix = uuid.uuid4().hex  # this write's blocks: no other writer stages over them
        block_ids: list[str] = []
        with self._lock:
            self._uploading = True
        try:
            with path.open("rb") as source:
                for index in range(math.ceil(size / block_size)):
                    self.check_cancel()
                    part = CancellablePart(source, index * block_size, block_size, size, self)
                    block_id = f"{prefix}-{index:06d}"  # equal length; the SDK base64s it
                    self.client.stage_block(block_id, part, length=len(part))
                    block_ids.append(block_id)
            self.check_cancel()
            done = self.client.commit_block_list(
                block_ids,
                metadata=metadata,
                content_settings=ContentSettings(content_type=content_type),
                **commit_args(condition),
            )
        finally:
            with self._lock:
                self._uploading = False
        return str(done["etag"])

    def abort(self) -> None:
        """Abandon the upload in progress: set :attr:`cancel`, so no further block is sent and
        the block being sent stops at its next read. There is nothing to abort on Azure: the
        staged blocks are never visible and are discarded. Never raises; idempotent."""
        with self._lock:
            uploading = self._uploading
        already = self.cancel.is_set()
        self.cancel.set()
        if uploading and not already:
            log.info(
                "Abandoned the upload of %s: its staged blocks are never committed, and Azure "
                "discards them.",
                self.uri,
            )


class CancellablePart(FilePart):
    """A :class:`~.objectwrite.FilePart` whose every read first checks the destination's
    cancel event: a block being sent stops within one read of the HTTP client (a few KiB),
    not at the end of the block.

    :param file: the whole file, opened for binary reading.
    :param start: where the block begins.
    :param size: the most bytes the block holds.
    :param total: the file's size.
    :param dest: the destination whose :meth:`~.ObjectDestination.check_cancel` is called.
    """

    def __init__(
        self, file: BinaryIO, start: int, size: int, total: int, dest: ObjectDestination
    ) -> None:
        super().__init__(file, start, size, total)
        self._dest = dest

    def read(self, n: int | None = -1) -> bytes:
        """Up to ``n`` bytes; :class:`ExtractCancelled` once the task was killed."""
        self._dest.check_cancel()
        return super().read(n)


def commit_args(condition: WriteCondition) -> dict[str, Any]:
    """The condition as keyword arguments of ``commit_block_list``."""
    from azure.core import MatchConditions

    if condition.if_match is not None:
        return {"etag": condition.if_match, "match_condition": MatchConditions.IfNotModified}
    if condition.if_none_match:
        return {"match_condition": MatchConditions.IfMissing}
    return {}


def _status(exc: BaseException) -> tuple[int | None, str]:
    """HTTP status and storage error code of an ``azure.core`` error (``(None, "")``
    otherwise)."""
    status = getattr(exc, "status_code", None)
    code = getattr(exc, "error_code", None)
    code = getattr(code, "value", code)  # a StorageErrorCode, or a plain string
    return (status if isinstance(status, int) else None), str(code or "")


def _is_auth_error(exc: BaseException) -> bool:
    try:
        from azure.core.exceptions import ClientAuthenticationError
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, ClientAuthenticationError)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0]


def _account_url(service: Any) -> str:
    """The account's URL, without a SAS token."""
    return str(getattr(service, "url", "?")).split("?", 1)[0]
