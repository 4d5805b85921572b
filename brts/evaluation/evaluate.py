"""Evaluating one model on a spec's tasks into an `eval/` folder, task by task, with a cache.

Layout (the shared contract, plus what reproduces it):

    eval/summary.json            {"k", "settings", "tasks": {TASK: {"avg@k", "pass@k", "maj@k", "problems", ...,
                                 and the authors' grader statistics: "solved_none", "solved_all", "format_errors",
                                 "distinct_4gram" (percent), "response_tokens" (mean)}}}
    eval/problems.csv            task, problem_id, sample, correct, extracted, response_tokens
    eval/grader.csv              task, problem_id and the grader statistics of that problem's k samples (summary.json's
                                 are their means over problems): what the report's intervals are computed from
    eval/lm_eval_command.txt     the plain `lm_eval` CLI calls (one per task, joined by &&) behind the numbers;
                                 `sh` it from any folder: it changes into its own folder first, and its paths
                                 are relative to it (the model's too when it lies in the folder that holds eval/,
                                 a run's final/; else absolute), so a run folder replays wherever it is moved
    eval/tasks/<TASK>/           key.json (the cache key), include/ (task YAMLs with `repeats: k` and the data
                                 they read), results.json and samples.jsonl (lm-eval's), problems.csv, grader.csv,
                                 command.txt
                                 (that task's call alone, replayable the same way)

A task is evaluated again only when its key changes: the model's files, the task's data, our task YAMLs and
grader, lm-eval's version, or any evaluation setting. A task's folder appears complete or not at all.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import brts
from brts.evaluation.data import TaskData, data_label, task_data, tasks_version, write_task_folder
from brts.evaluation.hooks import DATA_DIR_ENV, answer_format_beside
from brts.evaluation.parse import (
    COMMANDS_FILE,
    GRADER_COLUMNS,
    GRADER_FILE,
    PROBLEM_COLUMNS,
    PROBLEMS_FILE,
    STATISTICS,
    SUMMARY_FILE,
    grader_rows,
    problem_rows,
    statistics_entry,
    summary_entry,
)
from brts.evaluation.runner import (
    Backend,
    EvaluationError,
    command_line,
    load_lm,
    resolve_backend,
    run_task,
    silenced_progress,
    uses_chat_template,
)
from brts.spec.catalog import SOURCES, display_name, is_ours, known_lm_eval_task
from brts.spec.evaluation import EvalSpec
from brts.spec.task import TaskSpec
from brts.tasks.sources import TaskDataError

EVAL_FORMAT = 1  # bump when the meaning of cached results changes without their key changing

_HASH_WHOLE_FILES_UP_TO = 64 << 20  # bigger model files are fingerprinted by size and mtime

Log = Callable[[str], None]


@dataclass(frozen=True)
class Evaluation:
    """What one `evaluate_model` call produced: the contract's task entries, and which tasks it (re)ran."""

    tasks: dict[str, dict[str, Any]]
    evaluated: tuple[str, ...]
    folder: Path

    def avg_at_k(self) -> dict[str, float]:
        """`{TASK: avg@k}` in percent: what a run's record keeps under "eval"."""
        return {task: float(entry["avg@k"]) for task, entry in self.tasks.items()}

    @property
    def commands(self) -> Path:
        """The plain `lm_eval` calls that reproduce it (`sh` runs them)."""
        return self.folder / COMMANDS_FILE


def settings_digest(spec: EvalSpec) -> str:
    """A digest of everything but the model that decides an evaluation's results; cheap (no model, no lm-eval)."""
    # data_source is left out of the spec's dump (data_label says where the data comes from): a spec of synthetic
    # tasks keeps the digest it had before the field existed, so its finished runs are not evaluated again; so is
    # `final` when true.
    exclude = {"data_source", "final"} if spec.final else {"data_source"}
    payload = {"format": EVAL_FORMAT, "spec": spec.model_dump(mode="json", exclude=exclude),
               "tasks": tasks_version(), "data_dir": data_label(spec), "lm_eval": _version("lm_eval")}
    return _hash(payload)


