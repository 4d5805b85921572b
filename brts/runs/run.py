"""Executing one planned run in its folder: load, train (resuming), save `final/`, evaluate it, record."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformers.utils import logging as hf_logging

from brts.evaluation.evaluate import Evaluation, evaluate_model, settings_digest
from brts.models import ModelLoadError, check_compatible, load_model
from brts.rollout.pool import SamplePool
from brts.runs.launch import launch_training, save_final
from brts.runs.plan import PlannedRun
from brts.runs.store import RunFolder, RunStore, environment, now
from brts.spec import ModelsSpec, PoolSpec, RunConfig
from brts.tasks.registry import make_task
from brts.train import ModelPair, Trainer
from brts.zoo import build_default_models, default_cache_root

ProgressFn = Callable[[str, int, int, dict[str, Any]], None]
StageFn = Callable[[str, str], None]  # (run id, stage): "train", then "eval"
BUILTIN = {"builtin:teacher": "teacher_dir", "builtin:student": "student_dir"}


class RunStopped(Exception):
    """Raised by a progress callback to end a run early on purpose (a pruned sweep trial); it resumes when run again."""

    def __init__(self, step: int, reason: str) -> None:
        super().__init__(f"stopped at step {step}: {reason}")
        self.step, self.reason = step, reason


def resolve_model(name: str, models: ModelsSpec, cache_root: Path | None = None, progress: bool = False) -> str:
    """A loadable path or HF id for a spec's model entry; builds the built-in pair on first use."""
    if name not in BUILTIN:
        return name
    built = build_default_models(cache_root or default_cache_root(), seed=models.build_seed, progress=progress)
    return str(getattr(built, BUILTIN[name]))


def preflight(models: ModelsSpec, cache_root: Path | None = None) -> None:
    """Build the built-in models if needed and refuse an incompatible pair before any run starts.

    Reads only tokenizers and configs, so it is cheap for large models too.
    """
    from transformers import AutoConfig, AutoTokenizer

    hf_logging.disable_progress_bar()
    sources = [resolve_model(name, models, cache_root, progress=True) for name in (models.teacher, models.student)]
    loaded = []
    for source in sources:
        try:
            loaded.append((AutoTokenizer.from_pretrained(source), AutoConfig.from_pretrained(source)))
        except (OSError, ValueError) as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ModelLoadError(f"cannot load model {source!r}: {first}") from error
    (teacher_tok, teacher_cfg), (student_tok, student_cfg) = loaded
    check_compatible(teacher_tok, student_tok, teacher_cfg.vocab_size, student_cfg.vocab_size)


POOL_FILE = Path(".pool") / "teacher-samples.sqlite"


def pool_path(spec: PoolSpec, store_root: Path) -> Path:
    """The pool file: the spec's `pool.path`, else `<store>/.pool/teacher-samples.sqlite`."""
    return Path(spec.path).expanduser() if spec.path else store_root / POOL_FILE


def open_pool(spec: PoolSpec, store_root: Path) -> SamplePool | None:
    """The experiment's teacher sample pool, or None when `pool.enabled` is false."""
    if not spec.enabled:
        return None
    return SamplePool(pool_path(spec, store_root), max_bytes=int(spec.max_gb * 1024**3))


def load_pair(cfg: RunConfig, cache_root: Path | None = None) -> ModelPair:
    hf_logging.disable_progress_bar()
    student, tokenizer = load_model(resolve_model(cfg.models.student, cfg.models, cache_root))
    teacher, teacher_tok = load_model(resolve_model(cfg.models.teacher, cfg.models, cache_root))
    check_compatible(teacher_tok, tokenizer, teacher.config.vocab_size, student.config.vocab_size)
    return ModelPair(student=student, teacher=teacher, tokenizer=tokenizer)


def evaluate_checkpoint(cfg: RunConfig, run: RunFolder) -> Evaluation:
    """The final evaluation of a run's saved checkpoint through lm-eval, cached in `eval/` (see brts.evaluation)."""
    return evaluate_model(str(run.path / "final"), cfg.eval, run.path / "eval", task_seed=cfg.task.seed, quiet=True)


def execute_run(planned: PlannedRun, store_root: Path, progress: ProgressFn | None = None,
                stage: StageFn | None = None) -> dict[str, Any]:
    """Train and evaluate one run under its lock; returns its final record. Failures are recorded, not raised.

    A trained run (its `final/` checkpoint saved) is never trained again: when only its evaluation failed, or
    the evaluation settings changed, running it again evaluates the checkpoint and nothing else.

    A `progress` callback that raises RunStopped ends the run with status "stopped" (resumable); `stage` hears
    when training and when the evaluation begin.
    """
    announce = stage or (lambda _run_id, _name: None)
    store = RunStore(store_root)
    run = store.prepare(planned)
    cfg = planned.config
    eval_key = settings_digest(cfg.eval)
    with run.lock():
        record = run.record()
        if record.get("status") == "finished" and record.get("eval_key") == eval_key:
            return record
        torch.set_num_threads(cfg.train.threads)
        run.update_record(
            status="running", started=record.get("started") or now(), attempts=int(record.get("attempts", 0)) + 1,
            environment=environment(), error=None, failed_stage=None,
        )
        step_name = "train"
        try:
            if not (run.path / "final").exists():
                announce(planned.run_id, "train")
                started = time.perf_counter()
                last_step = _train(planned, run, store_root, progress)
                run.update_record(last_step=last_step, trained=now(), train_seconds=round(
                    float(record.get("train_seconds", 0.0)) + time.perf_counter() - started, 2))
            step_name = "eval"
            announce(planned.run_id, "eval")
            started = time.perf_counter()
            evaluation = evaluate_checkpoint(cfg, run)
        except RunStopped as stop:
            return run.update_record(status="stopped", stopped_at=stop.step, stop_reason=stop.reason, ended=now())
        except Exception as exc:  # a failed run is recorded; the grid goes on
            line = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")
            (run.path / "error.log").write_text(traceback.format_exc())
            return run.update_record(status="failed", failed_stage=step_name, error=line, ended=now())
        return run.update_record(
            status="finished", ended=now(), eval=evaluation.avg_at_k(), eval_key=eval_key,
            eval_seconds=round(time.perf_counter() - started, 2),
        )


def _train(planned: PlannedRun, run: RunFolder, store_root: Path, progress: ProgressFn | None) -> int:
    """Train to the last step (resuming) and save the student as `final/`; returns the last step.

    With more than one training process (`resources`), every rank runs in its own process under
    `accelerate launch` (sharing the experiment's pool) and rank 0 saves `final/`; this process waits and reads
    the metrics log.
    """
    cfg, world = planned.config, planned.resources.world_size
    if world > 1:
        launch_training(run.path, world, planned.pool,
                        lambda step, total: progress(planned.run_id, step, total, {}) if progress else None)
        metrics = Trainer.read_log(run.path)
    else:
        pair = load_pair(cfg)
        pool = open_pool(planned.pool, store_root)
        trainer = Trainer(cfg, pair, make_task(cfg.task), run.path, pool=pool)

        def on_step(step: int, record: dict[str, Any]) -> None:
            if progress is not None:
                progress(planned.run_id, step, cfg.train.steps, record)

        try:
            metrics = trainer.run(on_step)
        finally:
            if pool is not None:
                pool.close()
        save_final(run.path, pair.student, pair.tokenizer)
    return int(metrics[-1]["step"]) if metrics else 0
