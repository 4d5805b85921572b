"""A damaged run folder is never used as it is: running it again moves what is damaged aside (one line naming the
file), redoes exactly that work, and ends with the numbers and the weights of the undamaged run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from brts.runs.executor import execute
from brts.runs.plan import plan
from brts.runs.reference import evaluate_references
from brts.spec import load_spec
from brts.store import RunStore
from brts.store.files import sha256_file

OVERRIDES = ["arms=[opd]"]  # 4 steps, checkpoints at steps 2 and 4


def _numbers(run) -> dict:
    """Everything a run's result is: final accuracies, the metrics (without times) and the trained weights."""
    metrics = [{k: v for k, v in json.loads(line).items() if not k.startswith("time/")}
               for line in run.metrics_path.read_text().splitlines()]
    return {"eval": json.loads(run.record_path.read_text())["eval"], "metrics": metrics,
            "problems": (run.eval_dir / "problems.csv").read_text(),
            "weights": sha256_file(run.final / "model.safetensors")}


@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny_models):
    """One finished run (and its experiment's reference models), and its numbers."""
    from tests.conftest import tiny_spec_text

    folder = tmp_path_factory.mktemp("finished")
    spec_file = folder / "tiny.yaml"
    spec_file.write_text(tiny_spec_text(tiny_models))
    spec = load_spec(str(spec_file), OVERRIDES)
    [planned] = plan(spec)
    store = RunStore(folder / "store")
    assert [o.action for o in execute([planned], store)] == ["ran"]
    evaluate_references(spec, store)
    return spec, planned, store.root, _numbers(store.run(planned))


@pytest.fixture
def copy(finished, tmp_path):
    """A copy of the finished store to damage: (spec, planned run, store, its run folder, undamaged numbers)."""
    spec, planned, root, numbers = finished
    shutil.copytree(root, tmp_path / "store")
    store = RunStore(tmp_path / "store")
    return spec, planned, store, store.run(planned), numbers


def _rerun(planned, store, capfd) -> tuple[str, list[str]]:
    capfd.readouterr()
    [outcome] = execute([planned], store)
    assert outcome.record["status"] == "finished", outcome.record.get("error")
    return outcome.action, [line for line in capfd.readouterr().err.splitlines() if line.startswith("warning:")]


