"""Executing one planned run in its folder: load, train (resuming), evaluate, record."""

from __future__ import annotations

import json
import shutil
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from transformers.utils import logging as hf_logging

from brts.grading import extract_boxed
from brts.models import ModelLoadError, check_compatible, load_model
from brts.rollout.base import SamplingSettings
from brts.rollout.hf import HFGenerator
from brts.runs.plan import PlannedRun
from brts.runs.store import RunFolder, RunStore, environment, now, write_json_atomic
from brts.spec import ModelsSpec, RunConfig
from brts.tasks.registry import make_task
from brts.train import ModelPair, Trainer, stream_seed
from brts.validation import sample_accuracy
from brts.zoo import build_default_models, default_cache_root

ProgressFn = Callable[[str, int, int, dict[str, Any]], None]
BUILTIN = {"builtin:teacher": "teacher_dir", "builtin:student": "student_dir"}


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


def load_pair(cfg: RunConfig, cache_root: Path | None = None) -> ModelPair:
    hf_logging.disable_progress_bar()
    student, tokenizer = load_model(resolve_model(cfg.models.student, cfg.models, cache_root))
    teacher, teacher_tok = load_model(resolve_model(cfg.models.teacher, cfg.models, cache_root))
    check_compatible(teacher_tok, tokenizer, teacher.config.vocab_size, student.config.vocab_size)
    return ModelPair(student=student, teacher=teacher, tokenizer=tokenizer)


def final_evaluation(cfg: RunConfig, pair: ModelPair, out_dir: Path) -> dict[str, float]:
    """avg@k of the trained student on every evaluation split; per-sample rows in `eval/samples.jsonl`."""
    task = make_task(cfg.task)
    gen = HFGenerator(pair.student, pair.tokenizer)

    def encode(text: str) -> list[int]:
        return list(pair.tokenizer(text)["input_ids"])

    summary: dict[str, float] = {}
    rows: list[dict[str, Any]] = []
    for split in cfg.eval.splits:
        problems = task.eval_problems(split)
        problems = problems[: cfg.eval.problems] if cfg.eval.problems else problems
        settings = SamplingSettings(
            n=cfg.eval.k, temperature=cfg.eval.temperature, top_p=cfg.eval.top_p,
            max_new_tokens=cfg.eval.max_new_tokens, seed=stream_seed(cfg.seed, 0, f"eval/{split}"),
        )
        acc, samples = sample_accuracy(gen, encode, task, problems, settings, extract_boxed)
        summary[split] = acc
        rows += [{"task": split, **asdict(s)} for s in samples]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    write_json_atomic(out_dir / "summary.json", {"avg@k": summary, "k": cfg.eval.k, "grader": task.grader.name})
    return summary


def execute_run(planned: PlannedRun, store_root: Path, progress: ProgressFn | None = None) -> dict[str, Any]:
    """Train and evaluate one run under its lock; returns its final record. Failures are recorded, not raised."""
    store = RunStore(store_root)
    run = store.prepare(planned)
    with run.lock():
        record = run.record()
        if record.get("status") == "finished":
            return record
        torch.set_num_threads(planned.config.train.threads)
        started = time.perf_counter()
        run.update_record(
            status="running", started=record.get("started") or now(), attempts=int(record.get("attempts", 0)) + 1,
            environment=environment(), error=None,
        )
        try:
            summary = _train_and_evaluate(planned, run, progress)
        except Exception as exc:  # a failed run is recorded; the grid goes on
            line = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")
            (run.path / "error.log").write_text(traceback.format_exc())
            return run.update_record(status="failed", error=line, ended=now())
        elapsed = time.perf_counter() - started
        return run.update_record(
            status="finished", ended=now(), eval=summary,
            train_seconds=round(float(record.get("train_seconds", 0.0)) + elapsed, 2),
        )


def _train_and_evaluate(planned: PlannedRun, run: RunFolder, progress: ProgressFn | None) -> dict[str, float]:
    cfg = planned.config
    pair = load_pair(cfg)
    trainer = Trainer(cfg, pair, make_task(cfg.task), run.path)

    def on_step(step: int, record: dict[str, Any]) -> None:
        if progress is not None:
            progress(planned.run_id, step, cfg.train.steps, record)

    metrics = trainer.run(on_step)
    final = run.path / "final"
    if not final.exists():
        tmp = run.path / ".final-tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        pair.student.save_pretrained(tmp)
        pair.tokenizer.save_pretrained(tmp)
        tmp.rename(final)
    summary = final_evaluation(cfg, pair, run.path / "eval")
    run.update_record(last_step=metrics[-1]["step"] if metrics else 0)
    return summary
