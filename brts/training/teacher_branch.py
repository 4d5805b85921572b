"""The teacher-context branch of one step, as four stages with typed hand-offs, read top to bottom:

1. `draw_candidates` -> `Draws`: N keyed teacher samples per prompt, graded; M hinted ones where recovery is
   needed, graded and checked for leaks;
2. `score_candidates` -> `Scores`: the student scores only the candidates whose alignment can change the choice;
3. `choose` -> `Choice`s: the tiered selection per prompt (or per own response);
4. `training_rows` -> `BranchResult`: the rows L_aux trains on and the step's counts.

The decisions themselves are the pure functions of `brts.method.selection` and `brts.method.alignment`.
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
from brts.training.logprobs import logprobs_at, response_hidden, token_scores, top_tokens
from brts.training.output_head import OutputHead
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


# --- the stages: draw and grade -> score the contested candidates -> select -> the rows that train -------------

Key = tuple[int, str, int]  # (prompt, "unhinted" | "hinted", candidate)


@dataclass(frozen=True)
class PromptCandidates:
    """One prompt's graded teacher samples: N unhinted, and M hinted ones when it was retried."""

    unhinted: list[Completion]
    correct: list[bool]
    hinted: list[Completion] = field(default_factory=list)
    hinted_correct: list[bool] = field(default_factory=list)
    leaked: list[bool] = field(default_factory=list)  # per hinted sample: it reveals the key
    retried: bool = False

    def source(self, name: str) -> list[Completion]:
        return self.unhinted if name == "unhinted" else self.hinted

    def ranked(self, alignment: dict[str, list[float]], logprob: dict[str, list[float]]
               ) -> tuple[list[Candidate], list[Candidate] | None]:
        """The candidates as selection sees them, under the given per-source alignments and log-probs."""
        unhinted = [Candidate(c, a, lp) for c, a, lp in
                    zip(self.correct, alignment["unhinted"], logprob["unhinted"], strict=True)]
        if not self.retried:
            return unhinted, None
        return unhinted, [Candidate(c, a, lp, leak) for c, a, lp, leak in
                          zip(self.hinted_correct, alignment["hinted"], logprob["hinted"], self.leaked, strict=True)]

    def unscored(self) -> tuple[list[Candidate], list[Candidate] | None]:
        nan = {"unhinted": [math.nan] * len(self.unhinted), "hinted": [math.nan] * len(self.hinted)}
        return self.ranked(nan, nan)


@dataclass(frozen=True)
class Draws:
    """Stage 1's hand-off: every prompt's graded candidates and what drawing them cost."""

    prompts: list[PromptCandidates]
    stats: DrawStats
    retries: int


def draw_candidates(problems: Sequence[Problem], prompt_ids: Sequence[Sequence[int]], teacher: TeacherSampler,
                    task: Task, encode: Encode, cfg: MethodConfig, max_new_tokens: int, stream: str) -> Draws:
    """Stage 1: N keyed teacher samples of each prompt, graded; M hinted ones of each prompt whose Tier-1 grades
    call for recovery (correctness alone decides, so every retry of the step is one batch), graded and checked
    for leaks."""
    stats = DrawStats()
    settings = teacher_settings(cfg, max_new_tokens)
    tier1, drawn = teacher.draw(tier1_requests(problems, prompt_ids, cfg, stream), settings)
    stats.add(drawn)
    graded = [[d.correct for d in row] for row in tier1]
    retry = retry_prompts(graded, cfg)
    hinted = {}
    if retry:
        rows, drawn = teacher.draw(tier2_requests([problems[i] for i in retry], task, encode, cfg, stream), settings)
        stats.add(drawn)
        hinted = dict(zip(retry, rows, strict=True))
    prompts = []
    for i, row in enumerate(tier1):
        unhinted = [d.completion for d in row]
        if i not in hinted:
            prompts.append(PromptCandidates(unhinted, graded[i]))
            continue
        completions = [d.completion for d in hinted[i]]
        prompts.append(PromptCandidates(unhinted, graded[i], completions, [d.correct for d in hinted[i]],
                                        [task.leaks(c.text, problems[i].answer) for c in completions], True))
    return Draws(prompts, stats, len(retry))


@dataclass(frozen=True)
class Scores:
    """Stage 2's hand-off: (alignment, log-prob) of each candidate the student scored, and per prompt the
    `positional` alignment as a function of which own responses form the view."""

    pairwise: dict[Key, tuple[float, float]]
    positional: dict[int, Callable[[slice], list[float]]]

    def of(self, i: int, candidates: PromptCandidates, pick: int) -> dict[str, list[float]]:
        """Per source, element `pick` (0 alignment, 1 log-prob) of each candidate's scores (NaN where unscored)."""
        return {src: [self.pairwise.get((i, src, j), (math.nan, math.nan))[pick] for j in range(len(rows))]
                for src, rows in (("unhinted", candidates.unhinted), ("hinted", candidates.hinted))}


def scored_keys(draws: Draws, cfg: MethodConfig) -> list[Key]:
    """The candidates the student must score: those whose alignment can change the choice, and with truncation
    (whose training forward sees a cut trajectory) an unranked choice."""
    keys: list[Key] = []
    for i, prompt in enumerate(draws.prompts):
        ranked_u, ranked_h = contested(*prompt.unscored(), cfg)
        keys += [(i, "unhinted", j) for j in ranked_u] + [(i, "hinted", j) for j in ranked_h]
        if cfg.alignment != "positional" and cfg.truncate_to_student_length and not (ranked_u or ranked_h):
            chosen = select(*prompt.unscored(), cfg)
            if chosen.index is not None:
                keys.append((i, chosen.source or "unhinted", chosen.index))
    return keys


