"""Training one run in several processes: `accelerate launch -m brts.runs.launch RUN_FOLDER POOL` on every rank.

`execute_run` (which holds the run's lock and writes its record) starts this through `launch_training` when the
spec's `resources` ask for more than one process, waits, then evaluates the saved student itself. Every rank
reads the run's `config.yaml` and the experiment's pool settings (`POOL`, a PoolSpec as JSON; the run store is
the run folder's grandparent), trains its share of each step and resumes from the newest checkpoint; rank 0
writes the metrics, the checkpoints and `final/`, prints progress lines, and on failure leaves the error's
first line in `.launch-error` for the parent's record.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

import yaml

from brts.spec import PoolSpec, RunConfig

PROGRESS = "brts-progress"
ERROR_FILE = ".launch-error"


class LaunchError(RuntimeError):
    """The multi-process training of a run failed; the message is the first line of the rank's error."""


def read_config(run_dir: Path) -> RunConfig:
    return RunConfig.model_validate(yaml.safe_load((run_dir / "config.yaml").read_text()))


def save_final(run_dir: Path, student: object, tokenizer: object) -> Path:
    """Write the trained student and its tokenizer to `final/` atomically (once)."""
    final = run_dir / "final"
    if not final.exists():
        tmp = run_dir / ".final-tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        student.save_pretrained(tmp)  # type: ignore[attr-defined]
        tokenizer.save_pretrained(tmp)  # type: ignore[attr-defined]
        tmp.rename(final)
    return final


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def launch_command(run_dir: Path, processes: int, pool: PoolSpec | None = None) -> list[str]:
    """The `accelerate launch` command line that trains `run_dir` in `processes` ranks on one machine.

    `--multi_gpu` starts the ranks through torch's launcher; without GPUs they form a gloo group on CPU.
    Precision is the spec's business (`train.compute_dtype`), so accelerate's own is off.
    """
    return [sys.executable, "-m", "accelerate.commands.launch", "--num_machines", "1", "--num_processes",
            str(processes), "--multi_gpu", "--main_process_port", str(_free_port()), "--mixed_precision", "no",
            "--dynamo_backend", "no", "-m", "brts.runs.launch", str(run_dir), (pool or PoolSpec()).model_dump_json()]


def launch_training(
    run_dir: Path, processes: int, pool: PoolSpec | None = None, progress: Callable[[int, int], None] | None = None
) -> None:
    """Train `run_dir` under `accelerate launch`; returns when every rank is done, raises LaunchError if not."""
    (run_dir / ERROR_FILE).unlink(missing_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    log_path = run_dir / "launch.log"
    with open(log_path, "a") as log:
        child = subprocess.Popen(launch_command(run_dir, processes, pool), stdout=subprocess.PIPE, stderr=log,
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
        error = run_dir / ERROR_FILE
        line = error.read_text().strip() if error.exists() else f"training ranks exited with status {code}"
        raise LaunchError(f"{line} (see {log_path})")


def main(run_dir: Path, pool_spec: PoolSpec) -> None:
    """One rank's work (see the module docstring)."""
    from brts.runs.run import load_pair, open_pool
    from brts.tasks.registry import make_task
    from brts.train import Trainer

    cfg = read_config(run_dir)
    pair = load_pair(cfg)
    pool = open_pool(pool_spec, run_dir.parent.parent)
    trainer = Trainer(cfg, pair, make_task(cfg.task), run_dir, pool=pool)
    main_rank = trainer.ranks.is_main
    try:
        trainer.run(lambda step, _record: print(f"{PROGRESS} {step} {cfg.train.steps}", flush=True)
                    if main_rank else None)
        if main_rank:
            save_final(run_dir, pair.student, pair.tokenizer)
    except Exception as exc:
        error = run_dir / ERROR_FILE
        if main_rank or not error.exists():  # rank 0's line wins; another rank's if rank 0 has none
            first = str(exc).splitlines()[0] if str(exc) else ""
            error.write_text(f"{type(exc).__name__}: {first}".rstrip(": ") + "\n")
        traceback.print_exc()
        sys.exit(1)
    finally:
        if pool is not None:
            pool.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]), PoolSpec.model_validate_json(sys.argv[2]))
