"""`brts bench --peer trl`: one training step of TRL's GKD trainer against brts's `opd` and `brts` arms, on one
model pair, batch, response length, chat template and thread count, in one table.

What is compared. Each step samples `prompts x samples` student responses of up to `max_new_tokens` tokens to the
same prompt token ids (the bench checks that they are identical), scores them with the teacher and takes one
optimiser step. TRL's `GKDTrainer` (the `trl.experimental.gkd` of the pinned version) runs with lmbda = 1 (every
step on-policy), beta = 1 (the reverse KL, OPD's divergence, over the full vocabulary), the student's sampling
temperature, bf16 off and gradient checkpointing off (on CPU both only slow it down; with checkpointing on, GKD
generates without a KV cache), its default fused AdamW, the same learning rate and gradient clip. It draws one
completion per dataset row, so each prompt appears `samples` times in its batch. brts runs `opd` (the preset's
top-16 estimator) and `brts` at N = 4 with the teacher pool cold (empty: every teacher sample drawn) and warm
(holding every sample the steps ask for).

How it is timed. Every configuration runs in its own process: one untimed step, then `steps` timed ones, each from
the initial student (so every system samples from the same weights); the figure of a repetition is the median
over its steps. Repetitions alternate the order of the configurations (forward, then backward, ...), so slow
drift on a shared machine hits all of them alike; each repetition gives one ratio per configuration against TRL
and against `opd`, and the spread of those ratios is the figure's uncertainty. On CPU the clock is the process's
CPU time (one thread: wall time on an idle machine), on a GPU wall time.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import resource
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

PEERS = ("trl",)
TRL_PIN = "trl==1.16.0"  # the version `brts[peer]` installs (pyproject.toml)
SUFFIX = "Put your final answer within \\boxed{}."
# (key, label) of every configuration, in the order of a forward repetition.
CONFIGS = (("trl", "TRL GKDTrainer"), ("opd", "brts opd"), ("brts_cold", "brts brts N=4, pool cold"),
           ("brts_warm", "brts brts N=4, pool warm"))
BRTS_PHASES = ("student_sample", "teacher_sample", "teacher_score", "select", "update")
TRL_PHASES = ("generate", "teacher_forward", "update")
Say = Callable[[str], None]


@dataclass(frozen=True)
class PeerSetup:
    """What both systems are asked to do per step."""

    teacher: Path
    student: Path
    prompts: int = 4
    samples: int = 2
    max_new_tokens: int = 48
    teacher_samples: int = 4
    lr: float = 1e-5
    temperature: float = 1.0
    threads: int = 1
    seed: int = 0


@dataclass
class Measured:
    """One configuration in one repetition: median seconds per phase and in all, student tokens per step."""

    config: str
    rep: int
    phases: dict[str, float]
    total: float
    student_tokens: float
    peak_rss_mib: float


@dataclass
class PeerResult:
    setup: dict[str, Any]
    runs: list[Measured] = field(default_factory=list)
    trl_version: str = ""
    prompts_identical: bool | None = None
    steps: int = 0
    wall_seconds: float = 0.0

    def of(self, config: str) -> list[Measured]:
        return [m for m in self.runs if m.config == config]

    def ratios(self, config: str, against: str) -> list[float]:
        """`config`'s step time over `against`'s, one per repetition."""
        base = {m.rep: m.total for m in self.of(against)}
        return [m.total / base[m.rep] for m in self.of(config) if base.get(m.rep)]


def sums_problems(count: int = 96) -> list[dict[str, str]]:
    """Additions of two numbers below 100 (SmolLM2-135M answers some of them right within 48 tokens, and more with
    the answer in a hinted prompt: selection has correct candidates to choose between)."""
    pairs = [(a, b) for a in range(3, 60, 7) for b in range(2, 40, 3)][:count]
    return [{"id": f"add-{a}-{b}", "problem": f"What is {a} + {b}?", "answer": str(a + b)} for a, b in pairs]


def write_spec(setup: PeerSetup, folder: Path) -> Path:
    """The brts side as a spec file in `folder` (with its training JSONL): arms `opd` and `brts_n4`."""
    data = folder / "sums.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in sums_problems()))
    spec = folder / "bench-peer.yaml"
    spec.write_text(json.dumps({
        "name": "bench-peer",
        "task": {"name": "math", "train": str(data), "prompt_suffix": SUFFIX, "chat_template": True},
        "models": {"teacher": str(setup.teacher), "student": str(setup.student)},
        "train": {"prompts_per_step": setup.prompts, "samples_per_prompt": setup.samples,
                  "max_new_tokens": setup.max_new_tokens, "lr": setup.lr, "student_temperature": setup.temperature,
                  "threads": setup.threads},
        "arms": ["opd", {"name": "brts_n4", "preset": "brts", "set": {"teacher_samples": setup.teacher_samples}}],
        "eval": {"tasks": ["brts_amc23"]},  # not run: the bench trains steps only
        "seeds": [setup.seed],
    }, indent=1))  # JSON is YAML
    return spec


def step_prompts(spec_file: Path, steps: int) -> tuple[list[list[str]], list[list[list[int]]], list[list[str]]]:
    """Per step 1..`steps`: the prompt texts brts trains on, their token ids and the answers, one entry per
    sampled row (each prompt `samples` times), as TRL's batches must hold them."""
    from transformers import AutoTokenizer

    from brts.runs.plan import plan
    from brts.spec import load_spec
    from brts.tasks.base import prompt_ids
    from brts.tasks.registry import make_task
    from brts.training.trainer import step_problems

    config = plan(load_spec(spec_file))[0].config
    task, tok = make_task(config.task), AutoTokenizer.from_pretrained(config.models.student)
    pool = task.train_problems()
    texts, ids, answers = [], [], []
    for step in range(1, steps + 1):
        rows = [p for p in step_problems(pool, config.seed, step, config.train.prompts_per_step)
                for _ in range(config.train.samples_per_prompt)]
        texts.append([task.prompt(p) for p in rows])
        ids.append([prompt_ids(tok, task, task.prompt(p)) for p in rows])
        answers.append([p.answer for p in rows])
    return texts, ids, answers


