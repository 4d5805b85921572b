"""The training loop of METHOD.md: student samples, teacher scores, teacher-context branch, losses, step, log.

Every random draw is seeded from (run seed, step, purpose), so a step's samples do not depend on what came
before it: a resumed run repeats an uninterrupted one exactly, and arms that share a seed see the same
prompts and the same teacher samples (common random numbers for paired comparisons).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from brts import checkpoint, timing
from brts.grading import extract_boxed
from brts.method.losses import mean_entropy, opd_loss, teacher_context_loss, total_loss
from brts.rollout.backends import student_generator, teacher_generator
from brts.rollout.base import SamplingSettings
from brts.rollout.pool import SamplePool
from brts.rollout.teacher import TeacherSampler, model_identity, stream_name
from brts.scoring import build_batch, response_logprobs
from brts.spec import RunConfig
from brts.tasks.base import Problem, Task
from brts.teacher_context import BranchResult, run_branch
from brts.validation import sample_accuracy

StepCallback = Callable[[int, dict[str, Any]], None]


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or inf; the run stops and records this line."""


@dataclass
class ModelPair:
    student: PreTrainedModel
    teacher: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase


def stream_seed(seed: int, step: int, purpose: str) -> int:
    """A 63-bit seed for one draw, independent of every other (seed, step, purpose)."""
    digest = hashlib.sha256(f"{seed}:{step}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


class MetricsLog:
    """Append-only `metrics.jsonl`; on resume, lines past the checkpoint's step are dropped."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def truncate_after(self, step: int) -> None:
        if not self.path.exists():
            return
        keep = [line for line in self.path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
        self.path.write_text("".join(line + "\n" for line in keep))

    def write(self, record: dict[str, Any]) -> None:
        with open(self.path, "a") as fh:
            fh.write(json.dumps(record, sort_keys=True) + "\n")

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line]


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
    order = list(range(len(pool)))
    random.Random(stream_seed(seed, epoch, "epoch")).shuffle(order)
    return [pool[i] for i in order[offset * size : (offset + 1) * size]]


def validation_set(task: Task, split: str, count: int) -> list[Problem]:
    """The first `count` validation problems of a split (disjoint from its evaluation problems)."""
    return task.validation_problems(split)[:count]


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


SELECTION_KEYS = (
    *(f"selection/frac_tier{t}" for t in (1, 2, 3, 0)), "selection/tier1_any_correct",
    "selection/tier2_recovered_of_retries", *(f"selection/alignment_tier{t}" for t in (1, 2, 3)),
    "selection/leaks_dropped",
)
TIME_KEYS = ("student_sample", "teacher_sample", "teacher_score", "select", "update")


def selection_metrics(branch: BranchResult | None, num_prompts: int) -> dict[str, Any]:
    """The `selection/*` metrics of METHOD.md section 6 for one step (all None when the branch is off)."""
    if branch is None:
        return dict.fromkeys(SELECTION_KEYS)
    sels = branch.selections
    out: dict[str, Any] = {f"selection/frac_tier{t}": sum(s.tier == t for s in sels) / len(sels) for t in (1, 2, 3, 0)}
    out["selection/tier1_any_correct"] = branch.tier1_any_correct / num_prompts
    out["selection/tier2_recovered_of_retries"] = branch.recovered / branch.retries if branch.retries else None
    for t in (1, 2, 3):
        out[f"selection/alignment_tier{t}"] = _mean([s.alignment for s in sels if s.tier == t and s.alignment is not None])
    out["selection/leaks_dropped"] = branch.leaks_dropped
    return out


class Trainer:
    """One run's training: owns the optimiser, the generators and the metrics log of `run_dir`.

    With `pool`, teacher samples are read from and added to that shared pool; without, every one is drawn
    here. Either way a run's results are the same (the samples are keyed; see `brts.rollout.teacher`).
    """

    def __init__(
        self, cfg: RunConfig, models: ModelPair, task: Task, run_dir: Path, pool: SamplePool | None = None
    ) -> None:
        self.cfg, self.models, self.task, self.run_dir = cfg, models, task, run_dir
        tok = models.tokenizer
        self.pad_id = int(tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)
        self.student_gen = student_generator(cfg.rollout, models.student, tok)
        self.teacher = TeacherSampler(
            teacher_generator(cfg.rollout, models.teacher, tok), model_identity(models.teacher, tok), task.grader, pool
        )
        self.optimizer = torch.optim.AdamW(
            models.student.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay
        )
        self.log = MetricsLog(run_dir / "metrics.jsonl")
        self.train_pool = task.train_problems()
        self.counters: dict[str, float] = {"teacher/tokens_generated": 0.0, "teacher/tokens_from_pool": 0.0}
        models.teacher.eval()
        for p in models.teacher.parameters():
            p.requires_grad_(False)

    def encode(self, text: str) -> list[int]:
        return list(self.models.tokenizer(text)["input_ids"])

    def validate(self, step: int) -> dict[str, Any]:
        """Accuracy in percent at the evaluation temperature on each split's validation problems."""
        tc, ec = self.cfg.train, self.cfg.eval
        out: dict[str, Any] = {"step": step}
        for split in ec.splits:
            problems = validation_set(self.task, split, tc.validation_problems)
            settings = SamplingSettings(
                n=tc.validation_k, temperature=ec.temperature, top_p=ec.top_p,
                max_new_tokens=ec.max_new_tokens, seed=stream_seed(self.cfg.seed, step, f"val/{split}"),
            )
            acc, _ = sample_accuracy(self.student_gen, self.encode, self.task, problems, settings, extract_boxed)
            out[f"val/{split}"] = 100 * acc  # percent, like every accuracy brts writes
        return out

    def run(self, on_step: StepCallback | None = None) -> list[dict[str, Any]]:
        """Train to `train.steps`, resuming from the newest checkpoint; returns the full metrics log."""
        tc = self.cfg.train
        torch.set_num_threads(tc.threads)
        ckpt_root = self.run_dir / "checkpoints"
        start = 0
        found = checkpoint.latest(ckpt_root)
        if found is not None:
            state = checkpoint.load(found, self.models.student, self.optimizer)
            start, self.counters = state.step, dict(state.counters or self.counters)
        self.log.truncate_after(start)
        self._sync_student()
        if start == 0:
            self.log.write(self.validate(0))
        for step in range(start + 1, tc.steps + 1):
            record = self.step(step)
            if step % tc.validate_every == 0 or step == tc.steps:
                record.update({k: v for k, v in self.validate(step).items() if k != "step"})
            self.log.write(record)
            if step % tc.checkpoint_every == 0 or step == tc.steps:
                checkpoint.save(
                    ckpt_root, self.models.student, self.optimizer, checkpoint.TrainState(step, self.counters)
                )
            if on_step is not None:
                on_step(step, record)
        return self.log.read()

    def _sync_student(self) -> None:
        """Give a backend that holds its own copy of the student (vLLM) the current weights."""
        load_weights = getattr(self.student_gen, "load_weights", None)
        if load_weights is not None:
            load_weights(self.models.student)

    def _student_own(
        self, prompts: list[list[int]], responses: list[tuple[int, ...]], n: int
    ) -> list[tuple[torch.Tensor | None, torch.Tensor]]:
        """Per prompt, the student's log-probs (only for the `positional` alignment, the one reader; from a
        no-grad forward) and the mask along its own `n` samples."""
        batch = build_batch(prompts, responses, self.pad_id)
        logp = None
        if self.cfg.method.alignment == "positional":
            with torch.no_grad():
                logp = response_logprobs(self.models.student, batch)
        return [(None if logp is None else logp[i * n : (i + 1) * n], batch.mask[i * n : (i + 1) * n])
                for i in range(len(prompts) // n)]

    def step(self, step: int) -> dict[str, Any]:
        """One optimiser step; returns its metrics."""
        cfg, tc, method = self.cfg, self.cfg.train, self.cfg.method
        student, teacher = self.models.student, self.models.teacher
        timer = Timer()
        problems = step_problems(self.train_pool, cfg.seed, step, tc.prompts_per_step)
        epoch, _ = step_epoch(len(self.train_pool), step, tc.prompts_per_step)
        prompt_ids = [self.encode(self.task.prompt(p)) for p in problems]

        with timer("student_sample"):
            rows = self.student_gen.generate(
                prompt_ids,
                SamplingSettings(
                    n=tc.samples_per_prompt, temperature=tc.student_temperature, top_p=1.0,
                    max_new_tokens=tc.max_new_tokens, seed=stream_seed(cfg.seed, step, "student"),
                ),
            )
        n = tc.samples_per_prompt
        opd_prompts = [ids for ids in prompt_ids for _ in range(n)]
        opd_responses = [c.token_ids for row in rows for c in row]
        reward = [self.task.grader.grade(c.text, p.answer) for p, row in zip(problems, rows, strict=True) for c in row]

        metrics: dict[str, Any] = selection_metrics(None, len(problems))
        branch = None
        if method.teacher_context:
            with timer("select"):
                branch = run_branch(
                    problems=problems, prompt_ids=prompt_ids, student_own=self._student_own(opd_prompts, opd_responses, n),
                    student=student, teacher=self.teacher, task=self.task, encode=self.encode, cfg=method,
                    max_new_tokens=tc.max_new_tokens, stream=stream_name(cfg.seed, epoch),
                    seed=stream_seed(cfg.seed, step, "teacher"), pad_id=self.pad_id,
                )
            timer.seconds["teacher_sample"] = branch.stats.seconds
            self.counters["teacher/tokens_generated"] += branch.stats.generated_tokens
            self.counters["teacher/tokens_from_pool"] += branch.stats.pool_tokens
            metrics.update(selection_metrics(branch, len(problems)))

        # The student's own samples and the selected teacher trajectories go through each model in one forward.
        aux_prompts, aux_trajectories = (branch.aux_prompts, branch.aux_trajectories) if branch else ([], [])
        batch = build_batch(opd_prompts + aux_prompts, opd_responses + aux_trajectories, self.pad_id)
        own, aux = slice(0, len(opd_responses)), slice(len(opd_responses), None)
        with timer("teacher_score"), torch.no_grad():
            teacher_logp = response_logprobs(teacher, batch)
        with timer("update"):
            student_logp = response_logprobs(student, batch)
            loss_opd = opd_loss(student_logp[own], teacher_logp[own], batch.tokens[own], batch.mask[own], method)
            loss_aux = None
            if aux_trajectories:
                loss_aux = teacher_context_loss(student_logp[aux], teacher_logp[aux], batch.mask[aux], method)

        with timer("update"):
            loss = total_loss(loss_opd, loss_aux, method)
            if not torch.isfinite(loss):
                raise NonFiniteLossError(
                    f"non-finite loss at step {step}: loss/opd={loss_opd.item()}, "
                    f"loss/aux={None if loss_aux is None else loss_aux.item()}"
                )
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            grad_norm = torch.nn.utils.clip_grad_norm_(student.parameters(), tc.grad_clip)
            self.optimizer.step()
            self._sync_student()
        # The branch's time includes its teacher sampling; report selection work alone.
        timer.seconds["select"] = timer.seconds.get("select", 0.0) - timer.seconds.get("teacher_sample", 0.0)
        seconds = {k: timer.seconds.get(k, 0.0) for k in TIME_KEYS}

        metrics.update({
            "step": step,
            "loss/opd": loss_opd.item(),
            "loss/aux": None if loss_aux is None else loss_aux.item(),
            "loss/total": loss.item(),
            "grad_norm": float(grad_norm),
            "student/entropy": mean_entropy(student_logp[own].detach(), batch.mask[own]).item(),
            "student/reward": sum(reward) / len(reward),
            "student/response_tokens": int(batch.mask[own].sum()) / len(reward),
            **self.counters,
            **{f"time/{k}": round(v, 4) for k, v in seconds.items()},
        })
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics.items()}
