"""Figures of a sweep: the N x λ map of the objective, the optimisation history, importances, the Pareto front."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from brts.report.plots import facets, theme
from brts.report.study import PARAM_LABELS, Study

MAX_LAMBDA_COLUMNS = 8


def _complete(study: Study) -> pd.DataFrame:
    return study.trials[study.trials["state"] == "complete"]


def _lambda_bins(values: pd.Series) -> pd.Series:
    """λ as heatmap columns: its own values when few, else log-spaced bins labelled by their range."""
    distinct = np.sort(values.dropna().unique())
    if len(distinct) <= MAX_LAMBDA_COLUMNS:
        return values.map(lambda v: f"{v:.3g}")
    edges = np.geomspace(distinct[0], distinct[-1], 7)
    labels = [f"{lo:.2g}–{hi:.2g}" for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    return pd.cut(values, edges, labels=labels, include_lowest=True).astype(str)


def objective_map(study: Study) -> Figure | None:
    """Mean objective per (N, λ) cell, the number of trials in it annotated below the value."""
    trials = _complete(study)
    if trials.empty or "param:teacher_samples" not in trials or "param:aux_weight" not in trials:
        return None
    fig, axes = facets(len(study.objectives), width=4.6, height=3.6, sharey=False)
    lam = _lambda_bins(trials["param:aux_weight"].astype(float))
    order = [c for c in dict.fromkeys(lam[trials["param:aux_weight"].astype(float).sort_values().index])]
    for ax, obj in zip(axes, study.objectives, strict=True):
        frame = pd.DataFrame({"N": trials["param:teacher_samples"], "λ": lam, "value": trials[obj]})
        mean = frame.pivot_table(index="N", columns="λ", values="value", aggfunc="mean").reindex(columns=order)
        count = frame.pivot_table(index="N", columns="λ", values="value", aggfunc="count").reindex(columns=order)
        notes = mean.map(lambda v: "" if pd.isna(v) else f"{v:.4g}") + count.map(
            lambda n: "" if pd.isna(n) else f"\n(n={int(n)})")
        sns.heatmap(mean, annot=notes, fmt="", cmap="viridis", ax=ax, cbar_kws={"label": obj},
                    annot_kws={"fontsize": 7})
        ax.set_title(f"{obj} ({study.directions[study.objectives.index(obj)]})")
        ax.invert_yaxis()
    fig.suptitle("Objective over N × λ (mean of complete trials per cell)", fontsize=10)
    return fig


def history(study: Study) -> Figure | None:
    """Each complete trial's objective by trial number, with the best value so far."""
    trials = _complete(study)
    if trials.empty:
        return None
    fig, axes = facets(len(study.objectives), width=4.6, sharey=False)
    for ax, obj, direction in zip(axes, study.objectives, study.directions, strict=True):
        values = trials[obj].astype(float)
        best = values.cummax() if direction == "maximize" else values.cummin()
        ax.scatter(trials["number"], values, s=18, color="#0173b2", label="trial")
        ax.step(trials["number"], best, where="post", color="#d55e00", lw=1.8, label="best so far")
        ax.set_xlabel("trial")
        ax.set_ylabel(obj)
        ax.legend(frameon=False, fontsize=7)
    fig.suptitle("Optimisation history", fontsize=10)
    return fig


def importances(study: Study) -> Figure | None:
    if not study.importances:
        return None
    theme()
    names = list(study.importances)
    fig, ax = plt.subplots(figsize=(5.0, 0.45 * len(names) + 1.2), layout="constrained")
    ax.barh([f"{PARAM_LABELS.get(n, n)} ({n})" for n in names], [study.importances[n] for n in names], color="#0173b2")
    ax.invert_yaxis()
    ax.set_xlabel("importance (fANOVA)")
    ax.set_title(f"Parameter importance for {study.objectives[0]}", fontsize=10)
    return fig


def pareto_front(study: Study) -> Figure | None:
    """The first two objectives of every complete trial; the Pareto-optimal ones joined and highlighted."""
    trials = _complete(study)
    if len(study.objectives) < 2 or trials.empty:
        return None
    theme()
    x, y = study.objectives[:2]
    fig, ax = plt.subplots(figsize=(5.0, 4.0), layout="constrained")
    on_front = trials["number"].isin(study.pareto)
    ax.scatter(trials.loc[~on_front, x], trials.loc[~on_front, y], color="0.6", s=20, label="trial")
    front = trials[on_front].sort_values(x)
    ax.plot(front[x], front[y], "o-", color="#d55e00", lw=1.5, label="Pareto front")
    for _, r in front.iterrows():
        ax.annotate(str(int(r["number"])), (r[x], r[y]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel(f"{x} ({study.directions[0]})")
    ax.set_ylabel(f"{y} ({study.directions[1]})")
    ax.legend(frameon=False, fontsize=8)
    ax.set_title("Pareto front (labels: trial numbers)", fontsize=10)
    return fig
