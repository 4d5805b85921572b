"""The comparison tables: arm x task accuracy with intervals, paired differences to the baseline, cost.

Every number here is recomputable from the tidy per-sample frame (`results.parquet`): an arm's avg@k on a
task is the mean over its seeds and the task's problems of each problem's fraction of correct samples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from brts.evaluation.metrics import pass_at_k
from brts.report import stats
from brts.report.aggregate import ReportError, display_task

TABLE_COLUMNS = [
    "kind", "arm", "task", "seeds", "problems", "k", "avg", "low", "high", "seed_sd", "pass_at_k",
    "diff", "diff_low", "diff_high", "se", "p", "p_holm", "significant", "seed_pairing", "compared_seeds",
    "detectable", "seeds_needed", "var_seed", "var_problem", "var_residual", "p_wilcoxon_problems",
]


@dataclass(frozen=True)
class StatsSettings:
    level: float = stats.DEFAULT_LEVEL
    power: float = stats.DEFAULT_POWER


def problem_matrix(samples: pd.DataFrame) -> pd.DataFrame:
    """(seed x problem) accuracy in percent, averaged over samples; only problems every seed evaluated."""
    per = samples.groupby(["seed", "problem_id"], dropna=False)["correct"].mean().mul(100.0)
    return per.unstack("problem_id").dropna(axis=1)


def _pass_at_k(samples: pd.DataFrame, k: int) -> float:
    """Unbiased pass@k averaged over problems and then seeds, in percent."""
    counts = samples.groupby(["seed", "problem_id"], dropna=False)["correct"].agg(["count", "sum"])
    values = [pass_at_k(int(n), int(c), min(k, int(n))) for n, c in counts.itertuples(index=False)]
    per_seed = pd.Series(values, index=counts.index).groupby(level="seed", dropna=False).mean()
    return float(100.0 * per_seed.mean())


def _samples_per_problem(samples: pd.DataFrame) -> int:
    return int(samples.groupby(["seed", "problem_id"], dropna=False).size().min())


_DIFF_FIELDS = ("diff", "diff_low", "diff_high", "se", "p", "p_holm", "compared_seeds", "detectable", "seeds_needed",
                "var_seed",
                "var_problem", "var_residual", "p_wilcoxon_problems")


def _row(kind: str, arm: str, task: str, m: pd.DataFrame, samples: pd.DataFrame, cfg: StatsSettings) -> dict:
    k = _samples_per_problem(samples)
    ci = stats.mean_interval(m.to_numpy(), level=cfg.level, bounds=(0.0, 100.0))
    return {
        "kind": kind, "arm": arm, "task": task, "seeds": m.shape[0], "problems": m.shape[1], "k": k,
        "avg": ci.estimate, "low": ci.low, "high": ci.high, "seed_sd": stats.seed_sd(m.to_numpy()),
        "pass_at_k": _pass_at_k(samples, k), **dict.fromkeys(_DIFF_FIELDS, math.nan), "significant": False,
        "seed_pairing": "",
    }


def paired_difference(arm: pd.DataFrame, base: pd.DataFrame, cfg: StatsSettings) -> stats.Test:
    """arm - baseline over their common problems; seeds paired when both arms ran the same seeds."""
    problems = arm.columns.intersection(base.columns)
    paired = list(arm.index) == list(base.index)
    return stats.paired_difference(arm[problems].to_numpy(), base[problems].to_numpy(), paired_seeds=paired,
                                   level=cfg.level)


def difference_fields(test: stats.Test, cfg: StatsSettings, bounds: tuple[float, float] = (-math.inf, math.inf),
                      ) -> dict:
    """The table's difference columns of one comparison (p_holm and significant are set over the table); the
    interval cut to `bounds`, the range the difference can take (which never moves it across 0)."""
    alpha = 1.0 - cfg.level
    detectable = stats.detectable_difference(test.components, test.seeds, test.problems, alpha=alpha,
                                             target=cfg.power)
    needed = stats.seeds_needed(test.components, test.problems, test.estimate, alpha=alpha, target=cfg.power)
    c = test.components
    ci = stats.clip(test.interval, bounds)
    return {"diff": ci.estimate, "diff_low": ci.low, "diff_high": ci.high, "se": test.se,
            "p": test.p, "seed_pairing": "paired" if test.paired_seeds else "unpaired",
            "compared_seeds": test.seeds, "detectable": detectable,
            "seeds_needed": math.nan if needed is None else float(needed), "var_seed": c.seed,
            "var_problem": c.problem, "var_residual": c.residual}


def apply_holm(table: pd.DataFrame, level: float, rows: pd.Series | None = None) -> pd.DataFrame:
    """Holm-adjust the p-values of `rows` (default: every row with a p) as one family; significant when the
    adjusted p is below 1 - level."""
    table = table.copy()
    chosen = table["p"].notna() if rows is None else rows & table["p"].notna()
    table.loc[chosen, "p_holm"] = stats.holm(table.loc[chosen, "p"].tolist())
    table["significant"] = table["p_holm"].notna() & (table["p_holm"] < 1.0 - level)
    return table


def arm_task_table(samples: pd.DataFrame, arms: Sequence[str], baseline: str | None,
                   references: pd.DataFrame | None = None, cfg: StatsSettings | None = None) -> pd.DataFrame:
    """One row per arm x task (and per reference model x task) with avg@k, intervals and the paired difference."""
    cfg = cfg or StatsSettings()
    rows = []
    tasks = list(dict.fromkeys(samples["task"]))
    for task in tasks:
        by_task = samples[samples["task"] == task]
        matrices = {arm: problem_matrix(by_task[by_task["arm"] == arm]) for arm in arms
                    if (by_task["arm"] == arm).any()}
        for arm, m in matrices.items():
            if m.shape[1] == 0:
                raise ReportError(f"arm {arm!r} on {task}: its seeds share no evaluated problem ids; "
                                  "evaluate every seed on the same problems")
        for arm, m in matrices.items():
            row = _row("arm", arm, task, m, by_task[by_task["arm"] == arm], cfg)
            if baseline is not None and arm != baseline and baseline in matrices:
                base = matrices[baseline]
                row.update(difference_fields(paired_difference(m, base, cfg), cfg, (-100.0, 100.0)))
                common = m.columns.intersection(base.columns)
                row["p_wilcoxon_problems"] = stats.wilcoxon_p((m[common].mean() - base[common].mean()).to_numpy())
            rows.append(row)
    if references is not None and not references.empty:
        for (role, task), ref in references.groupby(["arm", "task"], sort=False):
            ref = ref.assign(seed=0)
            rows.append(_row("reference", str(role), str(task), problem_matrix(ref), ref, cfg))
    table = apply_holm(pd.DataFrame(rows, columns=TABLE_COLUMNS), cfg.level)
    table["task_order"] = table["task"].map({t: i for i, t in enumerate(tasks)}).fillna(len(tasks))
    table["arm_order"] = table["arm"].map({a: i for i, a in enumerate(arms)}).fillna(len(arms))
    table = table.sort_values(["kind", "task_order", "arm_order"], kind="stable")
    return table.drop(columns=["task_order", "arm_order"]).reset_index(drop=True)


def cost_table(runs: pd.DataFrame, arms: Sequence[str]) -> pd.DataFrame:
    """Per arm: seeds used, mean final cumulative teacher tokens, mean training wall time, steps."""
    used = runs[runs["usable"]]
    rows = []
    for arm in arms:
        sub = used[used["arm"] == arm]
        if sub.empty:
            continue
        tokens = pd.to_numeric(sub["teacher_tokens"], errors="coerce")
        rows.append({
            "arm": arm, "seeds": len(sub),
            "teacher_tokens": float(tokens.mean()) if tokens.notna().any() else 0.0,
            "train_seconds": float(pd.to_numeric(sub["train_seconds"], errors="coerce").mean()),
            "steps": float(pd.to_numeric(sub["last_step"], errors="coerce").mean()),
        })
    return pd.DataFrame(rows, columns=["arm", "seeds", "teacher_tokens", "train_seconds", "steps"])


def signed(x: float) -> str:
    """+1.2 / −1.2 with a true minus sign; a value that rounds to zero shows as +0.0."""
    return f"{round(x, 1) + 0.0:+.1f}".replace("-", "\u2212")


def interval_text(low: float, high: float) -> str:
    return f"[{signed(low)}, {signed(high)}]"


def summary_sentences(table: pd.DataFrame, baseline: str, level: float) -> list[str]:
    """One plain sentence per compared arm, claiming a difference only where it is significant after Holm."""
    arms = table[(table["kind"] == "arm") & (table["arm"] != baseline) & table["diff"].notna()]
    out = []
    for arm, rows in arms.groupby("arm", sort=False):
        found = [f"{signed(r.diff)} points on {display_task(r.task)} {interval_text(r.diff_low, r.diff_high)} "
                 f"(Holm p = {r.p_holm:.3g})" for r in rows.itertuples() if r.significant]
        flat = [display_task(r.task) for r in rows.itertuples() if not r.significant]
        parts = []
        if found:
            parts.append("; ".join(found))
        if flat:
            parts.append(("not significant on " if found else "no significant difference on ") + _join(flat))
        out.append(f"{arm} vs {baseline}: " + "; ".join(parts) + ".")
    return out


def _join(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def seed_gaps(runs: pd.DataFrame, arms: Sequence[str]) -> dict[str, tuple[int, int]]:
    """Arms with fewer usable seeds than the most any arm has: arm -> (its seeds, the most)."""
    counts = runs[runs["usable"]].groupby("arm")["seed"].nunique()
    most = int(counts.max()) if len(counts) else 0
    return {arm: (int(counts.get(arm, 0)), most) for arm in arms if int(counts.get(arm, 0)) < most}


UNINFORMATIVE_MARGIN = 3.0  # points: every arm this close to 100 or to the student's start says nothing


def uninformative_tasks(table: pd.DataFrame, start_role: str = "student_start",
                        margin: float = UNINFORMATIVE_MARGIN) -> dict[str, str]:
    """Tasks on which no arm can show anything: every arm's mean within `margin` points of 100 (a ceiling) or
    of the student's start (nothing learned), by task, with which of the two."""
    arms = table[table["kind"] == "arm"]
    start = table[(table["kind"] == "reference") & (table["arm"] == start_role)].set_index("task")["avg"]
    out: dict[str, str] = {}
    for task, rows in arms.groupby("task", sort=False):
        if (rows["avg"] >= 100.0 - margin).all():
            out[str(task)] = f"every arm within {margin:g} points of 100"
        elif task in start.index and ((rows["avg"] - start[task]).abs() <= margin).all():
            out[str(task)] = f"every arm within {margin:g} points of the student's start ({start[task]:.1f})"
    return out
