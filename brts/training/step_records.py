"""What one training step hands between its stages and records: the student's own samples, the step's token
counts and losses, each rank's share of them, the branch's merged results and the `metrics.jsonl` keys."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from brts.rollout.teacher import DrawStats
from brts.spec import RunConfig
from brts.tasks.base import Problem
from brts.training.teacher_branch import BranchResult


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or inf; the run stops and records this line."""


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


SELECTION_KEYS = (
    *(f"selection/frac_tier{t}" for t in (1, 2, 3, 0)), "selection/tier1_any_correct",
    "selection/tier2_recovered_of_retries", *(f"selection/alignment_tier{t}" for t in (1, 2, 3)),
    "selection/leaks_dropped",
)
TIME_KEYS = ("student_sample", "teacher_sample", "teacher_score", "select", "update")
COUNTER_KEYS = ("teacher/tokens_generated", "teacher/tokens_from_pool")
# kl/*: the true per-token KLs of L_OPD and L_aux; surrogate/*: the losses whose gradient is the
# estimator, Σ sg[c]·s, negative while the KL is positive: a bookkeeping number, not a divergence.
STEP_KEYS = ("kl/opd", "kl/aux", "surrogate/opd", "surrogate/aux", "surrogate/total", "grad_norm",
             "student/entropy", "student/reward", "student/response_tokens")


def metric_names(cfg: RunConfig) -> tuple[str, ...]:
    """Every key a run's `metrics.jsonl` records besides `step` (some are None where they do not apply)."""
    return (*STEP_KEYS, *SELECTION_KEYS, *COUNTER_KEYS, *(f"time/{k}" for k in TIME_KEYS),
            *(f"val/{split}" for split in cfg.validation_splits))


@dataclass(frozen=True)
class RankShare:
    """What one rank contributes to a step's metrics (token-weighted sums; the rest is concatenated)."""

    opd_sum: float
    entropy_sum: float
    aux_sum: float
    kl_opd_sum: float
    kl_aux_sum: float
    reward: list[bool]
    seconds: dict[str, float]
    branch: BranchResult | None


def merge_branches(parts: Sequence[BranchResult]) -> BranchResult:
    """One step's branch results from every rank, in rank order, as if one process had run them all."""
    stats = DrawStats()
    for part in parts:
        stats.add(part.stats)
    return BranchResult(
        selections=[s for part in parts for s in part.selections], stats=stats,
        **{f: sum(getattr(part, f) for part in parts)
           for f in ("tier1_any_correct", "retries", "recovered", "leaks_dropped", "teacher_tokens")},
    )


def selection_metrics(branch: BranchResult | None, num_prompts: int) -> dict[str, Any]:
    """The `selection/*` metrics for one step (all None when the branch is off)."""
    if branch is None:
        return dict.fromkeys(SELECTION_KEYS)
    sels = branch.selections
    out: dict[str, Any] = {f"selection/frac_tier{t}": sum(s.tier == t for s in sels) / len(sels) for t in (1, 2, 3, 0)}
    out["selection/tier1_any_correct"] = branch.tier1_any_correct / num_prompts
    out["selection/tier2_recovered_of_retries"] = branch.recovered / branch.retries if branch.retries else None
    for t in (1, 2, 3):
        out[f"selection/alignment_tier{t}"] = _mean([s.alignment for s in sels if s.tier == t and s.alignment is not None])
    out["selection/leaks_dropped"] = branch.leaks_dropped
    return out


@dataclass(frozen=True)
class OwnSamples:
    """A step's prompts on this rank and the student's own samples of them (`n` each, prompt-major), graded."""

    everyone: list[Problem]  # the whole step's prompts, every rank's block
    epoch: int
    problems: list[Problem]
    prompt_ids: list[list[int]]
    responses: list[list[int]]
    n: int
    reward: list[bool]

    def per_prompt(self) -> list[list[list[int]]]:
        return [self.responses[i * self.n : (i + 1) * self.n] for i in range(len(self.problems))]


@dataclass(frozen=True)
class StepTokens:
    """The step's token counts over all ranks: the student's own samples, the aux rows, and how many aux rows."""

    opd: float
    aux: float
    aux_rows: float


@dataclass(frozen=True)
class StepLosses:
    """The whole step's token means (the `aux` ones None without aux rows)."""

    opd: float
    aux: float | None
    total: float
    entropy: float
    kl_opd: float
    kl_aux: float | None


def step_losses(parts: Sequence[RankShare], tokens: StepTokens, aux_weight: float, step: int) -> StepLosses:
    """The step's losses from every rank's token-weighted sums; a non-finite loss stops the run."""
    opd_total, entropy_total, aux_total, kl_opd_total, kl_aux_total = (
        sum(getattr(part, f) for part in parts) for f in ("opd_sum", "entropy_sum", "aux_sum", "kl_opd_sum", "kl_aux_sum"))
    loss_opd = opd_total / max(tokens.opd, 1.0)
    loss_aux = aux_total / max(tokens.aux, 1.0) if tokens.aux_rows else None
    loss = loss_opd if loss_aux is None else loss_opd + aux_weight * loss_aux
    if not math.isfinite(loss):
        raise NonFiniteLossError(f"non-finite loss at step {step}: surrogate/opd={loss_opd}, surrogate/aux={loss_aux}")
    return StepLosses(loss_opd, loss_aux, loss, entropy_total / max(tokens.opd, 1.0),
                      kl_opd_total / max(tokens.opd, 1.0), kl_aux_total / max(tokens.aux, 1.0) if tokens.aux_rows else None)
