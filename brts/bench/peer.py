"""`brts bench --peer trl`: one training step of TRL's distillation trainers against brts's `opd` and `brts` arms, on
one model pair, batch, response length, chat template and thread count, in one table.

What is compared. Each step samples `prompts x samples` student responses of up to `max_new_tokens` tokens to the
same prompt token ids (the bench checks that they are identical), scores them with the teacher and takes one
optimiser step. What each computes per step:

- TRL `DistillationTrainer` (the headline peer) and `GKDTrainer` (a second row): the reverse KL (beta = 1 of their
  generalised JSD) over the full vocabulary at every response position, exact and dense
  (`brts.bench.peer_trl` says how each is configured). One completion per dataset row, so each prompt appears
  `samples` times in a batch.
- brts `opd` (the preset): the top-16 estimator of the reverse KL's gradient (METHOD.md section 1): only the student's
  top-16 tokens at each position, weighted by the student renormalised over them.
- brts `opd`, top-K = the vocabulary: the same estimator over every token, whose gradient is the full reverse KL's,
  as TRL's: the like-for-like row.
- brts `brts` at N = 4 with the teacher pool cold (empty: every teacher sample drawn in the step), cold with a
  teacher producer ahead of the trainer (`brts.runs.producer`, on its own thread and core) and warm (holding every
  sample the steps ask for).

How it is timed. Every configuration runs in its own process: one untimed step, then `steps` timed ones, each from
the initial student (so every system samples from the same weights); the figure of a repetition is the median
over its steps. Repetitions alternate the order of the configurations (forward, then backward, ...), so slow
drift on a shared machine hits all of them alike; each repetition gives one ratio per configuration against TRL
and against `opd`, and the spread of those ratios is the figure's uncertainty. On CPU the clock is the process's
CPU time (one thread: wall time on an idle machine), on a GPU wall time; the brts rows also give their wall time
per step, the figure that counts where a producer works in another process.
"""

from __future__ import annotations

import json
import multiprocessing as mp
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
CONFIGS = (("trl", "TRL DistillationTrainer"), ("trl_gkd", "TRL GKDTrainer"),
           ("opd_full", "brts opd, top-K = vocabulary"), ("opd", "brts opd (top-16)"),
           ("brts_cold", "brts brts N=4, pool cold"), ("brts_producer", "brts brts N=4, pool cold + producer"),
           ("brts_warm", "brts brts N=4, pool warm"))
TRL_CONFIGS = {"trl": "distillation", "trl_gkd": "gkd"}  # config key -> brts.bench.peer_trl trainer
BRTS_PHASES = ("student_sample", "teacher_sample", "teacher_score", "select", "update")
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
    producer_threads: int = 1
    lookahead_steps: int = 4


@dataclass
class Measured:
    """One configuration in one repetition: median seconds per phase and in all, student tokens per step."""

    config: str
    rep: int
    phases: dict[str, float]
    total: float
    student_tokens: float
    peak_rss_mib: float
    wall: float = 0.0  # brts rows: wall seconds per step (median)
    results_digest: str = ""  # brts rows: a digest of every step's results (metrics without times and pool counts)
    producer_tokens: int = 0  # teacher tokens a producer drew for the steps


@dataclass
class PeerResult:
    setup: dict[str, Any]
    runs: list[Measured] = field(default_factory=list)
    trl_version: str = ""
    prompts_identical: bool | None = None
    steps: int = 0
    wall_seconds: float = 0.0

    def same_results(self, config: str, against: str) -> bool | None:
        """Whether every run of `config` has the results of every run of `against` (None: not both measured)."""
        digests = {m.results_digest for m in self.of(config) + self.of(against)}
        return None if not (self.of(config) and self.of(against)) or "" in digests else len(digests) == 1

    def of(self, config: str) -> list[Measured]:
        return [m for m in self.runs if m.config == config]

    def ratios(self, config: str, against: str, wall: bool = False) -> list[float]:
        """`config`'s step time (CPU, or `wall`) over `against`'s, one per repetition."""
        def seconds(m: Measured) -> float:
            return m.wall if wall else m.total

        base = {m.rep: seconds(m) for m in self.of(against)}
        return [seconds(m) / base[m.rep] for m in self.of(config) if base.get(m.rep)]


