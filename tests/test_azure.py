"""The Azure Blob Storage destination: every promise of the S3 destination, on Azure.

Against Azurite over real HTTP (``azurite_server.py``), at the destination level. A concurrent
writer is simulated by calling another client in order: between ``prepare`` and ``write``, or
from the SDK's own ``raw_response_hook`` after a given ``Put Block`` of the write (no sleep, no
thread, no mock of an Azure client).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from azurite_server import ACCOUNT_KEY, AzuriteServer

from airflow_provider_conpeek import __version__
from airflow_provider_conpeek.azurewrite import (
    AzureBlobDestination,
    CancellablePart,
    commit_args,
    wasb_service,
)
from airflow_provider_conpeek.destination import Existing, ObjectStamp, WriteCondition
from airflow_provider_conpeek.exceptions import ConpeekConfigError
from airflow_provider_conpeek.objectwrite import ExtractCancelled

BLOB = "out/day.jsonl.gz"
KIB = 1024
MIB = 1024 * KIB
GZIP = "application/gzip"


def stamp(day: int = 1, date_property: str = "created_date", filters: str = "[]") -> ObjectStamp:
    return ObjectStamp(
        date_property=date_property,
        start=f"2026-01-{day:02d}T00:00:00Z",
        end=f"2026-01-{day + 1:02d}T00:00:00Z",
        filters=filters,
        filters_sha256=hashlib.sha256(filters.encode()).hexdigest(),
    )


def azure_metadata(s: ObjectStamp, records: int = 1) -> dict[str, str]:
    """What another run's blob carries (Azure's underscore names)."""
    return {k.replace("-", "_"): v for k, v in s.metadata(records=records).items()}


def dest(azurite: AzuriteServer, container: str, blob: str = BLOB, **kwargs: Any) -> Any:
    return AzureBlobDestination(azurite.service(), container, blob, **kwargs)


def put(azurite: AzuriteServer, container: str, data: bytes, blob: str = BLOB, **kw: Any) -> str:
    """A blob written by someone else, with a plain client; returns its etag."""
    client = azurite.service().get_blob_client(container, blob)
    return str(client.upload_blob(data, overwrite=True, **kw)["etag"])


@pytest.fixture
def data_file(tmp_path: Path) -> Callable[..., Path]:
    def make(data: bytes, name: str = "records.jsonl.gz") -> Path:
        path = tmp_path / name
        path.write_bytes(data)
        return path

    return make


def pattern(size: int, seed: int = 0) -> bytes:
    """``size`` bytes in which every 1 KiB differs: a misplaced block shows."""
    chunks = (hashlib.sha256(f"{seed}-{i}".encode()).digest() * 32 for i in range(size // KIB + 1))
    return b"".join(chunks)[:size]


class AfterBlock:
    """A ``raw_response_hook``: runs ``action`` once, after the ``n``-th ``Put Block`` of the
    client it is given to has been answered."""

    def __init__(self, n: int, action: Callable[[], object]) -> None:
        self.n, self.action, self.blocks = n, action, 0
        self.urls: list[str] = []

    def __call__(self, response: Any) -> None:
        request = response.http_request
        self.urls.append(f"{request.method} {request.url}")
        if request.method == "PUT" and "comp=block&" in request.url + "&":
            self.blocks += 1
            if self.blocks == self.n:
                self.action()


def hooked(azurite: AzuriteServer, container: str, hook: AfterBlock, **kwargs: Any) -> Any:
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(
        azurite.connection_string, raw_response_hook=hook
    )
    return AzureBlobDestination(service, container, BLOB, **kwargs)


# -- before paging ----------------------------------------------------------------------------


def test_missing_container_is_named_with_what_to_do(azurite: AzuriteServer) -> None:
    with pytest.raises(ConpeekConfigError, match="container 'no-such-container' does not exist"):
        dest(azurite, "no-such-container").check_container()
    with pytest.raises(ConpeekConfigError, match="container_name") as info:
        dest(azurite, "no-such-container").check_bucket()  # the base class's name for it
    assert "the Azure connection 'wasb_default'" in str(info.value)


def test_wrong_key_is_refused_with_the_rights_to_grant_and_no_secret(
    azurite: AzuriteServer, azure_container: str
) -> None:
    wrong = base64.b64encode(b"not the key" * 6).decode()
    service = azurite.service(account_key=wrong)
    destination = AzureBlobDestination(
        service, azure_container, BLOB, credentials="the Azure connection 'wasb_other'"
    )
    with pytest.raises(ConpeekConfigError, match="may not use container") as info:
        destination.check_container()
    message = str(info.value)
    assert message.startswith("The Azure connection 'wasb_other' may not use container")
    assert "HTTP 403" in message
    assert "Storage Blob Data Contributor" in message
    assert wrong not in message
    assert ACCOUNT_KEY not in message
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__
    with pytest.raises(ConpeekConfigError, match="may not read"):
        destination.head()


def test_uri_names_container_account_and_blob(azurite: AzuriteServer) -> None:
    assert dest(azurite, "c1").uri == f"wasb://c1@devstoreaccount1/{BLOB}"

    class NoAccount:  # a client that knows no account name
        account_name = None

        def get_blob_client(self, container: str, blob: str) -> None:
            return None

    assert AzureBlobDestination(NoAccount(), "c1", "a/b").uri == "wasb://c1/a/b"


# -- what a blob says, and who may overwrite it ------------------------------------------------


def test_head_of_a_missing_an_own_and_a_foreign_blob(
    azurite: AzuriteServer, azure_container: str, data_file: Callable[..., Path]
) -> None:
    destination = dest(azurite, azure_container)
    assert destination.head() is None
    destination.prepare(stamp(), replace=False)
    etag = destination.write(data_file(b"abc"), stamp(), records=3, content_type=GZIP)
    assert destination.head() == Existing(
        etag=etag, stamp=stamp(), records="3", size=3, write_id=destination.write_id
    )

    put(azurite, azure_container, b"theirs", "foreign", metadata={"owner": "someone"})
    foreign = dest(azurite, azure_container, "foreign").head()
    assert foreign is not None
    assert (foreign.stamp, foreign.records, foreign.size, foreign.write_id) == (None, None, 6, None)


def test_new_blob_carries_the_stamp_in_underscore_metadata(
    azurite: AzuriteServer, azure_container: str, data_file: Callable[..., Path]
) -> None:
    filters = '[{"property":"project_id_list","value":[11,13]}]'
    s = stamp(filters=filters)
    destination = dest(azurite, azure_container)
    assert destination.prepare(s, replace=False) is None
    body = b'{"id": 1}\n' * 100
    etag = destination.write(data_file(body), s, records=100, content_type=GZIP)

    props = azurite.service().get_blob_client(azure_container, BLOB).get_blob_properties()
    assert props.etag == etag
    meta = dict(props.metadata)
    assert re.fullmatch(r"[0-9a-f]{32}", meta.pop("conpeek_write_id"))
    assert meta == {
        "conpeek_endpoint": "voice_campaign_request_summary",
        "conpeek_date_property": "created_date",
        "conpeek_window_start": "2026-01-01T00:00:00Z",
        "conpeek_window_end": "2026-01-02T00:00:00Z",
        "conpeek_filters": filters,
        "conpeek_filters_sha256": hashlib.sha256(filters.encode()).hexdigest(),
        "conpeek_records": "100",
        "conpeek_provider_version": __version__,
    }
    assert not any("-" in name for name in props.metadata)
    assert props.content_settings.content_type == GZIP
    assert props.content_settings.content_encoding is None  # a .gz file, not an encoding
    assert azurite.read(azure_container, BLOB) == body
    # Read back through Existing, from a plain client's answer: the stamp round-trips.
    existing = Existing.from_metadata(props.etag, props.metadata, props.size)
    assert (existing.stamp, existing.records, existing.size) == (s, "100", len(body))


def test_replace_true_overwrites_the_same_window_only(
    azurite: AzuriteServer, azure_container: str, data_file: Callable[..., Path]
) -> None:
    first = dest(azurite, azure_container)
    first.prepare(stamp(), replace=True)
    first.write(data_file(b"first"), stamp(), records=1, content_type=GZIP)

    # The same window, with other filters: replaced, under If-Match of the blob seen.
    rerun = dest(azurite, azure_container)
    seen = rerun.prepare(stamp(filters='["x"]'), replace=True)
    assert seen is not None
    assert rerun.condition == WriteCondition(if_match=seen.etag)
    rerun.write(data_file(b"rerun"), stamp(filters='["x"]'), records=1, content_type=GZIP)
    assert azurite.read(azure_container, BLOB) == b"rerun"

    # Another window, another date property: refused before any request, blob untouched.
    with pytest.raises(ConpeekConfigError, match="holds the extract of another window") as info:
        dest(azurite, azure_container).prepare(stamp(day=2), replace=True)
    message = str(info.value)
    assert "created_date in [2026-01-01T00:00:00Z, 2026-01-02T00:00:00Z)" in message
    assert "created_date in [2026-01-02T00:00:00Z, 2026-01-03T00:00:00Z)" in message
    assert "blob_name=" in message  # Azure's parameter, in the hint
    with pytest.raises(ConpeekConfigError, match="closed_date in"):
        dest(azurite, azure_container).prepare(stamp(date_property="closed_date"), replace=True)
    assert azurite.read(azure_container, BLOB) == b"rerun"


def test_a_foreign_blob_is_refused_unless_replace_always(
    azurite: AzuriteServer, azure_container: str, data_file: Callable[..., Path]
) -> None:
    put(azurite, azure_container, b"someone else's")
    with pytest.raises(ConpeekConfigError, match="was not written by this operator") as info:
        dest(azurite, azure_container).prepare(stamp(), replace=True)
    assert "conpeek_* metadata" in str(info.value)
    assert "replace='always'" in str(info.value)
    assert azurite.read(azure_container, BLOB) == b"someone else's"

    always = dest(azurite, azure_container)
    always.prepare(stamp(), replace="always")
    assert always.condition == WriteCondition()  # unconditional
    always.write(data_file(b"ours"), stamp(), records=1, content_type=GZIP)
    assert azurite.read(azure_container, BLOB) == b"ours"

    # 'always' overwrites another window's extract too.
    other = dest(azurite, azure_container)
    other.prepare(stamp(day=5), replace="always")
    other.write(data_file(b"day 5"), stamp(day=5), records=1, content_type=GZIP)
    assert azurite.read(azure_container, BLOB) == b"day 5"


def test_replace_false_refuses_any_blob(
    azurite: AzuriteServer, azure_container: str, data_file: Callable[..., Path]
) -> None:
    first = dest(azurite, azure_container)
    first.prepare(stamp(), replace=False)
    first.write(data_file(b"first"), stamp(), records=1, content_type=GZIP)
    with pytest.raises(ConpeekConfigError, match="already exists and replace=False"):
        dest(azurite, azure_container).prepare(stamp(), replace=False)  # even its own window
    assert azurite.read(azure_container, BLOB) == b"first"


def test_a_byte_identical_rewrite_keeps_the_bytes(
    azurite: AzuriteServer, azure_container: str, data_file: Callable[..., Path]
) -> None:
    path = data_file(pattern(300 * KIB))
    first = dest(azurite, azure_container, block_size=128 * KIB)
    first.prepare(stamp(), replace=True)
    first.write(path, stamp(), records=7, content_type=GZIP)
    again = dest(azurite, azure_container, block_size=128 * KIB)
    again.prepare(stamp(), replace=True)
    etag = again.write(path, stamp(), records=7, content_type=GZIP)
    assert azurite.read(azure_container, BLOB) == path.read_bytes()
    head = again.head()
    assert head is not None
    assert (head.etag, head.write_id) == (etag, again.write_id)


def test_an_empty_file_is_an_empty_blob(
    azurite: AzuriteServer, azure_container: str, data_file: Callable[..., Path]
) -> None:
    destination = dest(azurite, azure_container)
    destination.prepare(stamp(), replace=False)
    destination.write(data_file(b""), stamp(), records=0, content_type=GZIP)
    assert azurite.read(azure_container, BLOB) == b""
    head = destination.head()
    assert head is not None
    assert (head.size, head.records) == (0, "0")


# -- conditional writes: another writer between the decision and the write ---------------------


def test_conditions_are_enforced_by_azurite_on_commit(
    azurite: AzuriteServer, azure_container: str
) -> None:
    """The tests' premise, checked: Put Block List honours If-None-Match and If-Match."""
    from azure.core.exceptions import ResourceExistsError, ResourceModifiedError

    client = azurite.service().get_blob_client(azure_container, "probe")
    client.stage_block("a" * 8, b"1")
    first = client.commit_block_list(["a" * 8], **commit_args(WriteCondition(if_none_match=True)))
    client.stage_block("b" * 8, b"2")
    with pytest.raises(ResourceExistsError) as exists:
        client.commit_block_list(["b" * 8], **commit_args(WriteCondition(if_none_match=True)))
    assert (exists.value.status_code, exists.value.error_code) == (409, "BlobAlreadyExists")
    with pytest.raises(ResourceModifiedError) as modified:
        client.commit_block_list(["b" * 8], **commit_args(WriteCondition(if_match='"0x0"')))
    assert modified.value.status_code == 412
    client.commit_block_list(["b" * 8], **commit_args(WriteCondition(if_match=first["etag"])))
    assert client.download_blob().readall() == b"2"


