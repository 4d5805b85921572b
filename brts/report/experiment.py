"""The report of one experiment: read its run folders, compute the tables, draw the figures, compose the page."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from brts.report import plots
from brts.report.aggregate import (
    ReportError,
    RunData,
    display_task,
    drop_superseded,
    read_references,
    read_runs,
)
from brts.report.display import cost_display, formatted_table, grader_display, power_display, speed_display
from brts.report.grader import grader_table
from brts.report.render import Block, Bullets, Figure, Heading, Para, Table
from brts.report.selection import selection_display
from brts.report.speed import DEFAULT_THRESHOLD, speed_sentences, speed_table
from brts.report.tables import (
    StatsSettings,
    arm_task_table,
    cost_table,
    seed_gaps,
    summary_sentences,
    uninformative_tasks,
)
from brts.store import RunStore

Progress = Callable[[str], None]


@dataclass
class Composed:
    """What an experiment or sweep report writes: page blocks, figures, tidy frames, the summary lines."""

    title: str
    blocks: list[Block]
    figures: dict[str, object]  # name -> matplotlib Figure
    frames: dict[str, pd.DataFrame]  # file stem -> frame (results, runs, table, speed, grader)
    summary: list[str]


def _spec(name: str) -> Any:
    """The experiment spec of this name, or None when there is none (or it does not load)."""
    from brts.spec import SpecError, load_spec

    try:
        return load_spec(name)
    except SpecError:
        return None


def _planned(spec: Any, folders: Sequence[Path]) -> list | None:
    """The current spec's planned runs when the spec exists and shares run ids with the store."""
    from brts.runs.plan import plan

    if spec is None:
        return None
    planned = plan(spec)
    ids = {p.name for p in folders}
    return planned if any(p.run_id in ids for p in planned) else None


def arm_order(runs: pd.DataFrame, planned: list | None) -> list[str]:
    """The spec's arm order when known, else the arm presets' order, then other arms by name."""
    from brts.method.config import ARM_PRESETS

    present = [a for a in dict.fromkeys(runs["arm"].dropna())]
    if planned:
        order = list(dict.fromkeys(p.arm for p in planned))
        return order + sorted(a for a in present if a not in order)
    known = [a for a in ARM_PRESETS if a in present]
    return known + sorted(a for a in present if a not in known)


def load(store: Path, name: str, progress: Progress, spec: Any = None) -> tuple[RunData, list[str], list | None]:
    """The experiment's runs (planned-but-absent ones listed as `not started`), its references and arm order."""
    base = RunStore(store).experiment_dir(name)
    folders = [run.path for run in RunStore(store).runs(name)]
    progress(f"reading {len(folders)} run folders in {base}")
    planned = _planned(spec, folders)
    data = read_runs(folders)
    data.runs = drop_superseded(data.runs, {p.run_id for p in planned} if planned else None)
    if planned:
        present = set(data.runs["run_id"])
        missing = [{"run_id": p.run_id, "arm": p.arm, "seed": p.seed, "status": "not started", "usable": False,
                    "note": "planned, no run folder", "error": "", "teacher_context": p.config.method.teacher_context}
                   for p in planned if p.run_id not in present]
        if missing:
            data.runs = pd.concat([data.runs, pd.DataFrame(missing)], ignore_index=True)
    used = set(data.runs.loc[data.runs["usable"], "run_id"])
    data.samples = data.samples[data.samples["run_id"].isin(used)]
    if not data.metrics.empty:
        data.metrics = data.metrics[data.metrics["run_id"].isin(used)]
    if not data.validation.empty:
        data.validation = data.validation[data.validation["run_id"].isin(used)]
    data.grader = data.grader[data.grader["run_id"].isin(used)]
    data.references, references, reference_grader = read_references(store, name)
    if not references.empty:
        data.samples = pd.concat([data.samples, references], ignore_index=True)
    if not reference_grader.empty:
        data.grader = pd.concat([data.grader, reference_grader], ignore_index=True)
    return data, arm_order(data.runs, planned), planned


_STATUS_ORDER = ("damaged", "failed", "interrupted", "running", "not started")


