"""The report's figures (seaborn on matplotlib, no display). One colour per arm, the same in every figure.

Each function takes tidy frames and returns a matplotlib Figure, or None when there is nothing to draw;
`save` writes it as PNG and SVG.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from brts.report.aggregate import display_task  # noqa: E402

TIER_COLOURS = {"tier 1": "#1b9e77", "tier 2": "#7570b3", "tier 3": "#d95f02", "skipped": "#bdbdbd"}
REFERENCE_STYLE = {"teacher": ("black", "--"), "student_start": ("0.45", ":")}
SMOOTH_STEPS = 5


def arm_colours(arms: Sequence[str]) -> dict[str, tuple[float, float, float]]:
    """A fixed colour per arm, by its position in the experiment's arm order."""
    palette = sns.color_palette("colorblind", max(len(arms), 1))
    return {arm: tuple(palette[i % len(palette)]) for i, arm in enumerate(arms)}  # type: ignore[misc]


def theme() -> None:
    sns.set_theme(style="whitegrid", context="notebook", font_scale=0.85)
    plt.rcParams["svg.hashsalt"] = "brts"  # stable element ids: equal data gives equal SVG files


def facets(n: int, width: float = 3.4, height: float = 3.3, sharey: bool = True) -> tuple[Figure, list]:
    theme()
    fig, axes = plt.subplots(1, n, figsize=(width * n + 0.6, height), sharey=sharey, squeeze=False,
                             layout="constrained")
    return fig, list(axes[0])


def save(fig: Figure, folder: Path, name: str) -> list[Path]:
    """Write `name.png` and `name.svg` into `folder`; closes the figure."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{name}.png", folder / f"{name}.svg"]
    fig.savefig(paths[0], dpi=110)
    fig.savefig(paths[1], metadata={"Date": None})
    plt.close(fig)
    return paths


def _legend(fig: Figure, handles: list, labels: list[str], ncol: int | None = None) -> None:
    fig.legend(handles, labels, loc="outside lower center", ncol=ncol or min(len(labels), 6), frameon=False)


def accuracy(table: pd.DataFrame, per_seed: pd.DataFrame, colours: dict, level: float) -> Figure | None:
    """avg@k per arm and task: point and interval, each seed's own avg@k as a dot, reference models as lines."""
    arms_rows = table[table["kind"] == "arm"]
    tasks = list(dict.fromkeys(arms_rows["task"]))
    if not tasks:
        return None
    fig, axes = facets(len(tasks))
    refs = table[table["kind"] == "reference"]
    for ax, task in zip(axes, tasks, strict=True):
        rows = arms_rows[arms_rows["task"] == task].reset_index(drop=True)
        for i, r in rows.iterrows():
            c = colours[r["arm"]]
            ax.errorbar(i, r["avg"], yerr=[[r["avg"] - r["low"]], [r["high"] - r["avg"]]], fmt="o", color=c,
                        capsize=4, markersize=7, lw=2)
            dots = per_seed[(per_seed["arm"] == r["arm"]) & (per_seed["task"] == task)]["avg"]
            ax.scatter(np.full(len(dots), i + 0.22), dots, color=c, s=14, alpha=0.6, linewidths=0)
        for _, ref in refs[refs["task"] == task].iterrows():
            colour, style = REFERENCE_STYLE.get(ref["arm"], ("0.3", "-."))
            ax.axhline(ref["avg"], color=colour, ls=style, lw=1.2)
            ax.annotate(ref["arm"], (len(rows) - 0.5, ref["avg"]), fontsize=7, color=colour, ha="right", va="bottom")
        ax.set_xticks(range(len(rows)), rows["arm"], rotation=35, ha="right")
        ax.set_xlim(-0.6, len(rows) - 0.4)
        ax.set_title(display_task(task))
    axes[0].set_ylabel(f"avg@k (%), {level:.0%} interval")
    fig.suptitle("Final accuracy per arm (dots: single seeds; lines: reference models)", fontsize=10)
    return fig


