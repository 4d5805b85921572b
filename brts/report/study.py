"""Reading a sweep's Optuna study from `<store>/sweeps/<name>/` into a tidy frame of trials.

The storage is found by its file: `*.db` / `*.sqlite` / `*.sqlite3` open as SQLite, `*.log` / `*.journal` /
`*.jsonl` as an Optuna journal file. Each trial's user attributes name its run (`run_id`, `run_path`), whose
folder the report reads like any experiment's; its parameters include N (`teacher_samples`) and lambda
(`aux_weight`).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from brts.report.aggregate import ReportError

SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
JOURNAL_SUFFIXES = (".log", ".journal", ".jsonl")
STATE_NAMES = {"COMPLETE": "complete", "FAIL": "failed", "PRUNED": "pruned", "RUNNING": "running",
               "WAITING": "waiting"}
PARAM_LABELS = {"teacher_samples": "N", "aux_weight": "λ"}


@dataclass
class Study:
    """The trials of one study and what the report shows about them."""

    name: str
    storage: Path
    objectives: list[str]
    directions: list[str]  # "maximize" / "minimize", one per objective
    trials: pd.DataFrame  # number, state, params, objective columns and their "<obj> sd" over seeds, run links
    params: list[str]
    importances: dict[str, float] | None
    importance_note: str
    pareto: list[int]  # trial numbers on the Pareto front (two or more objectives)


def _storage(path: Path) -> Any:
    import optuna

    if path.suffix in SQLITE_SUFFIXES:
        return optuna.storages.RDBStorage(f"sqlite:///{path.resolve()}")
    # Optuna >= 4 names the file backend JournalFileBackend (in storages.journal); 3.x JournalFileStorage
    journal = getattr(optuna.storages, "journal", None)
    backend = getattr(journal, "JournalFileBackend", None) or optuna.storages.JournalFileStorage
    return optuna.storages.JournalStorage(backend(str(path)))


def find_storage(folder: Path) -> Path:
    """The study storage file inside a sweep folder; ReportError when there is none or more than one."""
    found = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in SQLITE_SUFFIXES + JOURNAL_SUFFIXES)
    if not found:
        raise ReportError(f"sweep folder {folder} holds no Optuna storage (*.db, *.sqlite, *.log, *.journal)")
    if len(found) > 1:
        raise ReportError(f"sweep folder {folder} holds several storages ({', '.join(p.name for p in found)}); "
                          "keep one")
    return found[0]


def load_study(folder: Path, name: str) -> Study:
    """The study named `name` in the folder's storage (or the only study there)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    path = find_storage(folder)
    try:
        storage = _storage(path)
        names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
    except Exception as exc:  # a corrupt or foreign file
        raise ReportError(f"cannot open the Optuna storage {path}: {type(exc).__name__}: {exc}") from exc
    if name not in names and len(names) != 1:
        raise ReportError(f"storage {path} has no study named {name!r} (found: {', '.join(names) or 'none'})")
    study = optuna.load_study(study_name=name if name in names else names[0], storage=storage)
    directions = [d.name.lower() for d in study.directions]
    objectives = list(study.metric_names or [])
    if len(objectives) != len(directions):
        objectives = ["objective"] if len(directions) == 1 else [f"objective {i + 1}" for i in range(len(directions))]
    trials = _trial_frame(study.get_trials(deepcopy=False), objectives)
    params = [c for c in trials.columns if c.startswith("param:")]
    importances, note = _importances(study, trials)
    pareto = [t.number for t in study.best_trials] if len(directions) > 1 else []
    return Study(study.study_name, path, objectives, directions, trials, [p[6:] for p in params],
                 importances, note, pareto)


def _trial_frame(trials: list[Any], objectives: list[str]) -> pd.DataFrame:
    rows = []
    for t in trials:
        row: dict[str, Any] = {"number": t.number, "state": STATE_NAMES.get(t.state.name, t.state.name.lower())}
        row.update({f"param:{k}": v for k, v in t.params.items()})
        values = t.values or []
        for i, obj in enumerate(objectives):
            row[obj] = values[i] if i < len(values) else math.nan
        sd = t.user_attrs.get("seed_sd") or {}
        for obj in objectives:
            row[f"{obj} sd"] = sd.get(obj, math.nan)
        for obj, by_arm in (t.user_attrs.get("arm_values") or {}).items():  # sweeps over several arms
            row.update({f"{obj} [{arm}]": statistics.fmean(v) for arm, v in by_arm.items() if v})
        row["run_id"] = t.user_attrs.get("run_id")
        row["run_path"] = t.user_attrs.get("run_path")
        row["run_paths"] = t.user_attrs.get("run_paths")  # every seed's run (brts sweeps); run_path: the first
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=["number", "state", *objectives, *[f"{o} sd" for o in objectives], "run_id",
                                     "run_path", "run_paths"])
    return frame.sort_values("number").reset_index(drop=True)


def _importances(study: Any, trials: pd.DataFrame) -> tuple[dict[str, float] | None, str]:
    import optuna

    complete = trials[trials["state"] == "complete"]
    params = [c for c in trials.columns if c.startswith("param:")]
    varying = [p for p in params if complete[p].nunique() > 1]
    if len(complete) < 3 or not varying:
        return None, "parameter importances need at least 3 complete trials with varying parameters"
    try:
        target = None if len(study.directions) == 1 else (lambda t: t.values[0])
        # fANOVA explains the objective's variance, so the direction does not matter; seeded for equal reports
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
        found = optuna.importance.get_param_importances(study, evaluator=evaluator, target=target)
    except (RuntimeError, ValueError) as exc:
        return None, f"parameter importances unavailable: {exc}"
    return {k: float(v) for k, v in found.items()}, "fANOVA importance of each parameter for the first objective"


def resolve_run_path(value: Any, store: Path) -> Path | None:
    """A trial's `run_path` attribute as a folder: absolute, else relative to the store, else to the cwd."""
    if not value:
        return None
    path = Path(str(value)).expanduser()
    for candidate in (path, store / path, Path.cwd() / path):
        if candidate.is_dir():
            return candidate
    return None
