"""A run's lock: an exclusive `flock` on `<run>/.lock`, held while a process executes the run, with the holder's
host and pid written in the file (`<host> <pid>`, cleared on release).

A process killed with -9 loses its flock at once but leaves its line, so whether a run is still executing is
read from both: the lock is probed (a shared flock taken and dropped at once; a read-only store allows it), and
the line says who held it last. A holder on another host whose lock this host cannot see is taken as alive.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path


class RunLocked(RuntimeError):
    """Another process is executing this run."""


@dataclass(frozen=True)
class Holder:
    """Who holds (or last held) a lock, and whether it still does (None: another host, cannot be told)."""

    host: str
    pid: int
    alive: bool | None

    def __str__(self) -> str:
        return f"pid {self.pid} on {self.host}"


class RunLock:
    """The lock file of one run (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock and write this process's host and pid in it; RunLocked at once when another holds it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunLocked(str(self.path.parent)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{socket.gethostname()} {os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def wait(self, poll_seconds: float = 0.5) -> None:
        """Block until no process holds the lock (another may take it at once after: callers try again)."""
        while self.held():
            time.sleep(poll_seconds)

    def held(self) -> bool:
        """Whether a process holds the lock now (a probe that takes a shared flock and drops it)."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        except OSError:
            return self._line_alive()
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        finally:
            os.close(fd)

    def holder(self) -> Holder | None:
        """The process written in the lock and whether it still holds it; None when the file names nobody (never
        taken, or released)."""
        line = self._line()
        if line is None:
            return None
        host, pid = line
        if self.held():
            return Holder(host, pid, True)
        return Holder(host, pid, False if host == socket.gethostname() else None)

    def _line(self) -> tuple[str, int] | None:
        try:
            text = self.path.read_text(errors="replace")[:300]
        except OSError:
            return None
        host, _, pid = text.strip().rpartition(" ")
        return (host, int(pid)) if host and pid.isdigit() and len(pid) < 10 else None

    def _line_alive(self) -> bool:
        """Without the file to probe: whether the pid it names runs on this host."""
        line = self._line()
        if line is None:
            return False
        host, pid = line
        if host != socket.gethostname():
            return True
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
