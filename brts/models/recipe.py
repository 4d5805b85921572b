"""The embedded default models: a tiny teacher and student trained here, on the synthetic task, in minutes.

Both start from one base that knows the task's format and all 300 one-step facts (value, operation, digit).
The teacher then learns to read a key (with the key in the prompt it always works the chain out: Tier 2
recovers; some of its hinted answers repeat the key: the leak filter has something to drop) and, on longer
chains without a key, sometimes to box a guess after a uniform number of steps: its own samples are right
only part of the time, so choosing among N of them matters, while no single position holds much of its mass,
so the mode-seeking `L_OPD` learns the whole chain from it. The student forgets a fixed share of the facts (it
guesses a uniform digit there): it keeps the format and most of the arithmetic, starts well below the teacher
on every split, and learns the missing facts one by one, so its accuracy rises gradually rather than in a
jump that a run makes or misses.

The recipe runs once, on the developers' machine: `brts/models/shipped/` ships its result (`brts.models.builtin`),
since its 1,400 chained AdamW steps give other bits under other floating-point kernels.
"""

# Over 400 lines: the pair's recipe (data, training, measurement) is one build read top to bottom; split, it hides.
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from filelock import FileLock
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedModel, PreTrainedTokenizerBase

from brts.cpu import float_environment
from brts.models.build_threads import BuildPace
from brts.models.tokenizer import build_char_tokenizer
from brts.rollout.base import SamplingSettings
from brts.rollout.hf import HFGenerator
from brts.spec import DEFAULT_BUILD_SEED
from brts.store.files import UMASK
from brts.tasks.synthetic import (
    MAX_OPS,
    BuildingSampler,
    SyntheticTask,
    gold_solution,
    leaked_solution,
    shortcut_solution,
    solution_of,
    to_problem,
    unknown_facts,
    written_values,
)

RECIPE_VERSION = "11"  # bump whenever the recipe changes in a way the settings do not show


@dataclass(frozen=True)
class BuildSettings:
    """Everything that determines the built models; its hash names the cache folder."""

    seed: int = DEFAULT_BUILD_SEED
    # Architecture (one shape for both models, so the student has the teacher's capacity).
    hidden_size: int = 128
    layers: int = 2
    heads: int = 4
    intermediate_size: int = 384
    # Optimisation.
    base_steps: int = 600
    teacher_steps: int = 300
    student_steps: int = 200
    batch_size: int = 64
    lr: float = 3e-3
    warmup_steps: int = 30
    # Teacher data: share of hinted examples (always worked out), share of those that repeat the key, and
    # per chain length the share of unhinted examples that take the shortcut (box a guess after a uniform
    # number of steps).
    hint_fraction: float = 0.5
    leak_fraction: float = 0.2
    shortcut: tuple[float, ...] = (0.0, 0.1, 0.3, 0.45, 0.6, 0.7)
    # Student data: every chain length in the full format, but each step whose fact (value, operation, digit)
    # lies in a fixed share of the 300 facts is a uniform guess: starting from the base that knows every fact,
    # the student forgets these, so it has the format and most of the arithmetic and is unsure (not wrong) on
    # the rest; its own samples spread there and the teacher's per-token signal teaches it fact by fact.
    student_unknown_fraction: float = 0.35
    # Measurement at the end: problems per split and samples per problem.
    eval_problems: int = 100
    eval_samples: int = 2

    def digest(self) -> str:
        payload = json.dumps({"recipe": RECIPE_VERSION, **dataclasses.asdict(self)}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class BuiltModels:
    """Folders of a finished build (each model folder also holds the tokenizer) and what was measured."""

    root: Path
    tokenizer_dir: Path
    teacher_dir: Path
    student_dir: Path
    accuracies: dict[str, float] = field(default_factory=dict)
    build_seconds: float = 0.0


def default_cache_root() -> Path:
    """`$BRTS_CACHE`, else `~/.cache/brts`."""
    return Path(os.environ.get("BRTS_CACHE") or Path.home() / ".cache" / "brts")


def build_default_models(
    cache_root: Path | None = None,
    seed: int = DEFAULT_BUILD_SEED,
    progress: bool = True,
    settings: BuildSettings | None = None,
) -> BuiltModels:
    """Build (or return the cached) default tokenizer, teacher and student under `cache_root/<settings hash>/`.

    `settings` overrides the recipe (tests use tiny step counts); `seed` always wins over `settings.seed`.
    The folder appears complete or not at all: it is built in a temporary folder and renamed into place.
    """
    settings = dataclasses.replace(settings or BuildSettings(), seed=seed)
    cache_root = Path(cache_root) if cache_root is not None else default_cache_root()
    cache_root.mkdir(parents=True, exist_ok=True)
    final = cache_root / settings.digest()
    with FileLock(str(cache_root / f"{final.name}.lock")):
        if not (final / "build.json").is_file():
            staging = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=cache_root))
            staging.chmod(0o777 & ~UMASK)  # mkdtemp's 0700 would hide a shared cache from the rest of its group
            try:
                _build(staging, settings, progress)
                os.replace(staging, final)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    return _built(final)


