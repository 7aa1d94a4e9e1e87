"""A real Google Cloud Storage JSON API on 127.0.0.1: gcp-storage-emulator, in this process.

* :class:`GCSServer`: the emulator's HTTP server on a free loopback port (one thread of this
  process, in memory), a ``google.cloud.storage.Client`` on it (:meth:`~GCSServer.client`),
  fresh buckets, and the ``AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT`` value for ``GCSHook``
  (:meth:`~GCSServer.connection_json`).
* The pytest fixtures :func:`gcs_server` (one per session) and :func:`gcs_bucket` (a fresh,
  empty bucket per test). Test modules import them by name (and use the names, so that
  ruff sees them used)::

      from gcs_server import gcs_bucket, gcs_server

      FIXTURES = (gcs_server, gcs_bucket)

**How GCSHook reaches it.** ``GCSHook`` has no endpoint setting: ``google-cloud-storage``
sends every request to ``$STORAGE_EMULATOR_HOST`` when that variable is set and the client
is given no ``api_endpoint``. :meth:`GCSServer.environment` is that variable; the
``gcs_server`` fixture sets it for the whole session (nothing in these tests talks to the
real GCS). The connection sets ``is_anonymous`` (the hook then sends no credentials and
looks for none) and a ``project``.

**Precondition shim (test-only, clearly not the emulator's own behaviour).**
gcp-storage-emulator 2026.7.19 ignores ``ifGenerationMatch`` on every upload: media,
multipart and resumable uploads overwrite unconditionally (its ``handlers/objects.py`` never
reads the parameter; checked by :func:`test_gcs.test_the_emulator_alone_ignores_preconditions`).
Real GCS answers HTTP 412 ``conditionNotMet`` when ``ifGenerationMatch`` does not hold:
``0`` means "no live object", ``<n>`` means "the live object has generation n" (so a missing
object fails ``<n>`` too). Without enforcement every collision test would pass vacuously,
so :func:`install_precondition_shim` wraps the emulator's upload handlers (the entries of
its ``server.HANDLERS`` table, not the Google client) to do what GCS does:

* ``objects.insert`` (``uploadType=media``/``multipart``, and the start of a resumable
  upload) and ``objects.upload_partial`` (the chunk that completes a resumable upload):
  the object is created only if ``ifGenerationMatch`` holds at that moment, else 412.
  (The emulator's session URL repeats the start request's query, so the completing chunk
  carries the condition, as GCS remembers it for the session.) :attr:`PreconditionShim.at_start`
  and :attr:`PreconditionShim.at_finalise` switch the two checks, to model a server that
  evaluates the condition only when the session starts.
* ``DELETE`` on a session URL cancels the resumable upload (GCS answers 499), which the
  emulator does not implement (501).

Example::

    with GCSServer() as server:
        bucket = server.fresh_bucket("b")
        server.client().bucket(bucket).blob("k").upload_from_string(b"x", if_generation_match=0)
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import pytest
from processes import free_port

PROJECT = "conpeek-test"
PRECONDITION_FAILED = {
    "error": {
        "code": 412,
        "message": "At least one of the pre-conditions you specified did not hold.",
        "errors": [
            {
                "domain": "global",
                "reason": "conditionNotMet",
                "message": "At least one of the pre-conditions you specified did not hold.",
                "locationType": "header",
                "location": "If-Match",
            }
        ],
    }
}


@dataclass
class _Status:
    """An HTTP status the emulator's ``Response`` can send (it needs ``value`` and ``phrase``)."""

    value: int
    phrase: str


CLIENT_CLOSED = _Status(499, "Client Closed Request")  # GCS's answer to a cancelled session


@dataclass
class PreconditionShim:
    """Which ``ifGenerationMatch`` checks the shim makes, and what it saw (for tests)."""

    at_start: bool = True
    at_finalise: bool = True
    refused: int = 0
    cancelled: int = 0


SHIM = PreconditionShim()
_INSTALLED = False


def _condition_holds(storage: Any, bucket: str, name: str, wanted: str) -> bool:
    from gcp_storage_emulator.exceptions import NotFound

    try:
        live: str | None = storage.get_file_obj(bucket, name)["generation"]
    except NotFound:
        live = None
    if int(wanted) == 0:
        return live is None
    return live is not None and int(live) == int(wanted)


def _refuse(response: Any) -> None:
    SHIM.refused += 1
    response.status = HTTPStatus.PRECONDITION_FAILED
    response.json(PRECONDITION_FAILED)


class _Refused(Exception):
    """Raised by :class:`_GuardedStorage` instead of creating the object."""


class _GuardedStorage:
    """The emulator's storage, whose ``create_file`` (every upload ends there) first checks
    the request's ``ifGenerationMatch``: the check and the write are one step, because the
    emulator serves one request at a time."""

    def __init__(self, storage: Any, wanted: str) -> None:
        self._storage, self._wanted = storage, wanted

    def create_file(self, bucket: str, name: str, *args: Any, **kwargs: Any) -> Any:
        if SHIM.at_finalise and not _condition_holds(self._storage, bucket, name, self._wanted):
            raise _Refused
        return self._storage.create_file(bucket, name, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._storage, name)


