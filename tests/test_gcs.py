"""The Google Cloud Storage destination: every promise of the S3 one, on a real GCS JSON API.

``GCSDestination`` against gcp-storage-emulator over HTTP on loopback (``gcs_server.py``),
with no mock of any Google client. The emulator ignores ``ifGenerationMatch``; the
clearly labelled shim of ``gcs_server.py`` makes it answer 412 as GCS does, and the first
tests check both facts. A concurrent writer is another client writing between two calls of
the destination (after ``prepare``, or between two chunks through the cancel event the
destination checks before each chunk): the order is fixed, nothing waits on the clock.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from gcs_server import PROJECT, SHIM, GCSServer

from airflow_provider_conpeek import __version__
from airflow_provider_conpeek._compat import AirflowFailException
from airflow_provider_conpeek.destination import ObjectStamp
from airflow_provider_conpeek.exceptions import ConpeekConfigError
from airflow_provider_conpeek.gcswrite import GCSDestination, gcs_client
from airflow_provider_conpeek.objectwrite import WRITE_ID, ExtractCancelled

KEY = "out/day.jsonl.gz"
CHUNK = 256 * 1024  # GCS's smallest chunk: the emulator rewrites the session per chunk
GZIP = "application/gzip"


def stamp_of(day: int, filters: str = "[]") -> ObjectStamp:
    """The stamp of the window 2026-01-<day>, one day long."""
    return ObjectStamp(
        date_property="created_date",
        start=f"2026-01-{day:02d}T00:00:00Z",
        end=f"2026-01-{day + 1:02d}T00:00:00Z",
        filters=filters,
        filters_sha256=hashlib.sha256(filters.encode()).hexdigest(),
    )


DAY1, DAY2 = stamp_of(1), stamp_of(2)
SIZES = {"multipart": 1000, "resumable": 3 * CHUNK + 1000}  # one request; four chunks


def data_file(tmp_path: Path, size: int, seed: int = 1) -> Path:
    path = tmp_path / f"data-{size}-{seed}"
    path.write_bytes(random.Random(seed).randbytes(size))
    return path


def dest(
    server: GCSServer, bucket: str, key: str = KEY, cancel: threading.Event | None = None
) -> GCSDestination:
    return GCSDestination(server.client(), bucket, key, chunk_size=CHUNK, cancel=cancel)


def put(server: GCSServer, bucket: str, body: bytes, meta: dict[str, str] | None = None) -> int:
    """Another writer's object at KEY (unconditional, as any tool writes); its generation."""
    blob = server.client().bucket(bucket).blob(KEY)
    blob.metadata = meta
    blob.upload_from_string(body)
    return int(blob.generation)


def stamped(stamp: ObjectStamp) -> dict[str, str]:
    return stamp.metadata(records=7)


class CheckHook(threading.Event):
    """A cancel event that runs ``action`` when the destination checks it the ``at``-th
    time: check 1 is made before the upload, check k + 1 before the k-th chunk."""

    def __init__(self, at: int, action: Callable[[], object]) -> None:
        super().__init__()
        self.at, self.action, self.checks = at, action, 0

    def is_set(self) -> bool:
        self.checks += 1
        if self.checks == self.at:
            self.action()
        return super().is_set()


# -- the emulator, and the shim that makes it honour ifGenerationMatch ---------------------------


@pytest.fixture
def no_shim(gcs_bucket: str) -> Iterator[None]:
    SHIM.at_start = SHIM.at_finalise = False
    try:
        yield
    finally:
        SHIM.at_start = SHIM.at_finalise = True