def _status_counts(runs: pd.DataFrame) -> str:
    # A fixed order, not the order runs happen to be listed in (which follows their hashed ids).
    counts = runs["status"].value_counts()
    order = sorted(counts.index, key=lambda s: (_STATUS_ORDER.index(s) if s in _STATUS_ORDER else 99, str(s)))
    return ", ".join(f"{counts[s]} {s}" for s in order)


def compose(store: Path, name: str, baseline: str, cfg: StatsSettings, progress: Progress) -> Composed:
    """Read the experiment `name` in `store` and compose its report; ReportError for what the user can fix."""
    spec = _spec(name)
    threshold = spec.report.speed_threshold if spec is not None else DEFAULT_THRESHOLD
    data, arms, planned = load(store, name, progress, spec)
    runs = data.runs
    usable = runs[runs["usable"]]
    if usable.empty:
        raise ReportError(f"experiment {name!r} in {store} has no finished runs with an evaluation "
                          f"({_status_counts(runs)}); run `brts exp run {name}` first")
    used_arms = [a for a in arms if a in set(usable["arm"])]
    if baseline not in used_arms:
        raise ReportError(f"baseline arm {baseline!r} has no finished runs in {name!r}; "
                          f"pass --baseline with one of: {', '.join(used_arms)}")
    progress("computing intervals")
    run_samples = data.samples[data.samples["run_id"].isin(set(usable["run_id"]))]
    refs = data.samples[data.samples["run_id"].str.startswith("reference/")]
    table = arm_task_table(run_samples, used_arms, baseline, refs, cfg)
    costs = cost_table(runs, used_arms)
    is_ref = data.grader["run_id"].str.startswith("reference/")
    graded = grader_table(data.grader[~is_ref], used_arms, data.grader[is_ref], cfg.level)
    gaps = seed_gaps(runs, used_arms)
    per_seed = (run_samples.groupby(["arm", "seed", "task", "problem_id"])["correct"].mean().mul(100)
                .groupby(["arm", "seed", "task"]).mean().rename("avg").reset_index())

    splits = _splits(data, run_samples)
    speed = speed_table(data.metrics, data.validation, used_arms, splits, baseline, threshold, cfg)
    sentences = summary_sentences(table, baseline, cfg.level) + speed_sentences(speed, baseline, threshold)
    caveats = _caveats(table, speed, runs, usable, gaps, cfg)
    progress("drawing figures")
    colours = plots.arm_colours(used_arms)
    figures = {
        "accuracy": plots.accuracy(table, per_seed, colours, cfg.level),
        "difference": plots.difference(table, baseline, colours, cfg.level),
        "cost": plots.cost(table, costs, baseline, colours),
        "learning_curves": plots.learning_curves(
            data.metrics, colours, [display_task(t) for t in dict.fromkeys(run_samples["task"])]),
        "divergence": plots.divergences(data.metrics, colours),
        "learning_speed": plots.learning_speed(speed, colours, threshold, cfg.level),
        "selection_tiers": plots.selection_tiers(data.metrics, colours),
        "alignment": plots.alignment(data.metrics, colours, _scored_arms(usable)),
    }
    blocks = _blocks(name, store, data, table, speed, threshold, costs, gaps, sentences, caveats, baseline, cfg,
                     figures, graded)
    return Composed(
        title=f"Report: {name}", blocks=blocks, figures={k: v for k, v in figures.items() if v is not None},
        frames={"results": _results(name, data.samples, runs), "runs": _run_summary(runs, run_samples),
                "table": table, "speed": speed, "grader": graded},
        summary=sentences + caveats,
    )


def _splits(data: RunData, samples: pd.DataFrame) -> list[str]:
    """The validation splits in the evaluation's task order, then any other."""
    found = set(data.validation["split"]) if not data.validation.empty else set()
    found |= {c.removeprefix("val/") for c in data.metrics.columns if c.startswith("val/")}
    order = [display_task(t) for t in dict.fromkeys(samples["task"])]
    return [s for s in order if s in found] + sorted(found - set(order))