def difference(table: pd.DataFrame, baseline: str, colours: dict, level: float) -> Figure | None:
    """Paired difference to the baseline per arm and task; filled markers where significant after Holm."""
    rows = table[(table["kind"] == "arm") & table["diff"].notna()]
    tasks = list(dict.fromkeys(rows["task"]))
    if not tasks:
        return None
    fig, axes = facets(len(tasks), height=0.5 * rows["arm"].nunique() + 1.6)
    for ax, task in zip(axes, tasks, strict=True):
        sub = rows[rows["task"] == task].reset_index(drop=True)
        for i, r in sub.iterrows():
            c = colours[r["arm"]]
            ax.errorbar(r["diff"], i, xerr=[[r["diff"] - r["diff_low"]], [r["diff_high"] - r["diff"]]], fmt="o",
                        color=c, mfc=c if r["significant"] else "white", capsize=4, markersize=7, lw=2)
        ax.axvline(0, color="0.3", lw=1)
        ax.set_yticks(range(len(sub)), sub["arm"])
        ax.invert_yaxis()
        ax.set_title(display_task(task))
        ax.set_xlabel(f"points vs {baseline}")
    fig.suptitle(f"Paired difference to {baseline}, {level:.0%} interval (filled: significant after Holm)", fontsize=10)
    return fig


def learning_curves(metrics: pd.DataFrame, colours: dict, splits: Sequence[str] = ()) -> Figure | None:
    """Validation accuracy over steps per split: mean over seeds, band from the lowest to the highest seed.

    Panels follow `splits` (display names) where given, then any other `val/` key.
    """
    found = [c for c in metrics.columns if c.startswith("val/")] if not metrics.empty else []
    keys = [f"val/{s}" for s in splits if f"val/{s}" in found] + sorted(c for c in found if c[4:] not in splits)
    if not keys:
        return None
    fig, axes = facets(len(keys))
    for ax, key in zip(axes, keys, strict=True):
        sub = metrics[["arm", "seed", "step", key]].dropna()
        for arm in [a for a in colours if a in set(sub["arm"])]:
            g = sub[sub["arm"] == arm].groupby("step")[key].agg(["mean", "min", "max"])
            ax.plot(g.index, g["mean"], color=colours[arm], lw=1.8, label=arm)
            ax.fill_between(g.index, g["min"], g["max"], color=colours[arm], alpha=0.15, lw=0)
        ax.set_title(key.removeprefix("val/"))
        ax.set_xlabel("step")
    axes[0].set_ylabel("validation accuracy (%)")
    handles = [Line2D([], [], color=c, lw=2) for c in colours.values()]
    _legend(fig, handles, list(colours))
    fig.suptitle("Learning curves (line: mean over seeds; band: lowest to highest seed)", fontsize=10)
    return fig


KL_PANELS = {"kl/opd": "kl/opd: reverse KL, student's own samples", "kl/aux": "kl/aux: forward KL, teacher's trajectory"}


def divergences(metrics: pd.DataFrame, colours: dict) -> Figure | None:
    """The true per-token KL estimates over training (kl/opd, kl/aux): mean over seeds, band from the lowest to
    the highest seed, rolling SMOOTH_STEPS steps; None when the runs logged neither."""
    keys = [k for k in KL_PANELS if not metrics.empty and k in metrics.columns and metrics[k].notna().any()]
    if not keys:
        return None
    fig, axes = facets(len(keys), width=4.2, sharey=False)
    for ax, key in zip(axes, keys, strict=True):
        sub = metrics[["arm", "seed", "step", key]].dropna()
        for arm in [a for a in colours if a in set(sub["arm"])]:
            per_seed = (sub[sub["arm"] == arm].pivot_table(index="step", columns="seed", values=key)
                        .rolling(SMOOTH_STEPS, center=True, min_periods=1).mean())
            ax.plot(per_seed.index, per_seed.mean(axis=1), color=colours[arm], lw=1.8)
            ax.fill_between(per_seed.index, per_seed.min(axis=1), per_seed.max(axis=1), color=colours[arm],
                            alpha=0.15, lw=0)
        ax.set_title(KL_PANELS[key], fontsize=9)
        ax.set_xlabel("step")
        ax.set_yscale("symlog", linthresh=0.01)
    axes[0].set_ylabel("nats per token")
    arms = [a for a in colours if a in set(metrics["arm"])]
    _legend(fig, [Line2D([], [], color=colours[a], lw=2) for a in arms], arms)
    fig.suptitle(f"Per-token KL to the teacher (mean over seeds, rolling {SMOOTH_STEPS} steps; band: seeds)",
                 fontsize=10)
    return fig