def test_a_blob_written_after_prepare_is_not_overwritten(
    azurite: AzuriteServer, azure_container: str, data_file: Callable[..., Path]
) -> None:
    """If-None-Match: * refuses; the blob is decided again: another window raises."""
    destination = dest(azurite, azure_container)
    assert destination.prepare(stamp(), replace=True) is None
    put(azurite, azure_container, b"day 2", metadata=azure_metadata(stamp(day=2)))
    with pytest.raises(ConpeekConfigError, match="holds the extract of another window") as info:
        destination.write(data_file(b"ours"), stamp(), records=1, content_type=GZIP)
    assert "[2026-01-02T00:00:00Z, 2026-01-03T00:00:00Z)" in str(info.value)
    assert azurite.read(azure_container, BLOB) == b"day 2"


def test_replace_false_is_atomic(
    azurite: AzuriteServer, azure_container: str, data_file: Callable[..., Path]
) -> None:
    destination = dest(azurite, azure_container, block_size=64 * KIB)
    destination.prepare(stamp(), replace=False)
    put(azurite, azure_container, b"theirs")  # a foreign blob, meanwhile
    with pytest.raises(ConpeekConfigError, match="already exists and replace=False"):
        destination.write(data_file(pattern(200 * KIB)), stamp(), records=1, content_type=GZIP)
    assert azurite.read(azure_container, BLOB) == b"theirs"


