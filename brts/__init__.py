"""brts: on-policy distillation with Best-of-N teacher rollout selection."""

__version__ = "0.1.0"
