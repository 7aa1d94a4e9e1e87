"""Background processes for the tests and the dev scripts: :class:`Process` runs one command
in its own process group with its output in a log file, and stopping it stops every child it
started; :func:`wait_for` polls until something is ready (or the process died);
:func:`free_port` picks a loopback port.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(
    what: str,
    check: Callable[[], T | None],
    timeout: float,
    *,
    interval: float = 0.5,
    alive: Callable[[], None] | None = None,
) -> T:
    """Call ``check`` until it returns something truthy; ``alive`` raises if a process died."""
    deadline = time.monotonic() + timeout
    while True:
        if alive is not None:
            alive()
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"Timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


class Process:
    """One command in its own session (process group), stdout and stderr to ``log``."""

    def __init__(self, name: str, cmd: Sequence[str], env: Mapping[str, str], log: Path) -> None:
        self.name = name
        self.cmd = list(cmd)
        self.log = log
        self._out = log.open("wb")
        self.popen = subprocess.Popen(
            self.cmd,
            env=dict(env),
            stdout=self._out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def check_alive(self) -> None:
        code = self.popen.poll()
        if code is not None:
            raise RuntimeError(f"{self.name} exited with {code}; last output:\n{self.tail()}")

    def tail(self, chars: int = 4000) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")[-chars:]
        return ""

    def terminate(self) -> None:
        """SIGTERM the whole process group (the leader and every child it started)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)  # new session: group id == leader's pid

    def kill(self) -> None:
        """SIGKILL whatever is left of the group, reap the leader, close the log."""
        # Children (uvicorn workers, executor workers, task supervisors) may outlive the
        # leader: kill the group unconditionally.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=5)
        self._out.close()

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the group, wait up to ``grace`` seconds for the leader, then SIGKILL."""
        self.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=grace)
        self.kill()