def cached_default_models(cache_root: Path | None = None, seed: int = DEFAULT_BUILD_SEED) -> BuiltModels | None:
    """The default models when they are already built under `cache_root` (nothing is built or written), else None."""
    settings = dataclasses.replace(BuildSettings(), seed=seed)
    final = (Path(cache_root) if cache_root is not None else default_cache_root()) / settings.digest()
    return _built(final) if (final / "build.json").is_file() else None


def _built(root: Path) -> BuiltModels:
    record = json.loads((root / "build.json").read_text())
    return BuiltModels(
        root=root,
        tokenizer_dir=root / "tokenizer",
        teacher_dir=root / "teacher",
        student_dir=root / "student",
        accuracies=record["accuracies"],
        build_seconds=record["build_seconds"],
    )


def _build(out: Path, settings: BuildSettings, progress: bool) -> None:
    threads = torch.get_num_threads()
    try:
        with _progress(progress) as (advance, say):
            tokenizer = build_char_tokenizer()
            steps = settings.base_steps + settings.teacher_steps + settings.student_steps
            pace = BuildPace.start(lambda: _new_model(tokenizer, settings), len(tokenizer), settings.batch_size, steps)
            say(pace.announcement(out.parent))
            _build_models(out, settings, tokenizer, advance, pace.governor.tick, pace.notes)
    finally:
        torch.set_num_threads(threads)


def _build_models(out: Path, settings: BuildSettings, tokenizer: PreTrainedTokenizerBase, advance: Advance,
                  tick: Callable[[], None], notes: Callable[[], dict[str, object]]) -> None:
    started = time.perf_counter()
    tokenizer.save_pretrained(out / "tokenizer")
    task = SyntheticTask(seed=settings.seed)
    # A base that knows the format and every fact (gold solutions); the teacher learns the hints and the
    # shortcut on top of it, the student forgets a share of the facts.
    base = _train(tokenizer, settings, _base_example, settings.base_steps, "base", 3, advance, tick)
    teacher = _train(tokenizer, settings, _teacher_example, settings.teacher_steps, "teacher", 1, advance, tick,
                     init=base)
    student = _train(tokenizer, settings, _student_example, settings.student_steps, "student", 2, advance, tick,
                     init=base)
    for name, model in (("teacher", teacher), ("student", student)):
        model.save_pretrained(out / name)
        tokenizer.save_pretrained(out / name)
    accuracies = measure(teacher, student, tokenizer, task, settings, advance, tick)
    record = {
        "settings": dataclasses.asdict(settings),
        "recipe_version": RECIPE_VERSION,
        "torch": torch.__version__,
        "float_environment": float_environment(),
        "accuracies": accuracies,
        "build_seconds": round(time.perf_counter() - started, 1),
        **notes(),  # how it ran: expected time, threads
    }
    (out / "build.json").write_text(json.dumps(record, indent=2) + "\n")


# --- training data -------------------------------------------------------------------------------------

Example = tuple[str, str]  # (prompt, response)
_TASK = SyntheticTask()  # for its prompt format only


