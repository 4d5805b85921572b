"""Learning speed per arm and validation split: the area under the validation curve and the first step at
which validation accuracy reaches a threshold, each with the crossed-model interval and the paired difference
to the baseline (`brts.report.stats`), Holm-adjusted within each measure.

- Area: per run and validation problem, the trapezoid area under its fraction-correct curve over the
  validation steps, divided by the step span: the mean validation accuracy over training, in percent. A
  (seed x problem) matrix per arm, so seeds and problems are both sampled, as in the final table.
- Steps to threshold: per run, the first validation step at which the split's accuracy (`val/<split>`) is at
  least the threshold. A run-level number (a seed x 1 matrix): only the seeds vary. The crossing happened
  somewhere in the validation interval before that step, so the spread over seeds is taken to be at least
  what that rounding alone gives (`stats.crossed_test`'s resolution): three seeds that each reach it one
  interval sooner are not a certainty. A run that never reaches it counts at its last step plus one
  validation interval, a lower bound, and `reached` says how many did.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from brts.report import stats
from brts.report.aggregate import display_task
from brts.report.tables import StatsSettings, apply_holm, difference_fields, interval_text, signed

SPEED_COLUMNS = [
    "measure", "arm", "split", "seeds", "problems", "value", "low", "high", "reached",
    "diff", "diff_low", "diff_high", "se", "p", "p_holm", "significant", "seed_pairing", "detectable",
    "seeds_needed", "var_seed", "var_problem", "var_residual",
]
AREA, STEPS = "area", "steps_to_threshold"
DEFAULT_THRESHOLD = 50.0  # brts.spec.ReportSpec.speed_threshold's default, for a report without its spec


def area_matrix(validation: pd.DataFrame) -> pd.DataFrame:
    """(seed x problem) normalised area under each problem's validation curve, in percent, for one arm and
    split; only problems every seed validated on, over the steps every seed recorded."""
    if validation.empty:
        return pd.DataFrame()
    steps = validation.groupby("seed")["step"].apply(frozenset)
    common = sorted(frozenset.intersection(*steps)) if len(steps) else []
    if len(common) < 2:
        return pd.DataFrame()
    curves = (validation[validation["step"].isin(common)]
              .pivot_table(index=["seed", "problem_id"], columns="step", values="correct", aggfunc="mean")
              .dropna())
    x = np.asarray(common, dtype=float)
    y = curves.to_numpy()
    area = ((y[:, 1:] + y[:, :-1]) / 2.0 * np.diff(x)).sum(axis=1) / (x[-1] - x[0])
    per = pd.Series(100.0 * area, index=curves.index)
    return per.unstack("problem_id").dropna(axis=1)


def threshold_steps(metrics: pd.DataFrame, split: str, threshold: float) -> pd.DataFrame:
    """Per seed: the first validation step with `val/<split>` >= threshold (censored runs at their last step
    plus one validation interval) and whether it was reached. Columns: seed, step, reached."""
    key = f"val/{split}"
    if metrics.empty or key not in metrics.columns:
        return pd.DataFrame(columns=["seed", "step", "reached"])
    rows = []
    for seed, run in metrics[["seed", "step", key]].dropna().sort_values("step").groupby("seed"):
        steps = run["step"].to_numpy(dtype=float)
        hit = run[run[key] >= threshold]
        if not hit.empty:
            rows.append({"seed": seed, "step": float(hit["step"].iloc[0]), "reached": True})
        else:
            interval = float(np.diff(steps).max()) if len(steps) > 1 else 0.0
            rows.append({"seed": seed, "step": float(steps[-1]) + interval, "reached": False})
    return pd.DataFrame(rows, columns=["seed", "step", "reached"])


def _validation_interval(metrics: pd.DataFrame, split: str) -> float:
    """The most common gap between validation steps: a crossing step is known only to within it."""
    key = f"val/{split}"
    if metrics.empty or key not in metrics.columns:
        return 0.0
    gaps = metrics[["run_id", "step", key]].dropna().sort_values("step").groupby("run_id")["step"].diff().dropna()
    return float(gaps.mode().iloc[0]) if not gaps.empty else 0.0


def _row(measure: str, arm: str, split: str, m: pd.DataFrame, cfg: StatsSettings, bounds: tuple[float, float],
         reached: str = "", resolution: float = 0.0) -> dict:
    ci = stats.clip(stats.crossed_test(m.to_numpy(), level=cfg.level, resolution=resolution).interval, bounds)
    return {"measure": measure, "arm": arm, "split": split, "seeds": m.shape[0], "problems": m.shape[1],
            "value": ci.estimate, "low": ci.low, "high": ci.high, "reached": reached,
            **dict.fromkeys(["diff", "diff_low", "diff_high", "se", "p", "p_holm", "detectable", "seeds_needed",
                             "var_seed", "var_problem", "var_residual"], math.nan),
            "significant": False, "seed_pairing": ""}


def _difference(m: pd.DataFrame, base: pd.DataFrame, cfg: StatsSettings, bounds: tuple[float, float],
                resolution: float = 0.0) -> dict:
    common = m.columns.intersection(base.columns)
    paired = list(m.index) == list(base.index)
    return difference_fields(stats.paired_difference(m[common].to_numpy(), base[common].to_numpy(),
                                                     paired_seeds=paired, level=cfg.level, resolution=resolution),
                             cfg, bounds)


def speed_table(metrics: pd.DataFrame, validation: pd.DataFrame, arms: Sequence[str], splits: Sequence[str],
                baseline: str | None, threshold: float, cfg: StatsSettings | None = None) -> pd.DataFrame:
    """One row per measure x split x arm (SPEED_COLUMNS); each measure is one Holm family of comparisons."""
    cfg = cfg or StatsSettings()
    rows: list[dict] = []
    for split in splits:
        areas = {arm: area_matrix(validation[(validation["arm"] == arm) & (validation["split"] == split)])
                 for arm in arms} if not validation.empty else {}
        areas = {a: m for a, m in areas.items() if not m.empty and m.shape[1] > 0}
        for arm, m in areas.items():
            row = _row(AREA, arm, split, m, cfg, (0.0, 100.0))
            if baseline in areas and arm != baseline:
                row.update(_difference(m, areas[baseline], cfg, (-100.0, 100.0)))
            rows.append(row)
        firsts = {arm: threshold_steps(metrics[metrics["arm"] == arm] if not metrics.empty else metrics, split,
                                       threshold) for arm in arms}
        firsts = {a: f for a, f in firsts.items() if not f.empty}
        grid = _validation_interval(metrics, split)
        for arm, f in firsts.items():
            m = f.set_index("seed")[["step"]]
            row = _row(STEPS, arm, split, m, cfg, (0.0, math.inf), f"{int(f['reached'].sum())}/{len(f)}", grid)
            if baseline in firsts and arm != baseline:
                row.update(_difference(m, firsts[baseline].set_index("seed")[["step"]], cfg, (-math.inf, math.inf),
                                       grid))
            rows.append(row)
    table = pd.DataFrame(rows, columns=SPEED_COLUMNS)
    for measure in (AREA, STEPS):
        table = apply_holm(table, cfg.level, table["measure"] == measure)
    order = {m: i for i, m in enumerate((AREA, STEPS))}
    table["_m"] = table["measure"].map(order)
    table["_s"] = table["split"].map({s: i for i, s in enumerate(splits)})
    return table.sort_values(["_m", "_s"], kind="stable").drop(columns=["_m", "_s"]).reset_index(drop=True)


def speed_sentences(speed: pd.DataFrame, baseline: str, threshold: float) -> list[str]:
    """One sentence per learning-speed difference that is significant after Holm; none where none is."""
    out = []
    for r in speed[speed["significant"]].itertuples():
        unit = "points of mean validation accuracy" if r.measure == AREA else "steps to reach " + f"{threshold:g}%"
        out.append(f"{r.arm} vs {baseline}, learning speed on {display_task(r.split)}: {signed(r.diff)} {unit} "
                   f"{interval_text(r.diff_low, r.diff_high)} (Holm p = {r.p_holm:.3g}).")
    return out
