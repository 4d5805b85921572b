"""The teacher-context branch of one step: draw, grade and score teacher samples, then select by tier.

This is the I/O-facing half of METHOD.md section 2; the decisions themselves are the pure functions of
`brts.method.selection` and `brts.method.alignment`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor
from transformers import PreTrainedModel

from brts.method import alignment as align
from brts.method.config import MethodConfig
from brts.method.selection import Candidate, Selection, needs_recovery, select
from brts.rollout.base import Completion, SamplingSettings
from brts.rollout.teacher import DrawRequest, DrawStats, TeacherSampler
from brts.scoring import ResponseBatch, build_batch, response_logprobs
from brts.tasks.base import Problem, Task

Encode = Callable[[str], list[int]]


@dataclass
class BranchResult:
    """What the step needs from the branch: the chosen trajectories and what to log about them."""

    # One (prompt ids, trajectory ids) pair per selection that is not skipped.
    aux_prompts: list[list[int]] = field(default_factory=list)
    aux_trajectories: list[list[int]] = field(default_factory=list)
    selections: list[Selection] = field(default_factory=list)
    tier1_any_correct: int = 0
    retries: int = 0
    recovered: int = 0
    leaks_dropped: int = 0
    teacher_tokens: int = 0  # tokens of every teacher sample the step used, drawn here or taken from the pool
    stats: DrawStats = field(default_factory=DrawStats)


@dataclass(frozen=True)
class _StudentScores:
    """The student's view of every candidate of the step, from one no-grad forward."""

    forced: Tensor  # teacher-forced alignment per candidate
    logprob: Tensor  # mean log-prob per candidate
    batch: ResponseBatch


def teacher_settings(cfg: MethodConfig, max_new_tokens: int) -> SamplingSettings:
    """How Tier-1 and Tier-2 teacher samples are drawn (METHOD.md section 2)."""
    return SamplingSettings(1, cfg.teacher_temperature, cfg.teacher_top_p, max_new_tokens, 0)


def tier1_requests(
    problems: Sequence[Problem], prompt_ids: Sequence[Sequence[int]], cfg: MethodConfig, stream: str
) -> list[DrawRequest]:
    """N unconditioned samples of each prompt."""
    return [DrawRequest(tuple(ids), p.answer, "tier1", cfg.teacher_samples, stream)
            for p, ids in zip(problems, prompt_ids, strict=True)]


def tier2_requests(
    problems: Sequence[Problem], task: Task, encode: Encode, cfg: MethodConfig, stream: str
) -> list[DrawRequest]:
    """M samples of each problem with its answer in the prompt as a silent verification key."""
    return [DrawRequest(tuple(encode(task.prompt(p, hint=p.answer))), p.answer, "tier2", cfg.recovery_samples, stream)
            for p in problems]


def retry_prompts(graded: Sequence[Sequence[bool]], cfg: MethodConfig) -> list[int]:
    """Indices of the prompts that get Tier-2 hinted samples, from their Tier-1 grades alone."""
    return [i for i, row in enumerate(graded) if needs_recovery([Candidate(c, 0.0, 0.0) for c in row], cfg)]


def _student_scores(
    student: PreTrainedModel,
    prompts: Sequence[Sequence[int]],
    completions: Sequence[Completion],
    cfg: MethodConfig,
    pad_id: int,
) -> _StudentScores | None:
    """Score every candidate under its unhinted prompt; None when the alignment ignores the student."""
    if cfg.alignment in ("first", "random"):
        return None
    batch = build_batch(prompts, [c.token_ids for c in completions], pad_id).to(student.device)
    with torch.no_grad():
        logp = response_logprobs(student, batch)
    forced = align.teacher_forced_alignment(logp, batch.tokens, batch.mask, cfg.effective_alignment_top_k)
    return _StudentScores(forced, align.logprob_alignment(logp, batch.tokens, batch.mask), batch)


def _alignment(
    cfg: MethodConfig,
    scores: _StudentScores | None,
    rows: list[int],
    view: tuple[Tensor | None, Tensor],
    rng: torch.Generator,
) -> tuple[list[float], list[float]]:
    """Alignment and tie-break log-prob of the candidates at `rows`, per `cfg.alignment`."""
    count = len(rows)
    if scores is None:
        first = cfg.alignment == "first"
        ranks = align.first_alignment(count) if first else align.random_alignment(count, rng)
        return ranks.tolist(), [0.0] * count
    logprob = scores.logprob[rows].tolist()
    if cfg.alignment == "teacher_forced":
        return scores.forced[rows].tolist(), logprob
    if cfg.alignment == "logprob":
        return logprob, logprob
    if view[0] is None:
        raise ValueError("the positional alignment needs the student's log-probs along its own samples")
    positional = align.positional_alignment(
        view[0], view[1], scores.batch.tokens[rows], scores.batch.mask[rows], cfg.effective_alignment_top_k
    )
    return positional.tolist(), logprob