# --- the peer, in its own process ----------------------------------------------------------------------------


def _trl_steps(setup: PeerSetup, texts: list[list[str]], answers: list[list[str]], out: Any) -> None:
    """In a child process: TRL's GKD trainer over the given batches (one per step), each step from the initial
    student; puts per-step phase seconds, student tokens, the prompt ids it generated from, and TRL's version."""
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    import logging
    import warnings

    import torch
    import trl
    from datasets import Dataset
    from torch.utils.data import SequentialSampler
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback, TrainerCallback
    from transformers.utils import logging as hf_logging
    from trl.experimental.gkd import GKDConfig, GKDTrainer

    # The peer's advice and deprecation notes (its GKD suggests DistillationTrainer for this setting) are not
    # the bench's output.
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    logging.getLogger("trl").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning)
    torch.set_num_threads(setup.threads)
    cuda = torch.cuda.is_available()

    def clock() -> float:
        if cuda:
            torch.cuda.synchronize()
            return time.perf_counter()
        return time.process_time()

    tok = AutoTokenizer.from_pretrained(setup.student)
    student = AutoModelForCausalLM.from_pretrained(setup.student, dtype=torch.float32)
    teacher = AutoModelForCausalLM.from_pretrained(setup.teacher, dtype=torch.float32)
    initial = {k: v.clone() for k, v in student.state_dict().items()}
    phase: dict[str, float] = {}
    seen: dict[str, Any] = {"prompts": [], "tokens": 0}
    started = [0.0]
    teacher.register_forward_pre_hook(lambda *_: started.__setitem__(0, clock()))
    teacher.register_forward_hook(lambda *_: phase.__setitem__("teacher_forward", phase["teacher_forward"]
                                                               + clock() - started[0]))

    class Timed(GKDTrainer):  # type: ignore[misc]
        def _get_train_sampler(self, *args: Any, **kwargs: Any) -> SequentialSampler:
            return SequentialSampler(self.train_dataset)  # step s reads the batch brts's step s trains on

        def generate_on_policy_outputs(self, model: Any, inputs: Any, generation_config: Any) -> Any:
            begun = clock()
            ids, mask, labels = GKDTrainer.generate_on_policy_outputs(model, inputs, generation_config)
            phase["generate"] += clock() - begun
            seen["prompts"].append([row[m.bool()].tolist() for row, m in
                                    zip(inputs["prompts"], inputs["prompt_attention_mask"], strict=True)])
            seen["tokens"] = int((labels != -100).sum())
            return ids, mask, labels

    records: list[dict[str, float]] = []

    class Steps(TrainerCallback):  # type: ignore[misc]
        def on_step_begin(self, *_: Any, **__: Any) -> None:
            with torch.no_grad():
                student.load_state_dict(initial)
            phase.update(generate=0.0, teacher_forward=0.0)
            self.begun = clock()

        def on_step_end(self, *_: Any, **__: Any) -> None:
            total = clock() - self.begun
            records.append({**phase, "update": total - sum(phase.values()), "total": total,
                            "tokens": seen["tokens"]})

    rows = [{"messages": [{"role": "user", "content": t}, {"role": "assistant", "content": a}]}
            for step_texts, step_answers in zip(texts, answers, strict=True)
            for t, a in zip(step_texts, step_answers, strict=True)]
    with tempfile.TemporaryDirectory() as folder:
        args = GKDConfig(
            output_dir=folder, per_device_train_batch_size=len(texts[0]), gradient_accumulation_steps=1,
            max_steps=len(texts), learning_rate=setup.lr, lr_scheduler_type="constant", max_grad_norm=1.0,
            lmbda=1.0, beta=1.0, temperature=setup.temperature, max_new_tokens=setup.max_new_tokens,
            bf16=False, fp16=False, gradient_checkpointing=False, use_cpu=not cuda, seed=setup.seed,
            report_to=[], save_strategy="no", logging_strategy="no", disable_tqdm=True, dataloader_num_workers=0,
        )
        trainer = Timed(model=student, teacher_model=teacher, args=args, train_dataset=Dataset.from_list(rows),
                        processing_class=tok, callbacks=[Steps()])
        trainer.remove_callback(PrinterCallback)  # it prints the run's summary on stdout, where the table goes
        trainer.train()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if cuda:
        peak = torch.cuda.max_memory_allocated() / 2**20
    out.put({"records": records, "prompts": seen["prompts"], "version": trl.__version__, "peak": peak})


