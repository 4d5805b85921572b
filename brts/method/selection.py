"""Tiered teacher selection over graded candidates: correctness first, then alignment (the paper's tier rule)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from brts.method.config import MethodConfig

Source = Literal["unhinted", "hinted"]


@dataclass(frozen=True)
class Candidate:
    """One teacher trajectory: graded `correct`, its `alignment` and mean student `logprob` (the tie-break);
    `leaked` marks a hinted sample that gives away the verification key."""

    correct: bool
    alignment: float
    logprob: float
    leaked: bool = False


@dataclass(frozen=True)
class Selection:
    """The chosen trajectory: `tier` 1, 2 or 3, or 0 when the prompt is skipped; `index` points into the
    `source` list as given (hinted indices count leaked samples too)."""

    tier: int
    source: Source | None
    index: int | None
    alignment: float | None


SKIPPED = Selection(tier=0, source=None, index=None, alignment=None)


def _best(candidates: Sequence[Candidate], eligible: Sequence[int]) -> int | None:
    """Index of the highest alignment among `eligible`; ties go to higher logprob, then the lowest index."""
    if not eligible:
        return None
    return max(eligible, key=lambda i: (candidates[i].alignment, candidates[i].logprob, -i))


def _chosen(tier: int, source: Source, candidates: Sequence[Candidate], index: int) -> Selection:
    return Selection(tier=tier, source=source, index=index, alignment=candidates[index].alignment)


def needs_recovery(unhinted: Sequence[Candidate], cfg: MethodConfig) -> bool:
    """Whether this prompt gets Tier-2 hinted samples: recovery on, correctness required, none correct."""
    return cfg.recovery and cfg.require_correct and not any(c.correct for c in unhinted)


def contested(
    unhinted: Sequence[Candidate], hinted: Sequence[Candidate] | None, cfg: MethodConfig
) -> tuple[list[int], list[int]]:
    """The unhinted and hinted candidates among which `select` chooses by alignment, from correctness and leaks
    alone (their `alignment` and `logprob` are not read): empty lists when the choice does not depend on any
    alignment, because the tier that decides it has at most one eligible candidate.

    `select` reads the alignment (and log-prob) of these candidates and of no other, so the student needs to
    score only these; a prompt with zero or one correct candidate needs none, unless it falls back to Tier 3
    `most_similar`, which ranks every unhinted candidate.
    """
    everyone = list(range(len(unhinted)))

    def ranked(eligible: list[int]) -> list[int]:
        return eligible if len(eligible) > 1 else []

    if not cfg.require_correct:
        return ranked(everyone), []
    correct = [i for i in everyone if unhinted[i].correct]
    if correct:
        return ranked(correct), []
    if needs_recovery(unhinted, cfg) and hinted:
        kept = [i for i in range(len(hinted)) if hinted[i].correct and not hinted[i].leaked]
        if kept:
            return [], ranked(kept)
    if cfg.fallback == "skip":
        return [], []
    return ranked(everyone), []


def select(unhinted: Sequence[Candidate], hinted: Sequence[Candidate] | None, cfg: MethodConfig) -> Selection:
    """Pick one teacher trajectory for a prompt by the paper's tier rule.

    Tier 1: the correct unhinted candidate with the highest alignment. Tier 2 (when `needs_recovery`):
    the correct, non-leaked hinted candidate with the highest alignment. Tier 3: `most_similar` takes the
    unhinted candidate with the highest alignment, correct or not; `skip` gives tier 0. With
    `require_correct=False`, the highest-alignment unhinted candidate wins outright (tier 1 if it is
    correct, else 3). Alignment ties go to the higher logprob, then to the lowest index.
    """
    if not unhinted:
        raise ValueError("select needs at least one unhinted teacher candidate (teacher_samples >= 1)")
    everyone = range(len(unhinted))
    if not cfg.require_correct:
        index = _best(unhinted, everyone)
        assert index is not None
        return _chosen(1 if unhinted[index].correct else 3, "unhinted", unhinted, index)

    index = _best(unhinted, [i for i in everyone if unhinted[i].correct])
    if index is not None:
        return _chosen(1, "unhinted", unhinted, index)

    if needs_recovery(unhinted, cfg) and hinted:
        index = _best(hinted, [i for i in range(len(hinted)) if hinted[i].correct and not hinted[i].leaked])
        if index is not None:
            return _chosen(2, "hinted", hinted, index)

    if cfg.fallback == "skip":
        return SKIPPED
    index = _best(unhinted, everyone)
    assert index is not None
    return _chosen(3, "unhinted", unhinted, index)
