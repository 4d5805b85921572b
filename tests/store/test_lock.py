"""A run's lock names its holder (host and pid), and a run is `running` only while that holder is alive: killed
with -9 (or stopped with Ctrl-C, the lock released) it reads as `interrupted`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from brts.store import RunFolder, RunLocked
from brts.store.lock import RunLock

HOLD = ("import sys, time; from pathlib import Path; from brts.store.lock import RunLock; "
        "RunLock(Path(sys.argv[1])).acquire(); print('held', flush=True); time.sleep(600)")


def hold_then_kill(folder: RunFolder, check_alive=None) -> int:
    """A process takes the run's lock (its record says running) and is killed with -9; returns its pid.
    `check_alive(folder)` runs while it holds the lock."""
    folder.path.mkdir(parents=True, exist_ok=True)
    folder.update_record(status="running")
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder.path / ".lock")], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        if check_alive is not None:
            check_alive(folder)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    return proc.pid


def test_a_run_killed_with_minus_9_reads_as_interrupted(tmp_path):
    folder = RunFolder(tmp_path / "run")

    def alive(run: RunFolder) -> None:
        holder = run.holder()
        assert holder is not None and holder.alive is True and holder.host == socket.gethostname()
        assert run.live_status() == "running"
        with pytest.raises(RunLocked), run.lock():
            pass

    pid = hold_then_kill(folder, alive)
    holder = folder.holder()
    assert holder is not None and (holder.pid, holder.alive) == (pid, False)
    assert folder.live_status() == "interrupted"
    with folder.lock():  # taken over at once
        assert folder.holder().pid == os.getpid() and folder.live_status() == "running"
    assert folder.holder() is None  # released: the file names nobody


def test_a_running_record_without_a_holder_is_interrupted(tmp_path):
    folder = RunFolder(tmp_path / "run")
    folder.path.mkdir()
    folder.update_record(status="running")  # stopped with Ctrl-C: the record says running, the lock is released
    assert folder.live_status() == "interrupted"
    folder.update_record(status="finished")
    assert folder.live_status() == "finished"


def test_a_holder_on_another_host_is_taken_as_alive(tmp_path):
    lock = tmp_path / ".lock"
    lock.write_text("some-other-host 4242\n")
    holder = RunLock(lock).holder()
    assert holder is not None and (holder.host, holder.pid, holder.alive) == ("some-other-host", 4242, None)
    folder = RunFolder(tmp_path)
    folder.update_record(status="running")
    assert folder.live_status() == "running"


def test_the_lock_is_probed_on_a_read_only_store(tmp_path):
    folder = RunFolder(tmp_path / "run")
    hold_then_kill(folder)
    os.chmod(folder.path, 0o555)
    os.chmod(folder.path / ".lock", 0o444)
    try:
        if os.access(folder.path / ".lock", os.W_OK):
            pytest.skip("running as a user who can write anything")
        assert folder.live_status() == "interrupted"
    finally:
        os.chmod(folder.path, 0o755)


def test_the_lock_file_is_only_ever_read_by_a_probe(tmp_path: Path):
    lock = RunLock(tmp_path / ".lock")
    lock.acquire()
    try:
        text = (tmp_path / ".lock").read_text()
        for _ in range(3):
            assert RunLock(tmp_path / ".lock").held()
        assert (tmp_path / ".lock").read_text() == text == f"{socket.gethostname()} {os.getpid()}\n"
    finally:
        lock.release()
    assert not RunLock(tmp_path / ".lock").held()
