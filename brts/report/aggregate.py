"""Reading run folders into tidy pandas frames: runs, per-sample evaluation rows, training metrics, references.

Reads only what runs wrote, through the store's readers (brts.store: a run's record, config and metrics log;
the reference folders) and the evaluation folder's files (brts.evaluation.parse names them: `summary.json`,
`problems.csv`, `grader.csv`); never a model.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from brts.errors import UserError
from brts.evaluation import parse as evaluation_parse
from brts.evaluation.parse import GRADER_FILE, PROBLEM_COLUMNS, PROBLEMS_FILE, SUMMARY_FILE
from brts.evaluation.verify import check_eval
from brts.runs.integrity import untrusted
from brts.store import REFERENCE_ROLES, DamagedFile, RunFolder, RunStore, read_json
from brts.store.files import read_jsonl_intact
from brts.store.integrity import Damage

SAMPLE_COLUMNS = list(PROBLEM_COLUMNS)
GRADER_COLUMNS = list(evaluation_parse.GRADER_COLUMNS)  # eval/grader.csv
STATISTICS = list(evaluation_parse.STATISTICS)
RUN_COLUMNS = [
    "run_id", "arm", "seed", "status", "usable", "note", "error", "last_step", "planned_steps",
    "ended", "train_seconds", "teacher_tokens", "teacher_samples", "aux_weight", "teacher_context", "alignment", "path",
]


class ReportError(UserError):
    """A mistake the user can fix (missing store, unknown name, no finished runs); one line."""


@dataclass
class EvalFolder:
    """One model's evaluation: its per-sample rows, its summary (k, settings) and its per-problem grader
    statistics (None when it was evaluated before brts wrote `grader.csv`)."""

    samples: pd.DataFrame
    summary: dict[str, Any]
    grader: pd.DataFrame | None = None


@dataclass
class RunData:
    """Everything the report needs from a set of run folders."""

    runs: pd.DataFrame  # one row per run folder (and per planned run not started), RUN_COLUMNS
    samples: pd.DataFrame  # per (run, task, problem, sample), usable runs and references only
    metrics: pd.DataFrame  # per (run, step), usable runs only; every metric a column
    validation: pd.DataFrame = field(default_factory=pd.DataFrame)  # per (run, split, step, problem), VALIDATION_COLUMNS
    references: dict[str, dict[str, Any]] = field(default_factory=dict)  # role -> record
    # per (run, task, problem): the authors' grader statistics, usable runs and references that have them
    grader: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["run_id", "arm", "seed",
                                                                                *GRADER_COLUMNS]))
    settings: dict[str, Any] = field(default_factory=dict)  # evaluation settings of the runs (k, temperature)


def display_task(task: str) -> str:
    """`brts_synthetic_hard` -> `hard`, `brts_aime24` -> `aime24`; other names unchanged."""
    for prefix in ("brts_synthetic_", "brts_"):
        if task.startswith(prefix):
            return task[len(prefix):]
    return task


def read_eval(folder: Path) -> EvalFolder | None:
    """The `eval/` folder of one model, or None when it has no per-sample table; DamagedFile (one line naming the
    file) when its files cannot be read or disagree with each other (brts.evaluation.verify)."""
    table = folder / PROBLEMS_FILE
    if not table.exists():
        return None
    problems = check_eval(folder)
    if problems:
        raise DamagedFile(problems[0])
    samples = _read_csv(table, dtype={"problem_id": str, "extracted": str}, keep_default_na=False)
    missing = [c for c in SAMPLE_COLUMNS if c not in samples.columns]
    if missing:
        raise ReportError(f"{table} lacks column(s) {', '.join(missing)}; expected {', '.join(SAMPLE_COLUMNS)}")
    samples = samples[SAMPLE_COLUMNS].copy()
    samples["correct"] = samples["correct"].astype(int)
    samples["sample"] = samples["sample"].astype(int)
    summary = read_json(folder / SUMMARY_FILE)
    return EvalFolder(samples, summary, _read_grader(folder / GRADER_FILE))


def _read_csv(path: Path, **options: Any) -> pd.DataFrame:
    try:
        return pd.read_csv(path, **options)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DamagedFile(f"{path}: not a CSV table ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
                          ) from None


def _read_grader(path: Path) -> pd.DataFrame | None:
    if not path.exists():
        return None
    frame = _read_csv(path, dtype={"task": str, "problem_id": str})
    missing = [c for c in GRADER_COLUMNS if c not in frame.columns]
    if missing:
        raise ReportError(f"{path} lacks column(s) {', '.join(missing)}; expected {', '.join(GRADER_COLUMNS)}")
    frame = frame[GRADER_COLUMNS].copy()
    frame[STATISTICS] = frame[STATISTICS].apply(pd.to_numeric, errors="coerce")  # empty: not measured
    return frame


def _labelled(frame: pd.DataFrame, run_id: str, arm: Any, seed: Any) -> pd.DataFrame:
    frame = frame.copy()
    frame.insert(0, "seed", seed)
    frame.insert(0, "arm", arm)
    frame.insert(0, "run_id", run_id)
    return frame


def _concat(frames: list[pd.DataFrame], columns: Sequence[str]) -> pd.DataFrame:
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(columns))


VALIDATION_COLUMNS = ["run_id", "arm", "seed", "split", "step", "problem_id", "correct"]


def read_validation(run: RunFolder) -> list[dict[str, Any]]:
    """A run's validation log as tidy rows: split, step, problem_id and the fraction of its samples correct."""
    return [{"split": split, "step": int(record["step"]), "problem_id": str(pid), "correct": float(value)}
            for record in run.validation()
            for split, problems in (record.get("problems") or {}).items()
            for pid, value in problems.items()]


