"""What every `brts` command shares: the consoles, the one-line user error, the store and spec options.

The consoles never read markup or emoji codes in what they print, and show control characters and bidirectional
overrides as escapes (brts.terminal): user text (spec values, paths, run errors) reaches them everywhere, so
styling is explicit (`rich.text.Text`), never `[red]...[/red]` inside a string, and a `Text` built here from user
text passes it through `safe`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.text import Text

from brts.errors import UserError
from brts.spec import ExperimentSpec, load_spec
from brts.terminal import SafeConsole, safe

out = SafeConsole()
err = SafeConsole(stderr=True)

def _store_folder(value: Path | None) -> Path | None:
    """A store path (or $BRTS_STORE) that exists and is not a folder: one line, exit 2, before anything runs."""
    store_root(value)
    return value


StoreOpt = Annotated[
    Path | None, typer.Option("--store", help="run store folder (default: $BRTS_STORE or ./runs)", show_default=False,
                              callback=_store_folder)
]
# `brts doctor` lists what is wrong with the store among its other checks instead of refusing it.
UncheckedStoreOpt = Annotated[
    Path | None, typer.Option("--store", help="run store folder (default: $BRTS_STORE or ./runs)", show_default=False)
]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="override a spec field: dotted.key=value")]
QuietOpt = Annotated[bool, typer.Option("--quiet", help="no progress display (errors and results still print)")]
JsonProgressOpt = Annotated[bool, typer.Option(
    "--json-progress", help="progress as one JSON object a line on stdout, for tools")]


def fail(message: str, code: int = 2) -> NoReturn:
    """Print `error: <message>` (the message as plain text) on stderr and exit with `code`: the one error printer."""
    err.print(Text.assemble(("error:", "bold red"), " ", safe(message, newlines=False)), highlight=False,
              soft_wrap=True)
    raise typer.Exit(code)


def alert(label: str, text: str) -> Text:
    """`label` in red, then `text` as plain text: a line that flags a failure."""
    return Text.assemble((label, "red"), " ", safe(text, newlines=False))


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn the errors a user can cause (brts.errors.UserError) into one line and exit status 2."""
    try:
        yield
    except UserError as exc:
        fail(str(exc))


def store_path(store: Path | None) -> Path:
    """`--store`, else $BRTS_STORE, else ./runs, as given (`brts doctor` reports what is wrong with it)."""
    return store or Path(os.environ.get("BRTS_STORE", "runs"))


def store_root(store: Path | None) -> Path:
    """`--store`, else $BRTS_STORE, else ./runs; one line and exit 2 when it exists and is not a folder."""
    root = store_path(store)
    if root.exists() and not root.is_dir():
        fail(f"run store {root} exists and is not a folder; pass --store with a folder path")
    return root


def load_experiment(name: str, overrides: list[str] | None) -> ExperimentSpec:
    """The spec, its warnings (brts.spec.spec_warnings) printed to stderr, one line each."""
    from brts.spec import spec_warnings

    spec = load_spec(name, overrides or ())
    for line in spec_warnings(spec):
        err.print(f"warning: {spec.name}: {line}", highlight=False, soft_wrap=True)
    return spec