def sums_problems(count: int = 96) -> list[dict[str, str]]:
    """Additions of two numbers below 100 (SmolLM2-135M answers some of them right within 48 tokens, and more with
    the answer in a hinted prompt: selection has correct candidates to choose between)."""
    pairs = [(a, b) for a in range(3, 60, 7) for b in range(2, 40, 3)][:count]
    return [{"id": f"add-{a}-{b}", "problem": f"What is {a} + {b}?", "answer": str(a + b)} for a, b in pairs]


def vocabulary(model: Path) -> int:
    """The size of a model folder's output layer (its config's `vocab_size`)."""
    return int(json.loads((Path(model) / "config.json").read_text())["vocab_size"])


def write_spec(setup: PeerSetup, folder: Path) -> Path:
    """The brts side as a spec file in `folder` (with its training JSONL): arms `opd`, `opd_full` (top-K = the
    vocabulary) and `brts_n4`."""
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
        "arms": ["opd", {"name": "opd_full", "preset": "opd", "set": {"opd_top_k": vocabulary(setup.student)}},
                 {"name": "brts_n4", "preset": "brts", "set": {"teacher_samples": setup.teacher_samples}}],
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


# --- each configuration in its own process -------------------------------------------------------------------


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


def run_peer(setup: PeerSetup, steps: int = 6, reps: int = 3, say: Say = print,
             configs: Sequence[str] | None = None) -> PeerResult:
    """Every configuration of `CONFIGS` (or the keys in `configs`) `reps` times in alternating order, `steps` timed
    steps each (module docstring). Raises ImportError naming the extra when TRL is missing."""
    import importlib.util

    from brts.bench.peer_trl import PHASES as TRL_PHASES
    from brts.bench.peer_trl import trl_steps
    from brts.bench.steps import step_timing
    from brts.spec import ProducerSpec, load_spec

    if importlib.util.find_spec("trl") is None:
        raise ImportError(f"--peer trl needs TRL: pip install 'brts[peer]' (installs {TRL_PIN})")
    begun = time.perf_counter()
    result = PeerResult(setup={k: str(v) if isinstance(v, Path) else v for k, v in asdict(setup).items()},
                        steps=steps)
    chosen = [(k, label) for k, label in CONFIGS if configs is None or k in configs]
    producer = ProducerSpec(threads=setup.producer_threads, lookahead_steps=setup.lookahead_steps)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        spec_file = write_spec(setup, folder)
        spec = load_spec(spec_file)
        texts, ids, answers = step_prompts(spec_file, steps + 1)
        warm_pool = folder / "warm.sqlite"
        for rep in range(reps):
            # Forward first: the first repetition's cold run fills the pool that every warm run reads.
            for key, label in chosen if rep % 2 == 0 else chosen[::-1]:
                say(f"  repetition {rep + 1}/{reps}: {label}, {steps} timed steps")
                if key in TRL_CONFIGS:
                    got = _in_child(trl_steps, TRL_CONFIGS[key], setup, texts, answers)
                    result.trl_version = got["version"]
                    identical = got["prompts"] == ids
                    result.prompts_identical = identical if result.prompts_identical is None else (
                        result.prompts_identical and identical)
                    med = _median_record(got["records"], [*TRL_PHASES, "total", "tokens"])
                    phases = {k: med[k] for k in TRL_PHASES}
                    result.runs.append(Measured(key, rep, phases, med["total"], med["tokens"], got["peak"]))
                    continue
                pool = None if key.startswith("opd") else str(
                    warm_pool if key == "brts_warm" or (key == "brts_cold" and rep == 0)
                    else folder / f"{key}-{rep}.sqlite")
                arm = key if key.startswith("opd") else "brts_n4"
                timing = step_timing(spec, arm, None, key, pool, steps,
                                     producer if key == "brts_producer" else None)
                result.runs.append(Measured(key, rep, timing.seconds, timing.total, timing.student_tokens,
                                            timing.peak_rss_mib, timing.wall, timing.results_digest,
                                            timing.producer_tokens))
    result.wall_seconds = round(time.perf_counter() - begun, 1)
    return result


def _spread(values: Sequence[float], digits: int = 2) -> str:
    mid = statistics.median(values)
    if len(values) < 2:
        return f"{mid:.{digits}f}"
    return f"{mid:.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


