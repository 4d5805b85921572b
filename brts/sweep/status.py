"""What `brts sweep status` and `brts sweep show` print: tables built from the study and the spec, no training."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState
from rich.table import Table

from brts.sweep.runner import describe
from brts.sweep.spec import Sweep
from brts.sweep.study import WORKER_ATTR, dead_trials, trial_error


def _value(trial: FrozenTrial, sweep: Sweep, index: int) -> str:
    if trial.state != TrialState.COMPLETE or trial.values is None:
        return ""
    metric = sweep.objectives[index].metric
    sd = (trial.user_attrs.get("seed_sd") or {}).get(metric)
    return f"{trial.values[index]:.4g}" + (f" ± {sd:.2g}" if sd is not None else "")


def _note(trial: FrozenTrial, dead: set[int]) -> str:
    a = trial.user_attrs
    if trial.state == TrialState.PRUNED:
        arm = f"arm {a['pruned_arm']}, " if "pruned_arm" in a else ""
        return f"pruned at step {a.get('pruned_step')} ({arm}seed {a.get('pruned_seed')})"
    if trial.state == TrialState.FAIL:
        return trial_error(trial)[:60]
    if trial.state == TrialState.RUNNING:
        worker = trial.system_attrs.get(WORKER_ATTR) or {}
        where = f"{worker.get('host', '?')} pid {worker.get('pid', '?')}"
        if trial.number in dead:
            return f"its worker ({where}) stopped; the next `brts sweep run` retries it"
        return f"running on {where}"
    return f"retry of {a['retry_of']}" if "retry_of" in a else ""


def _state(trial: FrozenTrial, dead: set[int]) -> str:
    return "dead" if trial.number in dead else trial.state.name.lower()


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def counts_line(study: optuna.Study, target: int, dead: set[int]) -> str:
    trials = study.get_trials(deepcopy=False)
    states = [_state(t, dead) for t in trials]
    order = [*(s.name.lower() for s in TrialState), "dead"]
    parts = [f"{states.count(s)} {s}" for s in order if states.count(s)]
    return f"{len(trials)} trials ({', '.join(parts) or 'none yet'}); budget {target} completed"


def trials_table(study: optuna.Study, sweep: Sweep, dead: set[int]) -> Table:
    """Every trial: its parameters, objective mean ± sd over seeds, reused runs, and what happened to it."""
    names = [p.name for p in sweep.params]
    table = Table("#", "state", *names, *(o.metric for o in sweep.objectives), "reused", "note",
                  title=f"{sweep.name}: trials")
    for t in study.get_trials(deepcopy=False):
        reused = t.user_attrs.get("reused") or []
        table.add_row(str(t.number), _state(t, dead), *(_fmt(t.params.get(n, "")) for n in names),
                      *(_value(t, sweep, i) for i in range(len(sweep.objectives))),
                      f"{sum(reused)}/{len(sweep.seeds) * len(sweep.arms)}" if reused else "", _note(t, dead))
    return table


def arms_table(study: optuna.Study, sweep: Sweep) -> Table | None:
    """With several arms: each completed trial's first objective per arm (mean over seeds) beside their mean."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(sweep.arms) < 2 or not complete:
        return None
    metric, names = sweep.objectives[0].metric, [p.name for p in sweep.params]
    table = Table("#", *names, *(a.name for a in sweep.arms), "mean", title=f"{metric} by arm (mean over seeds)")
    for t in complete:
        by_arm = (t.user_attrs.get("arm_values") or {}).get(metric, {})
        table.add_row(str(t.number), *(_fmt(t.params.get(n, "")) for n in names),
                      *(f"{statistics.fmean(by_arm[a.name]):.4g}" if by_arm.get(a.name) else "" for a in sweep.arms),
                      f"{t.values[0]:.4g}")
    return table


