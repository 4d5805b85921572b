"""Generation backends behind one protocol."""

from brts.rollout.base import Completion, Generator, SamplingSettings

__all__ = ["Completion", "Generator", "SamplingSettings"]