def test_the_same_window_written_after_prepare_is_replaced(
    azurite: AzuriteServer, azure_container: str, data_file: Callable[..., Path]
) -> None:
    destination = dest(azurite, azure_container)
    destination.prepare(stamp(), replace=True)
    put(azurite, azure_container, b"rerun", metadata=azure_metadata(stamp()))
    etag = destination.write(data_file(b"ours"), stamp(), records=1, content_type=GZIP)
    assert azurite.read(azure_container, BLOB) == b"ours"
    assert destination.condition.if_match is not None  # re-decided: If-Match of "rerun"
    head = destination.head()
    assert head is not None
    assert head.etag == etag


def test_the_blob_decided_on_replaced_meanwhile_is_decided_again(
    azurite: AzuriteServer, azure_container: str, data_file: Callable[..., Path]
) -> None:
    """If-Match: <etag> of this window's blob; it was replaced while the extract paged."""
    put(azurite, azure_container, b"ours before", metadata=azure_metadata(stamp()))
    destination = dest(azurite, azure_container)
    decided = destination.prepare(stamp(), replace=True)
    assert decided is not None

    # By the same window: the newer one is replaced, under its own etag.
    newer = put(azurite, azure_container, b"same window", metadata=azure_metadata(stamp()))
    assert newer != decided.etag
    destination.write(data_file(b"ours"), stamp(), records=1, content_type=GZIP)
    assert azurite.read(azure_container, BLOB) == b"ours"

    # By another window: refused, the other window's blob stays.
    destination = dest(azurite, azure_container)
    destination.prepare(stamp(), replace=True)
    put(azurite, azure_container, b"other", metadata=azure_metadata(stamp(day=3)))
    with pytest.raises(ConpeekConfigError, match="holds the extract of another window"):
        destination.write(data_file(b"ours again"), stamp(), records=1, content_type=GZIP)
    assert azurite.read(azure_container, BLOB) == b"other"