def learning_speed(speed: pd.DataFrame, colours: dict, threshold: float, level: float) -> Figure | None:
    """Two rows of panels per validation split: the area under the validation curve and the first step at the
    threshold, per arm with its interval; significant differences to the baseline filled."""
    if speed.empty:
        return None
    measures = [m for m in ("area", "steps_to_threshold") if (speed["measure"] == m).any()]
    splits = list(dict.fromkeys(speed["split"]))
    theme()
    fig, grid = plt.subplots(len(measures), len(splits), figsize=(3.4 * len(splits) + 0.6, 3.0 * len(measures)),
                             squeeze=False, sharey="row", layout="constrained")
    labels = {"area": "area under val. curve (%)", "steps_to_threshold": f"first step at ≥ {threshold:g}%"}
    for i, measure in enumerate(measures):
        for j, split in enumerate(splits):
            ax = grid[i][j]
            rows = speed[(speed["measure"] == measure) & (speed["split"] == split)].reset_index(drop=True)
            for k, r in rows.iterrows():
                c = colours.get(r["arm"], "0.3")
                filled = bool(r["significant"]) or pd.isna(r["diff"])
                ax.errorbar(k, r["value"], yerr=[[r["value"] - r["low"]], [r["high"] - r["value"]]], fmt="o",
                            color=c, mfc=c if filled else "white", capsize=4, markersize=7, lw=2)
            ax.set_xticks(range(len(rows)), rows["arm"], rotation=35, ha="right")
            ax.set_title(display_task(split) if i == 0 else "")
            if j == 0:
                ax.set_ylabel(labels[measure])
    fig.suptitle(f"Learning speed per arm, {level:.0%} interval (hollow: difference to the baseline not "
                 "significant)", fontsize=10)
    return fig


def _branch_arms(metrics: pd.DataFrame, column: str, colours: dict) -> list[str]:
    """Arms (in colour order) whose metrics carry `column`, i.e. that ran the teacher-context branch."""
    if metrics.empty or column not in metrics.columns:
        return []
    present = set(metrics.dropna(subset=[column])["arm"])
    return [a for a in colours if a in present]


def _arm_title(ax: plt.Axes, arm: str, colours: dict) -> None:
    ax.set_title(arm, color=colours.get(arm, "black"), fontweight="bold")