def best_lines(study: optuna.Study, sweep: Sweep) -> list[str]:
    """The best trial (one objective) or the Pareto front (two), with the spread over seeds and its runs."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return ["no completed trial yet"]
    if len(sweep.objectives) > 1:
        return [f"Pareto front ({len(study.best_trials)} of {len(complete)} completed trials):",
                *(_best_line(t, sweep) for t in sorted(study.best_trials, key=lambda t: t.values[0]))]
    return [f"best of {len(complete)} completed trials:", _best_line(study.best_trial, sweep)]


def _best_line(trial: FrozenTrial, sweep: Sweep) -> str:
    per_seed = trial.user_attrs.get("seed_values") or {}
    parts = []
    for i, objective in enumerate(sweep.objectives):
        seeds = ", ".join(f"{v:.3g}" for v in per_seed.get(objective.metric, []))
        parts.append(f"{objective.metric} {_value(trial, sweep, i)} (seeds: {seeds})")
    return f"  trial {trial.number}: {describe(trial.params)} -> {'; '.join(parts)}"


def attention_lines(study: optuna.Study, dead: set[int]) -> list[str]:
    """One full line per failed, running and dead trial: what failed and why, what runs where, what stopped."""
    lines = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL, TrialState.RUNNING)):
        what = _state(t, dead) if t.state == TrialState.RUNNING else "failed"
        lines.append(f"{what}: trial {t.number} ({describe(t.params)}): "
                     f"{trial_error(t) if what == 'failed' else _note(t, dead)}")
    return lines


def by_choice_table(study: optuna.Study, sweep: Sweep) -> Table | None:
    """For each categorical parameter, the objective of the completed trials at each choice (mean, best), and with
    several seeds that mean seed by seed (the trials' per-seed values), so a difference between choices can be
    seen to hold, or not, on each seed."""
    categorical = [p for p in sweep.params if p.kind == "categorical"]
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not categorical or not complete:
        return None
    objective = sweep.objectives[0]
    pick = max if objective.direction == "maximize" else min
    seeds = len(sweep.seeds) > 1
    table = Table("parameter", "value", "trials", f"mean {objective.metric}",
                  *([f"by seed {list(sweep.seeds)}"] if seeds else []), f"best {objective.metric}",
                  title="by choice (completed trials)")
    for p in categorical:
        assert p.spec.choices is not None
        for choice in p.spec.choices:
            chosen = [t for t in complete if t.params.get(p.name) == choice]
            values = [t.values[0] for t in chosen]
            per_seed = [(t.user_attrs.get("seed_values") or {}).get(objective.metric) or [] for t in chosen]
            by_seed = ", ".join(f"{statistics.fmean(col):.4g}" for col in zip(*per_seed, strict=True)) if (
                per_seed and all(len(v) == len(sweep.seeds) for v in per_seed)) else ""
            table.add_row(p.name, str(choice), str(len(values)),
                          f"{statistics.fmean(values):.4g}" if values else "", *([by_seed] if seeds else []),
                          f"{pick(values):.4g}" if values else "")
    return table


def reused_runs(trials: Sequence[FrozenTrial]) -> tuple[int, int]:
    """(runs reused, runs in all) over the completed trials."""
    flags = [flag for t in trials if t.state == TrialState.COMPLETE for flag in t.user_attrs.get("reused", [])]
    return sum(flags), len(flags)


def space_table(sweep: Sweep) -> Table:
    table = Table("parameter", "search", "base value", title="search space")
    base = sweep.base_config()
    for p in sweep.params:
        table.add_row(f"{p.section}.{p.field}", p.describe(), _fmt(getattr(getattr(base, p.section), p.field)))
    return table


def status_report(sweep: Sweep, study: optuna.Study, url: str) -> list[Table | str]:
    """What `brts sweep status` prints: the trials, results by choice, counts, failures, the best or the front."""
    dead = dead_trials(study)
    parts: list[Table | str] = [trials_table(study, sweep, dead)]
    parts += [t for t in (arms_table(study, sweep), by_choice_table(study, sweep)) if t is not None]
    reused, total = reused_runs(study.get_trials(deepcopy=False))
    parts.append("\n".join([f"{sweep.name}: {counts_line(study, sweep.spec.trials, dead)}", f"storage: {url}",
                            f"runs reused from the store: {reused} of {total}", *attention_lines(study, dead),
                            *best_lines(study, sweep)]))
    return parts
