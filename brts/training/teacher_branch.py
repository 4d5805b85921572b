"""The teacher-context branch of one step: draw, grade and score teacher samples, then select by tier.

This is the I/O-facing half of the tiered teacher selection; the decisions themselves are the pure functions of
`brts.method.selection` and `brts.method.alignment`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from transformers import PreTrainedModel

from brts.method import alignment as align
from brts.method.config import MethodConfig
from brts.method.selection import Candidate, Selection, contested, needs_recovery, select
from brts.rollout.base import Completion, SamplingSettings
from brts.rollout.teacher import DrawRequest, DrawStats, TeacherSampler
from brts.tasks.base import Problem, Task
from brts.training.logprobs import OutputHead, logprobs_at, response_hidden, token_scores, top_tokens
from brts.training.scoring import build_batch

Encode = Callable[[str], list[int]]


@dataclass
class BranchResult:
    """What the step needs from the branch: the chosen trajectories and what to log about them."""

    # One (prompt ids, trajectory ids) pair per selection that is not skipped.
    aux_prompts: list[list[int]] = field(default_factory=list)
    aux_trajectories: list[list[int]] = field(default_factory=list)
    selections: list[Selection] = field(default_factory=list)
    # (selection, aux row) pairs whose alignment the student's training forward over that row gives (nothing
    # ranked them, so no forward scored them here); `with_alignments` fills them in.
    pending: list[tuple[int, int]] = field(default_factory=list)
    tier1_any_correct: int = 0
    retries: int = 0
    recovered: int = 0
    leaks_dropped: int = 0
    teacher_tokens: int = 0  # tokens of every teacher sample the step used, drawn here or taken from the pool
    stats: DrawStats = field(default_factory=DrawStats)

    def with_alignments(self, per_aux_row: Sequence[float]) -> BranchResult:
        """This result with the pending selections' alignment taken from `per_aux_row` (one per aux row)."""
        selections = list(self.selections)
        for index, row in self.pending:
            selections[index] = dataclasses.replace(selections[index], alignment=per_aux_row[row])
        return dataclasses.replace(self, selections=selections, pending=[])


def teacher_settings(cfg: MethodConfig, max_new_tokens: int) -> SamplingSettings:
    """How Tier-1 and Tier-2 teacher samples are drawn (unhinted and hinted alike)."""
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
    trajectories: Sequence[Sequence[int]],
    cfg: MethodConfig,
    pad_id: int,
    chunk: int,
    micro_batch: int | None,
) -> list[tuple[float, float]]:
    """(teacher-forced alignment, mean log-prob) of each trajectory under its prompt, from no-grad forwards of
    `micro_batch` rows (all at once when None)."""
    out: list[tuple[float, float]] = []
    size = micro_batch or max(1, len(prompts))
    for start in range(0, len(prompts), size):
        batch = build_batch(prompts[start : start + size], trajectories[start : start + size], pad_id)
        token, kth = token_scores(student, batch, cfg.effective_alignment_top_k, chunk)
        mask = batch.mask.to(token.device)
        out += zip(align.teacher_forced_from(token, kth, mask).tolist(), align.logprob_from(token, mask).tolist(),
                   strict=True)
    return out


def _positional(
    student: PreTrainedModel,
    prompt: Sequence[int],
    own: Sequence[Sequence[int]],
    candidates: Sequence[Sequence[int]],
    cfg: MethodConfig,
    pad_id: int,
    chunk: int,
) -> Callable[[slice], list[float]]:
    """The `positional` alignment of every candidate against the student's own responses `own` to `prompt` (one
    no-grad forward over them): a function of which own responses form the view (`own[view]`)."""
    batch = build_batch([prompt] * len(own), own, pad_id)
    cand = build_batch([prompt] * len(candidates), candidates, pad_id)
    head, hidden = OutputHead.of(student), response_hidden(student, batch)
    device = hidden.device
    mask, cand_mask = batch.mask.to(device), cand.mask.to(device)
    top = top_tokens(head, hidden, batch.tokens.to(device)[mask], cfg.effective_alignment_top_k, chunk)
    length = min(mask.shape[1], cand_mask.shape[1])
    columns = align.positional_columns(cand.tokens.to(device), cand_mask, length).T  # [L, C]
    # Own position t reads the candidates' tokens at t (positions past the candidates' length read nothing).
    position = torch.arange(mask.shape[1], device=device).expand_as(mask)[mask].clamp(max=length - 1)
    at = logprobs_at(head, hidden, columns[position], top.log_normaliser, chunk)  # [N, C]
    kth = torch.zeros(mask.shape, device=device)
    kth[mask] = top.values[:, -1]
    cand_logp = torch.zeros(*mask.shape, len(candidates), device=device)
    cand_logp[mask] = at
    return lambda view: align.positional_from(cand_logp[view, :length], kth[view], mask[view], cand_mask).tolist()


