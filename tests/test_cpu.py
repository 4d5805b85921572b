"""Free cores and the thread count that follows them."""

from __future__ import annotations

import pytest
import torch

import brts.cpu as cpu
from brts.cpu import FreeCores, ThreadGovernor, thread_count_invariant, threads_for, usable_cores


@pytest.mark.parametrize(("free", "cap", "floor", "threads"), [
    (None, 2, 1, 1), (None, 2, 2, 2), (2.0, 2, 1, 2), (1.85, 2, 1, 2), (1.7, 2, 1, 1), (1.0, 2, 1, 1),
    (0.0, 2, 1, 1), (7.9, 4, 1, 4), (0.2, 3, 3, 3),
])
def test_one_thread_per_core_left_free(free, cap, floor, threads):
    assert threads_for(free, cap, floor) == threads


class FakeClock:
    """/proc/stat ticks, wall and own CPU seconds that a test moves by hand."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, cores: int = 2) -> None:
        self.busy = self.total = self.wall = self.own = 0.0
        monkeypatch.setattr(cpu, "usable_cores", lambda: cores)
        monkeypatch.setattr(cpu, "_busy_ticks", lambda: (self.busy, self.total))
        monkeypatch.setattr(cpu, "_wall", lambda: self.wall)
        monkeypatch.setattr(cpu, "_own", lambda: self.own)
        monkeypatch.setattr(cpu, "_sleep", lambda seconds: self.advance(seconds, others=0.0, own=0.0))

    def advance(self, seconds: float, others: float, own: float, cores: int = 2) -> None:
        """`seconds` pass while other processes keep `others` cores busy and this one `own` cores."""
        self.wall += seconds
        self.own += own * seconds
        self.total += 100 * cores * seconds
        self.busy += 100 * (others + own) * seconds


def test_free_cores_leave_out_what_this_process_uses(monkeypatch):
    clock = FakeClock(monkeypatch)
    free = FreeCores()
    clock.advance(2.0, others=1.0, own=1.0)  # both cores busy, one of them by us: one is free for us
    assert free.since_last() == pytest.approx(1.0)
    clock.advance(2.0, others=0.0, own=2.0)  # we use both: both are ours
    assert free.since_last() == pytest.approx(2.0)
    clock.advance(2.0, others=2.0, own=0.0)
    assert free.since_last() == pytest.approx(0.0)
    clock.advance(0.01, others=0.0, own=0.0)  # too short to tell
    assert free.since_last() is None


def test_the_governor_follows_the_free_cores_between_its_checks(monkeypatch):
    clock = FakeClock(monkeypatch)
    threads = torch.get_num_threads()
    changes = []
    try:
        governor = ThreadGovernor(cap=2, interval=5.0, on_change=changes.append)
        assert (governor.threads, torch.get_num_threads()) == (2, 2)  # nothing else ran during the probe
        clock.advance(3.0, others=1.0, own=1.0)
        governor.tick()  # before the interval: no check
        assert governor.threads == 2
        clock.advance(3.0, others=1.0, own=1.0)
        governor.tick()
        assert (governor.threads, torch.get_num_threads(), changes) == (1, 1, [1])
        clock.advance(6.0, others=0.0, own=1.0)
        governor.tick()
        assert (governor.threads, governor.changes, changes) == (2, 2, [1, 2])
    finally:
        torch.set_num_threads(threads)


def test_live_measurement_is_a_share_of_the_usable_cores():
    free = FreeCores()
    sum(range(3_000_000))  # some work of our own, which is not "others"
    measured = free.since_last()
    assert measured is None or 0.0 <= measured <= usable_cores()


@pytest.mark.skipif(not torch.backends.mkl.is_available(), reason="MKL's reproducibility mode")
def test_matrix_products_do_not_depend_on_the_thread_count():
    # brts/__init__.py sets MKL_CBWR before torch starts (conftest imports brts first).
    assert thread_count_invariant()
