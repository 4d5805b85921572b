"""Run folders in the layout the evaluation contract fixes, with planted accuracies, for testing the report.

Folders, `config.yaml` and the initial `record.json` come from the real plan and run store; the training
metrics and the `eval/` files (summary.json, problems.csv, grader.csv) are generated from a known model: problem j of a
task has base accuracy b_j, and arm a with seed s answers each sample correctly with probability
clip(b_j + shift[a][task] + seed_shift[a][s]).
"""

from __future__ import annotations

import csv
import json
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from brts.evaluation.parse import STATISTICS
from brts.runs.plan import PlannedRun, plan
from brts.spec import ExperimentSpec
from brts.store import RunStore, write_json_atomic
from brts.store.integrity import Manifest

TASKS = ("brts_synthetic_easy", "brts_synthetic_medium", "brts_synthetic_hard")
BASE_RANGE = {"brts_synthetic_easy": (0.6, 0.95), "brts_synthetic_medium": (0.2, 0.7), "brts_synthetic_hard": (0.05, 0.5)}


def spec(name: str, arms: Sequence[str], seeds: Sequence[int], steps: int = 30, problems: int = 100, k: int = 4,
         ) -> ExperimentSpec:
    return ExperimentSpec(
        name=name, arms=list(arms), seeds=list(seeds),
        train={"steps": steps, "validate_every": 10, "checkpoint_every": 10},
        eval={"splits": ["easy", "medium", "hard"], "problems": problems, "k": k},
        method={"alignment_top_k": 3, "aux_weight": 0.5},
    )


def base_accuracy(task: str, problems: int) -> np.ndarray:
    lo, hi = BASE_RANGE.get(task, (0.2, 0.8))
    return np.random.default_rng(zlib.crc32(task.encode())).uniform(lo, hi, problems)


def write_eval(folder: Path, probs: Mapping[str, np.ndarray], k: int, rng: np.random.Generator) -> dict[str, float]:
    """`eval/problems.csv`, `eval/grader.csv` and `eval/summary.json` for per-problem correct-probabilities;
    returns avg@k per task. Grader statistics: solved and lengths from the samples, every wrong sample a format
    error, a distinct-4-gram ratio per problem drawn apart (the accuracies' draws are as before)."""
    out = folder / "eval"
    out.mkdir(parents=True, exist_ok=True)
    summary, avg, grader = {}, {}, []
    with open(out / "problems.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["task", "problem_id", "sample", "correct", "extracted", "response_tokens"])
        for task, p in probs.items():
            correct = rng.random((len(p), k)) < p[:, None]
            tokens = np.zeros((len(p), k))
            distinct = np.random.default_rng(zlib.crc32(f"{folder.name}/{task}".encode())).uniform(60, 100, len(p))
            for j in range(len(p)):
                for s in range(k):
                    tokens[j, s] = int(rng.integers(10, 60))
                    writer.writerow([task, f"{task}-{j:03d}", s, int(correct[j, s]), str(j % 10) if correct[j, s]
                                     else "7", int(tokens[j, s])])
                grader.append([task, f"{task}-{j:03d}", 100.0 * (not correct[j].any()), 100.0 * correct[j].all(),
                               100.0 * (1 - correct[j].mean()), float(tokens[j].mean()), float(distinct[j])])
            avg[task] = 100.0 * float(correct.mean())
            mine = np.array([row[2:] for row in grader if row[0] == task])
            summary[task] = {"avg@k": avg[task], "pass@k": 100.0 * float(correct.any(axis=1).mean()),
                             "maj@k": avg[task], "problems": len(p),
                             **dict(zip(STATISTICS, mine.mean(axis=0).tolist(), strict=True))}
    with open(out / "grader.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([["task", "problem_id", *STATISTICS], *grader])
    write_json_atomic(out / "summary.json", {"k": k, "settings": {"temperature": 0.7, "top_p": 0.95},
                                             "tasks": summary})
    Manifest(folder).seal("eval")  # as a run seals its evaluation: the report trusts nothing unsealed
    return avg


def _validation(cfg, rng: np.random.Generator, level: float, frac: float) -> dict[str, dict[str, float]]:
    """Per split, per validation problem: the fraction of validation_k samples correct at probability
    level * frac, moved per problem (a fixed problem difficulty)."""
    out = {}
    for split in cfg.eval.splits:
        n, k = cfg.train.validation_problems, cfg.train.validation_k
        offset = np.random.default_rng(zlib.crc32(split.encode())).normal(0, 0.15, n)
        p = np.clip(level * frac + offset, 0, 1)
        out[split] = {f"{split}-val-{j:03d}": float(c) / k for j, c in enumerate(rng.binomial(k, p))}
    return out


def write_metrics(folder: Path, planned: PlannedRun, rng: np.random.Generator, level: float,
                  upto: int | None = None, speed: float = 1.0) -> None:
    """metrics.jsonl and validation.jsonl as the Trainer writes them: step 0 validation, then per-step records
    (validation every `validate_every`). The validation accuracy rises linearly to `level`, `speed` times as
    fast (capped at `level`)."""
    cfg = planned.config
    steps = cfg.train.steps if upto is None else upto
    branch = cfg.method.teacher_context
    lines, validation, tokens = [], [], 0.0
    for step in range(steps + 1):
        frac = min(1.0, speed * step / max(cfg.train.steps, 1))
        val = {}
        if step == 0 or step % cfg.train.validate_every == 0 or step == cfg.train.steps:
            problems = _validation(cfg, rng, level, frac)
            validation.append({"step": step, "problems": problems})
            val = {f"val/{s}": 100.0 * float(np.mean(list(v.values()))) for s, v in problems.items()}
        if step == 0:
            lines.append({"step": 0, **val})
            continue
        record: dict = {"step": step, "surrogate/opd": float(-rng.random()), "surrogate/total": float(-rng.random()),
                        "kl/opd": float(0.5 * (1 - frac) + 0.05 * rng.random())}
        if branch:
            t1 = float(np.clip(0.3 + 0.5 * frac + rng.normal(0, 0.05), 0, 1))
            t2 = float((1 - t1) * 0.6) if cfg.method.recovery else 0.0
            tokens += 40.0 * cfg.method.teacher_samples * cfg.train.prompts_per_step
            record.update({"selection/frac_tier1": t1, "selection/frac_tier2": t2,
                           "selection/frac_tier3": 1 - t1 - t2, "selection/frac_tier0": 0.0,
                           "selection/alignment_tier1": 0.6 + 0.2 * frac, "selection/alignment_tier2": 0.5,
                           "selection/alignment_tier3": 0.4 if t1 < 1 else None,
                           "kl/aux": float(1.0 * (1 - frac) + 0.05 * rng.random()),
                           "surrogate/aux": float(rng.random())})
        else:
            record.update(dict.fromkeys(["selection/frac_tier1", "selection/frac_tier2", "selection/frac_tier3",
                                         "selection/frac_tier0", "selection/alignment_tier1", "kl/aux",
                                         "surrogate/aux"]))
        record["teacher/tokens_generated"] = tokens
        record.update(val)
        lines.append(record)
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in lines))
    (folder / "validation.jsonl").write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in validation))