def run_branch(
    *,
    problems: Sequence[Problem],
    prompt_ids: Sequence[list[int]],
    student_own: Sequence[tuple[Tensor | None, Tensor]],
    student: PreTrainedModel,
    teacher: TeacherSampler,
    task: Task,
    encode: Encode,
    cfg: MethodConfig,
    max_new_tokens: int,
    stream: str,
    seed: int,
    pad_id: int,
) -> BranchResult:
    """Tiered selection for every prompt of the step (or for every student response, per `selection_scope`).

    Teacher samples are the keyed samples of `stream` (see `brts.rollout.teacher`); `seed` drives the
    `random` alignment only. `student_own[i]` holds the student's log-probs and mask along prompt i's own
    sampled responses ([n, R, V], [n, R]); the log-probs are read by the `positional` alignment only (None
    otherwise), the mask by `truncate_to_student_length`.
    """
    result = BranchResult()
    settings = teacher_settings(cfg, max_new_tokens)
    tier1_draws, stats = teacher.draw(tier1_requests(problems, prompt_ids, cfg, stream), settings)
    result.stats.add(stats)
    tier1 = [[d.completion for d in row] for row in tier1_draws]
    graded = [[d.correct for d in row] for row in tier1_draws]
    result.tier1_any_correct = sum(any(row) for row in graded)

    # Tier 2 depends on correctness alone, so every hinted retry of the step is drawn in one batch.
    retry = retry_prompts(graded, cfg)
    hinted: dict[int, list[Completion]] = {}
    hinted_graded: dict[int, list[bool]] = {}
    if retry:
        drawn, stats = teacher.draw(tier2_requests([problems[i] for i in retry], task, encode, cfg, stream), settings)
        result.stats.add(stats)
        hinted = {i: [d.completion for d in row] for i, row in zip(retry, drawn, strict=True)}
        hinted_graded = {i: [d.correct for d in row] for i, row in zip(retry, drawn, strict=True)}
        result.retries = len(retry)
    result.teacher_tokens = result.stats.generated_tokens + result.stats.pool_tokens

    # Every candidate, hinted or not, is scored under the unhinted prompt it will be trained under.
    pool: list[tuple[int, str, int]] = []
    for i, row in enumerate(tier1):
        pool += [(i, "unhinted", j) for j in range(len(row))]
        pool += [(i, "hinted", j) for j in range(len(hinted.get(i, [])))]

    def completion(key: tuple[int, str, int]) -> Completion:
        i, source, j = key
        return (hinted[i] if source == "hinted" else tier1[i])[j]

    scores = _student_scores(student, [prompt_ids[i] for i, _, _ in pool], [completion(k) for k in pool], cfg, pad_id)
    rng = torch.Generator().manual_seed(seed + 2)
    row_of = {key: r for r, key in enumerate(pool)}
    per_response = cfg.selection_scope == "response"
    for i, problem in enumerate(problems):
        own_logp, own_mask = student_own[i]
        views = [(None if own_logp is None else own_logp[j : j + 1], own_mask[j : j + 1])
                 for j in range(own_mask.shape[0])]
        views = views if per_response else [(own_logp, own_mask)]
        hinted_leaked = [task.leaks(c.text, problem.answer) for c in hinted.get(i, [])]
        hinted_correct = hinted_graded.get(i, [])
        result.leaks_dropped += sum(hinted_leaked)
        unhinted_rows = [row_of[(i, "unhinted", j)] for j in range(len(tier1[i]))]
        hinted_rows = [row_of[(i, "hinted", j)] for j in range(len(hinted.get(i, [])))]
        recovered = False
        for view in views:
            align_u, lp_u = _alignment(cfg, scores, unhinted_rows, view, rng)
            unhinted = [Candidate(c, a, lp) for c, a, lp in zip(graded[i], align_u, lp_u, strict=True)]
            hinted_cands = None
            if i in hinted:
                align_h, lp_h = _alignment(cfg, scores, hinted_rows, view, rng)
                hinted_cands = [
                    Candidate(c, a, lp, leak)
                    for c, a, lp, leak in zip(hinted_correct, align_h, lp_h, hinted_leaked, strict=True)
                ]
            chosen = select(unhinted, hinted_cands, cfg)
            result.selections.append(chosen)
            recovered |= chosen.tier == 2
            if chosen.tier == 0 or chosen.index is None:
                continue
            trajectory = list(completion((i, chosen.source or "unhinted", chosen.index)).token_ids)
            if cfg.truncate_to_student_length:
                trajectory = trajectory[: int(view[1].sum(-1).max())]
            result.aux_prompts.append(list(prompt_ids[i]))
            result.aux_trajectories.append(trajectory)
        result.recovered += int(recovered)
    return result