def test_the_blob_deleted_meanwhile_is_written_anew(
    azurite: AzuriteServer, azure_container: str, data_file: Callable[..., Path]
) -> None:
    """If-Match on a blob deleted meanwhile: Azurite answers 412 ConditionNotMet (Azure may
    answer 404: "gone"); either way the key is decided again, and is empty now."""
    from azure.core.exceptions import ResourceModifiedError

    put(azurite, azure_container, b"before", metadata=azure_metadata(stamp()))
    destination = dest(azurite, azure_container)
    decided = destination.prepare(stamp(), replace=True)
    assert decided is not None
    azurite.service().get_blob_client(azure_container, BLOB).delete_blob()

    client = azurite.service().get_blob_client(azure_container, "gone-probe")
    client.stage_block("c" * 8, b"x")
    with pytest.raises(ResourceModifiedError) as info:  # what Azurite answers, recorded
        client.commit_block_list(["c" * 8], **commit_args(WriteCondition(if_match=decided.etag)))
    assert info.value.status_code == 412

    destination.write(data_file(b"anew"), stamp(), records=1, content_type=GZIP)
    assert azurite.read(azure_container, BLOB) == b"anew"
    assert destination.condition == WriteCondition(if_none_match=True)


def test_refusals_are_classified(azurite: AzuriteServer) -> None:
    from azure.core.exceptions import (
        HttpResponseError,
        ResourceExistsError,
        ResourceModifiedError,
        ResourceNotFoundError,
    )

    def error(cls: type[HttpResponseError], code: str, status: int) -> HttpResponseError:
        """An SDK error as azure-storage-blob raises it: with the service's error code."""
        exc = cls(code)
        exc.error_code = code  # type: ignore[attr-defined]
        exc.status_code = status
        return exc

    destination = dest(azurite, "any")
    destination.condition = WriteCondition(if_none_match=True)
    refused = [
        error(ResourceExistsError, "BlobAlreadyExists", 409),
        error(ResourceModifiedError, "ConditionNotMet", 412),
        error(HttpResponseError, "InvalidBlockList", 400),
    ]
    assert [destination._refusal(exc) for exc in refused] == ["precondition"] * 3
    # A 409 or 412 for another reason is no refused condition (deciding again would upload
    # the whole file again for nothing).
    other = [
        error(ResourceModifiedError, "LeaseIdMissing", 412),
        error(ResourceExistsError, "BlobImmutableDueToPolicy", 409),
        error(ResourceExistsError, "LeaseAlreadyPresent", 409),
    ]
    assert [destination._refusal(exc) for exc in other] == [None] * 3
    assert destination._refusal(ResourceNotFoundError("gone")) is None  # not an If-Match write
    assert destination._refusal(HttpResponseError("boom")) is None
    assert destination._refusal(ValueError("412")) is None
    destination.condition = WriteCondition(if_match='"0x1"')
    assert destination._refusal(ResourceNotFoundError("gone")) == "gone"


