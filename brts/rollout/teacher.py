"""Teacher samples by key, drawn once and reused through the pool: they do not depend on the student, so every
arm and trial that asks for the same one shares it.

A teacher sample is named by its `SampleKey`: the teacher's identity (a hash of its weights and vocabulary),
the sampler, the prompt's token ids, the sampling settings, the tier ("tier1" unconditioned, "tier2" with
the key in the prompt), the stream and its index within the stream. The keyed sampler seeds each row
from the key, so the sample is a function of its key alone, whichever batch draws it and whether or not
a pool is used.

The stream is `seed<training seed>/epoch<e>`, where `e` counts passes over the training pool. So:
- arms and sweep trials that share a training seed ask for the same keys and share samples (common random
  numbers); a run with N = 8 takes indices 0..7 and one with N = 4 reuses 0..3, drawing nothing new;
- different training seeds draw different samples (the spread over seeds includes the teacher's noise);
- a prompt met again in a later epoch of the same run gets fresh samples, as an online draw would.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from brts import timing
from brts.rollout.base import Completion, KeyedGenerator, Request, SamplingSettings
from brts.rollout.pool import PooledSample, SampleKey, SamplePool, prompt_sha
from brts.tasks.grading import Grader

Tier = str  # "tier1" or "tier2"
CLAIM_POLL_S = 0.05  # how often a sampler waiting for another process's samples looks for them
_FULL_HASH_ELEMENTS = 1 << 22  # tensors up to this size are hashed whole, larger ones by a strided sample


def stream_name(seed: int, epoch: int) -> str:
    """The sample stream of a run's visit to the training pool (see the module docstring)."""
    return f"seed{seed}/epoch{epoch}"


def model_identity(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> str:
    """16 hex digits naming the weights and vocabulary: equal for the same teacher loaded anywhere.

    Every tensor's name, dtype and shape, and its values (whole up to 4M elements, else ~4M evenly strided
    ones, which any fine-tuning step changes), plus the token-to-id map.
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        flat = tensor.detach().reshape(-1).cpu()
        if flat.numel() > _FULL_HASH_ELEMENTS:
            flat = flat[:: flat.numel() // _FULL_HASH_ELEMENTS + 1]
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(flat.contiguous().view(torch.uint8).numpy().tobytes())
    digest.update(repr(sorted(tokenizer.get_vocab().items())).encode())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class DrawRequest:
    """`count` samples (indices 0..count-1) of one prompt in one tier and stream; `answer` grades them."""

    prompt: tuple[int, ...]
    answer: str
    tier: Tier
    count: int
    stream: str


@dataclass(frozen=True)
class TeacherDraw:
    completion: Completion
    correct: bool


@dataclass
class DrawStats:
    """What one or more draws cost: samples and tokens generated here versus taken from the pool."""

    generated_samples: int = 0
    generated_tokens: int = 0
    pool_samples: int = 0
    pool_tokens: int = 0
    seconds: float = 0.0

    def add(self, other: DrawStats) -> None:
        for name in ("generated_samples", "generated_tokens", "pool_samples", "pool_tokens", "seconds"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class TeacherSampler:
    """Draws keyed teacher samples through `generator`, reading and filling `pool` when it is given.

    With a pool, a sample that another live process has claimed (a teacher producer drawing it now,
    brts.rollout.claims) is waited for rather than drawn a second time; `claims` makes this sampler claim what it
    draws (a producer's)."""

    generator: KeyedGenerator
    teacher_id: str
    grader: Grader
    pool: SamplePool | None = None
    total: DrawStats = field(default_factory=DrawStats)
    claims: bool = False

    @property
    def grader_id(self) -> str:
        return f"{self.grader.name}-{self.grader.version}"

    def key(self, prompt: Sequence[int], tier: Tier, index: int, settings: SamplingSettings, stream: str) -> SampleKey:
        return SampleKey(
            teacher=self.teacher_id, sampler=self.generator.sampler, prompt_sha=prompt_sha(prompt),
            temperature=settings.temperature, top_p=settings.top_p, max_new_tokens=settings.max_new_tokens,
            tier=tier, stream=stream, index=index,
        )

    def draw(
        self, requests: Sequence[DrawRequest], settings: SamplingSettings
    ) -> tuple[list[list[TeacherDraw]], DrawStats]:
        """Samples 0..count-1 of every request, graded, in request order; `settings.n`/`seed` are unused.
        Every missing sample is drawn in one call of the generator (which batches them)."""
        started = timing.now()
        keyed = [[self.key(r.prompt, r.tier, j, settings, r.stream) for j in range(r.count)] for r in requests]
        answer_of = {k: (r.prompt, r.answer) for r, keys in zip(requests, keyed, strict=True) for k in keys}
        found = self.pool.get_many(list(answer_of)) if self.pool is not None else {}
        missing = [k for k in answer_of if k not in found]
        if self.pool is not None and missing and not self.claims:
            found.update(self._wait_for_claimed(self.pool, missing))
            missing = [k for k in answer_of if k not in found]
        if self.pool is not None and self.claims and missing:
            self.pool.claim(missing)
        try:
            drawn = self.generator.sample([Request(answer_of[k][0], k.seed) for k in missing], settings)
            fresh = {
                k: PooledSample(c, self.grader_id, self.grader.grade(c.text, answer_of[k][1]))
                for k, c in zip(missing, drawn, strict=True)
            }
            if self.pool is not None:
                self.pool.put_many(list(fresh.items()))
        finally:
            if self.pool is not None and self.claims and missing:
                self.pool.release(missing)
        samples = {**found, **fresh}
        stats = DrawStats(
            generated_samples=len(fresh), generated_tokens=sum(len(s.completion.token_ids) for s in fresh.values()),
            pool_samples=len(found), pool_tokens=sum(len(s.completion.token_ids) for s in found.values()),
        )
        out = [[self._graded(samples[k], answer_of[k][1]) for k in keys] for keys in keyed]
        stats.seconds = timing.now() - started
        self.total.add(stats)
        return out, stats

    @staticmethod
    def _wait_for_claimed(pool: SamplePool, missing: Sequence[SampleKey]) -> dict[SampleKey, PooledSample]:
        """The samples among `missing` that other processes are drawing now, once they are stored or their claims
        stop holding (a claimer stores its samples before it releases them, so a last read finds them)."""
        waiting, got = pool.held(missing), {}
        asked = list(waiting)
        while waiting:
            time.sleep(CLAIM_POLL_S)
            got.update(pool.get_many(waiting))
            waiting = pool.held([k for k in waiting if k not in got])
        got.update(pool.get_many([k for k in asked if k not in got]))
        return got

    def _graded(self, sample: PooledSample, answer: str) -> TeacherDraw:
        if sample.grader == self.grader_id and sample.grade is not None:
            return TeacherDraw(sample.completion, sample.grade)
        return TeacherDraw(sample.completion, self.grader.grade(sample.completion.text, answer))
