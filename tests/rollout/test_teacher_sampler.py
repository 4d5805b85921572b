"""Keyed teacher samples through the pool: larger N draws only the missing indices; the pool changes nothing."""

from __future__ import annotations

import pytest
import torch

from brts.models.load import load_model
from brts.rollout.base import SamplingSettings
from brts.rollout.keyed import KeyedHFGenerator
from brts.rollout.pool import SamplePool
from brts.rollout.teacher import DrawRequest, TeacherSampler, model_identity
from brts.tasks.grading import IntegerGrader
from brts.tasks.synthetic import SyntheticTask

SETTINGS = SamplingSettings(temperature=1.0, top_p=0.95, max_new_tokens=24)


class CountingGrader(IntegerGrader):
    def __init__(self):
        self.calls = 0

    def grade(self, response, answer):
        self.calls += 1
        return super().grade(response, answer)


@pytest.fixture(scope="module")
def teacher(tiny_models):
    return load_model(str(tiny_models.teacher_dir))


def _requests(tok, count, stream="seed0/epoch0", tier="tier1"):
    task = SyntheticTask(seed=0)
    return [DrawRequest(tuple(tok(task.prompt(p))["input_ids"]), p.answer, tier, count, stream)
            for p in task.train_problems()[:3]]


def _sampler(teacher, pool=None, grader=None):
    model, tok = teacher
    return TeacherSampler(KeyedHFGenerator(model, tok), model_identity(model, tok), grader or IntegerGrader(), pool)


def test_a_larger_n_draws_only_the_missing_indices(tmp_path, teacher):
    _, tok = teacher
    sampler = _sampler(teacher, SamplePool(tmp_path / "pool.sqlite"))
    two, first = sampler.draw(_requests(tok, 2), SETTINGS)
    four, second = sampler.draw(_requests(tok, 4), SETTINGS)
    assert (first.generated_samples, first.pool_samples) == (6, 0)
    assert (second.generated_samples, second.pool_samples) == (6, 6)
    assert second.pool_tokens == first.generated_tokens
    assert [row[:2] for row in four] == two
    again, third = sampler.draw(_requests(tok, 4), SETTINGS)
    assert again == four and (third.generated_samples, third.pool_samples) == (0, 12)


def test_pool_or_not_the_samples_and_grades_are_the_same(tmp_path, teacher):
    _, tok = teacher
    grader = CountingGrader()
    pooled = _sampler(teacher, SamplePool(tmp_path / "pool.sqlite"), grader)
    warm_up, _ = pooled.draw(_requests(tok, 3), SETTINGS)
    calls = grader.calls
    from_pool, stats = pooled.draw(_requests(tok, 3), SETTINGS)
    assert grader.calls == calls and stats.generated_samples == 0  # stored grades are reused
    fresh, _ = _sampler(teacher).draw(_requests(tok, 3), SETTINGS)
    assert from_pool == fresh == warm_up
    assert any(d.correct for row in fresh for d in row) or any(not d.correct for row in fresh for d in row)


def test_streams_and_tiers_draw_different_samples(teacher):
    _, tok = teacher
    sampler = _sampler(teacher)
    base, _ = sampler.draw(_requests(tok, 4), SETTINGS)
    other_stream, _ = sampler.draw(_requests(tok, 4, stream="seed1/epoch0"), SETTINGS)
    other_tier, _ = sampler.draw(_requests(tok, 4, tier="tier2"), SETTINGS)
    flat = lambda rows: [d.completion.token_ids for row in rows for d in row]  # noqa: E731
    assert flat(base) != flat(other_stream) and flat(base) != flat(other_tier)


def test_model_identity_names_the_weights(tiny_models, teacher):
    model, tok = teacher
    again, tok_again = load_model(str(tiny_models.teacher_dir))
    student, _ = load_model(str(tiny_models.student_dir))
    assert model_identity(model, tok) == model_identity(again, tok_again)
    assert model_identity(student, tok) != model_identity(model, tok)
    with torch.no_grad():
        next(again.parameters()).view(-1)[0] += 1e-3
    assert model_identity(again, tok) != model_identity(model, tok)


def test_a_sample_another_process_is_drawing_is_waited_for_not_drawn_again(tmp_path, teacher):
    """A producer's claim: the trainer's sampler waits until the claimed samples are stored and draws none of them;
    a claim whose process is gone holds nothing, and the sampler draws the samples itself, the same ones."""
    import multiprocessing as mp
    import threading
    import time

    from brts.rollout import claims

    _, tok = teacher
    expected, _ = _sampler(teacher).draw(_requests(tok, 2), SETTINGS)  # no pool
    path = tmp_path / "pool.sqlite"
    keys = [_sampler(teacher).key(r.prompt, r.tier, j, SETTINGS, r.stream) for r in _requests(tok, 2) for j in range(2)]
    other = mp.get_context("fork").Process(target=time.sleep, args=(60,))
    other.start()
    try:
        db = SamplePool(path)._db
        with db:
            claims.claim(db, [k.digest for k in keys], 60)
            db.execute("UPDATE claims SET pid = ?", (other.pid,))  # claimed by a live process other than this one
        trainer = _sampler(teacher, SamplePool(path))
        assert trainer.pool.held(keys) == keys
        def claimer() -> None:  # stores them half a second later (a connection of its own: one per thread)
            sampler = _sampler(teacher, SamplePool(path))
            sampler.claims = True  # a producer's sampler: it never waits on claims
            sampler.draw(_requests(tok, 2), SETTINGS)

        timer = threading.Timer(0.5, claimer)
        started = time.monotonic()
        timer.start()
        got, stats = trainer.draw(_requests(tok, 2), SETTINGS)
        timer.join()
        assert time.monotonic() - started >= 0.5  # it waited for the claimed samples
        assert got == expected and (stats.generated_samples, stats.pool_samples) == (0, 6)
    finally:
        other.kill()
        other.join()
    # The claim's process is gone: it holds nothing, and a new sampler draws what is missing at once.
    assert SamplePool(path).held(keys) == []
    fresh = tmp_path / "fresh.sqlite"
    db = SamplePool(fresh)._db
    with db:
        claims.claim(db, [k.digest for k in keys], 60)
        db.execute("UPDATE claims SET pid = ?", (other.pid,))
    got, stats = _sampler(teacher, SamplePool(fresh)).draw(_requests(tok, 2), SETTINGS)
    assert got == expected and stats.generated_samples == 6


def test_a_claiming_sampler_releases_its_claims_once_stored(tmp_path, teacher):
    _, tok = teacher
    sampler = _sampler(teacher, SamplePool(tmp_path / "pool.sqlite"))
    sampler.claims = True
    sampler.draw(_requests(tok, 2), SETTINGS)
    rows = sampler.pool._db.execute("SELECT COUNT(*) FROM claims").fetchone()[0]
    assert rows == 0 and sampler.pool.stats().samples == 6
