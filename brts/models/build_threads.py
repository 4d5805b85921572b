"""How a model build runs on this machine (`brts.models.recipe`): its thread count, from the cores other processes leave
free (at most two) or `$BRTS_BUILD_THREADS`, re-checked as it goes; and its expected time, from three timed
training steps, told before it starts."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from brts.cpu import ThreadGovernor, thread_count_invariant, usable_cores
from brts.errors import ModelLoadError

MAX_THREADS = 2  # the most threads a build uses: more barely help models this small
_CALIBRATION_WIDTH = 48  # tokens per row of the timed calibration steps: a typical build batch's width
# Whole build time over its training steps' time, as calibrated (data, curriculum stages, the measurement);
# measured on a 2-core machine, idle and with one core busy (docs/LOG.md).
_OVERHEAD = 1.25


@dataclass(frozen=True)
class BuildPace:
    """A build's threads (the governor to tick between steps) and what it expects to take."""

    governor: ThreadGovernor
    expected_seconds: float
    forced: int | None  # $BRTS_BUILD_THREADS
    invariant: bool  # whether matrix products give the same bits on any thread count (else one thread)
    threads_at_start: int

    @classmethod
    def start(cls, new_model: Callable[[], torch.nn.Module], vocab_size: int, batch_size: int,
              steps: int) -> BuildPace:
        """Set the build's threads, then time `new_model`'s training steps at `batch_size` rows to expect `steps`."""
        invariant = thread_count_invariant()
        forced = forced_threads()
        cap = forced or (MAX_THREADS if invariant else 1)
        governor = ThreadGovernor(cap, floor=forced or 1)
        expected = _expected_seconds(new_model, vocab_size, batch_size, steps)
        return cls(governor, expected, forced, invariant, governor.threads)

    def announcement(self, cache: Path) -> str:
        """The line said before the build starts: where it goes, how long, on how many threads and why."""
        threads = self.governor.threads
        free = "?" if self.governor.free is None else f"{self.governor.free:.1f}"
        return (f"building the default models once (cached under {cache}): expect about "
                f"{_minutes(self.expected_seconds)} on {threads} thread{'s' * (threads > 1)}"
                + (f" (BRTS_BUILD_THREADS={self.forced})" if self.forced else
                   f" ({free} of {usable_cores()} cores free; re-checked as it goes)")
                + ("" if self.invariant else "; one thread only, as matrix products here depend on the thread "
                   "count (MKL_CBWR was not set before torch started)"))

    def notes(self) -> dict[str, object]:
        """What build.json records of how the build ran."""
        return {"expected_seconds": round(self.expected_seconds, 1), "threads_at_start": self.threads_at_start,
                "thread_changes": self.governor.changes}


def forced_threads() -> int | None:
    """`$BRTS_BUILD_THREADS` as a fixed thread count, when set (else the free cores decide, up to two)."""
    value = os.environ.get("BRTS_BUILD_THREADS", "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ModelLoadError(f"BRTS_BUILD_THREADS={value!r}: expected a positive whole number of threads, or unset "
                             "it to use the free cores")
    return int(value)


def _expected_seconds(new_model: Callable[[], torch.nn.Module], vocab_size: int, batch_size: int,
                      steps: int) -> float:
    """The build's time predicted from three timed training steps of the recipe's model at its batch size."""
    with torch.random.fork_rng(devices=[]):  # leaves the build's random streams alone
        torch.manual_seed(0)
        model = new_model()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        ids = torch.randint(0, vocab_size, (batch_size, _CALIBRATION_WIDTH))
        seconds = []
        for _ in range(3):
            started = time.perf_counter()
            logits = model(input_ids=ids).logits
            loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), ids[:, 1:].reshape(-1))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            seconds.append(time.perf_counter() - started)
    return steps * min(seconds[1:]) * _OVERHEAD  # the first step warms up


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds // 60:.0f} min {seconds % 60:02.0f} s"
