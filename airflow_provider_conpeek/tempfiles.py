"""Temporary files of extracts: one recognisable place, and no leftovers.

Every extract writes its records into its own directory,
``<tempdir>/airflow-provider-conpeek-<uid>/<host>-<pid>-<random>/``, removed when the extract
ends (succeeded, failed or killed with SIGTERM). A process killed with SIGKILL cannot remove
its own: the next extract on the same host removes every directory whose process no longer
exists, and never the directory of a live process (this one's included).

``<uid>`` keeps users apart on a shared ``/tmp``; ``<host>`` keeps hosts apart when a temp
directory is shared (a volume mounted by several workers), since a pid means nothing on
another host.

Example::

    with ExtractDir() as tmp:  # removes dead processes' leftovers first
        (tmp.path / "records.jsonl.gz").write_bytes(b"...")
    # tmp.path is gone
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import stat
import tempfile
from pathlib import Path

from airflow_provider_conpeek.exceptions import ConpeekConfigError

log = logging.getLogger(__name__)

ROOT_NAME = "airflow-provider-conpeek"
_ENTRY = re.compile(r"^(?P<host>.+)-(?P<pid>\d+)-[^-]+$")


def root_dir() -> Path:
    """``<tempdir>/airflow-provider-conpeek-<uid>``: where every extract's directory lives."""
    getuid = getattr(os, "getuid", None)
    name = ROOT_NAME if getuid is None else f"{ROOT_NAME}-{getuid()}"
    return Path(tempfile.gettempdir()) / name


def host_label() -> str:
    """This host's name as it appears in directory names (safe characters only)."""
    name = re.sub(r"[^A-Za-z0-9.]+", "_", socket.gethostname())[:60]
    return name or "localhost"


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (another user's counts too)."""
    if pid <= 0:
        return True  # not a pid of ours to judge: keep
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _ensure_root() -> Path:
    root = root_dir()
    root.mkdir(mode=0o700, exist_ok=True)
    info = os.lstat(root)
    getuid = getattr(os, "getuid", None)
    if not stat.S_ISDIR(info.st_mode) or (getuid is not None and info.st_uid != getuid()):
        raise ConpeekConfigError(
            f"{root} is not a directory owned by this user (a link, a file or another "
            "user's directory). Remove it, or point TMPDIR elsewhere."
        )
    return root


def sweep_leftovers(root: Path | None = None) -> list[Path]:
    """Remove the directories of this host's processes that no longer exist.

    :returns: the directories removed.
    """
    root = root or root_dir()
    if os.name != "posix" or not root.is_dir():
        return []
    host, me = host_label(), os.getpid()
    removed = []
    for entry in sorted(root.iterdir()):
        match = _ENTRY.match(entry.name)
        if match is None or match["host"] != host or not entry.is_dir():
            continue
        pid = int(match["pid"])
        if pid == me or pid_alive(pid):
            continue
        try:  # another extract's sweep may be removing it at the same time
            size = sum(f.stat().st_size for f in entry.rglob("*") if f.is_file())
        except OSError:
            size = 0
        shutil.rmtree(entry, ignore_errors=True)
        if entry.exists():
            continue
        log.info(
            "Removed %s (%d bytes), left behind by process %d, which no longer exists.",
            entry,
            size,
            pid,
        )
        removed.append(entry)
    return removed


class ExtractDir:
    """A fresh directory for one extract, in :func:`root_dir`; :meth:`remove` is idempotent.

    Creating one first removes the leftovers of dead processes (:func:`sweep_leftovers`).

    Example::

        tmp = ExtractDir()
        try:
            ...  # write into tmp.path
        finally:
            tmp.remove()
    """

    def __init__(self) -> None:
        root = _ensure_root()
        sweep_leftovers(root)
        prefix = f"{host_label()}-{os.getpid()}-"
        self.path = Path(tempfile.mkdtemp(prefix=prefix, dir=root))

    def remove(self) -> None:
        """Delete the directory and everything in it (files still open included)."""
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> ExtractDir:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.remove()
