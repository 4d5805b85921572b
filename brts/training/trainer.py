"""The training loop: student samples, teacher scores, teacher-context branch, losses, step, log.

Every random draw is seeded from (run seed, step, purpose), so a step's samples do not depend on what came
before it: a resumed run repeats an uninterrupted one exactly, and arms that share a seed see the same
prompts and the same teacher samples (common random numbers for paired comparisons).
"""

# Over 400 lines: the training loop read top to bottom (sample, score, select, losses, step, log, resume).
from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import random
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import torch

from brts import timing
from brts.method import alignment as align
from brts.method.losses import forward_kl, opd_loss, reverse_kl, teacher_context_loss, token_mean
from brts.method.support import support_top_k
from brts.models.load import ModelPair
from brts.rollout.backends import student_generator, teacher_generator
from brts.rollout.base import Request, SamplingSettings
from brts.rollout.keyed import row_seed
from brts.rollout.pool import SamplePool
from brts.rollout.teacher import TeacherSampler, model_identity, stream_name
from brts.spec import RunConfig
from brts.store import RunFolder, checkpoint
from brts.tasks.base import Problem, Task, prompt_ids
from brts.training.distributed import Ranks
from brts.training.logprobs import kept_logprobs, teacher_pass
from brts.training.output_head import OutputHead
from brts.training.scoring import ResponseBatch, build_batch
from brts.training.step_records import (
    COUNTER_KEYS,
    TIME_KEYS,
    OwnSamples,
    RankShare,
    StepLosses,
    StepTokens,
    merge_branches,
    selection_metrics,
    step_losses,
)
from brts.training.teacher_branch import BranchResult, run_branch
from brts.training.validation import sample_accuracy

StepCallback = Callable[[int, dict[str, Any]], None]