def model_fingerprint(model: str) -> str:
    """A digest of a local model folder's files, or `hf:<id>` for a hub id."""
    folder = Path(model).expanduser()
    if not folder.is_dir():
        return f"hf:{model}"
    hasher = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        stat = path.stat()
        hasher.update(f"{path.relative_to(folder)}\0{stat.st_size}\0".encode())
        if stat.st_size <= _HASH_WHOLE_FILES_UP_TO:
            hasher.update(path.read_bytes())
        else:
            hasher.update(str(stat.st_mtime_ns).encode())
    return hasher.hexdigest()[:16]


def check_settings(spec: EvalSpec, task_spec: TaskSpec | None = None, backend: bool = True) -> None:
    """Refuse, before anything runs, what would fail every evaluation: an unknown lm-eval task name, an
    unavailable backend (unless `backend` is off: a dry run on another machine than the one that will run it),
    a missing data file or rows without the expected fields (raises with one line)."""
    if backend:
        resolve_backend(spec)
    offline = any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"))
    for name in spec.tasks:
        data = task_data(name, spec, task_spec or TaskSpec())
        if offline and data.source.startswith("hf:"):
            raise TaskDataError(f"{name}: reads {data.source[3:]} from the HF hub, but the hub is switched off "
                                f"(HF_HUB_OFFLINE / HF_DATASETS_OFFLINE); give a local folder with "
                                f"{SOURCES[name].name}.jsonl through eval.data_dir or ${DATA_DIR_ENV}, or "
                                f"eval.data_source: package (the copies packaged with brts)")
        if not is_ours(name) and (problem := known_lm_eval_task(name)) is not None:
            raise EvaluationError(f"eval.tasks: {problem}")


def evaluate_model(model: str, spec: EvalSpec, out_dir: Path, task_spec: TaskSpec | None = None,
                   log: Log | None = None, quiet: bool = False) -> Evaluation:
    """Evaluate `model` (a local folder or HF id) on every task of `spec` into `out_dir`, reusing cached tasks.
    `task_spec` (default: the synthetic task) gives the generated tasks' problems and the answer format every task
    of ours reads.

    `quiet` hides lm-eval's progress bars (for callers that show their own).

    Raises EvaluationError or TaskDataError (one line each) for what a user can fix; nothing of a failed task
    is left behind, and the tasks finished before it stay cached.
    """
    say = log or (lambda line: None)
    out_dir = out_dir.resolve()
    tasks_dir = out_dir / "tasks"
    tasks_dir.mkdir(parents=True, exist_ok=True)
    backend = resolve_backend(spec)
    fingerprint = model_fingerprint(model)
    data = {name: task_data(name, spec, task_spec or TaskSpec()) for name in spec.tasks}
    keys = {task: _task_key(fingerprint, data[task], spec, backend) for task in spec.tasks}
    todo = [task for task in spec.tasks if not _cached(tasks_dir / task, keys[task])]
    for task in todo:
        if not is_ours(task) and (problem := known_lm_eval_task(task)) is not None:
            raise EvaluationError(f"eval.tasks: {problem}")
    if todo:
        say(f"loading {model} ({backend.name}, {backend.device})")
        lm = load_lm(backend, model, spec)
        chat = uses_chat_template(lm, spec)
        for task in todo:
            say(f"evaluating {display_name(task)}: {spec.problems or 'all'} problems x {spec.k} samples")
            with silenced_progress(quiet):
                _evaluate_task(lm, model, task, data[task], keys[task], tasks_dir, backend, spec, chat)
    entries = {task: _task_summary(tasks_dir / task) for task in spec.tasks}
    _write_outputs(out_dir, model, fingerprint, spec, backend, entries)
    return Evaluation(entries, tuple(todo), out_dir)