def _scored_arms(usable: pd.DataFrame) -> list[str]:
    """Arms whose teacher selection ranks by an alignment score (not `first` / `random`)."""
    scored = usable[usable["alignment"].isin(["teacher_forced", "logprob", "positional"])]
    return list(dict.fromkeys(scored["arm"]))


METHOD_NOTE = ("a t-test of the crossed random-effects model seed x problem (Clark 1973; lmerTest's "
               "y ~ 1 + (1|seed) + (1|problem)), its variance from the ANOVA mean squares and its critical value "
               "Cochran & Cox's for a seed part with S - 1 and a problem part with P - 1 degrees of freedom")


def _caveats(table: pd.DataFrame, speed: pd.DataFrame, runs: pd.DataFrame, usable: pd.DataFrame, gaps: dict,
             cfg: StatsSettings) -> list[str]:
    compared = table[(table["kind"] == "arm") & table["diff"].notna()]
    seeds = usable.groupby("arm")["seed"].nunique()
    out = [f"Each {cfg.level:.0%} interval and its p-value come from one test, {METHOD_NOTE}, so the interval "
           f"excludes 0 exactly when p < {1 - cfg.level:.2g}; seeds and problems are both counted as sampled. "
           f"A difference is called significant only when its Holm-adjusted p is below {1 - cfg.level:.2g}: "
           f"Holm over the {len(compared)} comparisons of the accuracy table, and separately over each "
           "learning-speed measure's. An interval that excludes 0 with a Holm p above that is not claimed."]
    if not compared.empty:
        out.append(f"Power: with these seeds the smallest difference found with {cfg.power:.0%} probability is "
                   f"{_range(compared['detectable'].clip(upper=100.0))} points (per comparison under 'Power', at "
                   "the seeds the two arms share" + ("; above 100: no difference on the 0-100 scale is detectable"
                   if (compared["detectable"] > 100.0).any() else "") + ").")
    for task, why in uninformative_tasks(table).items():
        out.append(f"{display_task(task)} is uninformative: {why}; no arm can differ there.")
    one = [a for a, n in seeds.items() if n == 1]
    if one:
        out.append(f"One training seed only for {', '.join(one)}: the interval covers problem sampling, "
                   "not seed-to-seed variation.")
    for arm, (have, most) in gaps.items():
        out.append(f"{arm} has fewer seeds than other arms ({have} of {most}).")
    left_out = runs[~runs["usable"]]
    if not left_out.empty:
        out.append(f"{len(left_out)} run(s) are not in the comparison ({_status_counts(left_out)}); "
                   "they are listed under 'Runs not in the comparison'.")
    return out


def _range(values: pd.Series) -> str:
    v = values.dropna()
    return "–" if v.empty else f"{v.min():.1f}" if v.min() == v.max() else f"{v.min():.1f} to {v.max():.1f}"