@pytest.mark.parametrize("kind", ["multipart", "resumable"])
def test_the_emulator_alone_ignores_preconditions_and_keeps_metadata(
    gcs_server: GCSServer, gcs_bucket: str, no_shim: None, kind: str
) -> None:
    """gcp-storage-emulator 2026.7.19 on its own: ``ifGenerationMatch=0`` overwrites an
    existing object, and custom metadata survives both upload types. (Hence the shim.)"""
    bucket = gcs_server.client().bucket(gcs_bucket)
    chunk_size = CHUNK if kind == "resumable" else None
    for n in (1, 2):
        blob = bucket.blob(KEY, chunk_size=chunk_size)
        blob.metadata = {"conpeek-n": str(n)}
        body = bytes([n]) * SIZES[kind]
        blob.upload_from_file(io.BytesIO(body), size=len(body), if_generation_match=0)
    now = bucket.get_blob(KEY)
    assert now.metadata == {"conpeek-n": "2"}  # the second upload overwrote the first
    assert gcs_server.read(gcs_bucket, KEY) == bytes([2]) * SIZES[kind]


@pytest.mark.parametrize("kind", ["multipart", "resumable"])
def test_the_shim_refuses_like_gcs(gcs_server: GCSServer, gcs_bucket: str, kind: str) -> None:
    from google.api_core.exceptions import PreconditionFailed

    bucket = gcs_server.client().bucket(gcs_bucket)
    chunk_size = CHUNK if kind == "resumable" else None

    def upload(key: str, generation: int) -> int:
        blob = bucket.blob(key, chunk_size=chunk_size)
        body = b"x" * SIZES[kind]
        blob.upload_from_file(io.BytesIO(body), size=len(body), if_generation_match=generation)
        return int(blob.generation)

    first = upload(KEY, 0)
    for generation in (0, first + 1):  # something is there / not this one
        with pytest.raises(PreconditionFailed):
            upload(KEY, generation)
    with pytest.raises(PreconditionFailed):
        upload("missing", first)  # a generation of an object that does not exist: 412
    assert upload(KEY, first) != first  # the generation that is there: written
    assert gcs_server.keys(gcs_bucket) == [KEY]


def test_the_shim_refuses_a_resumable_upload_when_it_completes(
    gcs_server: GCSServer, gcs_bucket: str
) -> None:
    """GCS keeps the session's precondition and checks it when the object is created."""
    from google.cloud.storage.exceptions import InvalidResponse

    bucket = gcs_server.client().bucket(gcs_bucket)
    writer = bucket.blob(KEY).open("wb", chunk_size=CHUNK, if_generation_match=0)
    writer.write(b"a" * CHUNK)  # the session started: nothing was there
    refused = SHIM.refused
    put(gcs_server, gcs_bucket, b"theirs")
    writer.write(b"b" * 10)
    with pytest.raises(InvalidResponse) as info:
        writer.close()
    assert info.value.response.status_code == 412
    assert SHIM.refused == refused + 1
    assert gcs_server.read(gcs_bucket, KEY) == b"theirs"


# -- checked before anything else ----------------------------------------------------------------


def test_missing_bucket_is_a_clear_error(gcs_server: GCSServer, gcs_bucket: str) -> None:
    with pytest.raises(ConpeekConfigError, match="'no-such-bucket' does not exist") as info:
        dest(gcs_server, "no-such-bucket").check_bucket()
    assert isinstance(info.value, AirflowFailException)  # no retry can create it
    message = str(info.value)
    assert "Create it, or fix bucket_name" in message
    assert gcs_server.url in message
    assert "the Google Cloud connection 'google_cloud_default'" in message
    dest(gcs_server, gcs_bucket).check_bucket()  # an existing one passes


class Forbidden(BaseHTTPRequestHandler):
    """A GCS endpoint that denies everything, as GCS does for credentials without access."""

    status = 403

    def _deny(self) -> None:
        body = json.dumps(
            {"error": {"code": self.status, "message": "caller does not have access"}}
        ).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = do_POST = do_DELETE = _deny

    def log_message(self, *args: Any) -> None:
        pass


