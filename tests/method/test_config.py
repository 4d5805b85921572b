"""The arm presets against the method's arms table (docs/method.md), overrides and validation."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from brts.method import ARM_PRESETS, MethodConfig, arm_config


def test_the_five_arms_match_the_table() -> None:
    assert set(ARM_PRESETS) == {"opd", "first_rollout", "brts", "brts_no_recovery", "brts_no_alignment"}
    opd = arm_config("opd")
    assert not opd.teacher_context

    first = arm_config("first_rollout")
    assert (first.teacher_context, first.teacher_samples, first.recovery) == (True, 1, False)
    assert first.fallback == "most_similar" and first.aux_weight > 0  # the single sample, tier 3 if wrong

    rows = {
        "brts": (4, True, "teacher_forced"),
        "brts_no_recovery": (4, False, "teacher_forced"),
        "brts_no_alignment": (4, True, "first"),
    }
    for arm, (n, recovery, alignment) in rows.items():
        cfg = arm_config(arm)
        assert cfg.teacher_context and cfg.aux_weight > 0, arm
        assert (cfg.teacher_samples, cfg.recovery, cfg.alignment) == (n, recovery, alignment), arm
        assert cfg.require_correct and cfg.aux_mode == "teacher_topk", arm
    assert arm_config("brts").recovery_samples == 1


def test_defaults_follow_the_method() -> None:
    cfg = MethodConfig()
    assert (cfg.opd_estimator, cfg.opd_top_k, cfg.opd_candidates, cfg.opd_weights) == (
        "topk",
        16,
        "student",
        "student_p",
    )
    assert (cfg.teacher_temperature, cfg.teacher_top_p, cfg.aux_weight) == (0.7, 0.95, 0.05)
    assert cfg.effective_alignment_top_k == 16
    assert MethodConfig(alignment_top_k=3).effective_alignment_top_k == 3


def test_overrides_win_and_presets_are_not_mutated() -> None:
    cfg = arm_config("brts", {"teacher_samples": 8, "aux_weight": 0.3, "alignment_top_k": 2})
    assert (cfg.teacher_samples, cfg.aux_weight, cfg.effective_alignment_top_k) == (8, 0.3, 2)
    assert arm_config("brts").teacher_samples == 4
    assert ARM_PRESETS["brts"]["teacher_samples"] == 4


def test_unknown_field_arm_and_bad_values_are_rejected() -> None:
    with pytest.raises(ValidationError, match="teacher_sample"):
        arm_config("brts", {"teacher_sample": 8})
    with pytest.raises(KeyError):
        arm_config("brts_plus")
    with pytest.raises(ValidationError):
        MethodConfig(opd_candidates="everything")
    with pytest.raises(ValidationError):
        MethodConfig(teacher_samples=0)
    with pytest.raises(ValidationError, match="topk estimator only"):
        MethodConfig(opd_estimator="sampled", opd_candidates="union")


def test_config_is_frozen() -> None:
    with pytest.raises(ValidationError):
        MethodConfig().aux_weight = 1.0  # type: ignore[misc]


def test_unused_fields_follow_the_arms_switches() -> None:
    sections_2_and_3 = set(MethodConfig.model_fields) - {"opd_estimator", "opd_top_k", "opd_candidates", "opd_weights",
                                                         "teacher_context"}
    assert arm_config("opd").unused_fields() == sections_2_and_3
    assert arm_config("brts").unused_fields() == set()
    assert arm_config("brts_no_recovery").unused_fields() == {"recovery_samples"}
    assert arm_config("brts_no_alignment").unused_fields() == {"alignment_top_k"}
    assert arm_config("first_rollout").unused_fields() == {"recovery_samples", "alignment_top_k"}
    for alignment in ("teacher_forced", "positional"):  # the two that rank by the student's top-K
        assert "alignment_top_k" not in arm_config("brts", {"alignment": alignment}).unused_fields()
    for alignment in ("logprob", "first", "random"):
        assert "alignment_top_k" in arm_config("brts", {"alignment": alignment}).unused_fields()