def test_a_resent_write_that_had_landed_is_this_extracts_own(
    azurite: AzuriteServer, azure_container: str, data_file: Callable[..., Path]
) -> None:
    """A commit whose answer was lost lands; resent with the same If-None-Match: * it is
    refused: the blob carries this extract's write id, so the write is done."""
    destination = dest(azurite, azure_container)
    assert destination.prepare(stamp(), replace=False) is None
    path = data_file(b'{"id": 1}\n')
    first = destination.write(path, stamp(), records=1, content_type=GZIP)
    assert destination.write(path, stamp(), records=1, content_type=GZIP) == first  # "resend"
    assert azurite.read(azure_container, BLOB) == b'{"id": 1}\n'
    with pytest.raises(ConpeekConfigError, match="replace=False"):  # another extract: refused
        dest(azurite, azure_container).prepare(stamp(), replace=False)


# -- streaming in blocks, cancelling, two writers ----------------------------------------------


def test_a_multi_block_upload_streams_the_file_block_by_block(
    azurite: AzuriteServer, azure_container: str, data_file: Callable[..., Path]
) -> None:
    path = data_file(pattern(5 * 64 * KIB + 1000))
    hook = AfterBlock(0, lambda: None)
    destination = hooked(azurite, azure_container, hook, block_size=64 * KIB)
    destination.prepare(stamp(), replace=False)
    destination.write(path, stamp(), records=1, content_type=GZIP)
    assert azurite.read(azure_container, BLOB) == path.read_bytes()
    committed, uncommitted = (
        azurite.service().get_blob_client(azure_container, BLOB).get_block_list("all")
    )
    assert uncommitted == []
    assert [block.size for block in committed] == [64 * KIB] * 5 + [1000]
    ids = [block.id for block in committed]
    assert len({len(i) for i in ids}) == 1  # equal length, as Azure requires
    assert len({i.split("-")[0] for i in ids}) == 1  # one prefix: this write's
    calls = [url.split("?")[0].split(" ")[0] + " " + url.split("?")[-1] for url in hook.urls]
    assert sum("comp=block&" in c + "&" for c in calls) == 6
    assert sum("comp=blocklist" in c and c.startswith("PUT") for c in calls) == 1


