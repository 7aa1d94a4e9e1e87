"""Azurite's Blob Storage API on 127.0.0.1, as a subprocess, for the Azure tests.

* :class:`AzuriteServer`: ``azurite-blob`` (the npm package pinned in
  ``ci/azurite/package-lock.json``, installed by ``make azurite``) on a free port, in memory,
  with a ``BlobServiceClient`` for the well-known ``devstoreaccount1`` account and the
  ``AIRFLOW_CONN_WASB_DEFAULT`` value pointing at it.
* The fixtures ``azurite`` (one server per session) and ``azure_container`` (a fresh, empty
  container per test). A test module imports them::

      from azurite_server import azure_container, azurite  # noqa: F401
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from processes import Process, free_port, wait_for

ROOT = Path(__file__).resolve().parent.parent
AZURITE_BLOB = ROOT / "ci" / "azurite" / "node_modules" / ".bin" / "azurite-blob"
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = (  # Azurite's documented development key: public, not a secret
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
START_TIMEOUT = 60.0  # a loaded 2-core machine starts node slowly
STOP_GRACE = 1.0
START_ATTEMPTS = 3  # the free port may be taken between free_port() and Azurite's bind


class AzuriteServer:
    """``azurite-blob`` on 127.0.0.1 (a free port), in memory, for the lifetime of the object.

    ``--skipApiVersionCheck``: every new azure-storage-blob release sends an ``x-ms-version``
    this Azurite may not know yet. ``--loose``: headers Azurite does not implement are ignored
    instead of refused.

    :raises RuntimeError: when the binary is missing (run ``make azurite``), or Azurite does
        not start.

    Example::

        with AzuriteServer() as azurite:
            container = azurite.fresh_container("extracts")
            azurite.service().get_blob_client(container, "a").upload_blob(b"1")
    """

    def __init__(self, binary: Path = AZURITE_BLOB) -> None:
        if not binary.exists():
            raise RuntimeError(
                f"Azurite is not installed ({binary} is missing). Run `make azurite` (it "
                "installs the pinned version from ci/azurite/package-lock.json with npm)."
            )
        if shutil.which("node") is None:
            raise RuntimeError("Azurite needs Node.js: `node` is not on PATH.")
        self._dir = Path(tempfile.mkdtemp(prefix="conpeek-azurite-"))
        self._process: Process | None = None
        try:
            self._start(binary)
        except BaseException:
            self.stop()
            raise

    def _start(self, binary: Path) -> None:
        for attempt in range(1, START_ATTEMPTS + 1):
            self.port = free_port()
            self.endpoint_url = f"http://127.0.0.1:{self.port}/{ACCOUNT}"
            process = Process(
                "azurite-blob",
                [
                    str(binary),
                    "--blobHost",
                    "127.0.0.1",
                    "--blobPort",
                    str(self.port),
                    "--inMemoryPersistence",
                    "--skipApiVersionCheck",
                    "--silent",
                    "--loose",
                ],
                os.environ,
                self._dir / f"azurite-{attempt}.log",
            )
            self._process = process
            try:
                wait_for(
                    "Azurite to answer",
                    self._answers,
                    START_TIMEOUT,
                    interval=0.1,
                    alive=process.check_alive,
                )
                return
            except RuntimeError:  # exited: the port was taken meanwhile, most likely
                process.kill()
                self._process = None
                if attempt == START_ATTEMPTS:
                    raise

    def _answers(self) -> bool:
        """Whether anything answers HTTP on the port (Azurite: 403 to an unsigned request)."""
        try:
            url = f"{self.endpoint_url}?comp=list"  # http://127.0.0.1:<port>/...
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310
                return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False

    def __enter__(self) -> AzuriteServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Terminate Azurite (SIGTERM, then SIGKILL after a second); idempotent.

        On SIGTERM Azurite waits for the clients' idle keep-alive connections to close, which
        a client still open never does; in memory it has nothing to save, so the grace is
        short."""
        process, self._process = self._process, None
        if process is not None:
            process.stop(grace=STOP_GRACE)
        shutil.rmtree(self._dir, ignore_errors=True)

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={self.endpoint_url};"
        )

    def service(self, account_key: str = ACCOUNT_KEY) -> Any:
        """A ``BlobServiceClient`` for this server (another key: one Azurite refuses)."""
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(
            self.connection_string.replace(ACCOUNT_KEY, account_key)
        )

    def connection_json(self, **extra: Any) -> str:
        """An ``AIRFLOW_CONN_WASB_DEFAULT`` value pointing at this server."""
        return json.dumps(
            {"conn_type": "wasb", "extra": {"connection_string": self.connection_string, **extra}}
        )

    def fresh_container(self, name: str) -> str:
        """Container ``name``, created, or emptied if it exists already."""
        container = self.service().get_container_client(name)
        if container.exists():
            for blob in container.list_blobs():
                container.delete_blob(blob.name)
        else:
            container.create_container()
        return name

    def read(self, container: str, blob: str) -> bytes:
        data: bytes = self.service().get_blob_client(container, blob).download_blob().readall()
        return data

    def blobs(self, container: str) -> list[str]:
        return [b.name for b in self.service().get_container_client(container).list_blobs()]


@pytest.fixture(scope="session")
def azurite() -> Iterator[AzuriteServer]:
    """Azurite for the whole session (fails, not skips, when ``make azurite`` was not run)."""
    with AzuriteServer() as server:
        yield server


_numbers = itertools.count(1)


@pytest.fixture
def azure_container(azurite: AzuriteServer, request: pytest.FixtureRequest) -> str:
    """A fresh, empty container for one test (a valid name: 3-63 characters, lower-case
    letters, digits and single hyphens)."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")
    name = f"t{next(_numbers):04d}-{slug}"[:63].rstrip("-")
    return azurite.fresh_container(name)
