"""`brts bench`: step times, teacher tokens and generation throughput of the method, in one table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from brts.bench_generation import MODELS
from brts.cli.common import SetOpt, StoreOpt, err, fail, out, store_root, user_errors


def bench(
    set_: SetOpt = None,
    steps: Annotated[int, typer.Option(min=1, help="timed steps per configuration")] = 15,
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
) -> None:
    """Step times (opd, brts at N = 1, 2, 4, 8, pool cold and warm), teacher tokens of the default grid plus an
    N-sweep with and without the pool, and generation tokens/s per backend: one table. Teacher samples go to the
    store's pool, where the grid finds them."""
    import dataclasses

    from brts.bench import render, run_bench
    from brts.store import RunStore

    batches = _batches(gen_batches)
    models = [m.strip() for m in gen_models.split(",") if m.strip()]
    for model in models:
        if model not in MODELS and not (Path(model) / "config.json").is_file():
            fail(f"--gen-models: {model!r} is neither one of {', '.join(MODELS)} nor a model folder (no config.json)")
    with user_errors():
        result = run_bench(RunStore(store_root(store)), set_ or (), steps=steps,
                           count_overrides=[f"train.steps={count_steps}"] if count_steps else (),
                           say=lambda line: err.print(line, highlight=False), generation_only=generation_only,
                           gen_batches=batches, gen_reps=gen_reps, gen_models=models)
    out.print(render(result))
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