def score_candidates(draws: Draws, prompt_ids: Sequence[Sequence[int]], own_responses: Sequence[Sequence[Sequence[int]]],
                     student: PreTrainedModel, cfg: MethodConfig, pad_id: int, chunk: int,
                     micro_batch: int | None) -> Scores:
    """Stage 2: the student scores, under the unhinted prompt it is trained under, the candidates `scored_keys`
    names (no-grad forwards of `micro_batch` rows); for `positional`, every candidate against its own responses.
    Alignments that ignore the student (`first`, `random`) score nothing."""
    if cfg.alignment not in ("teacher_forced", "logprob", "positional"):
        return Scores({}, {})
    keys = scored_keys(draws, cfg)
    trajectories = [draws.prompts[i].source(src)[j].token_ids for i, src, j in keys]
    scores = _student_scores(student, [prompt_ids[i] for i, _, _ in keys], trajectories, cfg, pad_id, chunk,
                             micro_batch) if keys else []
    positional = {}
    if cfg.alignment == "positional":
        for i, prompt in enumerate(draws.prompts):
            candidates = [c.token_ids for c in (*prompt.unhinted, *prompt.hinted)]
            positional[i] = _positional(student, prompt_ids[i], own_responses[i], candidates, cfg, pad_id, chunk)
    return Scores(dict(zip(keys, scores, strict=True)), positional)


@dataclass(frozen=True)
class Choice:
    """Stage 3's hand-off: one selection, for prompt `prompt` and the own responses `view` it serves."""

    prompt: int
    view: slice
    selection: Selection


def choose(draws: Draws, scores: Scores, own_responses: Sequence[Sequence[Sequence[int]]], cfg: MethodConfig,
           seed: int) -> list[Choice]:
    """Stage 3: the tiered selection (`brts.method.selection.select`) for every prompt, or for every own response
    with `selection_scope: response`; `seed` drives the `random` alignment only."""
    rng = torch.Generator().manual_seed(seed + 2)
    choices = []
    for i, prompt in enumerate(draws.prompts):
        own = own_responses[i]
        views = ([slice(j, j + 1) for j in range(len(own))] if cfg.selection_scope == "response"
                 else [slice(0, len(own))])
        for view in views:
            if cfg.alignment in ("first", "random"):  # ranks that ignore the student
                ranks = {src: (align.first_alignment(len(rows)) if cfg.alignment == "first"
                               else align.random_alignment(len(rows), rng)).tolist() if rows else []
                         for src, rows in (("unhinted", prompt.unhinted), ("hinted", prompt.hinted))}
                candidates = prompt.ranked(ranks, {src: [0.0] * len(r) for src, r in ranks.items()})
            elif i in scores.positional:
                both, split = scores.positional[i](view), len(prompt.unhinted)
                candidates = prompt.ranked({"unhinted": both[:split], "hinted": both[split:]}, scores.of(i, prompt, 1))
            else:
                alignment = scores.of(i, prompt, 0 if cfg.alignment == "teacher_forced" else 1)
                candidates = prompt.ranked(alignment, scores.of(i, prompt, 1))
            choices.append(Choice(i, view, select(*candidates, cfg)))
    return choices


def training_rows(draws: Draws, choices: Sequence[Choice], prompt_ids: Sequence[Sequence[int]],
                  own_responses: Sequence[Sequence[Sequence[int]]], cfg: MethodConfig) -> BranchResult:
    """Stage 4: the (prompt, trajectory) rows L_aux trains on, one per selection that is not skipped (cut to the
    student's longest own response of its view with `truncate_to_student_length`), and the step's counts."""
    result = BranchResult(selections=[], stats=draws.stats, retries=draws.retries)
    result.tier1_any_correct = sum(any(p.correct) for p in draws.prompts)
    result.teacher_tokens = draws.stats.generated_tokens + draws.stats.pool_tokens
    result.leaks_dropped = sum(sum(p.leaked) for p in draws.prompts)
    result.recovered = len({c.prompt for c in choices if c.selection.tier == 2})
    for choice in choices:
        chosen = choice.selection
        if chosen.tier == 0 or chosen.index is None:
            result.selections.append(chosen)
            continue
        if chosen.alignment is not None and math.isnan(chosen.alignment):
            result.pending.append((len(result.selections), len(result.aux_trajectories)))
        result.selections.append(chosen)
        trajectory = list(draws.prompts[choice.prompt].source(chosen.source or "unhinted")[chosen.index].token_ids)
        if cfg.truncate_to_student_length:
            trajectory = trajectory[: max(len(r) for r in own_responses[choice.prompt][choice.view])]
        result.aux_prompts.append(list(prompt_ids[choice.prompt]))
        result.aux_trajectories.append(trajectory)
    return result


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
    """Tiered selection for every prompt of the step (or for every student response, per `selection_scope`):
    the four stages above, in order.

    Teacher samples are the keyed samples of `stream` (see `brts.rollout.teacher`); `seed` drives the
    `random` alignment only. `own_responses[i]` are the student's own sampled responses to prompt i (read by
    the `positional` alignment and by `truncate_to_student_length`). Log-probs stream `chunk` positions at a
    time; a chosen trajectory that nothing ranked is left `pending`: the student's training forward over it
    gives its alignment (`BranchResult.with_alignments`).
    """
    draws = draw_candidates(problems, prompt_ids, teacher, task, encode, cfg, max_new_tokens, stream)
    scores = score_candidates(draws, prompt_ids, own_responses, student, cfg, pad_id, chunk, micro_batch)
    choices = choose(draws, scores, own_responses, cfg, seed)
    return training_rows(draws, choices, prompt_ids, own_responses, cfg)