def denying_client(status: int) -> Iterator[Any]:
    """A storage client on a server that answers every request with ``status``."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    handler = type("Denied", (Forbidden,), {"status": status})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield storage.Client(
            project=PROJECT,
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": f"http://127.0.0.1:{server.server_address[1]}"},
        )
    finally:
        server.shutdown()
        server.server_close()


def test_no_access_names_the_permissions_and_the_credentials() -> None:
    for client in denying_client(403):
        denied = GCSDestination(
            client, "contact-centre", KEY, credentials="the Google Cloud connection 'gcs_ro'"
        )
        with pytest.raises(ConpeekConfigError, match="may not use bucket 'contact-centre'") as info:
            denied.check_bucket()
        message = str(info.value)
        assert message.startswith("The Google Cloud connection 'gcs_ro'")
        assert "HTTP 403 on buckets.get" in message
        for permission in ("storage.buckets.get", "storage.objects.get", "storage.objects.create"):
            assert permission in message
        assert "storage.objects.delete (to replace an object)" in message
        with pytest.raises(ConpeekConfigError, match="may not read gs://contact-centre/"):
            denied.head()


def test_rejected_credentials_are_named() -> None:
    """HTTP 401: the Google transport refreshes the credentials and tries again; credentials
    that cannot be refreshed (anonymous ones here) fail in google.auth."""
    for client in denying_client(401):
        denied = GCSDestination(
            client, "contact-centre", KEY, credentials="the Google Cloud connection 'gcs_ro'"
        )
        with pytest.raises(ConpeekConfigError, match="No usable Google credentials") as info:
            denied.check_bucket()
        assert "the Google Cloud connection 'gcs_ro'" in str(info.value)


# -- what the object says, and who may overwrite it ----------------------------------------------


def test_head_of_missing_foreign_and_own_objects(gcs_server: GCSServer, gcs_bucket: str) -> None:
    d = dest(gcs_server, gcs_bucket)
    assert d.head() is None
    generation = put(gcs_server, gcs_bucket, b"someone else's")
    foreign = d.head()
    assert foreign is not None
    assert (foreign.etag, foreign.stamp, foreign.size) == (str(generation), None, 14)
    generation = put(gcs_server, gcs_bucket, b"ours", stamped(DAY1))
    own = d.head()
    assert own is not None
    assert (own.etag, own.stamp, own.records, own.size) == (str(generation), DAY1, "7", 4)


@pytest.mark.parametrize("kind", ["multipart", "resumable"])
def test_new_object_carries_its_stamp_metadata_and_type(
    gcs_server: GCSServer, gcs_bucket: str, tmp_path: Path, kind: str
) -> None:
    d = dest(gcs_server, gcs_bucket)
    d.check_bucket()
    assert d.prepare(DAY1, replace=False) is None
    path = data_file(tmp_path, SIZES[kind])
    generation = d.write(path, DAY1, records=42, content_type=GZIP)

    blob = gcs_server.client().bucket(gcs_bucket).get_blob(KEY)  # a plain client
    assert str(blob.generation) == generation
    assert blob.content_type == GZIP
    assert blob.content_encoding is None  # a .gz file, not a transfer encoding
    assert blob.metadata == {
        "conpeek-endpoint": "voice_campaign_request_summary",
        "conpeek-date-property": "created_date",
        "conpeek-window-start": "2026-01-01T00:00:00Z",
        "conpeek-window-end": "2026-01-02T00:00:00Z",
        "conpeek-filters": "[]",
        "conpeek-filters-sha256": hashlib.sha256(b"[]").hexdigest(),
        "conpeek-records": "42",
        "conpeek-provider-version": __version__,
        WRITE_ID: d.write_id,
    }
    assert gcs_server.read(gcs_bucket, KEY) == path.read_bytes()
    assert gcs_server.sessions(gcs_bucket) == 0


def test_replace_true_overwrites_this_windows_object_only(
    gcs_server: GCSServer, gcs_bucket: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = dest(gcs_server, gcs_bucket)
    first.prepare(DAY1, replace=True)
    first.write(data_file(tmp_path, 100, 1), DAY1, records=1, content_type=GZIP)

    # The same window (even with other filters) is replaced, under ifGenerationMatch=<gen>.
    other_filters = stamp_of(1, '[{"property":"project_id_list","value":[11]}]')
    rerun = dest(gcs_server, gcs_bucket)
    existing = rerun.prepare(other_filters, replace=True)
    assert existing is not None
    assert rerun.condition.if_match == existing.etag
    assert "holds this window's extract with other filters" in caplog.text
    second = data_file(tmp_path, 100, 2)
    rerun.write(second, other_filters, records=2, content_type=GZIP)
    assert gcs_server.read(gcs_bucket, KEY) == second.read_bytes()

    # Another window's object, or one without the provider's metadata, is not.
    with pytest.raises(ConpeekConfigError, match="holds the extract of another window") as info:
        dest(gcs_server, gcs_bucket).prepare(DAY2, replace=True)
    assert "object_name=" in str(info.value)  # GCS's parameter names the fix
    put(gcs_server, gcs_bucket, b"someone else's")
    with pytest.raises(ConpeekConfigError, match="was not written by this operator") as info:
        dest(gcs_server, gcs_bucket).prepare(DAY1, replace=True)
    assert "conpeek-* metadata" in str(info.value)
    assert gcs_server.read(gcs_bucket, KEY) == b"someone else's"


def test_replace_false_refuses_and_always_overwrites(
    gcs_server: GCSServer, gcs_bucket: str, tmp_path: Path
) -> None:
    put(gcs_server, gcs_bucket, b"day 1", stamped(DAY1))
    with pytest.raises(ConpeekConfigError, match="already exists and replace=False"):
        dest(gcs_server, gcs_bucket).prepare(DAY1, replace=False)

    put(gcs_server, gcs_bucket, b"someone else's")
    d = dest(gcs_server, gcs_bucket)
    d.prepare(DAY2, replace="always")
    assert not d.condition.guarded
    path = data_file(tmp_path, 100)
    d.write(path, DAY2, records=1, content_type=GZIP)
    assert gcs_server.read(gcs_bucket, KEY) == path.read_bytes()
    meta = gcs_server.client().bucket(gcs_bucket).get_blob(KEY).metadata
    assert meta["conpeek-window-start"] == "2026-01-02T00:00:00Z"


# -- conditional writes: a concurrent writer between the checks and the write --------------------


@pytest.mark.parametrize("kind", ["multipart", "resumable"])
def test_another_window_written_meanwhile_is_not_overwritten(
    gcs_server: GCSServer, gcs_bucket: str, tmp_path: Path, kind: str
) -> None:
    d = dest(gcs_server, gcs_bucket)
    assert d.prepare(DAY1, replace=True) is None  # ifGenerationMatch=0
    put(gcs_server, gcs_bucket, b"day 2", stamped(DAY2))  # after the check, before the write
    with pytest.raises(ConpeekConfigError, match="holds the extract of another window") as info:
        d.write(data_file(tmp_path, SIZES[kind]), DAY1, records=1, content_type=GZIP)
    assert "[2026-01-02T00:00:00Z, 2026-01-03T00:00:00Z)" in str(info.value)
    assert gcs_server.read(gcs_bucket, KEY) == b"day 2"
    assert gcs_server.sessions(gcs_bucket) == 0


@pytest.mark.parametrize("kind", ["multipart", "resumable"])
def test_replace_false_is_atomic(
    gcs_server: GCSServer, gcs_bucket: str, tmp_path: Path, kind: str
) -> None:
    d = dest(gcs_server, gcs_bucket)
    assert d.prepare(DAY1, replace=False) is None
    put(gcs_server, gcs_bucket, b"theirs", stamped(DAY1))  # even this window's
    with pytest.raises(ConpeekConfigError, match="already exists and replace=False"):
        d.write(data_file(tmp_path, SIZES[kind]), DAY1, records=1, content_type=GZIP)
    assert gcs_server.read(gcs_bucket, KEY) == b"theirs"
    assert gcs_server.sessions(gcs_bucket) == 0


@pytest.mark.parametrize("kind", ["multipart", "resumable"])
def test_the_same_window_written_meanwhile_is_replaced(
    gcs_server: GCSServer,
    gcs_bucket: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    kind: str,
) -> None:
    d = dest(gcs_server, gcs_bucket)
    assert d.prepare(DAY1, replace=True) is None
    theirs = put(gcs_server, gcs_bucket, b"rerun", stamped(DAY1))  # a concurrent run
    path = data_file(tmp_path, SIZES[kind])
    generation = d.write(path, DAY1, records=1, content_type=GZIP)  # the last one wins
    assert int(generation) != theirs
    assert gcs_server.read(gcs_bucket, KEY) == path.read_bytes()
    assert "changed while this run paged (PreconditionFailed)" in caplog.text


@pytest.mark.parametrize("kind", ["multipart", "resumable"])
def test_an_object_replaced_meanwhile_is_decided_again(
    gcs_server: GCSServer, gcs_bucket: str, tmp_path: Path, kind: str
) -> None:
    """The key held this window's object at the check (``ifGenerationMatch=<gen>``); another
    object replaced it while the extract paged."""
    put(gcs_server, gcs_bucket, b"day 1", stamped(DAY1))
    d = dest(gcs_server, gcs_bucket)
    d.prepare(DAY1, replace=True)
    put(gcs_server, gcs_bucket, b"day 2", stamped(DAY2))
    with pytest.raises(ConpeekConfigError, match="holds the extract of another window"):
        d.write(data_file(tmp_path, SIZES[kind]), DAY1, records=1, content_type=GZIP)
    assert gcs_server.read(gcs_bucket, KEY) == b"day 2"

    put(gcs_server, gcs_bucket, b"day 1", stamped(DAY1))
    d = dest(gcs_server, gcs_bucket)
    d.prepare(DAY1, replace=True)
    put(gcs_server, gcs_bucket, b"day 1, again", stamped(DAY1))  # the same window: replaced
    path = data_file(tmp_path, SIZES[kind])
    d.write(path, DAY1, records=1, content_type=GZIP)
    assert gcs_server.read(gcs_bucket, KEY) == path.read_bytes()


def test_the_object_deleted_meanwhile_is_written_anew(
    gcs_server: GCSServer, gcs_bucket: str, tmp_path: Path
) -> None:
    put(gcs_server, gcs_bucket, b"day 1", stamped(DAY1))
    d = dest(gcs_server, gcs_bucket)
    d.prepare(DAY1, replace=True)
    assert d.condition.if_match is not None
    gcs_server.client().bucket(gcs_bucket).blob(KEY).delete()
    path = data_file(tmp_path, 100)
    d.write(path, DAY1, records=1, content_type=GZIP)
    assert gcs_server.read(gcs_bucket, KEY) == path.read_bytes()


def test_a_resent_write_that_had_landed_is_this_extracts_own(
    gcs_server: GCSServer, gcs_bucket: str, tmp_path: Path
) -> None:
    """An upload whose answer was lost lands; python-storage resends it (it retries under a
    generation precondition) and GCS refuses it with 412: the object carries this extract's
    write id, so the write is done (with replace=False, not "already exists")."""
    d = dest(gcs_server, gcs_bucket)
    assert d.prepare(DAY1, replace=False) is None
    path = data_file(tmp_path, 100)
    first = d.write(path, DAY1, records=1, content_type=GZIP)
    assert d.write(path, DAY1, records=1, content_type=GZIP) == first  # the "resend"
    with pytest.raises(ConpeekConfigError, match="replace=False"):  # another extract
        dest(gcs_server, gcs_bucket).prepare(DAY1, replace=False)


def test_a_byte_identical_rewrite_keeps_the_bytes(
    gcs_server: GCSServer, gcs_bucket: str, tmp_path: Path
) -> None:
    path = data_file(tmp_path, SIZES["resumable"])
    generations = []
    for _ in range(2):
        d = dest(gcs_server, gcs_bucket)
        d.prepare(DAY1, replace=True)
        generations.append(d.write(path, DAY1, records=3, content_type=GZIP))
        assert gcs_server.read(gcs_bucket, KEY) == path.read_bytes()
    assert generations[0] != generations[1]  # a new generation, the same bytes


# -- streaming, cancel and abort ------------------------------------------------------------------


def test_a_large_file_is_streamed_chunk_by_chunk(
    gcs_server: GCSServer, gcs_bucket: str, tmp_path: Path
) -> None:
    cancel = CheckHook(0, lambda: None)
    d = dest(gcs_server, gcs_bucket, cancel=cancel)
    d.prepare(DAY1, replace=True)
    path = data_file(tmp_path, 5 * CHUNK + 123)
    d.write(path, DAY1, records=1, content_type=GZIP)
    assert cancel.checks == 1 + 6  # once before the upload, then before each of 6 chunks
    assert gcs_server.read(gcs_bucket, KEY) == path.read_bytes()
    assert gcs_server.sessions(gcs_bucket) == 0


@pytest.mark.parametrize("at", [2, 3, 5], ids=["first-chunk", "second-chunk", "last-chunk"])
def test_cancel_between_chunks_leaves_no_object(
    gcs_server: GCSServer, gcs_bucket: str, tmp_path: Path, at: int
) -> None:
    cancel = CheckHook(at, lambda: cancel.set())
    d = dest(gcs_server, gcs_bucket, cancel=cancel)
    d.prepare(DAY1, replace=True)
    cancelled = SHIM.cancelled
    with pytest.raises(ExtractCancelled, match="the task was killed"):
        d.write(data_file(tmp_path, SIZES["resumable"]), DAY1, records=1, content_type=GZIP)
    assert gcs_server.keys(gcs_bucket) == []  # never finalised
    assert gcs_server.sessions(gcs_bucket) == 0  # and the session was cancelled
    assert SHIM.cancelled == cancelled + 1
    d.abort()  # nothing left to abort: a no-op


def test_abort_from_on_kill_mid_upload_is_safe_and_idempotent(
    gcs_server: GCSServer, gcs_bucket: str, tmp_path: Path
) -> None:
    """``on_kill`` sets the event and aborts, here between the first and second chunk."""

    def kill() -> None:
        cancel.set()
        d.abort()
        d.abort()

    cancel = CheckHook(3, kill)
    d = dest(gcs_server, gcs_bucket, cancel=cancel)
    d.abort()  # before any upload: a no-op
    d.prepare(DAY1, replace=True)
    with pytest.raises(ExtractCancelled):
        d.write(data_file(tmp_path, SIZES["resumable"]), DAY1, records=1, content_type=GZIP)
    assert gcs_server.keys(gcs_bucket) == []
    assert gcs_server.sessions(gcs_bucket) == 0
    d.abort()


def test_abort_never_raises_when_the_session_cannot_be_cancelled(
    gcs_server: GCSServer, gcs_bucket: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The server went away between two chunks: the cancellation fails, is logged, and the
    upload fails with the server's error; the object was never finalised."""
    path = data_file(tmp_path, SIZES["resumable"])
    with GCSServer() as doomed:
        doomed.fresh_bucket(gcs_bucket)
        d = GCSDestination(doomed.client(), gcs_bucket, KEY, chunk_size=CHUNK)
        d.prepare(DAY1, replace="always")  # no precondition: no retries of the failed chunk
        d.cancel = CheckHook(3, doomed.stop)
        with pytest.raises(Exception) as info:  # noqa: PT011 (whatever the transport raises)
            d.write(path, DAY1, records=1, content_type=GZIP)
        assert not isinstance(info.value, ExtractCancelled)
    assert "Could not cancel the resumable upload" in caplog.text
    d.abort()