def test_a_block_part_reads_its_slice_of_the_file_and_stops_once_cancelled(
    tmp_path: Path,
) -> None:
    """A block is read from the file as the HTTP client asks (here 16 KiB at a time), just
    its slice, and a cancel stops it mid-block."""
    path = tmp_path / "data"
    path.write_bytes(pattern(256 * KIB))
    owner = AzureBlobDestination(_NoService(), "c", "b")
    reads: list[int] = []

    class Counting(CancellablePart):
        def read(self, n: int | None = -1) -> bytes:
            data = super().read(n)
            reads.append(len(data))
            return data

    with path.open("rb") as f:
        part = Counting(f, 64 * KIB, 128 * KIB, 256 * KIB, owner)
        chunks = iter(lambda: part.read(16 * KIB), b"")
        assert b"".join(chunks) == pattern(256 * KIB)[64 * KIB : 192 * KIB]
    assert reads[:-1] == [16 * KIB] * 8  # never more than asked for
    owner.cancel.set()
    with path.open("rb") as f, pytest.raises(ExtractCancelled):
        Counting(f, 0, 10, 256 * KIB, owner).read(5)


class _NoService:
    account_name = "acct"

    def get_blob_client(self, container: str, blob: str) -> None:
        return None


@pytest.mark.parametrize("staged", [2, 5], ids=["between-blocks", "before-commit"])
def test_cancel_between_blocks_leaves_no_blob(
    azurite: AzuriteServer, azure_container: str, data_file: Callable[..., Path], staged: int
) -> None:
    cancel = threading.Event()
    hook = AfterBlock(staged, cancel.set)  # the task is killed once blocks are staged
    destination = hooked(azurite, azure_container, hook, block_size=64 * KIB, cancel=cancel)
    destination.prepare(stamp(), replace=False)
    with pytest.raises(ExtractCancelled, match="the task was killed"):
        destination.write(data_file(pattern(5 * 64 * KIB)), stamp(), records=1, content_type=GZIP)
    assert hook.blocks == staged  # no further block was sent, nothing was committed
    assert not any("comp=blocklist" in url for url in hook.urls)
    assert destination.head() is None
    assert azurite.blobs(azure_container) == []
    destination.abort()  # after the fact: nothing to do, and no error
    destination.abort()


def test_cancel_while_a_block_is_sent_stops_that_block(
    azurite: AzuriteServer, azure_container: str, data_file: Callable[..., Path]
) -> None:
    """``abort()`` (as ``on_kill`` calls it) sets the cancel event: the block being sent
    stops at its next read, before the whole block is read."""
    reads = 0

    class AbortOnThirdRead(AzureBlobDestination):
        def check_cancel(self) -> None:
            nonlocal reads
            reads += 1
            if reads == 3:  # start, before block 1, first read of block 1: mid-block
                self.abort()
            super().check_cancel()

    destination = AbortOnThirdRead(azurite.service(), azure_container, BLOB, block_size=MIB)
    destination.prepare(stamp(), replace=False)
    with pytest.raises(ExtractCancelled):
        destination.write(data_file(pattern(2 * MIB)), stamp(), records=1, content_type=GZIP)
    assert reads == 3
    assert destination.cancel.is_set()
    assert destination.head() is None
    assert azurite.blobs(azure_container) == []
    destination.abort()  # idempotent


def test_abort_before_the_write_means_no_write(
    azurite: AzuriteServer, azure_container: str, data_file: Callable[..., Path]
) -> None:
    destination = dest(azurite, azure_container)
    destination.prepare(stamp(), replace=False)
    destination.abort()
    destination.abort()
    with pytest.raises(ExtractCancelled):
        destination.write(data_file(b"x"), stamp(), records=1, content_type=GZIP)
    assert azurite.blobs(azure_container) == []


