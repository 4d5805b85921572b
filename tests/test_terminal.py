"""User text cannot drive the terminal: control characters, escape sequences and bidirectional overrides are
printed as visible escapes, by the one function and by every console and line printer that uses it."""

from __future__ import annotations

import io

import pytest
from rich.table import Table
from typer.testing import CliRunner

from brts.cli import app
from brts.errors import warn
from brts.terminal import SafeConsole, safe

HOSTILE = "a\x1b]0;title\x07b\x1b[2Jc\rd\x9be\u202ef\u2066g\x00h"
RAW = ("\x1b", "\x07", "\r", "\x9b", "\u202e", "\u2066", "\x00")


def _clean(text: str) -> bool:
    return not any(ch in text for ch in RAW)


def test_safe_shows_every_control_and_override_as_an_escape():
    assert safe(HOSTILE) == "a\\x1b]0;title\\x07b\\x1b[2Jc\\x0dd\\x9be\\u202ef\\u2066g\\x00h"
    assert safe("line\n\tnext") == "line\n\tnext" and safe("line\n\tnext", newlines=False) == "line\\x0a\\x09next"
    assert safe("plain text, ünïcode ✓") == "plain text, ünïcode ✓"


def test_the_console_escapes_strings_and_table_cells():
    buffer = io.StringIO()
    console = SafeConsole(file=buffer, width=300, force_terminal=True)
    table = Table("key")
    table.add_row(HOSTILE)
    console.print(HOSTILE, highlight=False)
    console.print(table)
    text = buffer.getvalue()
    assert text.count("\\x1b]0;title") == 2 and "\\u202e" in text
    assert "\x07" not in text and "\u202e" not in text and "\x1b]0" not in text  # rich's own colour codes stay


def test_warnings_are_escaped(capsys):
    warn(HOSTILE)
    assert _clean(capsys.readouterr().err)


@pytest.mark.parametrize("args", [
    ["--set", f"tr{HOSTILE}ain.steps=3"],  # an unknown key
    ["--set", f"train.steps={HOSTILE}"],  # a value
    ["--set", f"description={HOSTILE!r}"],  # a description exp show prints
])
def test_exp_show_prints_no_raw_control_text(tmp_path, args):
    spec = tmp_path / "plain.yaml"
    spec.write_text("arms: [opd]\nseeds: [0]\n")
    result = CliRunner().invoke(app, ["exp", "show", str(spec), "--store", str(tmp_path / "s"), *args])
    assert _clean(result.output), repr(result.output[:500])
    if "description" not in args[1]:
        assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
