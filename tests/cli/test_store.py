"""`brts store check [--repair]` on a grid's store: one line when intact; each damage one line naming its file
(exit 1); after `--repair`, `exp run` redoes exactly the damaged work and prints the undamaged table."""

from __future__ import annotations

import json
import re
import sqlite3

import pytest
from typer.testing import CliRunner

from brts.cli import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def _table(output: str) -> str:
    """The results table of `exp run` (the lines after the counts)."""
    return output[output.index("tiny"):]


def test_check_lists_each_damage_and_repair_then_exp_run_gives_the_undamaged_numbers(tmp_path, tiny_spec_file):
    store = tmp_path / "store"
    first = invoke("exp", "run", str(tiny_spec_file), "--store", str(store))
    assert first.exit_code == 0, first.output
    intact = invoke("store", "check", "--store", str(store))
    assert intact.exit_code == 0 and len(intact.output.strip().splitlines()) == 1
    assert "every artefact intact (2 run folder(s), 2 reference(s), 0 sweep(s), a pool of" in intact.output

    runs = {json.loads(p.read_text())["arm"]: p.parent for p in store.glob("tiny/*/record.json")}
    opd, brts = runs["opd"], runs["brts"]
    table = opd / "eval" / "problems.csv"
    table.write_text("".join(table.read_text().splitlines(keepends=True)[:2]))  # cut at a line boundary
    checkpoint = brts / "checkpoints" / "step_000004" / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])
    reference = store / "tiny" / "reference" / "teacher" / "record.json"
    reference.write_text(reference.read_text()[:15])
    with sqlite3.connect(store / ".pool" / "teacher-samples.sqlite") as db:
        db.execute("UPDATE samples SET grade = 1 - COALESCE(grade, 0) WHERE rowid = 1")

    log = brts / "metrics.jsonl"
    log.write_text(log.read_text() + "garbage\n")  # a garbage last line (with its newline)
    status = invoke("exp", "status", str(tiny_spec_file), "--store", str(store))
    assert status.exit_code == 0 and status.output.count("damaged") == 2, status.output  # opd and brts
    log.write_text("".join(log.read_text().splitlines(keepends=True)[:-1]))

    damaged = invoke("store", "check", "--store", str(store))
    assert damaged.exit_code == 1
    lines = damaged.output.strip().splitlines()
    assert len(lines) == 5, damaged.output  # four damages and the summary
    assert any(line.startswith(f"{table}: ") for line in lines)
    assert any(line.startswith(f"{checkpoint}: ") for line in lines)
    assert any(line.startswith(f"{reference}: ") for line in lines)
    assert any("teacher-samples.sqlite: 1 sample(s) fail their digest" in line for line in lines)
    assert "4 damaged artefact(s)" in lines[-1]

    repaired = invoke("store", "check", "--store", str(store), "--repair")
    assert repaired.exit_code == 1 and repaired.output.count("repaired: ") == 4, repaired.output
    assert invoke("store", "check", "--store", str(store)).exit_code == 0  # moved aside: nothing damaged is left

    again = invoke("exp", "run", str(tiny_spec_file), "--store", str(store))
    assert again.exit_code == 0, again.output
    assert _table(again.output) == _table(first.output)
    assert re.search(r"2 (ran|evaluated)|1 evaluated, 1 ran", again.output), again.output
    assert invoke("store", "check", "--store", str(store)).exit_code == 0


def test_a_run_killed_with_minus_9_is_interrupted_in_status_report_and_check(tmp_path, tiny_spec_file, monkeypatch):
    from brts.cli import common
    from brts.report.aggregate import read_runs
    from brts.runs.plan import plan
    from brts.spec import load_spec
    from brts.store import RunStore
    from tests.store.test_lock import hold_then_kill

    store = RunStore(tmp_path / "store")
    planned = plan(load_spec(str(tiny_spec_file)))[0]
    folder = store.prepare(planned)
    pid = hold_then_kill(folder)

    monkeypatch.setattr(common.out, "_width", 200)  # the private field: restoring `width` would pin it
    status = invoke("exp", "status", str(tiny_spec_file), "--store", str(store.root))
    assert status.exit_code == 0 and "interrupted" in status.output and "running" not in status.output
    assert f"pid {pid}" in status.output, status.output
    [row] = read_runs([folder.path]).runs.to_dict("records")
    assert row["status"] == "interrupted" and "resumes it" in row["note"]
    checked = invoke("store", "check", "--store", str(store.root))
    assert checked.exit_code == 0 and f"{folder.path}: interrupted (its process, pid {pid} on" in checked.output
    assert "1 interrupted run(s)" in checked.output.splitlines()[-1]


@pytest.mark.parametrize("command", [
    ["exp", "status", "smoke"], ["exp", "list"], ["exp", "show", "smoke"], ["exp", "run", "smoke"],
    ["store", "check"], ["pool", "show"], ["pool", "clear", "--yes"], ["report", "smoke"], ["sweep", "status", "x"],
    ["eval", "x"],
])
def test_a_store_path_that_is_a_file_is_one_line_for_every_command(tmp_path, monkeypatch, command):
    """Every command but `brts doctor`, which lists it as a failed check among the others (tests/test_doctor.py)."""
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    for args, env in ((["--store", str(blocker)], None), ([], str(blocker))):
        if env:
            monkeypatch.setenv("BRTS_STORE", env)
        result = invoke(*command, *args)
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert result.exit_code == 2 and lines == [
            f"error: run store {blocker} exists and is not a folder; pass --store with a folder path"], result.output
    assert blocker.read_text() == "not a folder"
