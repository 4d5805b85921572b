"""The report of one sweep: its Optuna trials, the runs they name, and the sweep figures."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from brts.report import sweep_plots
from brts.report.aggregate import ReportError, display_task, read_runs
from brts.report.experiment import Composed, Progress
from brts.report.render import Block, Bullets, Figure, Heading, Para, Table
from brts.report.study import PARAM_LABELS, Study, load_study, resolve_run_path
from brts.store import RunStore


def _run_folders(trial: pd.Series, store: Path) -> list[Path]:
    """Every seed's run folder of a trial (`run_paths`), else the one its `run_path` or `run_id` names."""
    paths = trial.get("run_paths")
    if isinstance(paths, list | tuple) and paths:
        found = [resolve_run_path(p, store) for p in paths]
        return [f for f in found if f is not None]
    one = resolve_run_path(trial.get("run_path"), store)
    if one is None and trial.get("run_id"):
        found = RunStore(store).find(str(trial["run_id"]))
        one = found.path if found is not None else None
    return [] if one is None else [one]


def _best(study: Study) -> str:
    complete = study.trials[study.trials["state"] == "complete"]
    if complete.empty:
        return "No trial has completed yet."
    if len(study.objectives) > 1:
        return (f"{len(study.pareto)} trial(s) on the Pareto front of {' and '.join(study.objectives)}: "
                + ", ".join(str(n) for n in study.pareto) + ".")
    obj = study.objectives[0]
    idx = complete[obj].idxmax() if study.directions[0] == "maximize" else complete[obj].idxmin()
    best = complete.loc[idx]
    params = ", ".join(f"{PARAM_LABELS.get(p, p)} = {best['param:' + p]:.3g}" for p in study.params)
    return f"Best {obj}: {best[obj]:.2f} at {params} (trial {int(best['number'])})."


def compose(store: Path, name: str, progress: Progress) -> Composed:
    """Read the study in `<store>/sweeps/<name>/` and its trials' runs; compose the sweep report."""
    study = load_study(RunStore(store).sweep_dir(name), name)
    trials = study.trials
    if trials.empty:
        raise ReportError(f"sweep {name!r} in {store} has no trials yet; run `brts sweep run {name}` first")
    progress(f"reading the runs of {len(trials)} trials")
    trial_folders = {int(t["number"]): _run_folders(t, store) for _, t in trials.iterrows()}
    folders = [folder for found in trial_folders.values() for folder in found]
    labels = {str(folder): {"arm": f"trial {number}"} for number, found in trial_folders.items() for folder in found}
    data = read_runs(folders, labels)
    per_task = pd.DataFrame()
    if not data.samples.empty:
        per_task = (data.samples.groupby(["arm", "task", "problem_id"])["correct"].mean().mul(100)
                    .groupby(["arm", "task"]).mean().unstack("task"))
    table = _trial_table(study, data.runs, per_task)
    states = trials["state"].value_counts()
    summary = [
        f"{len(trials)} trials: " + ", ".join(f"{n} {s}" for s, n in states.items()) + ".",
        _best(study),
        "A trial's objective is the mean over its seeds' runs (± their sd where it has several), so it still "
        "carries seed and sampling noise: the best cell is where to look further, not a significant winner.",
    ]
    missing = [number for number, found in trial_folders.items() if not found]
    if missing:
        summary.append(f"No run folder found for trial(s) {', '.join(map(str, missing))} (user attribute run_path).")
    progress("drawing figures")
    figures = {
        "sweep_objective": sweep_plots.objective_map(study),
        "sweep_history": sweep_plots.history(study),
        "sweep_importance": sweep_plots.importances(study),
        "sweep_pareto": sweep_plots.pareto_front(study),
    }
    blocks: list[Block] = [
        Para(f"Sweep {name}: study {study.name!r} in {study.storage}; objective(s): "
             + ", ".join(f"{o} ({d})" for o, d in zip(study.objectives, study.directions, strict=True)) + "."),
        Heading("Summary"), Bullets(summary),
        Heading("Trials"), Table(table, "one row per trial; objective: mean ± sd over its seeds; avg@k per task "
                                        "over every seed's run (percent)"),
    ]
    captions = {"sweep_objective": "objective over N × λ", "sweep_history": "optimisation history",
                "sweep_importance": study.importance_note, "sweep_pareto": "Pareto front of the two objectives"}
    for key, fig in figures.items():
        if fig is not None:
            blocks.append(Figure(key, captions[key]))
    if figures["sweep_importance"] is None:
        blocks.append(Para(study.importance_note + "."))
    results = data.samples.copy()
    results.insert(0, "kind", "run")
    results.insert(0, "experiment", name)
    results["trial"] = results["arm"].str.removeprefix("trial ").astype(int) if not results.empty else []
    return Composed(title=f"Sweep report: {name}", blocks=blocks,
                    figures={k: v for k, v in figures.items() if v is not None},
                    frames={"results": results, "runs": data.runs.drop(columns=["path"]), "trials": trials},
                    summary=summary)


def _trial_table(study: Study, runs: pd.DataFrame, per_task: pd.DataFrame) -> pd.DataFrame:
    status: dict[str, list[str]] = {}
    for run in runs.itertuples():
        status.setdefault(str(run.arm), []).append(str(run.status))
    rows = []
    for _, t in study.trials.iterrows():
        label = f"trial {int(t['number'])}"
        row = {"trial": str(int(t["number"])), "state": t["state"]}
        for p in study.params:
            value = t.get(f"param:{p}")
            row[PARAM_LABELS.get(p, p)] = "–" if value is None or pd.isna(value) else f"{value:.3g}"
        for obj in study.objectives:
            value, sd = float(t[obj]), float(t.get(f"{obj} sd", math.nan))
            row[obj] = "–" if math.isnan(value) else f"{value:.2f}" + ("" if math.isnan(sd) else f" ± {sd:.2f}")
        if study.pareto:
            row["Pareto"] = "yes" if int(t["number"]) in study.pareto else ""
        run_id = "–" if pd.isna(t["run_id"]) else str(t["run_id"])
        states = status.get(label, [])
        seeds = f", {len(states)} seeds" if len(states) > 1 else ""
        row["run"] = f"{run_id}{seeds} ({', '.join(sorted(set(states))) or 'no folder'})"
        for task in per_task.columns:
            value = per_task[task].get(label, math.nan)
            row[f"avg@k {display_task(task)}"] = "–" if pd.isna(value) else f"{value:.1f}"
        rows.append(row)
    return pd.DataFrame(rows)