def _guarded(handler: Any, *, starts_session: bool) -> Any:
    def guarded(request: Any, response: Any, storage: Any, *args: Any, **kwargs: Any) -> Any:
        wanted = (request.query.get("ifGenerationMatch") or [None])[0]
        if wanted is None:
            return handler(request, response, storage, *args, **kwargs)
        resumable_start = (
            starts_session
            and (request.query.get("uploadType") or [""])[0] == "resumable"
            and "upload_id" not in request.query
        )
        if resumable_start:
            name = (request.query.get("name") or [None])[0] or (request.data or {}).get("name")
            bucket = request.params["bucket_name"]
            if SHIM.at_start and not _condition_holds(storage, bucket, name, wanted):
                _refuse(response)
                return None
            return handler(request, response, storage, *args, **kwargs)
        try:
            return handler(request, response, _GuardedStorage(storage, wanted), *args, **kwargs)
        except _Refused:
            _refuse(response)
            return None

    guarded.__name__ = f"precondition_shim_{handler.__name__}"
    return guarded


def _cancel_session(request: Any, response: Any, storage: Any, *args: Any, **kwargs: Any) -> None:
    """``DELETE <session URL>``: the resumable upload is cancelled (GCS answers 499)."""
    from gcp_storage_emulator.exceptions import NotFound
    from gcp_storage_emulator.storage import RESUMABLE_DIR

    upload_id = (request.query.get("upload_id") or [None])[0]
    try:
        storage.delete_resumable_file_obj(upload_id)
    except NotFound:
        response.status = HTTPStatus.NOT_FOUND
        return
    with contextlib.suppress(Exception):  # the chunks received so far
        storage._delete_file(RESUMABLE_DIR, storage.safe_id(upload_id))
    SHIM.cancelled += 1
    response.status = CLIENT_CLOSED


def install_precondition_shim() -> None:
    """Make the emulator's upload handlers enforce ``ifGenerationMatch`` (see module doc).

    Idempotent; the emulator's handler table is module state, so it applies to every
    emulator server of this process.
    """
    global _INSTALLED
    if _INSTALLED:
        return
    from gcp_storage_emulator import server, settings
    from gcp_storage_emulator.handlers import objects

    upload_route = rf"^{settings.UPLOAD_API_ENDPOINT}/b/(?P<bucket_name>[-.\w]+)/o$"
    for regex, handlers in server.HANDLERS:
        if regex == upload_route:
            assert handlers[server.POST] is objects.insert, "emulator layout changed"
            assert handlers[server.PUT] is objects.upload_partial, "emulator layout changed"
            handlers[server.POST] = _guarded(objects.insert, starts_session=True)
            handlers[server.PUT] = _guarded(objects.upload_partial, starts_session=False)
            handlers[server.DELETE] = _cancel_session
            break
    else:
        raise AssertionError(f"gcp-storage-emulator has no route {upload_route!r} any more")
    _INSTALLED = True


class GCSServer:
    """gcp-storage-emulator's JSON API over real HTTP on 127.0.0.1, served by a thread,
    with the ``ifGenerationMatch`` shim installed (see the module doc; :data:`SHIM` switches
    its checks)."""

    def __init__(self) -> None:
        from gcp_storage_emulator.server import create_server

        for name in ("api.object", "api.bucket", "gcp_storage_emulator.server"):
            logging.getLogger(name).setLevel(logging.ERROR)  # a line per request otherwise
        install_precondition_shim()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = create_server("127.0.0.1", self.port, in_memory=True)
        self._server.start()

    def __enter__(self) -> GCSServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def storage(self) -> Any:
        """The emulator's storage (to look at pending resumable sessions)."""
        return self._server._storage

    def environment(self) -> dict[str, str]:
        """What ``GCSHook`` needs to reach this server: ``STORAGE_EMULATOR_HOST``."""
        return {"STORAGE_EMULATOR_HOST": self.url}

    def client(self) -> Any:
        """A ``google.cloud.storage.Client`` on this server (anonymous credentials)."""
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(
            project=PROJECT,
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": self.url},
        )

    def connection_json(self) -> str:
        """An ``AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT`` value for this server (with
        :meth:`environment` set: the connection has no endpoint)."""
        extra = {"is_anonymous": True, "project": PROJECT}
        return json.dumps({"conn_type": "google_cloud_platform", "extra": extra})

    def fresh_bucket(self, name: str) -> str:
        """Bucket ``name``, created, or emptied if it exists already."""
        from google.api_core.exceptions import NotFound

        client = self.client()
        try:
            bucket = client.get_bucket(name)
        except NotFound:
            client.create_bucket(name)
            return name
        for blob in list(client.list_blobs(bucket)):
            blob.delete()
        return name

    def read(self, bucket: str, key: str) -> bytes:
        data: bytes = self.client().bucket(bucket).blob(key).download_as_bytes()
        return data

    def keys(self, bucket: str) -> list[str]:
        return sorted(blob.name for blob in self.client().list_blobs(bucket))

    def sessions(self, bucket: str) -> int:
        """How many resumable uploads into ``bucket`` are started, and neither completed nor
        cancelled."""
        return sum(1 for obj in self.storage.resumable.values() if obj.get("bucket") == bucket)

    def stop(self) -> None:
        self._server.stop()


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[GCSServer]:
    """The emulator for the session, with ``STORAGE_EMULATOR_HOST`` pointing at it."""
    with GCSServer() as server:
        before = {name: os.environ.get(name) for name in server.environment()}
        os.environ.update(server.environment())
        try:
            yield server
        finally:
            for name, value in before.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


@pytest.fixture
def gcs_bucket(gcs_server: GCSServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, empty bucket for one test, with the shim's checks all on (and back on
    after the test, whatever it switched)."""
    SHIM.at_start = SHIM.at_finalise = True
    name = "t-" + "".join(c if c.isalnum() else "-" for c in request.node.name.lower())[:50]
    try:
        yield gcs_server.fresh_bucket(name.strip("-") + f"-{os.getpid() % 1000}")
    finally:
        SHIM.at_start = SHIM.at_finalise = True