def _smoothed(rows: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Mean over seeds per step, then a centred rolling mean over SMOOTH_STEPS steps."""
    per_step = rows.groupby("step")[list(columns)].mean()
    return per_step.rolling(SMOOTH_STEPS, center=True, min_periods=1).mean()


def selection_tiers(metrics: pd.DataFrame, colours: dict) -> Figure | None:
    """Stacked fractions of prompts per selection tier over training, one panel per arm with the branch."""
    columns = ["selection/frac_tier1", "selection/frac_tier2", "selection/frac_tier3", "selection/frac_tier0"]
    arms = _branch_arms(metrics, columns[0], colours)
    if not arms:
        return None
    fig, axes = facets(len(arms), width=3.0)
    for ax, arm in zip(axes, arms, strict=True):
        rows = metrics[(metrics["arm"] == arm) & metrics[columns[0]].notna()]
        sm = _smoothed(rows, [c for c in columns if c in rows.columns]).fillna(0.0)
        ax.stackplot(sm.index, *(sm[c] for c in sm.columns), colors=list(TIER_COLOURS.values())[: len(sm.columns)],
                     alpha=0.9)
        ax.set_ylim(0, 1)
        _arm_title(ax, arm, colours)
        ax.set_xlabel("step")
    axes[0].set_ylabel("fraction of prompts")
    handles = [Rectangle((0, 0), 1, 1, color=c) for c in TIER_COLOURS.values()]
    _legend(fig, handles, list(TIER_COLOURS))
    fig.suptitle(f"Selection tier over training (mean over seeds, rolling {SMOOTH_STEPS} steps)", fontsize=10)
    return fig


def alignment(metrics: pd.DataFrame, colours: dict, scored: Sequence[str]) -> Figure | None:
    """Alignment score of the selected teacher trajectory per tier over training, one panel per arm in
    `scored` (arms whose selection uses an alignment score; `first` / `random` log placeholders)."""
    columns = {f"selection/alignment_tier{t}": f"tier {t}" for t in (1, 2, 3)}
    present = [c for c in columns if not metrics.empty and c in metrics.columns]
    arms = [a for a in colours if a in scored and any(a in _branch_arms(metrics, c, colours) for c in present)]
    if not arms:
        return None
    fig, axes = facets(len(arms), width=3.0)
    for ax, arm in zip(axes, arms, strict=True):
        rows = metrics[metrics["arm"] == arm]
        sm = _smoothed(rows, present)
        for c in present:
            if sm[c].notna().any():
                ax.plot(sm.index, sm[c], color=TIER_COLOURS[columns[c]], lw=1.8)
        _arm_title(ax, arm, colours)
        ax.set_xlabel("step")
    axes[0].set_ylabel("alignment of the selected trajectory")
    handles = [Line2D([], [], color=TIER_COLOURS[v], lw=2) for v in columns.values()]
    _legend(fig, handles, list(columns.values()))
    fig.suptitle(f"Alignment per tier (mean over seeds, rolling {SMOOTH_STEPS} steps)", fontsize=10)
    return fig


def _dodge(tokens: pd.Series) -> dict[str, float]:
    """x positions: arms that spent the same tokens are spread by 1.5% of the axis so none hides another."""
    span = float(tokens.max() - tokens.min()) or max(float(tokens.max()), 1.0)
    out = {}
    for _, group in tokens.groupby(tokens.round(0)):
        for i, arm in enumerate(group.index):
            out[arm] = float(group[arm]) + 0.015 * span * (i - (len(group) - 1) / 2)
    return out


def cost(table: pd.DataFrame, costs: pd.DataFrame, baseline: str, colours: dict) -> Figure | None:
    """Accuracy gain over the baseline against teacher tokens generated per run, per task."""
    rows = table[(table["kind"] == "arm")].merge(costs[["arm", "teacher_tokens"]], on="arm")
    tasks = list(dict.fromkeys(rows["task"]))
    if rows.empty or baseline not in set(rows["arm"]):
        return None
    fig, axes = facets(len(tasks))
    x = _dodge(costs.set_index("arm")["teacher_tokens"])
    for ax, task in zip(axes, tasks, strict=True):
        for _, r in rows[rows["task"] == task].iterrows():
            c = colours[r["arm"]]
            if r["arm"] == baseline:
                ax.plot(x[r["arm"]], 0.0, "s", color=c, markersize=7)
                continue
            ax.errorbar(x[r["arm"]], r["diff"], yerr=[[r["diff"] - r["diff_low"]], [r["diff_high"] - r["diff"]]],
                        fmt="o", color=c, mfc=c if r["significant"] else "white", capsize=4, markersize=7, lw=2)
        ax.axhline(0, color="0.3", lw=1)
        ax.set_title(display_task(task))
        ax.set_xlabel("teacher tokens generated per run")
        ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 3))
    axes[0].set_ylabel(f"points vs {baseline}")
    arms = [a for a in colours if a in set(rows["arm"])]
    handles = [Line2D([], [], color=colours[a], marker="o", ls="") for a in arms]
    _legend(fig, handles, arms)
    fig.suptitle("Accuracy gain against teacher tokens spent", fontsize=10)
    return fig
