"""The method's typed configuration, in the order of docs/method.md, and the named arm presets."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from brts.values import Int, Real

OPDEstimator = Literal["sampled", "topk"]
CandidateSet = Literal["student", "teacher", "intersection", "union", "symmetric_difference"]
WeightMode = Literal["student_p", "teacher_p", "uniform"]
AlignmentScore = Literal["teacher_forced", "logprob", "positional", "first", "random"]
Fallback = Literal["most_similar", "skip"]
SelectionScope = Literal["prompt", "response"]
AuxMode = Literal["teacher_topk", "student_p_as_released"]


class MethodConfig(BaseModel):
    """Every choice the method leaves open (L_OPD, the teacher-context branch, L_aux). Flat, so a spec overrides any field by name."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    # The student-context loss L_OPD.
    opd_estimator: OPDEstimator = "topk"
    opd_top_k: Int = Field(16, ge=1)
    opd_candidates: CandidateSet = "student"
    opd_weights: WeightMode = "student_p"

    # The teacher-context branch (off for plain OPD).
    teacher_context: bool = False
    teacher_samples: Int = Field(4, ge=1, description="N, unconditioned teacher samples per prompt (Tier 1)")
    recovery: bool = True
    recovery_samples: Int = Field(1, ge=1, description="M, hinted teacher samples per unrecovered prompt (Tier 2)")
    alignment: AlignmentScore = "teacher_forced"
    alignment_top_k: Int | None = Field(None, ge=1, description="top-K of the alignment score; None = opd_top_k")
    require_correct: bool = True
    fallback: Fallback = "most_similar"
    selection_scope: SelectionScope = "prompt"
    teacher_temperature: Real = Field(0.7, gt=0)
    teacher_top_p: Real = Field(0.95, gt=0, le=1)

    # The auxiliary teacher-context loss L_aux and its weight lambda.
    aux_mode: AuxMode = "teacher_topk"
    aux_top_k: Int = Field(16, ge=1)
    aux_weight: Real = Field(0.05, ge=0, description="lambda in L_total = L_OPD + lambda * L_aux")
    truncate_to_student_length: bool = False

    @model_validator(mode="after")
    def _sampled_has_no_top_k_options(self) -> MethodConfig:
        if self.opd_estimator == "sampled" and self.opd_candidates != "student":
            raise ValueError("opd_candidates applies to the topk estimator only; leave it 'student' with 'sampled'")
        return self

    @property
    def effective_alignment_top_k(self) -> int:
        return self.alignment_top_k if self.alignment_top_k is not None else self.opd_top_k

    def unused_fields(self) -> frozenset[str]:
        """The fields whose value this config's other settings make irrelevant: changing one changes no loss, no
        gradient, no selection and no teacher sample (plain OPD has no teacher-context branch; no recovery draws
        no hinted samples; only the teacher-forced and positional alignments rank by a top-K). They may still
        widen the log-prob columns kept per position (brts.method.support), which moves sums at float rounding."""
        if not self.teacher_context:
            return BRANCH_FIELDS
        unused = set()
        if not self.recovery:
            unused.add("recovery_samples")
        if self.alignment not in ("teacher_forced", "positional"):
            unused.add("alignment_top_k")
        return frozenset(unused)


# The teacher-context branch and L_aux: what plain OPD (teacher_context off) never reads.
BRANCH_FIELDS = frozenset({
    "teacher_samples", "recovery", "recovery_samples", "alignment", "alignment_top_k", "require_correct", "fallback",
    "selection_scope", "teacher_temperature", "teacher_top_p", "aux_mode", "aux_top_k", "aux_weight",
    "truncate_to_student_length"})


# The arms of the ablation, each a complete config. A preset names every field that makes the arm
# what it is (its row of the table), so a spec's shared `method` cannot change one silently (brts.spec).
ARM_PRESETS: dict[str, dict[str, Any]] = {
    "opd": {"teacher_context": False},
    "first_rollout": {"teacher_context": True, "teacher_samples": 1, "recovery": False, "alignment": "first"},
    "brts": {"teacher_context": True, "teacher_samples": 4, "recovery": True, "recovery_samples": 1,
             "alignment": "teacher_forced"},
    "brts_no_recovery": {"teacher_context": True, "teacher_samples": 4, "recovery": False,
                         "alignment": "teacher_forced"},
    "brts_no_alignment": {"teacher_context": True, "teacher_samples": 4, "recovery": True, "recovery_samples": 1,
                          "alignment": "first"},
}


def arm_config(preset: str, overrides: dict[str, Any] | None = None) -> MethodConfig:
    """The named preset with `overrides` applied on top (later keys win). Raises KeyError for an unknown arm."""
    if preset not in ARM_PRESETS:
        raise KeyError(preset)
    return MethodConfig(**{**ARM_PRESETS[preset], **(overrides or {})})


def preset_conflicts(preset: str, overrides: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """The fields the preset sets that `overrides` change: field -> (preset's value, overridden value).
    Raises ValidationError where the overrides are invalid."""
    base, changed = arm_config(preset), arm_config(preset, overrides)
    return {k: (getattr(base, k), getattr(changed, k)) for k in ARM_PRESETS[preset]
            if getattr(base, k) != getattr(changed, k)}
