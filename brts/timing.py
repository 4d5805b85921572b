"""The clock that step phases are timed with: wall time, or this process's CPU time for benchmarks on a
shared machine (with one thread per process it equals wall time on an idle one, and other processes'
load does not inflate it)."""

from __future__ import annotations

import time
from collections.abc import Callable

_clock: Callable[[], float] = time.perf_counter


def now() -> float:
    return _clock()


def use_cpu_time(enabled: bool = True) -> None:
    """Time phases by this process's CPU time (True) or by wall time (False, the default)."""
    global _clock
    _clock = time.process_time if enabled else time.perf_counter