def _blocks(name, store, data, table, speed, threshold, costs, gaps, sentences, caveats, baseline, cfg,
            figures, graded) -> list[Block]:
    runs = data.runs
    usable = runs[runs["usable"]]
    settings = data.settings.get("settings") or {}
    setting_text = ", ".join(f"{k} {v}" for k, v in settings.items() if k in ("temperature", "top_p"))
    blocks: list[Block] = [
        Para(f"Experiment {name} in {store}: {len(usable)} of {len(runs)} runs finished and evaluated; "
             f"k = {data.settings.get('k', int(table['k'].max()))} samples per problem"
             + (f" ({setting_text})" if setting_text else "") + "; accuracies in percent."),
        Heading("Summary"), Bullets(sentences), Para("How far these statements reach:"), Bullets(caveats),
        Heading("Accuracy per arm and task"),
        Table(formatted_table(table, baseline, gaps, cfg.level),
              f"avg@k: mean over problems of the fraction of k samples correct, averaged over seeds; CI: "
              f"{cfg.level:.0%}, seeds and problems both sampled (see above); sd: spread of the per-seed avg@k; "
              f"Δ: paired per-problem difference to {baseline} (same problem ids; seeds paired when both arms ran "
              "the same seeds) with its interval; p: the same test's p-value, uncorrected; p (Holm): adjusted over "
              "the table's comparisons; significant: p (Holm) < "
              f"{1 - cfg.level:.2g}. table.csv also has p_wilcoxon_problems, a Wilcoxon signed-rank test over the "
              "seed-averaged per-problem differences: it treats the seeds as fixed and is not a test of the arms.",
              left=2),
    ]
    for key, caption in (("accuracy", "avg@k per arm with its interval; dots: single seeds; lines: reference models"),
                         ("difference", f"paired difference to {baseline}; filled where significant after Holm")):
        if figures.get(key) is not None:
            blocks.append(Figure(key, caption))
    power = power_display(table, baseline, cfg.level, cfg.power)
    if not power.empty:
        blocks += [Heading("Power"), Table(
            power, f"SE: standard error of Δ; seeds compared: the seeds both arms ran, which the test and the "
                   f"power are for; detectable Δ: the smallest true difference this design (those seeds and its "
                   f"problems) finds with {cfg.power:.0%} probability at the uncorrected {1 - cfg.level:.2g} level, "
                   "from the variance components estimated here; seeds to detect this Δ: the seeds (same problems) at "
                   f"which a true difference of the observed size is found with {cfg.power:.0%} probability. The "
                   "observed Δ is itself noisy: read the seed count as an order of magnitude.", left=2)]
    blocks += _grader_blocks(graded, data, int(table["k"].max()), cfg)
    selection = selection_display(data.metrics, list(usable["arm"].drop_duplicates()), _scored_arms(usable))
    if not selection.empty:
        blocks += [Heading("Selection"), Table(selection, SELECTION_NOTE, left=1)]
    if not speed.empty:
        blocks += [Heading("Learning speed"), Table(
            speed_display(speed, baseline, cfg.level, threshold),
            "area: mean validation accuracy over training (trapezoid area under each validation problem's curve "
            "over the validation steps, divided by their span), seeds and problems sampled as above; first step: "
            f"the first validation step at which the split's accuracy reached {threshold:g}% (report."
            "speed_threshold in the spec), seeds sampled; a run that never reached it counts at its last step plus "
            "one validation interval (a lower bound; reached: runs that did). Δ, p and significant as above, "
            "Holm over each measure's comparisons.", left=3)]
        if figures.get("learning_speed") is not None:
            blocks.append(Figure("learning_speed", f"area under the validation curve and first step at "
                                                    f"{threshold:g}% per arm and split, {cfg.level:.0%} interval; "
                                                    "hollow: difference to the baseline not significant"))
    blocks += [Heading("Cost"), Table(cost_display(costs),
                                      "per run, mean over seeds: teacher tokens generated by the teacher-context "
                                      "branch (cumulative at the last step) and wall time of training and evaluation")]
    if figures.get("cost") is not None:
        blocks.append(Figure("cost", "accuracy gain over the baseline against teacher tokens generated per run"))
    blocks.append(Heading("Training"))
    for key, caption in (("learning_curves", "validation accuracy over steps; band: lowest to highest seed"),
                         ("divergence", "per-token KL over training: kl/opd, the reverse KL on the student's "
                                        "top-K of its own samples (exact where K covers the vocabulary); kl/aux, "
                                        "the forward KL on the teacher's top-K along the selected teacher "
                                        "trajectories; band: lowest to highest seed"),
                         ("selection_tiers", "fraction of prompts per selection tier over training"),
                         ("alignment", "alignment of the selected teacher trajectory per tier (arms that rank "
                                       "by an alignment score)")):
        if figures.get(key) is not None:
            blocks.append(Figure(key, caption))
    blocks += _reference_blocks(data)
    left_out = runs[~runs["usable"]]
    blocks.append(Heading("Runs not in the comparison"))
    if left_out.empty:
        blocks.append(Para("None: every run found is finished and evaluated."))
    else:
        shown = left_out[["arm", "seed", "run_id", "status", "last_step", "planned_steps", "note", "error"]].copy()
        shown["last_step"] = [f"{_int(s)}/{_int(p)}" for s, p in zip(shown["last_step"], shown["planned_steps"],
                                                                      strict=True)]
        blocks.append(Table(shown.drop(columns="planned_steps").rename(columns={"last_step": "step"})
                            .astype(str).replace({"nan": "–", "None": "–", "<NA>": "–"}), "", left=8))
    blocks += [Heading("Data"), Bullets([
        "results.parquet / results.csv: one row per run x task x problem x sample (reference models have "
        "kind = reference); every number above can be recomputed from it.",
        "runs.parquet / runs.csv: one row per run with its status, cost and avg@k / pass@k per task.",
        "table.csv: the table above at full precision, with each comparison's SE and variance components "
        "(var_seed, var_problem, var_residual: what `brts exp show` plans a grid's power from).",
        "speed.csv: the learning-speed table at full precision.",
        "grader.csv: the grader statistics at full precision, one row per arm x task x statistic, with the sd "
        "over seeds.",
        "figures/: every figure as PNG and SVG.",
    ])]
    return blocks