def _flip(path: Path, offset: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2 if offset is None else offset] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["truncated", "empty", "garbage"])
def test_a_damaged_record_is_rebuilt_from_the_folder(copy, capfd, damage):
    _, planned, store, run, numbers = copy
    text = run.record_path.read_text()
    run.record_path.write_text({"truncated": text[: len(text) // 2], "empty": "", "garbage": "\x00\xff{]"}[damage])
    assert run.status == "damaged"
    action, warnings = _rerun(planned, store, capfd)
    assert any(str(run.record_path) in w and "moved aside" in w for w in warnings), warnings
    assert _numbers(run) == numbers and run.record()["arm"] == "opd" and run.record()["seed"] == 0
    assert list(run.path.glob(".quarantine/*/record.json"))


@pytest.mark.parametrize("where", ["middle", "last"])
def test_a_bad_metrics_line_repeats_the_steps_after_it(copy, capfd, where):
    _, planned, store, run, numbers = copy
    lines = run.metrics_path.read_text().splitlines(keepends=True)
    bad = 3 if where == "middle" else len(lines) - 1  # step 3, or the last step (4) with its newline
    lines[bad] = "{not json\n"
    run.metrics_path.write_text("".join(lines))
    action, warnings = _rerun(planned, store, capfd)
    assert action == "ran"  # trained again after the repair, not only evaluated (the count line says so)
    assert any(str(run.metrics_path) in w and f"kept up to step {bad - 1}" in w for w in warnings), warnings
    assert any(str(run.final) in w for w in warnings)  # trained past the damage: made again
    assert _numbers(run) == numbers


@pytest.mark.parametrize("sealed", [True, False])
@pytest.mark.parametrize("damage", ["truncated", "empty"])
def test_a_damaged_newest_checkpoint_falls_back_to_the_one_before(copy, capfd, sealed, damage):
    _, planned, store, run, numbers = copy
    shutil.rmtree(run.final)  # killed before final/ was saved: training resumes from a checkpoint
    shutil.rmtree(run.eval_dir)
    run.update_record(status="running")
    if not sealed:  # a folder from before manifests, or one whose manifest was deleted: nothing is trusted
        run.manifest.path.unlink()
    newest = run.checkpoints / "step_000004" / "checkpoint.pt"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2] if damage == "truncated" else b"")
    action, warnings = _rerun(planned, store, capfd)
    [line] = [w for w in warnings if "step_000004" in w]
    assert ("resuming from the checkpoint before it" if sealed else "cannot be verified without its manifest") in line
    assert _numbers(run) == numbers
    assert (run.checkpoints / "step_000004" / "checkpoint.pt").stat().st_size > 0  # saved again


def test_a_damaged_final_is_trained_again_from_the_last_checkpoint(copy, capfd):
    _, planned, store, run, numbers = copy
    _flip(run.final / "model.safetensors")
    (run.eval_dir / "summary.json").write_text("{")  # so the run is evaluated again, and reads final/
    action, warnings = _rerun(planned, store, capfd)
    assert any(str(run.final / "model.safetensors") in w for w in warnings), warnings
    assert _numbers(run) == numbers
    assert run.damage() == []


@pytest.mark.parametrize("damage", ["cut", "edited", "task", "summary"])
def test_damaged_evaluation_files_are_evaluated_again(copy, capfd, damage):
    _, planned, store, run, numbers = copy
    table = run.eval_dir / "problems.csv"
    lines = table.read_text().splitlines(keepends=True)
    if damage == "cut":  # at a line boundary: still a valid CSV
        table.write_text("".join(lines[: len(lines) // 2]))
    elif damage == "edited":  # one sample's grade flipped: a valid CSV with other numbers
        fields = lines[1].split(",")
        fields[3] = "1" if fields[3] == "0" else "0"
        table.write_text("".join([lines[0], ",".join(fields), *lines[2:]]))
    elif damage == "task":
        _flip(next(run.eval_dir.glob("tasks/*/problems.csv")), offset=40)
    else:
        (run.eval_dir / "summary.json").write_text('{"k": 1')
    action, warnings = _rerun(planned, store, capfd)
    assert action == "evaluated" and warnings and all(str(run.eval_dir) in w for w in warnings), warnings
    assert _numbers(run) == numbers


@pytest.mark.parametrize("damage", ["checkpoint cut", "weight flipped"])
def test_a_finished_run_is_checked_before_it_is_reused(copy, capfd, damage):
    """Reuse checks `final/`, the newest checkpoint and `eval/`: a damaged one is never "cached"; it is repaired as
    `store check --repair` would and the run ends intact with the undamaged numbers."""
    from brts.ops.store_check import check_store

    _, planned, store, run, numbers = copy
    if damage == "checkpoint cut":
        damaged = run.checkpoints / "step_000004" / "checkpoint.pt"
        damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])
    else:
        damaged = run.final / "model.safetensors"
        _flip(damaged)
    action, warnings = _rerun(planned, store, capfd)
    assert action != "cached" and any(str(damaged) in w and "moved" in w for w in warnings), warnings
    assert _numbers(run) == numbers and check_store(store.root).ok


def test_a_deleted_manifest_is_never_trusted(copy, capfd):
    """With its manifest deleted, a flipped weight byte is found: the store check names the folder, and running
    again redoes the run (nothing in it can be verified) to the undamaged numbers, sealed again."""
    from brts.ops.store_check import check_store

    _, planned, store, run, numbers = copy
    run.manifest.path.unlink()
    _flip(run.final / "model.safetensors")
    checked = check_store(store.root)
    assert any(line.startswith(f"{run.manifest.path}: missing") for line in checked.damaged), checked.damaged
    action, warnings = _rerun(planned, store, capfd)
    assert action == "ran" and any(str(run.final) in w and "without its manifest" in w for w in warnings), warnings
    assert _numbers(run) == numbers and run.damage() == []
    assert "final/model.safetensors" in run.manifest.files() and check_store(store.root).ok


def test_a_cut_problems_table_sealed_as_it_is_is_found_by_its_summary(copy, capfd):
    _, planned, store, run, numbers = copy
    table = run.eval_dir / "problems.csv"
    table.write_text("".join(table.read_text().splitlines(keepends=True)[:2]))
    run.seal("eval")  # the manifest vouches for the cut file: only the files' agreement can find it
    action, warnings = _rerun(planned, store, capfd)
    assert any(str(table) in w and "problems" in w for w in warnings), warnings
    assert _numbers(run) == numbers


def test_a_garbage_manifest_makes_the_run_verify_nothing_and_redo_final_and_eval(copy, capfd):
    _, planned, store, run, numbers = copy
    run.manifest.path.write_text("garbage")
    action, warnings = _rerun(planned, store, capfd)
    assert any(str(run.manifest.path) in w for w in warnings), warnings
    assert _numbers(run) == numbers and run.damage() == []


def test_a_damaged_reference_record_is_evaluated_again(copy, capfd):
    spec, _, store, _, _ = copy
    folder = store.reference(spec.name, "teacher")
    expected = folder.record()["eval"]
    folder.record_path.write_text(folder.record_path.read_text()[:10])
    capfd.readouterr()
    records = evaluate_references(spec, store)
    assert records["teacher"]["status"] == "finished" and records["teacher"]["eval"] == expected
    assert str(folder.record_path) in capfd.readouterr().err
