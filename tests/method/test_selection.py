"""Every branch of the tier rule."""

from __future__ import annotations

import itertools
import random

import pytest

from brts.method import Candidate, MethodConfig, Selection, contested, needs_recovery, select

BRTS = MethodConfig(teacher_context=True)


def c(correct: bool, alignment: float, logprob: float = 0.0, leaked: bool = False) -> Candidate:
    return Candidate(correct=correct, alignment=alignment, logprob=logprob, leaked=leaked)


def test_tier1_takes_the_most_aligned_correct_candidate() -> None:
    unhinted = [c(True, 0.2), c(False, 0.9), c(True, 0.7), c(True, 0.5)]
    assert select(unhinted, None, BRTS) == Selection(tier=1, source="unhinted", index=2, alignment=0.7)
    assert not needs_recovery(unhinted, BRTS)


def test_tier1_ties_go_to_logprob_then_lowest_index() -> None:
    by_logprob = [c(True, 0.5, -2.0), c(True, 0.5, -1.0), c(True, 0.5, -3.0)]
    assert select(by_logprob, None, BRTS).index == 1
    by_index = [c(False, 0.9), c(True, 0.5, -1.0), c(True, 0.5, -1.0)]
    assert select(by_index, None, BRTS).index == 1


def test_all_wrong_recovers_with_the_most_aligned_correct_hinted_sample() -> None:
    unhinted = [c(False, 0.9), c(False, 0.1)]
    hinted = [c(True, 0.3), c(False, 0.99), c(True, 0.6)]
    assert needs_recovery(unhinted, BRTS)
    assert select(unhinted, hinted, BRTS) == Selection(tier=2, source="hinted", index=2, alignment=0.6)


def test_leaked_hinted_samples_are_dropped() -> None:
    unhinted = [c(False, 0.1), c(False, 0.8)]
    hinted = [c(True, 0.9, leaked=True), c(True, 0.4)]
    assert select(unhinted, hinted, BRTS) == Selection(tier=2, source="hinted", index=1, alignment=0.4)
    all_leaked = [c(True, 0.9, leaked=True), c(True, 0.4, leaked=True)]
    assert select(unhinted, all_leaked, BRTS) == Selection(tier=3, source="unhinted", index=1, alignment=0.8)


def test_no_correct_hinted_sample_falls_back_to_tier3() -> None:
    unhinted = [c(False, 0.1), c(False, 0.8)]
    assert select(unhinted, [c(False, 0.9)], BRTS).tier == 3
    assert select(unhinted, [], BRTS).tier == 3
    assert select(unhinted, None, BRTS) == Selection(tier=3, source="unhinted", index=1, alignment=0.8)


def test_without_recovery_all_wrong_is_tier3_most_similar_and_hinted_is_ignored() -> None:
    cfg = MethodConfig(teacher_context=True, recovery=False)
    unhinted = [c(False, 0.4, -1.0), c(False, 0.4, -0.5), c(False, 0.2)]
    assert not needs_recovery(unhinted, cfg)
    assert select(unhinted, [c(True, 1.0)], cfg) == Selection(
        tier=3, source="unhinted", index=1, alignment=0.4
    )


def test_skip_fallback_gives_tier0() -> None:
    cfg = MethodConfig(teacher_context=True, fallback="skip")
    assert select([c(False, 0.9)], [c(False, 0.5)], cfg) == Selection(
        tier=0, source=None, index=None, alignment=None
    )
    assert select([c(False, 0.9)], [c(True, 0.5)], cfg).tier == 2
    assert select([c(False, 0.2), c(True, 0.1)], None, cfg).tier == 1


def test_without_correctness_alignment_alone_decides() -> None:
    cfg = MethodConfig(teacher_context=True, require_correct=False)
    wrong_best = [c(True, 0.2), c(False, 0.9)]
    assert not needs_recovery([c(False, 0.1)], cfg)
    assert select(wrong_best, [c(True, 1.0)], cfg) == Selection(
        tier=3, source="unhinted", index=1, alignment=0.9
    )
    right_best = [c(True, 0.95), c(False, 0.9)]
    assert select(right_best, None, cfg) == Selection(tier=1, source="unhinted", index=0, alignment=0.95)