def _evaluate_task(lm: Any, model: str, task: str, data: TaskData, key: str, tasks_dir: Path, backend: Backend,
                   spec: EvalSpec, chat: bool) -> None:
    final, tmp = tasks_dir / task, tasks_dir / f".{task}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        write_task_folder(tmp / "include", data, spec.k)
        results = run_task(lm, model, task, tmp / "include", backend, spec, chat)
        samples = results.pop("samples")[task]
        entry = {**summary_entry(task, results), "data": data.source, "k": _samples_per_problem(samples)}
        rows = problem_rows(task, samples, entry["metric"], _token_counter(lm))
        entry.update(statistics_entry(task, samples, rows, data.answer_format), answer_format=data.answer_format.label)
        (tmp / "results.json").write_text(json.dumps(results, indent=2, default=_jsonable, ensure_ascii=False))
        (tmp / "samples.jsonl").write_text(
            "".join(json.dumps(s, default=_jsonable, ensure_ascii=False) + "\n" for s in samples))
        (tmp / "problems.csv").write_text(_csv(rows))
        (tmp / "grader.csv").write_text(_csv(grader_rows(task, samples, rows, data.answer_format), GRADER_COLUMNS))
        (tmp / "summary.json").write_text(json.dumps(entry, indent=2))
        (tmp / "key.json").write_text(json.dumps({"key": key}))
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _task_summary(folder: Path) -> dict[str, Any]:
    """A task folder's summary entry; one cached before brts recorded the grader statistics (in summary.json, per
    problem in grader.csv) gets them now, from its own sample log and rows (no model needed)."""
    from brts.store import write_json_atomic, write_text_atomic

    entry: dict[str, Any] = json.loads((folder / SUMMARY_FILE).read_text())
    if all(name in entry for name in STATISTICS) and (folder / GRADER_FILE).is_file():
        return entry
    samples = [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines() if line.strip()]
    with open(folder / PROBLEMS_FILE, newline="") as fh:
        rows = list(csv.DictReader(fh))
    answer_format = answer_format_beside(folder / "include")
    write_text_atomic(folder / GRADER_FILE, _csv(grader_rows(folder.name, samples, rows, answer_format), GRADER_COLUMNS))
    entry.update(statistics_entry(folder.name, samples, rows, answer_format))
    write_json_atomic(folder / SUMMARY_FILE, entry)
    return entry


def _write_outputs(out_dir: Path, model: str, fingerprint: str, spec: EvalSpec, backend: Backend,
                   entries: dict[str, dict[str, Any]]) -> None:
    from brts.store import write_json_atomic, write_text_atomic

    settings = {
        "model": model, "model_fingerprint": fingerprint, "backend": backend.name, "device": backend.device,
        "temperature": spec.temperature, "top_p": spec.top_p, "max_new_tokens": spec.max_new_tokens,
        "seed": spec.seed, "problems": spec.problems, "batch_size": spec.batch_size,
        "chat_template": spec.chat_template, "lm_eval": _version("lm_eval"), "brts": brts.__version__,
        "math_verify": _version("math-verify"),
    }
    tasks = {task: {k: v for k, v in entry.items() if k != "command"} for task, entry in entries.items()}
    commands = _replay_commands(out_dir, model, spec, backend)
    for task, command in commands.items():
        write_text_atomic(out_dir / "tasks" / task / "command.txt", f'cd "$(dirname -- "$0")/../.." && {command}\n')
    write_text_atomic(out_dir / COMMANDS_FILE, "".join(
        [REPLAY_HEADER, 'cd "$(dirname -- "$0")"', *(f" && \\\n{c}" for c in commands.values()), "\n"]))
    for name in (PROBLEMS_FILE, GRADER_FILE):  # the tasks' tables, one header
        parts = [(out_dir / "tasks" / task / name).read_text() for task in spec.tasks]
        write_text_atomic(out_dir / name, parts[0] + "".join(p.split("\n", 1)[1] for p in parts[1:]))
    write_json_atomic(out_dir / SUMMARY_FILE, {"k": spec.k, "settings": settings, "tasks": tasks})