def write_experiment(store: Path, exp: ExperimentSpec, shift: Mapping[str, float | Mapping[str, float]],
                     seed_shift: Mapping[tuple[str, int], float] | None = None,
                     status: Mapping[tuple[str, int], str] | None = None, references: bool = True,
                     seed: int = 0, speed: Mapping[str, float] | None = None) -> list[PlannedRun]:
    """Write every planned run of `exp` under `store`; `status[(arm, seed)]` makes a run failed/running/absent;
    `speed[arm]` makes its validation curve rise that many times as fast."""
    rng = np.random.default_rng(seed)
    runs = RunStore(store)
    planned = plan(exp)
    k = exp.eval.k
    tasks = [f"brts_synthetic_{s}" for s in exp.eval.splits]
    base = {t: base_accuracy(t, exp.eval.problems or 100) for t in tasks}
    for p in planned:
        state = (status or {}).get((p.arm, p.seed), "finished")
        if state == "absent":
            continue
        folder = runs.prepare(p)
        arm_shift = shift.get(p.arm, 0.0)
        if state == "failed":
            write_metrics(folder.path, p, rng, 0.5, upto=3)
            folder.update_record(status="failed", error="NonFiniteLossError: non-finite loss at step 4",
                                 ended="2026-01-01T00:00:00+00:00")
            continue
        if state == "running":
            write_metrics(folder.path, p, rng, 0.5, upto=p.config.train.steps // 2)
            folder.update_record(status="running")
            continue
        probs = {}
        for t in tasks:
            delta = arm_shift.get(t, 0.0) if isinstance(arm_shift, Mapping) else arm_shift
            probs[t] = np.clip(base[t] + delta + (seed_shift or {}).get((p.arm, p.seed), 0.0), 0, 1)
        write_metrics(folder.path, p, rng, float(np.mean([v.mean() for v in probs.values()])),
                      speed=(speed or {}).get(p.arm, 1.0))
        avg = write_eval(folder.path, probs, k, rng)
        folder.update_record(status="finished", eval=avg, train_seconds=round(30 + 10 * rng.random(), 2),
                             ended=f"2026-01-01T00:{p.seed:02d}:00+00:00", last_step=p.config.train.steps)
    if references:
        for role, delta in (("teacher", 0.3), ("student_start", -0.2)):
            folder = store / exp.name / "reference" / role
            folder.mkdir(parents=True, exist_ok=True)
            write_json_atomic(folder / "record.json", {"role": role, "model": f"builtin:{role}", "status": "finished"})
            write_eval(folder, {t: np.clip(base[t] + delta, 0, 1) for t in tasks}, k, rng)
    return planned