GRADER_NOTE = ("The authors' grader statistics (their grade.py): solved by none / by all: the share of problems "
               "none / all of whose k samples were correct; format errors: the share of samples in which the "
               "task's answer format finds no answer (for `boxed`: without `boxed`); "
               "response tokens: the mean response length in tokens (the evaluated model's tokenizer); distinct "
               "4-grams: the mean over problems of the share of distinct word 4-grams among each problem's k "
               "samples pooled (low: repetitive)")


SELECTION_NOTE = ("per arm with the teacher-context branch, over every training step and seed: the share of prompts "
                  "whose teacher trajectory came from each tier (skipped: no L_aux); tier-2 recovered / retries: "
                  "the share of prompts without a correct Tier-1 sample that a hinted sample recovered; leaks "
                  "dropped: hinted samples discarded for mentioning the key; alignment: mean score of the chosen "
                  "trajectory per tier (– for arms that do not rank by one)")


def _grader_blocks(graded: pd.DataFrame, data: RunData, k: int, cfg: StatsSettings) -> list[Block]:
    """The grader statistics' table, and which usable runs it leaves out (evaluated before eval/grader.csv)."""
    usable = data.runs[data.runs["usable"]]
    missing = usable[~usable["run_id"].isin(set(data.grader["run_id"]))]
    blocks: list[Block] = [Heading("Grader statistics")]
    if not graded.empty:
        blocks.append(Table(grader_display(graded, k),
                            f"{GRADER_NOTE}. Each: mean over seeds and problems with its {cfg.level:.0%} interval "
                            "(seeds and problems both sampled, as for avg@k).", left=2))
    if not missing.empty:
        blocks.append(Para(
            f"{len(missing)} finished run(s) have no eval/grader.csv and are not in this table (evaluated before "
            "brts wrote it): `brts eval RUN_FOLDER --out RUN_FOLDER/eval` adds it from the cached samples "
            "without evaluating again."))
    return blocks


def _int(x: object) -> str:
    try:
        return str(int(x))  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return "?"


def _reference_blocks(data: RunData) -> list[Block]:
    if data.references:
        return []
    return [Heading("Reference models"), Para(
        "No reference evaluations found (reference/teacher/, reference/student_start/ under the experiment's "
        "folder); the table has no teacher or starting-student rows.")]


def _results(name: str, samples: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    frame = samples.copy()
    frame.insert(0, "kind", ["reference" if r.startswith("reference/") else "run" for r in frame["run_id"]])
    frame.insert(0, "experiment", name)
    frame["seed"] = pd.array(frame["seed"], dtype="Int64")
    return frame.reset_index(drop=True)


def _run_summary(runs: pd.DataFrame, samples: pd.DataFrame) -> pd.DataFrame:
    """One row per run: status and cost, plus avg@k and pass@k (k = all samples) per task for usable runs."""
    out = runs.drop(columns=["path"]).copy()
    if samples.empty:
        return out
    per_problem = samples.groupby(["run_id", "task", "problem_id"])["correct"].agg(["mean", "max"])
    per_task = per_problem.groupby(["run_id", "task"]).mean().mul(100)
    avg = per_task["mean"].unstack("task").add_prefix("avg@k:")
    anyc = per_task["max"].unstack("task").add_prefix("pass@k:")
    return out.merge(avg, left_on="run_id", right_index=True, how="left").merge(
        anyc, left_on="run_id", right_index=True, how="left")