def test_two_writers_staged_blocks_do_not_mix(
    azurite: AzuriteServer, azure_container: str, data_file: Callable[..., Path]
) -> None:
    """Writer A stages its first block; writer B stages all of its blocks of the same blob
    (same positions, other bytes) and is killed before committing; A goes on and commits.
    With ids per position only, B's blocks would have replaced A's."""
    ours = data_file(pattern(4 * 64 * KIB, seed=1), "a")
    theirs = data_file(pattern(4 * 64 * KIB, seed=2), "b")
    cancel_b = threading.Event()
    b = hooked(azurite, azure_container, AfterBlock(4, cancel_b.set), block_size=64 * KIB)
    b.cancel = cancel_b
    b_error: list[BaseException] = []
    seen: dict[str, Any] = {}

    def b_stages_everything() -> None:
        try:
            b.write(theirs, stamp(), records=1, content_type=GZIP)
        except ExtractCancelled as exc:
            b_error.append(exc)
        client = azurite.service().get_blob_client(azure_container, BLOB)
        seen["blocks"] = client.get_block_list("uncommitted")[1]

    a = hooked(azurite, azure_container, AfterBlock(1, b_stages_everything), block_size=64 * KIB)
    a.prepare(stamp(), replace=False)
    b.prepare(stamp(), replace=False)
    a.write(ours, stamp(), records=1, content_type=GZIP)

    assert len(b_error) == 1
    staged = seen["blocks"]
    assert len(staged) == 5  # A's first, and B's four: side by side
    assert len({len(block.id) for block in staged}) == 1
    assert len({block.id.split("-")[0] for block in staged}) == 2
    assert azurite.read(azure_container, BLOB) == ours.read_bytes()
    committed, uncommitted = (
        azurite.service().get_blob_client(azure_container, BLOB).get_block_list("all")
    )
    assert len(committed) == 4
    assert uncommitted == []


@pytest.mark.parametrize(
    ("replace", "refused_with"),
    [(True, "ResourceExistsError"), ("always", "HttpResponseError")],
    ids=["replace", "always"],
)
def test_a_commit_by_another_writer_while_staging_is_decided_again(
    azurite: AzuriteServer,
    azure_container: str,
    data_file: Callable[..., Path],
    caplog: pytest.LogCaptureFixture,
    replace: Any,
    refused_with: str,
) -> None:
    """Another run of the same window commits while this one stages its blocks: Azure
    discards the blocks this run staged (a commit keeps only its own list). Its commit is
    refused (BlobAlreadyExists, or InvalidBlockList without a condition), the blob is decided
    again and the whole file uploaded again: this run's bytes, whole."""
    ours = data_file(pattern(3 * 64 * KIB, seed=3))

    def other_run_commits() -> None:  # a whole write of another run (Put Block List)
        other = dest(azurite, azure_container)
        other.prepare(stamp(), replace="always")
        other.write(data_file(b"other run", "other"), stamp(), records=1, content_type=GZIP)

    destination = hooked(
        azurite, azure_container, AfterBlock(2, other_run_commits), block_size=64 * KIB
    )
    destination.prepare(stamp(), replace=replace)
    destination.write(ours, stamp(), records=1, content_type=GZIP)
    assert f"changed while this run paged ({refused_with})" in caplog.text  # refused once
    assert azurite.read(azure_container, BLOB) == ours.read_bytes()
    head = destination.head()
    assert head is not None
    assert head.write_id == destination.write_id


def test_invalid_block_list_without_a_condition_is_a_refusal(
    azurite: AzuriteServer, azure_container: str
) -> None:
    """What Azurite answers to a commit whose staged blocks another commit discarded."""
    from azure.core.exceptions import HttpResponseError

    client = azurite.service().get_blob_client(azure_container, "discarded")
    client.stage_block("a" * 8, b"A")
    client.stage_block("b" * 8, b"B")
    client.commit_block_list(["b" * 8])  # the other writer: discards "aaaaaaaa"
    with pytest.raises(HttpResponseError) as info:
        client.commit_block_list(["a" * 8])
    assert (info.value.status_code, info.value.error_code) == (400, "InvalidBlockList")
    assert dest(azurite, azure_container)._refusal(info.value) == "precondition"


# -- wasb_service: the Airflow connection ------------------------------------------------------