def _in_child(target: Callable[..., None], *args: Any) -> Any:
    """Run `target(*args, queue)` in a forked process and return what it puts (its peak memory is its own)."""
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=target, args=(*args, queue))
    child.start()
    try:
        return queue.get()
    finally:
        child.join()


def _median_record(records: Sequence[dict[str, float]], keys: Sequence[str]) -> dict[str, float]:
    timed = records[1:] or records  # the first step warms up
    return {k: statistics.median(r[k] for r in timed) for k in keys}


def run_peer(setup: PeerSetup, steps: int = 6, reps: int = 3, say: Say = print) -> PeerResult:
    """Every configuration of `CONFIGS` `reps` times in alternating order, `steps` timed steps each (module
    docstring). Raises ImportError naming the extra when TRL is missing."""
    import importlib.util

    from brts.bench.steps import step_timing
    from brts.spec import load_spec

    if importlib.util.find_spec("trl") is None:
        raise ImportError(f"--peer trl needs TRL: pip install 'brts[peer]' (installs {TRL_PIN})")
    begun = time.perf_counter()
    result = PeerResult(setup={k: str(v) if isinstance(v, Path) else v for k, v in asdict(setup).items()},
                        steps=steps)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        spec_file = write_spec(setup, folder)
        spec = load_spec(spec_file)
        texts, ids, answers = step_prompts(spec_file, steps + 1)
        warm_pool = folder / "warm.sqlite"
        for rep in range(reps):
            # Forward first: the first repetition's cold run fills the pool that every warm run reads.
            for key, label in CONFIGS if rep % 2 == 0 else CONFIGS[::-1]:
                say(f"  repetition {rep + 1}/{reps}: {label}, {steps} timed steps")
                if key == "trl":
                    got = _in_child(_trl_steps, setup, texts, answers)
                    result.trl_version = got["version"]
                    identical = got["prompts"] == ids
                    result.prompts_identical = identical if result.prompts_identical is None else (
                        result.prompts_identical and identical)
                    med = _median_record(got["records"], [*TRL_PHASES, "total", "tokens"])
                    phases = {k: med[k] for k in TRL_PHASES}
                    result.runs.append(Measured(key, rep, phases, med["total"], med["tokens"], got["peak"]))
                    continue
                pool = None if key == "opd" else str(warm_pool if key == "brts_warm" or rep == 0
                                                      else folder / f"cold-{rep}.sqlite")
                timing = step_timing(spec, "opd" if key == "opd" else "brts_n4", None, key, pool, steps)
                result.runs.append(Measured(key, rep, timing.seconds, timing.total, timing.student_tokens,
                                            timing.peak_rss_mib))
    result.wall_seconds = round(time.perf_counter() - begun, 1)
    return result