def test_first_alignment_picks_the_first_correct_sample() -> None:
    cfg = MethodConfig(teacher_context=True, alignment="first")
    first = [-0.0, -1.0, -2.0, -3.0]  # first_alignment(4)
    unhinted = [c(False, first[0], 5.0), c(True, first[1], -9.0), c(True, first[2], 0.0), c(True, first[3])]
    assert select(unhinted, None, cfg).index == 1
    all_wrong = [c(False, a) for a in first]
    assert select(all_wrong, None, MethodConfig(recovery=False, alignment="first")).index == 0


def test_random_alignment_scores_order_the_choice() -> None:
    unhinted = [c(True, 0.31), c(True, 0.77), c(True, 0.05)]
    assert select(unhinted, None, BRTS).index == 1


def test_empty_unhinted_is_rejected() -> None:
    with pytest.raises(ValueError, match="at least one unhinted"):
        select([], [c(True, 1.0)], BRTS)


def test_contested_candidates_by_hand() -> None:
    # Two or more correct: those are ranked; one correct: nothing to rank (the wrong ones do not matter).
    assert contested([c(True, 0), c(False, 0), c(True, 0)], None, BRTS) == ([0, 2], [])
    assert contested([c(False, 0), c(True, 0), c(False, 0)], [c(True, 0)], BRTS) == ([], [])
    # None correct: the hinted retries that are correct and do not leak, when two or more.
    hinted = [c(True, 0), c(True, 0, leaked=True), c(True, 0), c(False, 0)]
    assert contested([c(False, 0), c(False, 0)], hinted, BRTS) == ([], [0, 2])
    assert contested([c(False, 0), c(False, 0)], hinted[:2], BRTS) == ([], [])
    # None correct and no usable retry: Tier 3 `most_similar` ranks every unhinted candidate, wrong ones too.
    assert contested([c(False, 0), c(False, 0), c(False, 0)], [c(True, 0, leaked=True)], BRTS) == ([0, 1, 2], [])
    assert contested([c(False, 0)], None, BRTS) == ([], [])
    no_recovery = MethodConfig(teacher_context=True, recovery=False)
    assert contested([c(False, 0), c(False, 0)], [c(True, 0), c(True, 0)], no_recovery) == ([0, 1], [])
    skip = MethodConfig(teacher_context=True, fallback="skip")
    assert contested([c(False, 0), c(False, 0)], None, skip) == ([], [])
    # Without correctness every unhinted candidate is ranked.
    anyway = MethodConfig(teacher_context=True, require_correct=False)
    assert contested([c(True, 0), c(False, 0)], None, anyway) == ([0, 1], [])


@pytest.mark.parametrize("overrides", [{}, {"recovery": False}, {"fallback": "skip"}, {"require_correct": False}])
def test_select_reads_the_alignment_of_contested_candidates_only(overrides) -> None:
    cfg = MethodConfig(teacher_context=True, **overrides)
    rng = random.Random(len(str(overrides)))
    for _ in range(400):
        def draw(n: int, hinted: bool) -> list[Candidate]:
            return [c(rng.random() < 0.4, rng.choice([0.1, 0.5, 0.9]), rng.choice([-1.0, -2.0]),
                      hinted and rng.random() < 0.3) for _ in range(n)]
        unhinted, hinted = draw(rng.randint(1, 4), False), draw(rng.randint(0, 3), True) or None
        ranked_u, ranked_h = contested(unhinted, hinted, cfg)
        chosen = select(unhinted, hinted, cfg)

        # Scores of candidates outside the contested sets are never read: garbage there changes nothing.
        def scramble(cands: list[Candidate], keep: list[int]) -> list[Candidate]:
            return [x if i in keep else Candidate(x.correct, float("nan"), float("nan"), x.leaked)
                    for i, x in enumerate(cands)]
        blind = select(scramble(unhinted, ranked_u), None if hinted is None else scramble(hinted, ranked_h), cfg)
        assert (blind.tier, blind.source, blind.index) == (chosen.tier, chosen.source, chosen.index)
        # And the choice is one of them whenever there are any.
        if ranked_u or ranked_h:
            assert chosen.index in (ranked_u if chosen.source == "unhinted" else ranked_h)
        # Every permutation of the contested scores can change the choice only among the contested.
        for perm in itertools.islice(itertools.permutations(range(len(unhinted))), 6):
            shuffled = [Candidate(x.correct, unhinted[perm[i]].alignment, x.logprob, x.leaked)
                        for i, x in enumerate(unhinted)]
            again = select(shuffled, hinted, cfg)
            if not ranked_u and again.source == "unhinted":
                assert again.index == chosen.index
