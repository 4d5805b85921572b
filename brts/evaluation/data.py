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

from brts.evaluation.hooks import DATA_DIR_ENV, FORMAT_FILE, read_rows
from brts.spec.catalog import PACKAGED_DIR, SOURCES, generated_task, is_ours
from brts.spec.evaluation import EvalSpec
from brts.spec.task import BOXED, AnswerFormat, TaskSpec
from brts.tasks.bounds import check_problem_file
from brts.tasks.registry import make_task
from brts.tasks.sources import TaskDataError

TASKS_DIR = Path(__file__).resolve().parent / "tasks"  # our lm-eval task YAMLs (an --include_path folder)


@dataclass(frozen=True)
class TaskData:
    """Where one task's problems come from, and a digest of them for the cache key."""

    task: str
    source: str  # "synthetic:seed=0", "package:<set>", a local file path, "hf:<dataset id>", or "lm-eval" (built in)
    digest: str
    rows: tuple[str, ...] | None = None  # JSONL lines to freeze into the task folder; None: read elsewhere
    answer_format: AnswerFormat = BOXED  # how the task's hooks read an answer (written beside the task YAMLs)


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
    if not any(is_ours(t) and generated_task(t) is None for t in spec.tasks):
        return None
    folder = benchmark_dir(spec)
    if folder == PACKAGED_DIR:
        return "package:" + hashlib.sha256((PACKAGED_DIR / "manifest.json").read_bytes()).hexdigest()[:16]
    return str(folder) if folder else "hub"


def task_data(task: str, spec: EvalSpec, task_spec: TaskSpec) -> TaskData:
    """The data of one task; local rows are read and checked here (raises TaskDataError). A generated task's rows
    come from `task_spec`'s generator, each with the exact prompt training uses (`prompt`) when the task has one
    of its own; every task of ours reads answers in `task_spec.answer_format`."""
    if not is_ours(task):
        return TaskData(task, "lm-eval", "lm-eval")
    answer_format = task_spec.answer_format
    name = SOURCES[task].name
    generated = generated_task(task)
    if generated is not None:
        return _generated_data(task, task_spec, generated[1])
    folder = benchmark_dir(spec)
    if folder is None:
        hub = SOURCES[task].hub
        assert hub is not None  # every non-synthetic task of ours has a hub dataset
        return TaskData(task, f"hf:{hub.path}", f"hf:{hub.path}:{hub.split}")
    path = folder / f"{name}.jsonl"
    if path.is_file():
        check_problem_file(path, task)  # a row a tokenizer could not take is refused before anything runs
    lines = tuple(json.dumps(row) for row in read_rows(path, task))
    return TaskData(task, f"package:{name}" if folder == PACKAGED_DIR else str(path), _digest(lines), lines,
                    answer_format)


def _generated_data(task: str, task_spec: TaskSpec, split: str) -> TaskData:
    """A generated task's evaluation problems (the synthetic splits, the sums task's test pool)."""
    made = make_task(task_spec)
    problems = made.eval_problems(split)
    if task_spec.name == "synthetic":  # its hook builds the prompt; rows as they always were (so are cache keys)
        lines = tuple(json.dumps({"id": p.id, "problem": p.problem, "answer": p.answer}) for p in problems)
        return TaskData(task, f"synthetic:seed={task_spec.seed}", _digest(lines), lines, task_spec.answer_format)
    lines = tuple(json.dumps({"id": p.id, "problem": p.problem, "answer": p.answer, "prompt": made.prompt(p)})
                  for p in problems)
    source = f"{task_spec.name}:seed={task_spec.seed},max_operand={task_spec.max_operand}"
    return TaskData(task, source, _digest(lines), lines, task_spec.answer_format)


def _digest(lines: tuple[str, ...]) -> str:
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


def write_task_folder(folder: Path, data: TaskData, k: int) -> None:
    """A copy of our lm-eval task folder with `repeats: k`, plus `data/<task>.jsonl` when the rows are local and
    the answer format (FORMAT_FILE) when it is not `boxed`."""
    shutil.copytree(TASKS_DIR, folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    if data.answer_format != BOXED:
        (folder / FORMAT_FILE).write_text(data.answer_format.model_dump_json() + "\n")
    for template in folder.glob("_brts_*_yaml"):
        template.write_text(re.sub(r"(?m)^repeats: \d+$", f"repeats: {k}", template.read_text()))
    if data.rows is not None:
        (folder / "data").mkdir()
        (folder / "data" / f"{SOURCES[data.task].name}.jsonl").write_text("".join(r + "\n" for r in data.rows))


def tasks_version() -> str:
    """A digest of our task YAMLs and hooks: part of every cache key, so editing them re-evaluates."""
    hasher = hashlib.sha256()
    package = TASKS_DIR.parent.parent
    extra = [TASKS_DIR.parent / "hooks.py", TASKS_DIR.parent / "metrics.py", package / "tasks" / "grading.py",
             package / "tasks" / "synthetic.py", package / "tasks" / "sources.py", package / "tasks" / "sums.py"]
    for path in sorted([*TASKS_DIR.iterdir(), *extra]):
        if path.is_file() and path.suffix != ".pyc":
            hasher.update(path.name.encode() + b"\0" + path.read_bytes())
    return hasher.hexdigest()[:16]


__all__ = ["TaskData", "TaskDataError", "benchmark_dir", "data_label", "task_data",
           "tasks_version", "write_task_folder"]