def _spread(values: Sequence[float], digits: int = 2) -> str:
    mid = statistics.median(values)
    if len(values) < 2:
        return f"{mid:.{digits}f}"
    return f"{mid:.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def render_peer(result: PeerResult) -> Any:
    """The comparison as one table (what `brts bench --peer trl` prints)."""
    from rich.table import Table

    s = result.setup
    reps = len(result.of("trl"))
    title = (f"brts bench --peer trl: {Path(s['student']).name} student, {Path(s['teacher']).name} teacher; "
             f"{s['prompts']} prompts x {s['samples']} samples (TRL: {s['prompts'] * s['samples']} rows x 1), "
             f"{s['max_new_tokens']} new tokens, chat template, {s['threads']} thread(s), float32; median of "
             f"{result.steps} timed steps per run, {reps} alternated repetitions (median, range over them)")
    table = Table("system / arm", "s/step", "vs TRL GKD", "vs opd", "where the time goes (s/step)",
                  "student tokens/step", "peak MiB", title=title)
    for key, label in CONFIGS:
        runs = result.of(key)
        if not runs:
            continue
        if key == "trl":
            label = f"TRL {result.trl_version} GKDTrainer (lmbda=1, beta=1)"
        phases = list(runs[0].phases)
        split = ", ".join(f"{p.replace('_', ' ')} {statistics.median(r.phases[p] for r in runs):.2f}"
                          for p in phases if any(r.phases[p] for r in runs))
        table.add_row(label, _spread([r.total for r in runs]), _spread(result.ratios(key, "trl")),
                      _spread(result.ratios(key, "opd")) if key != "trl" else "", split,
                      f"{statistics.median(r.student_tokens for r in runs):.0f}",
                      f"{statistics.median(r.peak_rss_mib for r in runs):.0f}")
    table.add_section()
    for key, against, target in (("opd", "trl", 0.9), ("brts_cold", "opd", 2.0), ("brts_warm", "opd", 1.3)):
        ratios = result.ratios(key, against)
        if ratios:
            mid = statistics.median(ratios)
            table.add_row("target", f"{key} / {against} <= {target}", f"{mid:.2f}", "met" if mid <= target else
                          f"missed by {mid / target - 1:.0%}", "", "", "")
    identical = {True: "identical", False: "DIFFERENT", None: "not checked"}[result.prompts_identical]
    table.add_row("prompt token ids", "TRL vs brts", identical, "", "TRL: bf16 off, gradient checkpointing off, "
                  "fused AdamW (its default)", "", "")
    table.add_row("bench", "wall time", f"{result.wall_seconds:.0f} s", "", "", "", "")
    return table
