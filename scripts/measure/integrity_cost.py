"""What the integrity checks cost on a store: the check every `exp run` makes of each run before reusing it
(`brts.runs.integrity.untrusted`: logs, evaluation files against the manifest and each other), the full
`brts store check` (every sealed file hashed, the pool's digests), and SHA-256 throughput on this machine.

    python scripts/measure/integrity_cost.py --store runs [--reps 5]

Times are medians over `--reps` repetitions (wall clock; the files are in the page cache after the first).
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import time
from pathlib import Path

from brts.runs.integrity import untrusted
from brts.store import RunFolder, RunStore
from brts.ops.store_check import check_store


def _median_seconds(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", type=Path, default=Path("runs"))
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    store = RunStore(args.store)
    runs = [run for name in store.experiments() for run in store.runs(name)]
    if not runs:
        raise SystemExit(f"no runs in {args.store}; run `brts exp run smoke --store {args.store}` first")
    sealed = sum(entry["size"] for run in runs for entry in RunFolder(run.path).manifest.files().values())
    per_run = _median_seconds(lambda: [untrusted(run) for run in runs], args.reps) / len(runs)
    whole = _median_seconds(lambda: check_store(args.store), args.reps)
    block = b"\0" * (64 << 20)
    rate = (len(block) / 2**20) / _median_seconds(lambda: hashlib.sha256(block).digest(), args.reps)
    print(f"{len(runs)} runs, {sealed / 2**20:.1f} MiB sealed in their manifests")
    print(f"check before reuse (each exp run, per run): {per_run * 1000:.1f} ms")
    print(f"brts store check (whole store): {whole:.2f} s")
    print(f"SHA-256 on this machine: {rate:.0f} MiB/s (a 1 GiB final/ is sealed in {1024 / rate:.1f} s)")


if __name__ == "__main__":
    main()