@pytest.mark.parametrize("at_finalise", [False, True], ids=["start-only", "gcs"])
def test_a_writer_during_the_upload_is_caught_before_the_last_chunk(
    gcs_server: GCSServer, gcs_bucket: str, tmp_path: Path, at_finalise: bool
) -> None:
    """Another writer between two chunks. If GCS evaluated ``ifGenerationMatch`` only when
    the session starts (``start-only``: the shim checks only then), the last chunk would
    overwrite its object: the destination looks once more before sending it."""
    SHIM.at_finalise = at_finalise
    d = dest(gcs_server, gcs_bucket)
    d.prepare(DAY1, replace=True)
    d.cancel = CheckHook(3, lambda: put(gcs_server, gcs_bucket, b"day 2", stamped(DAY2)))
    with pytest.raises(ConpeekConfigError, match="holds the extract of another window"):
        d.write(data_file(tmp_path, SIZES["resumable"]), DAY1, records=1, content_type=GZIP)
    assert gcs_server.read(gcs_bucket, KEY) == b"day 2"
    assert gcs_server.sessions(gcs_bucket) == 0


def test_chunk_size_must_be_a_multiple_of_256_kib(gcs_server: GCSServer) -> None:
    with pytest.raises(ValueError, match="multiple of 256 KiB"):
        GCSDestination(gcs_server.client(), "b", KEY, chunk_size=1000)