def stream_seed(seed: int, step: int, purpose: str) -> int:
    """A 63-bit seed for one draw, independent of every other (seed, step, purpose)."""
    digest = hashlib.sha256(f"{seed}:{step}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


class Timer:
    """Accumulates time per named phase of a step (wall time unless `brts.timing` says otherwise)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = timing.now()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + timing.now() - start


def step_epoch(pool_size: int, step: int, size: int) -> tuple[int, int]:
    """(epoch, slice index within the epoch) of a step: which pass over the train pool it belongs to."""
    return divmod(step - 1, max(1, pool_size // size))


def step_problems(pool: Sequence[Problem], seed: int, step: int, size: int) -> list[Problem]:
    """The prompts of one step: consecutive slices of a per-epoch shuffle of the train pool."""
    epoch, offset = step_epoch(len(pool), step, size)
    order = _epoch_order(len(pool), seed, epoch)
    return [pool[i] for i in order[offset * size : (offset + 1) * size]]


@functools.lru_cache(maxsize=4)
def _epoch_order(size: int, seed: int, epoch: int) -> tuple[int, ...]:
    """The epoch's shuffle of `range(size)` (shuffled once per epoch, not once per step)."""
    order = list(range(size))
    random.Random(stream_seed(seed, epoch, "epoch")).shuffle(order)
    return tuple(order)


def validation_set(task: Task, split: str, count: int) -> list[Problem]:
    """The first `count` validation problems of a split (disjoint from its evaluation problems)."""
    return task.validation_problems(split)[:count]


class Trainer:
    """One run's training: owns the optimiser, the generators and the logs and checkpoints of its run folder.

    With `pool`, teacher samples are read from and added to that shared pool; without, every one is drawn
    here. Either way a run's results are the same (the samples are keyed; see `brts.rollout.teacher`).
    Under `accelerate launch` each rank trains on its block of every step's prompts (brts.training.distributed).
    """

    def __init__(
        self, cfg: RunConfig, models: ModelPair, task: Task, run_dir: Path | RunFolder, pool: SamplePool | None = None,
        ranks: Ranks | None = None,
    ) -> None:
        self.cfg, self.models, self.task = cfg, models, task
        self.folder = run_dir if isinstance(run_dir, RunFolder) else RunFolder(run_dir)
        self.ranks = ranks or Ranks()
        self.device = self.ranks.device if self.ranks.device.type != "cpu" else torch.device("cpu")
        models.student.to(self.device)
        if cfg.train.gradient_checkpointing:
            models.student.gradient_checkpointing_enable()
        # Master weights stay float32; the frozen teacher only needs the compute dtype.
        models.teacher.to(self.device, torch.bfloat16 if cfg.train.compute_dtype == "bfloat16" else None)
        tok = models.tokenizer
        self.pad_id = int(tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)
        self.student_gen = student_generator(cfg.rollout, models.student, tok)
        self.teacher = TeacherSampler(
            teacher_generator(cfg.rollout, models.teacher, tok), model_identity(models.teacher, tok), task.grader, pool
        )
        # Fused: one pass over each parameter instead of a dozen; the same update to float rounding.
        self.optimizer = torch.optim.AdamW(
            models.student.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay,
            fused=self.device.type in ("cpu", "cuda"),
        )
        self.log = self.folder.metrics_log()
        # Per-problem validation accuracy, one line per validation step (paired tests, pruning of sweep trials).
        self.validation_log = self.folder.validation_log()
        self.train_pool = task.train_problems()
        self.counters: dict[str, float] = dict.fromkeys(COUNTER_KEYS, 0.0)
        models.teacher.eval()
        for p in models.teacher.parameters():
            p.requires_grad_(False)

    def encode(self, text: str) -> list[int]:
        return prompt_ids(self.models.tokenizer, self.task, text)

    def amp(self) -> AbstractContextManager[Any]:
        """bf16 autocast for forwards and generation when `train.compute_dtype` asks for it."""
        return torch.autocast(self.device.type, torch.bfloat16, enabled=self.cfg.train.compute_dtype == "bfloat16")

    def validate(self, step: int) -> dict[str, Any]:
        """Accuracy in percent at the evaluation temperature on each split's validation problems.

        Also appends `{"step", "problems": {split: {problem_id: fraction of samples correct}}}` to
        `validation.jsonl` (paired per-problem comparisons, pruning of sweep trials).
        """
        tc, ec = self.cfg.train, self.cfg.eval
        out: dict[str, Any] = {"step": step}
        per_problem: dict[str, dict[str, float]] = {}
        for split in self.cfg.validation_splits:
            problems = validation_set(self.task, split, tc.validation_problems)
            settings = SamplingSettings(
                n=tc.validation_k, temperature=ec.temperature, top_p=ec.top_p,
                max_new_tokens=ec.max_new_tokens, seed=stream_seed(self.cfg.seed, step, f"val/{split}"),
            )
            acc, samples = sample_accuracy(self.student_gen, self.encode, self.task, problems, settings,
                                           self.task.grader.extract)
            out[f"val/{split}"] = 100 * acc  # percent, like every accuracy brts writes
            per_problem[split] = {p.id: sum(s.correct for s in samples if s.problem_id == p.id) / tc.validation_k
                                  for p in problems}
        self.validation_log.write({"step": step, "problems": per_problem})
        return out

    def run(self, on_step: StepCallback | None = None) -> list[dict[str, Any]]:
        """Train to `train.steps`, resuming from the newest checkpoint; returns the full metrics log."""
        tc = self.cfg.train
        torch.set_num_threads(tc.threads)
        ckpt_root = self.folder.checkpoints
        start = 0
        payloads: dict[Path, dict[str, Any]] = {}  # the newest intact checkpoint; rank 0 moves damaged ones aside
        found = self.folder.intact_checkpoint(lambda path: checkpoint.read_into(path, payloads), self.ranks.is_main)
        if found is not None:
            state = checkpoint.load(found, self.models.student, self.optimizer, payloads[found])
            start, self.counters = state.step, dict(state.counters or self.counters)
        self._sync_student()
        main = self.ranks.is_main  # one rank writes the log and the checkpoints; the others only train
        if main:
            # Without a checkpoint nothing logged is kept: a step-0 line from a killed start would be written twice.
            kept = start if found is not None else -1
            self.log.truncate_after(kept)
            self.validation_log.truncate_after(kept)
        if start == 0 and main:
            self.log.write(self.validate(0))
        for step in range(start + 1, tc.steps + 1):
            record = self.step(step)
            if main and (step % tc.validate_every == 0 or step == tc.steps):
                record.update({k: v for k, v in self.validate(step).items() if k != "step"})
            if main:
                self.log.write(record)
            if main and (step % tc.checkpoint_every == 0 or step == tc.steps):
                saved = checkpoint.save(
                    ckpt_root, self.models.student, self.optimizer, checkpoint.TrainState(step, self.counters))
                self.folder.seal(saved.relative_to(self.folder.path).as_posix())
            if on_step is not None:
                on_step(step, record)
        self.ranks.barrier()
        return self.log.read()

    def _sync_student(self) -> None:
        """Give a backend that holds its own copy of the student (vLLM) the current weights."""
        load_weights = getattr(self.student_gen, "load_weights", None)
        if load_weights is not None:
            load_weights(self.models.student)

    def _micro_batches(self, batch: ResponseBatch) -> list[ResponseBatch]:
        size = self.cfg.train.micro_batch_size or batch.size
        return [batch.rows(i, i + size) for i in range(0, batch.size, size)]

    def _backprop(
        self, batch: ResponseBatch, own_rows: int, opd_tokens: float, aux_tokens: float, timer: Timer
    ) -> tuple[float, float, float, float, float, list[float]]:
        """Forward and backward `batch` (the student's own samples in its first `own_rows` rows, the selected
        teacher trajectories after them) in micro-batches, log-probs streamed (`brts.training.logprobs`). Each
        micro-batch's OPD and aux token means are weighted by its share of the step's `opd_tokens` and
        `aux_tokens` over all ranks: summed over micro-batches and ranks (the gradient all-reduce), the gradients
        are those of the global token means. Returns the token-weighted sums of the OPD loss, the student's
        entropy, the aux loss and the two KLs (kl/opd, kl/aux), and the student's alignment score
        (`method.alignment`) of each aux row."""
        student, teacher, method = self.models.student, self.models.teacher, self.cfg.method
        opd_sum, entropy_sum, aux_sum, kl_opd_sum, kl_aux_sum, aux_alignment = 0.0, 0.0, 0.0, 0.0, 0.0, []
        chunk, top_k = self.cfg.train.logprob_chunk, support_top_k(method, OutputHead.of(student).vocab_size)
        size = self.cfg.train.micro_batch_size or batch.size
        for start in range(0, batch.size, size):
            mb = batch.rows(start, start + size).to(self.device)
            split = max(0, min(own_rows - start, mb.size))  # rows [0, split) of mb are the student's own
            own, aux = slice(0, split), slice(split, None)
            with timer("teacher_score"), torch.no_grad(), self.amp():
                teacher_part = teacher_pass(teacher, mb, top_k, chunk)
            with timer("update"):
                with self.amp():
                    kept = kept_logprobs(student, mb, teacher_part, chunk)
                own_tokens, aux_tokens_mb = int(mb.mask[own].sum()), int(mb.mask[aux].sum())
                loss = kept.student.new_zeros(())
                if own_tokens:
                    part = opd_loss(kept.student[own], kept.teacher[own], kept.token[own], mb.mask[own], method)
                    loss = loss + part * (own_tokens / max(opd_tokens, 1.0))
                    opd_sum += part.item() * own_tokens
                    entropy_sum += token_mean(kept.entropy[own], mb.mask[own]).item() * own_tokens
                    kl_opd_sum += reverse_kl(kept.student[own].detach(), kept.teacher[own], mb.mask[own],
                                             method.opd_top_k).item() * own_tokens
                if aux_tokens_mb:
                    part = teacher_context_loss(kept.student[aux], kept.teacher[aux], mb.mask[aux], method)
                    loss = loss + part * (method.aux_weight * aux_tokens_mb / max(aux_tokens, 1.0))
                    aux_sum += part.item() * aux_tokens_mb
                    kl_aux_sum += forward_kl(kept.student[aux].detach(), kept.teacher[aux], mb.mask[aux],
                                             method.aux_top_k).item() * aux_tokens_mb
                if mb.size > split:
                    token_logp, mask = kept.token_logprob()[aux].detach(), mb.mask[aux]
                    score = (align.teacher_forced_from(token_logp, kept.kth(method.effective_alignment_top_k)[aux], mask)
                             if method.alignment == "teacher_forced" else align.logprob_from(token_logp, mask))
                    aux_alignment += score.tolist()
                if loss.requires_grad and torch.isfinite(loss):  # a non-finite loss fails the step after the gather
                    loss.backward()  # type: ignore[no-untyped-call]
        return opd_sum, entropy_sum, aux_sum, kl_opd_sum, kl_aux_sum, aux_alignment

    def step(self, step: int) -> dict[str, Any]:
        """One optimiser step over this rank's block of the step's prompts; returns the whole step's metrics.

        Read top to bottom: the student samples its prompts; the teacher-context branch picks the trajectories
        L_aux trains on; both go through the models for the gradients; every rank's share is gathered; the
        optimiser steps; the metrics are the whole step's."""
        timer = Timer()
        own = self._own_samples(step, timer)
        branch = self._teacher_branch(step, own, timer) if self.cfg.method.teacher_context else None
        share, tokens = self._gradients(own, branch, timer)
        parts = self.ranks.gather(share)  # the whole step's numbers (the identity in one process)
        losses = step_losses(parts, tokens, self.cfg.method.aux_weight, step)
        grad_norm = self._apply_update(timer)
        return self._metrics(step, len(own.everyone), parts, tokens, losses, grad_norm, timer)

    def _own_samples(self, step: int, timer: Timer) -> OwnSamples:
        """This rank's block of the step's prompts, `samples_per_prompt` student samples of each, graded."""
        cfg, tc = self.cfg, self.cfg.train
        everyone = step_problems(self.train_pool, cfg.seed, step, tc.prompts_per_step)
        epoch, _ = step_epoch(len(self.train_pool), step, tc.prompts_per_step)
        first, last = self.ranks.block(len(everyone))
        problems = everyone[first:last]
        prompt_ids = [self.encode(self.task.prompt(p)) for p in problems]
        n = tc.samples_per_prompt
        settings = SamplingSettings(n=n, temperature=tc.student_temperature, top_p=1.0,
                                    max_new_tokens=tc.max_new_tokens, seed=stream_seed(cfg.seed, step, "student"))
        # Sample j of the step's prompt i is keyed by (seed, i, j), i counted over the whole step (as the
        # generators' own `generate` keys them), so a rank draws for its block what one process draws.
        requests = [Request(tuple(ids), row_seed(settings.seed, first + i, j))
                    for i, ids in enumerate(prompt_ids) for j in range(n)]
        with timer("student_sample"), self.amp():
            flat = self.student_gen.sample(requests, settings)
        reward = [self.task.grader.grade(c.text, problems[k // n].answer) for k, c in enumerate(flat)]
        return OwnSamples(everyone, epoch, problems, prompt_ids, [list(c.token_ids) for c in flat], n, reward)

    def _teacher_branch(self, step: int, own: OwnSamples, timer: Timer) -> BranchResult:
        """The trajectories L_aux trains on (`brts.training.teacher_branch`); its teacher sampling timed apart."""
        tc = self.cfg.train
        with timer("select"), self.amp():
            branch = run_branch(
                problems=own.problems, prompt_ids=own.prompt_ids, own_responses=own.per_prompt(),
                student=self.models.student, teacher=self.teacher, task=self.task, encode=self.encode,
                cfg=self.cfg.method, max_new_tokens=tc.max_new_tokens, stream=stream_name(self.cfg.seed, own.epoch),
                seed=stream_seed(self.cfg.seed, step, "teacher"), pad_id=self.pad_id, chunk=tc.logprob_chunk,
                micro_batch=tc.micro_batch_size,
            )
        timer.seconds["teacher_sample"] = branch.stats.seconds
        return branch

    def _gradients(self, own: OwnSamples, branch: BranchResult | None, timer: Timer) -> tuple[RankShare, StepTokens]:
        """The student's own samples and the chosen teacher trajectories through each model together, gradients
        accumulated; this rank's share of the step's numbers and the step's token counts over all ranks."""
        aux_prompts, aux_trajectories = (branch.aux_prompts, branch.aux_trajectories) if branch else ([], [])
        opd_prompts = [ids for ids in own.prompt_ids for _ in range(own.n)]
        batch = build_batch(opd_prompts + aux_prompts, own.responses + aux_trajectories, self.pad_id)
        own_tokens = int(batch.mask[: len(own.responses)].sum())
        tokens = StepTokens(*self.ranks.sum([own_tokens, batch.num_tokens - own_tokens, len(aux_trajectories)]))
        self.optimizer.zero_grad(set_to_none=True)
        *sums, aux_alignment = self._backprop(batch, len(own.responses), tokens.opd, tokens.aux, timer)
        if branch is not None:  # chosen trajectories that nothing ranked: their alignment from the update's forward
            branch = branch.with_alignments(aux_alignment)
        return RankShare(
            *sums, own.reward, dict(timer.seconds),
            None if branch is None else dataclasses.replace(branch, aux_prompts=[], aux_trajectories=[]),
        ), tokens

    def _apply_update(self, timer: Timer) -> float:
        """All-reduce, clip and apply the gradients; returns the gradient norm before clipping."""
        student = self.models.student
        with timer("update"):
            self.ranks.all_reduce_gradients(student.parameters())
            grad_norm = torch.nn.utils.clip_grad_norm_(student.parameters(), self.cfg.train.grad_clip)
            self.optimizer.step()
            self._sync_student()
        return float(grad_norm)

    def _metrics(self, step: int, num_prompts: int, parts: Sequence[RankShare], tokens: StepTokens,
                 losses: StepLosses, grad_norm: float, timer: Timer) -> dict[str, Any]:
        """The step's `metrics.jsonl` line from every rank's share (non-finite numbers as None)."""
        metrics: dict[str, Any] = selection_metrics(None, num_prompts)
        if self.cfg.method.teacher_context:
            merged = merge_branches([part.branch for part in parts if part.branch is not None])
            self.counters["teacher/tokens_generated"] += merged.stats.generated_tokens
            self.counters["teacher/tokens_from_pool"] += merged.stats.pool_tokens
            metrics.update(selection_metrics(merged, num_prompts))
        rewards = [r for part in parts for r in part.reward]
        seconds = {k: max(part.seconds.get(k, 0.0) for part in parts) for k in TIME_KEYS}
        seconds["update"] = max(seconds["update"], timer.seconds.get("update", 0.0))
        # The branch's time includes its teacher sampling; report selection work alone.
        seconds["select"] = max(
            part.seconds.get("select", 0.0) - part.seconds.get("teacher_sample", 0.0) for part in parts
        )
        metrics.update({
            "step": step,
            "kl/opd": losses.kl_opd,
            "kl/aux": losses.kl_aux,
            "surrogate/opd": losses.opd,
            "surrogate/aux": losses.aux,
            "surrogate/total": losses.total,
            "grad_norm": grad_norm,
            "student/entropy": losses.entropy,
            "student/reward": sum(rewards) / len(rewards),
            "student/response_tokens": tokens.opd / len(rewards),
            **self.counters,
            **{f"time/{k}": round(v, 4) for k, v in seconds.items()},
        })
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics.items()}


def build_trainer(cfg: RunConfig, run_dir: Path | RunFolder, pool: SamplePool | None = None,
                  models: ModelPair | None = None, ranks: Ranks | None = None) -> Trainer:
    """The one set-up of a trainer (a run, each rank of a multi-process launch, the bench): the run's model pair
    (loaded from `cfg` unless given), its task, its folder and the shared teacher sample pool."""
    from brts.models.load import load_pair
    from brts.tasks.registry import make_task

    return Trainer(cfg, models if models is not None else load_pair(cfg), make_task(cfg.task), run_dir, pool, ranks)
