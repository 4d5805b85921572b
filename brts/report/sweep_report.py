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


def _run_folder(trial: pd.Series, store: Path) -> Path | None:
    found = resolve_run_path(trial.get("run_path"), store)
    if found is None and trial.get("run_id"):
        matches = sorted(p for p in store.glob(f"*/{trial['run_id']}") if (p / "record.json").is_file())
        found = matches[0] if matches else None
    return found


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
    study = load_study(store / "sweeps" / name, name)
    trials = study.trials
    if trials.empty:
        raise ReportError(f"sweep {name!r} in {store} has no trials yet; run `brts sweep run {name}` first")
    progress(f"reading the runs of {len(trials)} trials")
    folders, labels = [], {}
    for _, t in trials.iterrows():
        folder = _run_folder(t, store)
        if folder is not None:
            folders.append(folder)
            labels[str(folder)] = {"arm": f"trial {int(t['number'])}"}
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
        "Each trial is one training run, so its objective carries that run's seed and sampling noise: the best "
        "cell is where to look further (more seeds), not a significant winner.",
    ]
    missing = [int(t["number"]) for _, t in trials.iterrows() if _run_folder(t, store) is None]
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
        Heading("Trials"), Table(table, "one row per trial; avg@k per task from the trial's run (percent)"),
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
    status = {row.arm: row.status for row in runs.itertuples()}
    rows = []
    for _, t in study.trials.iterrows():
        label = f"trial {int(t['number'])}"
        row = {"trial": str(int(t["number"])), "state": t["state"]}
        for p in study.params:
            value = t.get(f"param:{p}")
            row[PARAM_LABELS.get(p, p)] = "–" if value is None or pd.isna(value) else f"{value:.3g}"
        for obj in study.objectives:
            row[obj] = "–" if math.isnan(float(t[obj])) else f"{float(t[obj]):.2f}"
        if study.pareto:
            row["Pareto"] = "yes" if int(t["number"]) in study.pareto else ""
        run_id = "–" if pd.isna(t["run_id"]) else str(t["run_id"])
        row["run"] = f"{run_id} ({status.get(label, 'no folder')})"
        for task in per_task.columns:
            value = per_task[task].get(label, math.nan)
            row[f"avg@k {display_task(task)}"] = "–" if pd.isna(value) else f"{value:.1f}"
        rows.append(row)
    return pd.DataFrame(rows)
