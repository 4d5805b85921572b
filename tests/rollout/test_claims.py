import os
import signal
import subprocess
import sys
import time

from brts.rollout.claims import pid_alive


def test_a_killed_process_not_yet_reaped_holds_no_claim():
    """A producer killed mid-draw is a zombie until its parent (the process waiting on its claims) reaps it."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert pid_alive(child.pid)
        os.kill(child.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while pid_alive(child.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not pid_alive(child.pid)  # a zombie: killed, not reaped (no wait() yet)
        assert os.waitpid(child.pid, os.WNOHANG)[0] == child.pid  # it was still there to reap
    finally:
        child.kill()
        child.wait()


def test_a_live_process_and_this_one_are_alive():
    assert pid_alive(os.getpid())
