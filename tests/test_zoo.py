"""The built-in model builder on a tiny recipe: loadable folders, deterministic from the seed, cached."""

from __future__ import annotations

import time

import torch

from brts.models import check_compatible, load_model
from brts.zoo import build_default_models
from tests.conftest import TINY


def test_build_is_loadable_deterministic_and_cached(tmp_path, tiny_models):
    again = build_default_models(tmp_path / "other", seed=0, progress=False, settings=TINY)
    for a, b in ((tiny_models.teacher_dir, again.teacher_dir), (tiny_models.student_dir, again.student_dir)):
        (ma, ta), (mb, _) = load_model(str(a)), load_model(str(b))
        assert all(torch.equal(x, y) for x, y in zip(ma.state_dict().values(), mb.state_dict().values(), strict=True))
        assert ta.padding_side == "left" and ta("Q:1").input_ids[0] == ta.bos_token_id
    teacher, tok = load_model(str(again.teacher_dir))
    student, stok = load_model(str(again.student_dir))
    check_compatible(tok, stok, teacher.config.vocab_size, student.config.vocab_size)
    assert set(again.accuracies) >= {"teacher/hard", "teacher_hint/hard", "student/hard"}

    started = time.perf_counter()
    cached = build_default_models(tmp_path / "other", seed=0, progress=False, settings=TINY)
    assert cached.root == again.root and time.perf_counter() - started < 2.0


def test_saved_models_reproduce_the_accuracies_measured_in_memory(tiny_models):
    from brts.tasks.synthetic import SyntheticTask
    from brts.zoo import measure

    teacher, tok = load_model(str(tiny_models.teacher_dir))
    student, _ = load_model(str(tiny_models.student_dir))
    again = measure(teacher, student, tok, SyntheticTask(seed=TINY.seed), TINY)
    assert again == tiny_models.accuracies
