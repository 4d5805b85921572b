"""The problems each evaluation reads, frozen into its task folder: the synthetic splits written from the task
generator, benchmark files copied from a local data folder or the packaged copies (or, with `data_source: hub`,
read from the HF hub by lm-eval)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from brts.evaluation.hooks import DATA_DIR_ENV, read_rows
from brts.spec.catalog import PACKAGED_DIR, SOURCES, is_ours, synthetic_split
from brts.spec.evaluation import EvalSpec
from brts.tasks.bounds import check_problem_file
from brts.tasks.sources import TaskDataError
from brts.tasks.synthetic import SyntheticTask

TASKS_DIR = Path(__file__).resolve().parent / "tasks"  # our lm-eval task YAMLs (an --include_path folder)


@dataclass(frozen=True)
class TaskData:
    """Where one task's problems come from, and a digest of them for the cache key."""

    task: str
    source: str  # "synthetic:seed=0", "package:<set>", a local file path, "hf:<dataset id>", or "lm-eval" (built in)
    digest: str
    rows: tuple[str, ...] | None = None  # JSONL lines to freeze into the task folder; None: read elsewhere


def benchmark_dir(spec: EvalSpec) -> Path | None:
    """The local folder of benchmark files: `eval.data_dir`, else `$BRTS_DATA_DIR`, else the packaged copies, or
    None with `data_source: hub` (the HF hub)."""
    chosen = spec.data_dir or os.environ.get(DATA_DIR_ENV)
    if chosen:
        return Path(chosen).expanduser().resolve()
    return PACKAGED_DIR if spec.data_source == "package" else None


def data_label(spec: EvalSpec) -> str | None:
    """Where the spec's benchmark tasks read their problems, for the evaluation settings' digest: a folder, the
    packaged manifest's digest, `hub`, or None when the spec has no benchmark task (the synthetic splits)."""
    if not any(is_ours(t) and synthetic_split(t) is None for t in spec.tasks):
        return None
    folder = benchmark_dir(spec)
    if folder == PACKAGED_DIR:
        return "package:" + hashlib.sha256((PACKAGED_DIR / "manifest.json").read_bytes()).hexdigest()[:16]
    return str(folder) if folder else "hub"


def task_data(task: str, spec: EvalSpec, task_seed: int) -> TaskData:
    """The data of one task; local rows are read and checked here (raises TaskDataError)."""
    if not is_ours(task):
        return TaskData(task, "lm-eval", "lm-eval")
    name = SOURCES[task].name
    split = synthetic_split(task)
    if split is not None:
        problems = SyntheticTask(seed=task_seed).eval_problems(split)
        lines = tuple(json.dumps({"id": p.id, "problem": p.problem, "answer": p.answer}) for p in problems)
        return TaskData(task, f"synthetic:seed={task_seed}", _digest(lines), lines)
    folder = benchmark_dir(spec)
    if folder is None:
        hub = SOURCES[task].hub
        assert hub is not None  # every non-synthetic task of ours has a hub dataset
        return TaskData(task, f"hf:{hub.path}", f"hf:{hub.path}:{hub.split}")
    path = folder / f"{name}.jsonl"
    if path.is_file():
        check_problem_file(path, task)  # a row a tokenizer could not take is refused before anything runs
    lines = tuple(json.dumps(row) for row in read_rows(path, task))
    return TaskData(task, f"package:{name}" if folder == PACKAGED_DIR else str(path), _digest(lines), lines)


def _digest(lines: tuple[str, ...]) -> str:
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


def write_task_folder(folder: Path, data: TaskData, k: int) -> None:
    """A copy of our lm-eval task folder with `repeats: k`, plus `data/<task>.jsonl` when the rows are local."""
    shutil.copytree(TASKS_DIR, folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for template in folder.glob("_brts_*_yaml"):
        template.write_text(re.sub(r"(?m)^repeats: \d+$", f"repeats: {k}", template.read_text()))
    if data.rows is not None:
        (folder / "data").mkdir()
        (folder / "data" / f"{SOURCES[data.task].name}.jsonl").write_text("".join(r + "\n" for r in data.rows))


def tasks_version() -> str:
    """A digest of our task YAMLs and hooks: part of every cache key, so editing them re-evaluates."""
    hasher = hashlib.sha256()
    package = TASKS_DIR.parent.parent
    extra = [TASKS_DIR.parent / "hooks.py", TASKS_DIR.parent / "metrics.py", package / "grading.py",
             package / "tasks" / "synthetic.py", package / "tasks" / "sources.py"]
    for path in sorted([*TASKS_DIR.iterdir(), *extra]):
        if path.is_file() and path.suffix != ".pyc":
            hasher.update(path.name.encode() + b"\0" + path.read_bytes())
    return hasher.hexdigest()[:16]


__all__ = ["TaskData", "TaskDataError", "benchmark_dir", "data_label", "task_data",
           "tasks_version", "write_task_folder"]
