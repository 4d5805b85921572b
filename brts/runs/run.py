"""Executing one planned run in its folder: load, train (resuming), save `final/`, evaluate it, record."""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from brts.evaluation.evaluate import Evaluation, evaluate_model, settings_digest
from brts.rollout.pool import open_pool
from brts.runs import integrity
from brts.runs.launch import launch_training
from brts.runs.plan import PlannedRun
from brts.runs.tracking import RunTracking
from brts.spec import RunConfig
from brts.store import RunFolder, RunStore, environment, now
from brts.training.trainer import build_trainer

ProgressFn = Callable[[str, int, int, dict[str, Any]], None]
StageFn = Callable[[str, str], None]  # (run id, stage): "train", then "eval"


class RunStopped(Exception):
    """Raised by a progress callback to end a run early on purpose (a pruned sweep trial); it resumes when run again."""

    def __init__(self, step: int, reason: str) -> None:
        super().__init__(f"stopped at step {step}: {reason}")
        self.step, self.reason = step, reason


def evaluate_checkpoint(cfg: RunConfig, run: RunFolder) -> Evaluation:
    """The final evaluation of a run's saved checkpoint through lm-eval, cached in `eval/` (see brts.evaluation)."""
    return evaluate_model(str(run.final), cfg.eval, run.eval_dir, task_spec=cfg.task, quiet=True)


def execute_run(planned: PlannedRun, store_root: Path, progress: ProgressFn | None = None,
                stage: StageFn | None = None) -> dict[str, Any]:
    """Train and evaluate one run under its lock; returns its final record. Failures are recorded, not raised.

    A trained run (its `final/` checkpoint saved) is never trained again: when only its evaluation failed, or
    the evaluation settings changed, running it again evaluates the checkpoint and nothing else. With
    `eval.final: false` it finishes after training, its record's `eval` empty.

    A `progress` callback that raises RunStopped ends the run with status "stopped" (resumable); `stage` hears
    when training and when the evaluation begin. What the folder holds damaged is moved aside first and done
    again (brts.runs.integrity): a damaged record, log, checkpoint, `final/` or evaluation file.
    """
    announce = stage or (lambda _run_id, _name: None)
    store = RunStore(store_root)
    run = store.prepare(planned)
    cfg = planned.config
    eval_key = settings_digest(cfg.eval)
    with run.lock():
        record = run.record()
        damages = integrity.untrusted(run)
        if not damages and record.get("status") == "finished" and record.get("eval_key") == eval_key:
            return record
        integrity.repair(run, damages)
        torch.set_num_threads(cfg.train.threads)
        attempt = int(record.get("attempts", 0)) + 1
        run.update_record(
            status="running", started=record.get("started") or now(), attempts=attempt,
            environment=environment(), pid=os.getpid(), error=None, failed_stage=None,
        )
        tracking: RunTracking | None = None
        step_name = "train"
        try:
            if planned.tracking.enabled:  # inside the try: whatever the trackers raise is recorded as a failure
                tracking = RunTracking.start(planned, run, store_root)
            if not run.trained:
                announce(planned.run_id, "train")
                started = time.perf_counter()
                last_step = _train(planned, run, store, _tracked(progress, tracking))
                run.update_record(last_step=last_step, trained=now(), trained_attempt=attempt, train_seconds=round(
                    float(record.get("train_seconds", 0.0)) + time.perf_counter() - started, 2))
            if tracking is not None:
                tracking.follow()  # the last lines (and every line of a run trained before tracking was on)
            if not cfg.eval.final:
                return run.update_record(status="finished", ended=now(), eval={}, eval_key=eval_key)
            step_name = "eval"
            announce(planned.run_id, "eval")
            started = time.perf_counter()
            evaluation = evaluate_checkpoint(cfg, run)
            run.seal("eval")
            if tracking is not None:
                tracking.final(evaluation.tasks)
        except RunStopped as stop:
            return run.update_record(status="stopped", stopped_at=stop.step, stop_reason=stop.reason, ended=now())
        except Exception as exc:  # a failed run is recorded; the grid goes on
            line = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")
            run.write_error(traceback.format_exc())
            return run.update_record(status="failed", failed_stage=step_name, error=line, ended=now())
        finally:
            if tracking is not None:
                tracking.finish()
        return run.update_record(
            status="finished", ended=now(), eval=evaluation.avg_at_k(), eval_key=eval_key,
            eval_seconds=round(time.perf_counter() - started, 2),
        )


def _tracked(progress: ProgressFn | None, tracking: RunTracking | None) -> ProgressFn | None:
    """`progress`, after the trackers are sent the step's metrics.jsonl line (before a RunStopped can end it)."""
    if tracking is None:
        return progress

    def step(run_id: str, step: int, total: int, metrics: dict[str, Any]) -> None:
        tracking.follow()
        if progress is not None:
            progress(run_id, step, total, metrics)

    return step


def _train(planned: PlannedRun, run: RunFolder, store: RunStore, progress: ProgressFn | None) -> int:
    """Train to the last step (resuming) and save the student as `final/`; returns the last step.

    With more than one training process (`resources`), every rank runs in its own process under
    `accelerate launch` (sharing the store's pool) and rank 0 saves `final/`; this process waits and reads
    the metrics log.
    """
    cfg, world = planned.config, planned.resources.world_size
    if world > 1:
        shared = planned.pool.model_copy(update={"path": str(store.pool_file(planned.pool))})
        launch_training(run, world, shared,
                        lambda step, total: progress(planned.run_id, step, total, {}) if progress else None)
        metrics = run.metrics()
    else:
        pool = open_pool(planned.pool, store.pool_file(planned.pool))
        trainer = build_trainer(cfg, run, pool)
        pair = trainer.models

        def on_step(step: int, record: dict[str, Any]) -> None:
            if progress is not None:
                progress(planned.run_id, step, cfg.train.steps, record)

        try:
            metrics = trainer.run(on_step)
        finally:
            if pool is not None:
                pool.close()
        run.save_final(pair.student, pair.tokenizer)
    return int(metrics[-1]["step"]) if metrics else 0
