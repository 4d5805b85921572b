"""Training one run in several processes: `accelerate launch -m brts.runs.launch RUN_FOLDER POOL` on every rank.

`execute_run` (which holds the run's lock and writes its record) starts this through `launch_training` when the
spec's `resources` ask for more than one process, waits, then evaluates the saved student itself. Every rank
reads the run's `config.yaml` and the pool settings (`POOL`, a PoolSpec as JSON whose `path` is the store's pool
file), trains its share of each step and resumes from the newest checkpoint; rank 0 writes the metrics, the
checkpoints and `final/`, prints progress lines, and on failure leaves the error's first line in the run
folder's launch-error file for the parent's record.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

from brts.spec import PoolSpec
from brts.store import RunFolder

PROGRESS = "brts-progress"


class LaunchError(RuntimeError):
    """The multi-process training of a run failed; the message is the first line of the rank's error."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def launch_command(run: RunFolder, processes: int, pool: PoolSpec | None = None) -> list[str]:
    """The `accelerate launch` command line that trains `run` in `processes` ranks on one machine.

    `--multi_gpu` starts the ranks through torch's launcher; without GPUs they form a gloo group on CPU.
    Precision is the spec's business (`train.compute_dtype`), so accelerate's own is off.
    """
    return [sys.executable, "-m", "accelerate.commands.launch", "--num_machines", "1", "--num_processes",
            str(processes), "--multi_gpu", "--main_process_port", str(_free_port()), "--mixed_precision", "no",
            "--dynamo_backend", "no", "-m", "brts.runs.launch", str(run.path),
            (pool or PoolSpec(enabled=False)).model_dump_json()]


def launch_training(
    run: RunFolder, processes: int, pool: PoolSpec | None = None, progress: Callable[[int, int], None] | None = None
) -> None:
    """Train `run` under `accelerate launch`; returns when every rank is done, raises LaunchError if not.

    `pool`: the pool settings with `path` set to the pool file (None: no pool)."""
    run.launch_error.unlink(missing_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    with open(run.launch_log, "a") as log:
        child = subprocess.Popen(launch_command(run, processes, pool), stdout=subprocess.PIPE, stderr=log,
                                 text=True, env=env, start_new_session=True)
        try:
            assert child.stdout is not None
            for line in child.stdout:
                if line.startswith(PROGRESS) and progress is not None:
                    _, step, total = line.split()
                    progress(int(step), int(total))
                else:
                    log.write(line)
            code = child.wait()
        except BaseException:
            os.killpg(child.pid, 15)  # the ranks live in their own session: stop them with the parent
            child.wait()
            raise
    if code != 0:
        error = run.launch_error
        line = error.read_text().strip() if error.exists() else f"training ranks exited with status {code}"
        raise LaunchError(f"{line} (see {run.launch_log})")


def main(run: RunFolder, pool_spec: PoolSpec) -> None:
    """One rank's work (see the module docstring)."""
    from brts.rollout.pool import open_pool
    from brts.training.trainer import build_trainer

    cfg = run.config()
    pool = open_pool(pool_spec, Path(pool_spec.path)) if pool_spec.path else None
    trainer = build_trainer(cfg, run, pool)
    pair = trainer.models
    main_rank = trainer.ranks.is_main
    try:
        trainer.run(lambda step, _record: print(f"{PROGRESS} {step} {cfg.train.steps}", flush=True)
                    if main_rank else None)
        if main_rank:
            run.save_final(pair.student, pair.tokenizer)
    except Exception as exc:
        if main_rank or not run.launch_error.exists():  # rank 0's line wins; another rank's if rank 0 has none
            first = str(exc).splitlines()[0] if str(exc) else ""
            run.launch_error.write_text(f"{type(exc).__name__}: {first}".rstrip(": ") + "\n")
        traceback.print_exc()
        sys.exit(1)
    finally:
        if pool is not None:
            pool.close()


if __name__ == "__main__":
    main(RunFolder(Path(sys.argv[1])), PoolSpec.model_validate_json(sys.argv[2]))