def _teacher_tokens(last: dict[str, Any]) -> float | None:
    drawn, pooled = last.get("teacher/tokens_generated"), last.get("teacher/tokens_from_pool")
    return None if drawn is None else drawn + (pooled or 0)


def _run_row(run: RunFolder, record: dict[str, Any], metrics: Sequence[dict[str, Any]]) -> dict[str, Any]:
    path = run.path
    cfg = run.config_data()
    method = cfg.get("method", {}) or {}
    last = metrics[-1] if metrics else {}
    return {
        "run_id": record.get("run_id", path.name), "arm": record.get("arm"), "seed": record.get("seed"),
        "status": record.get("status", "planned"), "usable": False, "note": "", "error": record.get("error") or "",
        "last_step": int(last.get("step", 0)) if metrics else None,
        "planned_steps": (cfg.get("train") or {}).get("steps"),
        "ended": record.get("ended"), "train_seconds": record.get("train_seconds"),
        # Tokens of the teacher samples the run used, drawn by itself or taken from the shared pool: what the arm
        # costs on its own, whichever run happened to draw a shared sample first.
        "teacher_tokens": _teacher_tokens(last),
        "teacher_samples": method.get("teacher_samples") if method.get("teacher_context") else None,
        "aux_weight": method.get("aux_weight") if method.get("teacher_context") else None,
        "teacher_context": bool(method.get("teacher_context", False)),
        "alignment": method.get("alignment") if method.get("teacher_context") else None,
        "path": str(path),
    }