REPLAY_HEADER = "# The plain lm_eval calls behind summary.json. Run: sh <this file>, from any folder.\n"


def _replay_commands(out_dir: Path, model: str, spec: EvalSpec, backend: Backend) -> dict[str, str]:
    """Each task's plain `lm_eval` call, its paths relative to `out_dir`. Made afresh from the settings and each
    task's results.json (whether it used the chat template), so tasks cached before keep up with the format."""
    replay_model = _replay_model(model, out_dir)
    commands = {}
    for task in spec.tasks:
        results = json.loads((out_dir / "tasks" / task / "results.json").read_text())
        chat = bool(results.get("config", {}).get("apply_chat_template"))
        where = Path("tasks") / task
        commands[task] = command_line(replay_model, task, where / "include", where / "lm_eval_cli", backend, spec, chat)
    return commands


def _replay_model(model: str, out_dir: Path) -> str:
    """The model as the replay names it: a hub id as is; a local folder relative to `out_dir` when it lies in the
    folder that holds `out_dir` (a run's final/ beside its eval/: the run folder moves as one), else absolute."""
    folder = Path(model).expanduser()
    if not folder.is_dir():
        return model
    folder, home = folder.resolve(), out_dir.parent
    if folder == home or home in folder.parents:
        return os.path.relpath(folder, out_dir)
    return str(folder)


def _task_key(fingerprint: str, data: TaskData, spec: EvalSpec, backend: Backend) -> str:
    settings = spec.model_dump(mode="json", exclude={"tasks", "backend", "data_dir", "data_source"})
    payload = {"format": EVAL_FORMAT, "model": fingerprint, "task": data.task, "data": data.digest,
               "settings": settings, "backend": backend.name, "tasks": tasks_version(),
               "lm_eval": _version("lm_eval"), "math_verify": _version("math-verify")}
    if data.answer_format.kind != "boxed" or data.answer_format.instruction:
        payload["answer_format"] = data.answer_format.model_dump(mode="json")
    return _hash(payload)


def _cached(folder: Path, key: str) -> bool:
    """Whether a task folder holds this key's results, readable: a damaged file (not JSON, not UTF-8) makes the task
    evaluated again instead of failing or being copied into the combined files."""
    if _read_key(folder) != key:
        return False
    try:
        for name in (SUMMARY_FILE, "results.json"):
            if not isinstance(json.loads((folder / name).read_text(encoding="utf-8")), dict):
                return False
        (folder / PROBLEMS_FILE).read_text(encoding="utf-8")
        if (folder / GRADER_FILE).exists():  # a task cached before grader.csv gets it from its own samples
            (folder / GRADER_FILE).read_text(encoding="utf-8")
    except (OSError, ValueError):  # missing, not UTF-8, not JSON
        return False
    return True


def _read_key(folder: Path) -> str | None:
    try:
        return str(json.loads((folder / "key.json").read_text())["key"])
    except (OSError, ValueError, KeyError):
        return None


def _samples_per_problem(samples: list[dict[str, Any]]) -> int:
    return len(samples[0]["resps"][0]) if samples else 0


def _token_counter(lm: Any) -> Callable[[str], int]:
    tokenizer = lm.tokenizer
    return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])


def _csv(rows: list[dict[str, Any]], columns: tuple[str, ...] = PROBLEM_COLUMNS) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _jsonable(value: Any) -> Any:
    from lm_eval.utils import handle_non_serializable

    return handle_non_serializable(value)


def _hash(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


__all__ = ["Evaluation", "EvaluationError", "TaskDataError", "check_settings", "evaluate_model", "model_fingerprint",
           "settings_digest"]