def run_branch(
    *,
    problems: Sequence[Problem],
    prompt_ids: Sequence[list[int]],
    own_responses: Sequence[Sequence[Sequence[int]]],
    student: PreTrainedModel,
    teacher: TeacherSampler,
    task: Task,
    encode: Encode,
    cfg: MethodConfig,
    max_new_tokens: int,
    stream: str,
    seed: int,
    pad_id: int,
    chunk: int = 256,
    micro_batch: int | None = None,
) -> BranchResult:
    """Tiered selection for every prompt of the step (or for every student response, per `selection_scope`).

    Teacher samples are the keyed samples of `stream` (see `brts.rollout.teacher`); `seed` drives the
    `random` alignment only. `own_responses[i]` are the student's own sampled responses to prompt i (read by
    the `positional` alignment and by `truncate_to_student_length`). The student scores only the candidates
    whose alignment can change a choice (`brts.method.selection.contested`), in no-grad forwards of
    `micro_batch` rows (all at once when None) with log-probs streamed `chunk` positions at a time; a chosen
    trajectory that nothing ranked is left `pending`: the student's training forward over it gives its
    alignment (`BranchResult.with_alignments`).
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
    leaked = {i: [task.leaks(c.text, problems[i].answer) for c in row] for i, row in hinted.items()}
    sources = [{"unhinted": tier1[i], "hinted": hinted.get(i, [])} for i in range(len(problems))]

    def candidates(i: int, alignment: dict[str, list[float]], logprob: dict[str, list[float]]
                   ) -> tuple[list[Candidate], list[Candidate] | None]:
        unhinted = [Candidate(c, a, lp) for c, a, lp in
                    zip(graded[i], alignment["unhinted"], logprob["unhinted"], strict=True)]
        if i not in hinted:
            return unhinted, None
        return unhinted, [Candidate(c, a, lp, leak) for c, a, lp, leak in
                          zip(hinted_graded[i], alignment["hinted"], logprob["hinted"], leaked[i], strict=True)]

    def unscored(i: int) -> tuple[list[Candidate], list[Candidate] | None]:
        nan = {src: [math.nan] * len(rows) for src, rows in sources[i].items()}
        return candidates(i, nan, nan)

    # The student scores, under the unhinted prompt they are trained under, the candidates whose alignment can
    # change the choice, and with truncation (whose training forward sees a cut trajectory) an unranked choice.
    student_scored = cfg.alignment in ("teacher_forced", "logprob", "positional")
    keys: list[tuple[int, str, int]] = []
    for i in range(len(problems)) if student_scored else ():
        ranked_u, ranked_h = contested(*unscored(i), cfg)
        keys += [(i, "unhinted", j) for j in ranked_u] + [(i, "hinted", j) for j in ranked_h]
        if cfg.alignment != "positional" and cfg.truncate_to_student_length and not (ranked_u or ranked_h):
            chosen = select(*unscored(i), cfg)
            if chosen.index is not None:
                keys.append((i, chosen.source or "unhinted", chosen.index))

    def completion(key: tuple[int, str, int]) -> Completion:
        i, source, j = key
        return sources[i][source][j]

    scores = _student_scores(student, [prompt_ids[i] for i, _, _ in keys], [completion(k).token_ids for k in keys],
                             cfg, pad_id, chunk, micro_batch) if keys else []
    scored = dict(zip(keys, scores, strict=True))

    def from_scores(i: int, pick: int) -> dict[str, list[float]]:
        return {src: [scored.get((i, src, j), (math.nan, math.nan))[pick] for j in range(len(rows))]
                for src, rows in sources[i].items()}

    rng = torch.Generator().manual_seed(seed + 2)
    per_response = cfg.selection_scope == "response"
    for i in range(len(problems)):
        own = own_responses[i]
        views = [slice(j, j + 1) for j in range(len(own))] if per_response else [slice(0, len(own))]
        result.leaks_dropped += sum(leaked.get(i, []))
        positional = None
        if cfg.alignment == "positional":
            trajectories = [c.token_ids for src in ("unhinted", "hinted") for c in sources[i][src]]
            positional = _positional(student, prompt_ids[i], own, trajectories, cfg, pad_id, chunk)
        recovered = False
        for view in views:
            if not student_scored:  # `first` or `random`: ranks that ignore the student
                ranks = {src: (align.first_alignment(len(rows)) if cfg.alignment == "first"
                               else align.random_alignment(len(rows), rng)).tolist() if rows else []
                         for src, rows in sources[i].items()}
                unhinted, hinted_cands = candidates(i, ranks, {src: [0.0] * len(r) for src, r in ranks.items()})
            elif positional is not None:
                both, split = positional(view), len(sources[i]["unhinted"])
                unhinted, hinted_cands = candidates(i, {"unhinted": both[:split], "hinted": both[split:]},
                                                    from_scores(i, 1))
            else:
                unhinted, hinted_cands = candidates(i, from_scores(i, 0 if cfg.alignment == "teacher_forced" else 1),
                                                    from_scores(i, 1))
            chosen = select(unhinted, hinted_cands, cfg)
            recovered |= chosen.tier == 2
            if chosen.tier == 0 or chosen.index is None:
                result.selections.append(chosen)
                continue
            if chosen.alignment is not None and math.isnan(chosen.alignment):
                result.pending.append((len(result.selections), len(result.aux_trajectories)))
            result.selections.append(chosen)
            trajectory = list(completion((i, chosen.source or "unhinted", chosen.index)).token_ids)
            if cfg.truncate_to_student_length:
                trajectory = trajectory[: max(len(r) for r in own[view])]
            result.aux_prompts.append(list(prompt_ids[i]))
            result.aux_trajectories.append(trajectory)
        result.recovered += int(recovered)
    return result
