"""How many threads a CPU job should use now: the cores that other processes leave free.

Two OpenMP threads on two cores stall whenever another process takes one of the cores: every parallel region waits
for the thread that lost its core (the built-in model build took 3.5x its idle time with one core kept busy, against
1.6x on one thread). So a long CPU job asks which cores are free, uses that many threads (up to a cap), and asks
again every few seconds. Changing the thread count changes no result only if the matrix products do not depend on
it: MKL splits long reductions between threads unless its conditional numerical reproducibility is strict, which
`brts/__init__.py` asks for (MKL_CBWR) before torch starts; `thread_count_invariant` checks that it took.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import torch

_STAT = "/proc/stat"
_wall, _own, _sleep = time.perf_counter, time.process_time, time.sleep  # (tests replace these)


def usable_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _busy_ticks() -> tuple[float, float] | None:
    """(busy, total) CPU ticks so far over the cores this process may use, from /proc/stat; None without it."""
    try:
        lines = open(_STAT).read().splitlines()  # noqa: SIM115 (a one-shot read)
    except OSError:
        return None
    allowed = {f"cpu{c}" for c in os.sched_getaffinity(0)}
    busy = total = 0.0
    for line in lines:
        name, *fields = line.split()
        if name not in allowed:
            continue
        ticks = [float(f) for f in fields[:8]]  # user nice system idle iowait irq softirq steal
        total += sum(ticks)
        busy += sum(ticks) - ticks[3] - ticks[4]
    return (busy, total) if total else None


class FreeCores:
    """Measures the cores that processes other than this one leave free, over the time between two calls."""

    def __init__(self) -> None:
        self._last = self._sample()

    @staticmethod
    def _sample() -> tuple[tuple[float, float] | None, float, float]:
        return _busy_ticks(), _wall(), _own()

    def since_last(self) -> float | None:
        """Free cores (fractional) since the previous call or construction; None where it cannot be measured
        (no /proc/stat: not Linux) or too little time passed."""
        (ticks0, wall0, own0), (ticks1, wall1, own1) = self._last, self._sample()
        self._last = (ticks1, wall1, own1)
        if ticks0 is None or ticks1 is None or ticks1[1] - ticks0[1] < 10:
            return None
        cores = usable_cores()
        busy_share = (ticks1[0] - ticks0[0]) / (ticks1[1] - ticks0[1])  # of all usable cores
        others = busy_share * cores - (own1 - own0) / max(wall1 - wall0, 1e-9)
        return max(0.0, cores - max(others, 0.0))


def threads_for(free: float | None, cap: int, floor: int = 1) -> int:
    """Threads for `free` cores: one per core that others leave (almost) wholly free, at least `floor`, at most
    `cap`. Unknown (None): `floor`."""
    if free is None:
        return floor
    return max(floor, min(cap, int(free + 0.2)))


class ThreadGovernor:
    """Keeps torch's thread count at the free cores (`floor`..`cap`), re-measured every `interval` seconds by `tick`.

    Use only where the results do not depend on the thread count (`thread_count_invariant`)."""

    def __init__(self, cap: int, floor: int = 1, interval: float = 5.0, probe: float = 0.3,
                 on_change: Callable[[int], None] | None = None) -> None:
        self.cap, self.floor, self.interval, self.on_change = cap, floor, interval, on_change
        self._free = FreeCores()
        _sleep(probe)  # the first measurement: what others use while this process waits
        self.free = self._free.since_last()
        self.threads = threads_for(self.free, cap, floor)
        self.changes = 0
        torch.set_num_threads(self.threads)
        self._next = _wall() + interval

    def tick(self) -> None:
        """Re-measure if `interval` has passed since the last measurement; cheap otherwise."""
        if _wall() < self._next:
            return
        self._next = _wall() + self.interval
        self.free = self._free.since_last()
        threads = threads_for(self.free, self.cap, self.floor)
        if threads != self.threads:
            self.threads, self.changes = threads, self.changes + 1
            torch.set_num_threads(threads)
            if self.on_change is not None:
                self.on_change(threads)


def thread_count_invariant() -> bool:
    """Whether a long matrix-product reduction (a weight gradient) gives the same bits on 1 and 2 threads here."""
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(4096, 128, generator=generator), torch.randn(4096, 384, generator=generator)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = a.T @ b
        torch.set_num_threads(2)
        two = a.T @ b
    finally:
        torch.set_num_threads(threads)
    return torch.equal(one, two)


def float_environment() -> dict[str, str | None]:
    """What decides this process's floating-point results besides the code: torch, the CPU kernels it chose, and
    MKL's reproducibility mode (a build records it, so shipped models say where their bits came from)."""
    import platform

    return {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "ATEN_CPU_CAPABILITY": os.environ.get("ATEN_CPU_CAPABILITY"), "MKL_CBWR": os.environ.get("MKL_CBWR"),
            "machine": platform.machine()}