def _teacher_example(sampler: BuildingSampler, settings: BuildSettings) -> Example:
    rng = sampler.rng
    # Longer chains are drawn more often: their late steps are what takes longest to learn.
    ops = rng.choices(range(1, MAX_OPS + 1), weights=range(1, MAX_OPS + 1))[0]
    problem = to_problem(sampler.expression(ops))
    if rng.random() < settings.hint_fraction:
        prompt = _TASK.prompt(problem, hint=problem.answer)
        if rng.random() < settings.leak_fraction:
            return prompt, leaked_solution(problem.problem, problem.answer)
        return prompt, gold_solution(problem.problem)
    if rng.random() < settings.shortcut[ops - 1]:
        # The step it stops after is uniform, so no single position holds much of the teacher's mass.
        return _TASK.prompt(problem), shortcut_solution(problem.problem, rng.randint(1, ops - 1), rng.randrange(10))
    return _TASK.prompt(problem), gold_solution(problem.problem)


def _base_example(sampler: BuildingSampler, settings: BuildSettings) -> Example:
    ops = sampler.rng.choices(range(1, MAX_OPS + 1), weights=range(1, MAX_OPS + 1))[0]
    problem = to_problem(sampler.expression(ops))
    return _TASK.prompt(problem), gold_solution(problem.problem)


def _student_example(sampler: BuildingSampler, settings: BuildSettings) -> Example:
    rng = sampler.rng
    ops = rng.choices(range(1, MAX_OPS + 1), weights=range(1, MAX_OPS + 1))[0]
    problem = to_problem(sampler.expression(ops))
    unknown = unknown_facts(settings.student_unknown_fraction, settings.seed)
    return _TASK.prompt(problem), solution_of(written_values(problem.problem, unknown, rng))