# What each system computes per step, for the table.
COMPUTES = {
    "trl": "reverse KL (beta=1), dense over the full vocabulary, chunked",
    "trl_gkd": "reverse KL (lmbda=1, beta=1), dense over the full vocabulary",
    "opd_full": "top-K estimator, K = the vocabulary: the full reverse KL's gradient",
    "opd": "top-16 estimator of the reverse KL's gradient",
    "brts_cold": "opd + N=4 teacher samples drawn in the step, selection, aux loss",
    "brts_producer": "as pool cold; a producer process draws ahead into the pool",
    "brts_warm": "opd + selection and aux loss; teacher samples from the pool",
}
# (config, against, target, on wall time) of the table's targets.
TARGETS = (("opd_full", "trl", 0.9, False), ("opd", "trl", 0.9, False), ("brts_cold", "opd", 2.0, False),
           ("brts_warm", "opd", 1.3, False), ("brts_producer", "brts_warm", 1.3, True))


def render_peer(result: PeerResult) -> Any:
    """The comparison as one table (what `brts bench --peer trl` prints)."""
    from rich.table import Table

    s = result.setup
    reps = len(result.of("trl")) or max((len(result.of(k)) for k, _ in CONFIGS), default=0)
    title = (f"brts bench --peer trl: {Path(s['student']).name} student, {Path(s['teacher']).name} teacher; "
             f"{s['prompts']} prompts x {s['samples']} samples (TRL: {s['prompts'] * s['samples']} rows x 1), "
             f"{s['max_new_tokens']} new tokens, chat template, {s['threads']} thread(s), float32; median of "
             f"{result.steps} timed steps per run, {reps} alternated repetitions (median, range over them); CPU "
             "seconds on CPU")
    table = Table("system / arm", "computes per step", "s/step", "wall s/step", "vs TRL Distillation", "vs opd",
                  "where the time goes (s/step)", "student tokens/step", "peak MiB", title=title)
    for key, label in CONFIGS:
        runs = result.of(key)
        if not runs:
            continue
        if key == "trl":
            label = f"TRL {result.trl_version} DistillationTrainer"
        elif key == "trl_gkd":
            label = f"TRL {result.trl_version} GKDTrainer"
        phases = list(runs[0].phases)
        split = ", ".join(f"{p.replace('_', ' ')} {statistics.median(r.phases[p] for r in runs):.2f}"
                          for p in phases if any(r.phases[p] for r in runs))
        walls = [r.wall for r in runs if r.wall]
        table.add_row(label, COMPUTES[key], _spread([r.total for r in runs]), _spread(walls) if walls else "",
                      _spread(result.ratios(key, "trl")) if result.of("trl") else "",
                      _spread(result.ratios(key, "opd")) if key not in TRL_CONFIGS and result.of("opd") else "",
                      split, f"{statistics.median(r.student_tokens for r in runs):.0f}",
                      f"{statistics.median(r.peak_rss_mib for r in runs):.0f}")
    table.add_section()
    for key, against, target, wall in TARGETS:
        ratios = result.ratios(key, against, wall)
        if ratios:
            mid = statistics.median(ratios)
            clock = " (wall)" if wall else ""
            table.add_row("target", f"{key} / {against}{clock} <= {target}", f"{mid:.2f}", "",
                          "met" if mid <= target else f"missed by {mid / target - 1:.0%}", "", "", "", "")
    identical = {True: "identical", False: "DIFFERENT", None: "not checked"}[result.prompts_identical]
    table.add_row("prompt token ids", "TRL vs brts", identical, "", "", "", "TRL: bf16 off, gradient checkpointing "
                  "off, fused AdamW (its default)", "", "")
    same = result.same_results("brts_producer", "brts_cold")
    if same is not None:
        drawn = statistics.median(r.producer_tokens for r in result.of("brts_producer"))
        table.add_row("results", "producer vs pool cold", "identical" if same else "DIFFERENT", "", "", "",
                      f"the producer drew {drawn:.0f} teacher tokens per run", "", "")
    table.add_row("bench", "wall time", f"{result.wall_seconds:.0f} s", "", "", "", "", "", "")
    return table