# -- gcs_client: GCSHook, its connection and the optional provider -------------------------------


def test_gcs_client_through_gcshook_writes_to_the_emulator(
    gcs_server: GCSServer, gcs_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", gcs_server.connection_json())
    client, credentials = gcs_client("google_cloud_default", None, "ToGCSOperator")
    assert credentials == "the Google Cloud connection 'google_cloud_default'"
    d = GCSDestination(client, gcs_bucket, KEY, credentials=credentials, chunk_size=CHUNK)
    d.check_bucket()
    d.prepare(DAY1, replace=False)
    path = data_file(tmp_path, 100)
    d.write(path, DAY1, records=1, content_type=GZIP)
    assert gcs_server.read(gcs_bucket, KEY) == path.read_bytes()
    with pytest.raises(ConpeekConfigError, match="'no-such-bucket' does not exist") as info:
        GCSDestination(client, "no-such-bucket", KEY, credentials=credentials).check_bucket()
    assert "as seen with the Google Cloud connection 'google_cloud_default'" in str(info.value)


def test_gcs_client_names_a_missing_connection(gcs_server: GCSServer) -> None:
    with pytest.raises(
        ConpeekConfigError, match=r"'gcp_typo' \(gcp_conn_id\) does not exist"
    ) as info:
        gcs_client("gcp_typo", None, "ToGCSOperator")
    assert "gcp_conn_id=None" in str(info.value)
    assert isinstance(info.value, AirflowFailException)
    with pytest.raises(ConpeekConfigError, match="gcp_conn_id must be the id"):
        gcs_client(" ", None, "ToGCSOperator")


def test_gcs_client_without_the_google_provider_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The provider's module made unimportable (None in sys.modules: ImportError on import).
    monkeypatch.setitem(sys.modules, "airflow.providers.google.cloud.hooks.gcs", None)
    with pytest.raises(ConpeekConfigError) as info:
        gcs_client("google_cloud_default", None, "VoiceCampaignSummaryToGCSOperator")
    message = str(info.value)
    assert "pip install 'airflow-provider-conpeek[google]'" in message
    assert message.startswith("VoiceCampaignSummaryToGCSOperator writes to Google Cloud Storage")


def test_importing_the_module_imports_no_google_library() -> None:
    """The Google provider is an optional extra: nothing is imported before a task runs."""
    code = (
        "import sys\n"
        "import airflow_provider_conpeek.objectwrite\n"
        "before = set(sys.modules)\n"
        "import airflow_provider_conpeek.gcswrite\n"
        "new = sorted(m for m in set(sys.modules) - before if 'google' in m)\n"
        "assert not new, new\n"
        "assert 'google.cloud.storage' not in sys.modules\n"
        "assert 'airflow.providers.google.cloud.hooks.gcs' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