def _batch(examples: list[Example], tokenizer: PreTrainedTokenizerBase) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded token ids and labels that train on the response tokens and the closing EOS only."""
    prompts = tokenizer([p for p, _ in examples])["input_ids"]
    responses = tokenizer([r for _, r in examples], add_special_tokens=False)["input_ids"]
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    rows = [(p, [*r, eos]) for p, r in zip(prompts, responses, strict=True)]
    width = max(len(p) + len(r) for p, r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    for i, (p, r) in enumerate(rows):
        ids[i, : len(p) + len(r)] = torch.tensor(p + r)
        labels[i, len(p) : len(p) + len(r)] = torch.tensor(r)
    return ids, labels


# --- training ------------------------------------------------------------------------------------------

Advance = Callable[[str, int, int], None]  # (stage, completed, total)


_BUCKET_CHUNK = 16  # batches drawn at once and grouped by length


def _bucketed_batches(
    sampler: BuildingSampler,
    settings: BuildSettings,
    example: Callable[[BuildingSampler, BuildSettings], Example],
    tokenizer: PreTrainedTokenizerBase,
    count: int,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """`count` batches whose examples have similar lengths (a third less padding), in random order."""
    examples = sorted(
        (example(sampler, settings) for _ in range(count * settings.batch_size)), key=lambda e: len(e[0]) + len(e[1])
    )
    size = settings.batch_size
    batches = [_batch(examples[i * size : (i + 1) * size], tokenizer) for i in range(count)]
    sampler.rng.shuffle(batches)
    return batches


def _new_model(tokenizer: PreTrainedTokenizerBase, settings: BuildSettings) -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=settings.hidden_size,
        intermediate_size=settings.intermediate_size,
        num_hidden_layers=settings.layers,
        num_attention_heads=settings.heads,
        num_key_value_heads=settings.heads,
        max_position_embeddings=256,
        tie_word_embeddings=False,  # tied weights were not tied in memory but saved as tied: keep them apart
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(config)


def _train(
    tokenizer: PreTrainedTokenizerBase,
    settings: BuildSettings,
    example: Callable[[BuildingSampler, BuildSettings], Example],
    steps: int,
    stage: str,
    stream: int,
    advance: Advance,
    tick: Callable[[], None] = lambda: None,
    init: PreTrainedModel | None = None,
) -> PreTrainedModel:
    """AdamW on the response tokens, warmup then cosine decay; deterministic from the seed and the stage's
    `stream` (its data and initialisation; `stage` only labels the progress bar); `tick` runs before every step."""
    stage_seed = settings.seed * 1000 + stream
    torch.manual_seed(stage_seed)
    model = _new_model(tokenizer, settings)
    if init is not None:
        model.load_state_dict(init.state_dict())
    model.train()
    sampler = BuildingSampler(stage_seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, betas=(0.9, 0.98), weight_decay=0.01)

    def lr_at(step: int) -> float:
        if step < settings.warmup_steps:
            return (step + 1) / settings.warmup_steps
        progress = (step - settings.warmup_steps) / max(1, steps - settings.warmup_steps)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)
    advance(stage, 0, steps)
    batches: list[tuple[torch.Tensor, torch.Tensor]] = []
    for step in range(steps):
        tick()
        if not batches:
            batches = _bucketed_batches(sampler, settings, example, tokenizer, min(_BUCKET_CHUNK, steps - step))
        ids, labels = batches.pop()
        logits = model(input_ids=ids).logits
        loss = torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, logits.size(-1)), labels[:, 1:].reshape(-1), ignore_index=-100
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        advance(stage, step + 1, steps)
    model.eval()
    return model


# --- measurement ---------------------------------------------------------------------------------------

_MAX_NEW_TOKENS = 48  # the longest gold solution is 28 tokens; a model that rambles is cut off here


def measure(
    teacher: PreTrainedModel,
    student: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    task: SyntheticTask,
    settings: BuildSettings,
    advance: Advance | None = None,
    tick: Callable[[], None] = lambda: None,
) -> dict[str, float]:
    """Sampled accuracies at temperature 0.7, top-p 0.95 (the teacher's Tier-1 and Tier-2 settings; the
    student's evaluation setting): per split for both models, and the teacher with the key on `hard`."""
    runs = [("teacher", s, False) for s in task.splits] + [("teacher_hint", "hard", True)]
    runs += [("student", s, False) for s in task.splits]
    results: dict[str, float] = {}
    for i, (who, split, hinted) in enumerate(runs):
        if advance is not None:
            advance("measure", i, len(runs))
        tick()
        model = student if who == "student" else teacher
        problems = task.eval_problems(split)[: settings.eval_problems]
        prompts = [tokenizer(task.prompt(p, p.answer if hinted else None))["input_ids"] for p in problems]
        sampling = SamplingSettings(
            n=settings.eval_samples, temperature=0.7, top_p=0.95, max_new_tokens=_MAX_NEW_TOKENS, seed=settings.seed
        )
        completions = HFGenerator(model, tokenizer).generate(prompts, sampling)
        graded = [[task.grader.grade(c.text, p.answer) for c in cs] for p, cs in zip(problems, completions, strict=True)]
        results[f"{who}/{split}"] = sum(map(sum, graded)) / sum(map(len, graded))
        if who == "teacher" and split == "hard":
            results["teacher/hard_any_correct"] = sum(map(any, graded)) / len(graded)
        if hinted:
            leaks = [task.leaks(c.text, p.answer) for p, cs in zip(problems, completions, strict=True) for c in cs]
            results["teacher_hint/hard_leak_rate"] = sum(leaks) / len(leaks)
    if advance is not None:
        advance("measure", len(runs), len(runs))
    return {k: round(v, 4) for k, v in results.items()}


Say = Callable[[str], None]


@contextmanager
def _progress(enabled: bool) -> Iterator[tuple[Advance, Say]]:
    """One task per build stage (teacher, students, measure) on brts.progress: bars in a terminal, else lines;
    and a way to say one line (the expected time) between them."""
    if not enabled:
        yield (lambda stage, completed, total: None), (lambda line: None)
        return
    from brts import progress

    with progress.current() as shown:
        stages: list[str] = []

        def advance(stage: str, completed: int, total: int) -> None:
            if not stages or stages[-1] != stage:
                if stages:
                    shown.finish(stages[-1])
                stages.append(stage)
                shown.start(stage, f"building default models: {stage:8}", total, keep=True)
            shown.update(stage, completed, total=total)
            if completed >= total:
                shown.finish(stage)

        yield advance, shown.note
