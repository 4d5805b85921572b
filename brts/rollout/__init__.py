"""Generation backends behind one protocol."""

from brts.rollout.base import Completion, Generator, KeyedGenerator, Request, SamplingSettings

__all__ = ["Completion", "Generator", "KeyedGenerator", "Request", "SamplingSettings"]
