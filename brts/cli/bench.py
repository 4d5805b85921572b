"""`brts bench`: step times, teacher tokens and generation throughput of the method, in one table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from brts.cli.common import SetOpt, err, out, user_errors
from brts.spec import load_spec


def bench(
    set_: SetOpt = None,
    steps: Annotated[int, typer.Option(min=1, help="timed steps per configuration")] = 15,
    count_steps: Annotated[int | None, typer.Option(min=1, help="training steps the token count covers "
                                                     "(default: the grid's)")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="also write every figure to this JSON file")] = None,
) -> None:
    """Step times (opd, brts at N = 1, 2, 4, 8, pool cold and warm), teacher tokens of the default grid plus an
    N-sweep with and without the pool, and generation tokens/s per backend: one table."""
    import dataclasses

    from brts.bench import render, run_bench

    with user_errors():
        load_spec("ablation-grid", set_ or ())  # a bad --set fails here, before any work
        result = run_bench(set_ or (), steps=steps,
                           count_overrides=[f"train.steps={count_steps}"] if count_steps else (),
                           say=lambda line: err.print(line, highlight=False))
    out.print(render(result))
    if json_out is not None:
        json_out.write_text(json.dumps(dataclasses.asdict(result), indent=2) + "\n")
