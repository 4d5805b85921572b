"""The algorithm (L_OPD, the tiered teacher selection and its alignment scores, L_aux): pure functions over tensors and scored candidates, no I/O."""

from brts.method.alignment import (
    first_alignment,
    kth_largest,
    logprob_alignment,
    logprob_from,
    positional_alignment,
    positional_from,
    random_alignment,
    teacher_forced_alignment,
    teacher_forced_from,
)
from brts.method.config import ARM_PRESETS, MethodConfig, arm_config
from brts.method.losses import (
    entropy,
    forward_kl,
    mean_entropy,
    opd_candidates,
    opd_loss,
    opd_weights,
    reverse_kl,
    teacher_context_loss,
    token_mean,
    topk_mask,
)
from brts.method.selection import Candidate, Selection, contested, needs_recovery, select
from brts.method.support import first_occurrences, restricted, support_columns, support_top_k, token_column

__all__ = [
    "ARM_PRESETS",
    "Candidate",
    "MethodConfig",
    "Selection",
    "arm_config",
    "contested",
    "entropy",
    "first_alignment",
    "first_occurrences",
    "forward_kl",
    "kth_largest",
    "logprob_alignment",
    "logprob_from",
    "mean_entropy",
    "needs_recovery",
    "opd_candidates",
    "opd_loss",
    "opd_weights",
    "positional_alignment",
    "positional_from",
    "random_alignment",
    "restricted",
    "reverse_kl",
    "select",
    "support_columns",
    "support_top_k",
    "teacher_context_loss",
    "teacher_forced_alignment",
    "teacher_forced_from",
    "token_column",
    "token_mean",
    "topk_mask",
]