def read_runs(folders: Iterable[Path], labels: dict[str, dict[str, Any]] | None = None) -> RunData:
    """Read run folders. A run is usable when finished with an `eval/problems.csv`; others are listed with why.

    `labels` (path -> fields) overrides a record's fields, e.g. a sweep trial's arm label.
    """
    rows, samples, graders, metric_rows, validation_rows, settings = [], [], [], [], [], {}
    for path in folders:
        run = RunFolder(path)
        record = run.record() if run.is_run else {}
        status = run.live_status(record)  # a running one is mid-write; an interrupted one resumes: not checked
        damages = untrusted(run) if status not in ("running", "interrupted") else []
        metrics = [] if any(d.part == "logs" for d in damages) else read_jsonl_intact(run.metrics_path)[0]
        row = {**_run_row(run, {**record, "status": status}, metrics), **(labels or {}).get(str(path), {})}
        if status == "interrupted":
            row["note"] = "interrupted: its process is gone; `brts exp run` resumes it"
        evaluated = None
        if row["status"] == "finished" and not damages:
            try:
                evaluated = read_eval(run.eval_dir)
            except DamagedFile as exc:
                damages.append(Damage.of(str(exc), "eval"))
        if row["status"] == "damaged":
            row["note"] = "record.json cannot be read"
        elif damages:  # never averaged: listed with what is wrong (`brts store check --repair`, then exp run)
            row["status"] = "damaged"
            row["note"] = "; ".join(str(d) for d in damages[:2]) + (f" (+{len(damages) - 2} more)" if len(damages) > 2
                                                                      else "")
        elif row["status"] == "finished" and evaluated is None:
            row["note"] = "finished without a final evaluation (eval.final: false)"
        elif evaluated is not None and evaluated.samples.empty:
            row["note"] = "eval/problems.csv has no rows"
        elif evaluated is not None:
            row["usable"] = True
            settings = settings or {k: evaluated.summary[k] for k in ("k", "settings") if k in evaluated.summary}
            samples.append(_labelled(evaluated.samples, row["run_id"], row["arm"], row["seed"]))
            if evaluated.grader is not None:
                graders.append(_labelled(evaluated.grader, row["run_id"], row["arm"], row["seed"]))
            for m in metrics:
                metric_rows.append({"run_id": row["run_id"], "arm": row["arm"], "seed": row["seed"], **m})
            for v in read_validation(run):
                validation_rows.append({"run_id": row["run_id"], "arm": row["arm"], "seed": row["seed"], **v})
        rows.append(row)
    runs = pd.DataFrame(rows, columns=RUN_COLUMNS)
    for column in ("seed", "last_step", "planned_steps"):  # whole numbers, blank where a record lacks one
        runs[column] = _whole_numbers(runs[column])
    sample_frame = _concat(samples, ["run_id", "arm", "seed", *SAMPLE_COLUMNS])
    metrics_frame = pd.DataFrame(metric_rows)
    validation = pd.DataFrame(validation_rows, columns=VALIDATION_COLUMNS)
    return RunData(runs=runs, samples=sample_frame, metrics=metrics_frame, validation=validation, settings=settings,
                   grader=_concat(graders, ["run_id", "arm", "seed", *GRADER_COLUMNS]))


def _whole_numbers(column: pd.Series) -> pd.Series:
    """A column of whole numbers as pandas' nullable integers (not floats when one row has none: a damaged
    record's seed); anything else in it is missing."""
    values = pd.to_numeric(column, errors="coerce")
    return values.where(values == values.round()).astype("Int64")


def drop_superseded(runs: pd.DataFrame, planned_ids: set[str] | None) -> pd.DataFrame:
    """Mark usable runs that another run of the same arm and seed supersedes as not usable, with a note.

    With the current plan's run ids, runs outside it are superseded (an older spec of the experiment);
    among the remaining duplicates the one that ended last wins.
    """
    runs = runs.copy()
    if planned_ids is not None:
        stale = runs["usable"] & ~runs["run_id"].isin(planned_ids)
        runs.loc[stale, "usable"] = False
        runs.loc[stale, "note"] = "not in the current spec (an older configuration)"
    usable = runs[runs["usable"]].sort_values("ended", na_position="first", kind="stable")
    dup = usable.index[usable.duplicated(["arm", "seed"], keep="last")]
    runs.loc[dup, "usable"] = False
    runs.loc[dup, "note"] = "a later run of this arm and seed is used"
    return runs


def read_references(store: Path, experiment: str) -> tuple[dict[str, dict[str, Any]], pd.DataFrame, pd.DataFrame]:
    """Reference models (teacher, starting student) evaluated once per experiment: their records, and their
    per-sample rows and per-problem grader statistics labelled by role."""
    records, frames, graders = {}, [], []
    for role in REFERENCE_ROLES:
        folder = RunStore(store).reference(experiment, role)
        if not folder.path.is_dir():
            continue
        record = folder.record() if folder.is_run else {}
        records[role] = record
        try:
            damages = untrusted(folder)
            evaluated = None if damages else read_eval(folder.eval_dir)
        except DamagedFile as exc:
            damages = [Damage.of(str(exc), "eval")]
        if damages:  # listed as damaged, its rows left out
            records[role] = {**record, "status": "damaged", "error": str(damages[0])}
            continue
        if evaluated is None or evaluated.samples.empty:
            continue
        frames.append(_labelled(evaluated.samples, f"reference/{role}", role, pd.NA))
        if evaluated.grader is not None:
            graders.append(_labelled(evaluated.grader, f"reference/{role}", role, pd.NA))
    samples = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return records, samples, _concat(graders, ["run_id", "arm", "seed", *GRADER_COLUMNS])