def test_wasb_service_reaches_azurite_through_the_airflow_connection(
    azurite: AzuriteServer,
    azure_container: str,
    monkeypatch: pytest.MonkeyPatch,
    data_file: Callable[..., Path],
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_WASB_DEFAULT", azurite.connection_json())
    service, credentials = wasb_service("wasb_default", "VoiceCampaignSummaryToAzureOperator")
    assert credentials == "the Azure connection 'wasb_default'"
    user_agent = service._config.user_agent_policy.user_agent
    assert "Caller/VoiceCampaignSummaryToAzureOperator" in user_agent
    destination = AzureBlobDestination(service, azure_container, BLOB, credentials=credentials)
    destination.check_container()
    destination.prepare(stamp(), replace=False)
    destination.write(data_file(b"via WasbHook"), stamp(), records=1, content_type=GZIP)
    assert azurite.read(azure_container, BLOB) == b"via WasbHook"


def test_wasb_service_names_a_missing_connection(azurite: AzuriteServer) -> None:
    with pytest.raises(ConpeekConfigError, match=r"'wasb_typo' \(wasb_conn_id\) does not exist"):
        wasb_service("wasb_typo", "VoiceCampaignSummaryToAzureOperator")
    with pytest.raises(ConpeekConfigError, match="wasb_conn_id must be"):
        wasb_service("", "VoiceCampaignSummaryToAzureOperator")


def test_wasb_service_shows_no_secret_of_a_bad_connection(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "S3cr3tAccountKeyThatMustNeverBeShown=="
    broken = f"AccountKey={secret};NotAnEndpoint"  # no account name: the SDK refuses it
    monkeypatch.setenv(
        "AIRFLOW_CONN_WASB_BROKEN",
        json.dumps({"conn_type": "wasb", "extra": {"connection_string": broken}}),
    )
    with pytest.raises(ConpeekConfigError, match="'wasb_broken'") as info:
        wasb_service("wasb_broken", "VoiceCampaignSummaryToAzureOperator")
    assert secret not in str(info.value)
    assert "AccountKey" not in str(info.value)
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__
    assert secret not in caplog.text
    # An SDK whose own error quotes the connection string: still not shown.
    from azure.storage.blob import BlobServiceClient

    def quoting(conn_str: str, **kwargs: Any) -> Any:
        raise ValueError(f"Invalid connection string: {conn_str}")

    monkeypatch.setattr(BlobServiceClient, "from_connection_string", staticmethod(quoting))
    with pytest.raises(ConpeekConfigError, match="'wasb_broken'") as info:
        wasb_service("wasb_broken", "VoiceCampaignSummaryToAzureOperator")
    assert secret not in str(info.value)
    assert info.value.__cause__ is None
    assert secret not in caplog.text


def test_wasb_service_without_the_azure_provider_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "airflow.providers.microsoft.azure.hooks.wasb", None)
    install = r"pip install 'airflow-provider-conpeek\[azure\]'"
    with pytest.raises(ConpeekConfigError, match=install):
        wasb_service("wasb_default", "VoiceCampaignSummaryToAzureOperator")


def test_the_module_imports_the_azure_packages_only_when_used() -> None:
    """The Azure provider is an optional extra: nothing at module level imports it (nor the
    SDK); each function imports what it needs when called."""
    import ast

    import airflow_provider_conpeek.azurewrite as module

    tree = ast.parse(Path(module.__file__).read_text())
    top_level = [
        name
        for node in tree.body
        if isinstance(node, ast.Import | ast.ImportFrom)
        for name in (
            [alias.name for alias in node.names]
            if isinstance(node, ast.Import)
            else [node.module or ""]
        )
    ]
    assert top_level, "the module's imports were found"
    assert not [n for n in top_level if n.split(".")[0] == "azure" or "microsoft" in n]


def test_secrets_of_the_connection_are_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    """What ``wasb_service`` removes from an error's text: the password, every extra value
    and every value inside a connection string."""
    from airflow.providers.microsoft.azure.hooks.wasb import WasbHook

    from airflow_provider_conpeek.azurewrite import _connection_secrets, redact

    conn = {
        "conn_type": "wasb",
        "login": "acct",
        "password": "pw-secret-1",
        "extra": {"connection_string": "AccountName=acct;AccountKey=key-secret-2==", "x": 1},
    }
    monkeypatch.setenv("AIRFLOW_CONN_WASB_SECRETS", json.dumps(conn))
    secrets = _connection_secrets(WasbHook(wasb_conn_id="wasb_secrets"), "wasb_secrets")
    text = "bad AccountName=acct;AccountKey=key-secret-2== and pw-secret-1 (and key-secret-2==)"
    assert redact(text, secrets) == "bad *** and *** (and ***)"
