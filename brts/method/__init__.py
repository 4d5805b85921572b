"""The algorithm of METHOD.md sections 1-3: pure functions over tensors and scored candidates, no I/O."""

from brts.method.alignment import (
    first_alignment,
    logprob_alignment,
    positional_alignment,
    random_alignment,
    teacher_forced_alignment,
)
from brts.method.config import ARM_PRESETS, MethodConfig, arm_config
from brts.method.losses import (
    mean_entropy,
    opd_candidates,
    opd_loss,
    opd_weights,
    teacher_context_loss,
    token_mean,
    topk_mask,
    total_loss,
)
from brts.method.selection import Candidate, Selection, count_leaks, needs_recovery, select

__all__ = [
    "ARM_PRESETS",
    "Candidate",
    "MethodConfig",
    "Selection",
    "arm_config",
    "count_leaks",
    "first_alignment",
    "logprob_alignment",
    "mean_entropy",
    "needs_recovery",
    "opd_candidates",
    "opd_loss",
    "opd_weights",
    "positional_alignment",
    "random_alignment",
    "select",
    "teacher_context_loss",
    "teacher_forced_alignment",
    "token_mean",
    "topk_mask",
    "total_loss",
]
