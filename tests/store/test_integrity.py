"""A run folder's manifest, the checks against it and the repairs: what is damaged is named in one line and
moved aside, never deleted; what is intact is left alone."""

from __future__ import annotations

import json
import os
import shutil
import stat

import pytest

from brts.store import DamagedFile, RunFolder, read_json, write_json_atomic
from brts.store.files import read_jsonl_intact
from brts.store.integrity import Manifest, check, repair


def _folder(tmp_path) -> RunFolder:
    """A finished-looking run folder: record, logs of steps 0-4, checkpoints at 2 and 4, final/ and eval/."""
    run = RunFolder(tmp_path / "run")
    (run.path / "final").mkdir(parents=True)
    run.update_record(status="finished", run_id="run")
    run.metrics_path.write_text("".join(json.dumps({"step": s, "loss": s / 10}) + "\n" for s in range(5)))
    run.validation_path.write_text("".join(json.dumps({"step": s, "problems": {}}) + "\n" for s in (0, 2, 4)))
    for step in (2, 4):
        ckpt = run.checkpoints / f"step_{step:06d}"
        ckpt.mkdir(parents=True)
        (ckpt / "checkpoint.pt").write_bytes(bytes([step]) * 100)
        run.seal(ckpt.relative_to(run.path).as_posix())
    (run.final / "model.safetensors").write_bytes(b"weights" * 50)
    run.seal("final")
    (run.eval_dir / "tasks" / "easy").mkdir(parents=True)
    (run.eval_dir / "summary.json").write_text("{}")
    (run.eval_dir / "tasks" / "easy" / "problems.csv").write_text("task,problem_id\n")
    run.seal("eval")
    return run


def test_an_intact_folder_has_no_damage_and_its_manifest_lists_every_sealed_file(tmp_path):
    run = _folder(tmp_path)
    assert check(run.path) == []
    assert sorted(Manifest(run.path).files()) == [
        "checkpoints/step_000002/checkpoint.pt", "checkpoints/step_000004/checkpoint.pt",
        "eval/summary.json", "eval/tasks/easy/problems.csv", "final/model.safetensors"]


def test_each_kind_of_damage_is_one_line_naming_the_file(tmp_path):
    run = _folder(tmp_path)
    (run.final / "model.safetensors").write_bytes(b"weightz" * 50)  # same size, other content
    (run.checkpoints / "step_000004" / "checkpoint.pt").write_bytes(b"")
    (run.eval_dir / "tasks" / "easy" / "problems.csv").unlink()
    run.record_path.write_text('{"status": "fini')
    lines = [run.metrics_path.read_text().splitlines()[i] for i in range(5)]
    run.metrics_path.write_text("\n".join([*lines[:3], "garbage", lines[4]]) + "\n")
    found = {d.part: str(d) for d in check(run.path)}
    assert found == {
        "record.json": f"{run.record_path}: not JSON (Unterminated string starting at)",
        "logs": f"{run.metrics_path}: line 4 is not a JSON record (Expecting value)",
        "checkpoints/step_000004": f"{run.checkpoints}/step_000004/checkpoint.pt: 0 bytes, sealed with 100",
        "eval/tasks/easy": f"{run.eval_dir}/tasks/easy/problems.csv: missing (sealed in manifest.json)",
        "final": f"{run.final}/model.safetensors: content differs from its SHA-256 in manifest.json",
    }
    assert [d.part for d in check(run.path, hashes=False)].count("final") == 0  # sizes alone cannot see it


def test_repair_moves_the_damaged_parts_aside_and_cuts_the_logs_to_what_they_cover(tmp_path):
    run = _folder(tmp_path)
    (run.eval_dir / "summary.json").write_text('{"edited": 1}')
    lines = run.metrics_path.read_text().splitlines()
    run.metrics_path.write_text("\n".join([*lines[:3], "garbage", lines[4]]) + "\n")  # step 3's line
    moved = repair(run.path, check(run.path))
    assert len(moved) == 5  # eval/summary.json, the logs (both cut), step_000004 (past step 2) and final/
    assert [r["step"] for r in read_jsonl_intact(run.metrics_path)[0]] == [0, 1, 2]
    assert [r["step"] for r in read_jsonl_intact(run.validation_path)[0]] == [0, 2]
    assert sorted(p.name for p in run.checkpoints.iterdir()) == ["step_000002"]
    assert not run.final.exists() and not (run.eval_dir / "summary.json").exists()
    quarantined = {p.relative_to(stamp).as_posix()
                   for stamp in (run.path / ".quarantine").iterdir() for p in stamp.rglob("*") if p.is_file()}
    assert quarantined == {"eval/summary.json", "metrics.jsonl", "validation.jsonl", "final/model.safetensors",
                           "checkpoints/step_000004/checkpoint.pt"}
    assert check(run.path) == []  # what is left is intact, and the manifest forgot what went


def test_a_garbage_manifest_moves_what_it_vouched_for(tmp_path):
    run = _folder(tmp_path)
    run.manifest.path.write_text("[1, 2")
    [damage] = check(run.path)
    assert damage.part == "manifest" and str(run.manifest.path) in str(damage)
    repair(run.path, [damage])
    assert not run.final.exists() and not run.eval_dir.exists() and not run.manifest.path.exists()
    assert not list(run.checkpoints.iterdir())  # unverifiable: the run is done again
    assert check(run.path) == []


def test_a_deleted_manifest_leaves_nothing_trusted(tmp_path):
    run = _folder(tmp_path)
    run.manifest.path.unlink()
    (run.final / "model.safetensors").write_bytes(b"weightz" * 50)  # same size, other content: nothing to see it
    [damage] = check(run.path)
    assert damage.part == "manifest" and str(damage) == (
        f"{run.manifest.path}: missing while final/, checkpoints/, eval/ exist, which cannot be verified without it")
    moved = repair(run.path, [damage])
    assert len(moved) == 4 and all("cannot be verified without its manifest" in line for line in moved)
    assert not run.final.exists() and not run.eval_dir.exists() and not list(run.checkpoints.iterdir())
    assert run.record()["status"] == "planned" and check(run.path) == []


def test_files_never_sealed_are_damage(tmp_path):
    run = _folder(tmp_path)
    files = Manifest(run.path).files()
    del files["checkpoints/step_000004/checkpoint.pt"]  # killed between saving the checkpoint and sealing it
    write_json_atomic(run.manifest.path, {"format": 1, "files": files})
    (run.eval_dir / "tasks" / "hard").mkdir()
    (run.eval_dir / "tasks" / "hard" / "problems.csv").write_text("task,problem_id\n")  # evaluated, not sealed
    found = {d.part: str(d) for d in check(run.path)}
    assert found == {
        "checkpoints/step_000004": f"{run.checkpoints}/step_000004: 1 file(s) not sealed in manifest.json "
                                   "(written, not verified)",
        "eval/tasks/hard": f"{run.eval_dir}/tasks/hard: 1 file(s) not sealed in manifest.json (written, not verified)",
    }
    repair(run.path, check(run.path))
    assert not (run.checkpoints / "step_000004").exists() and not (run.eval_dir / "tasks" / "hard").exists()
    assert check(run.path) == []


def test_a_sealed_part_deleted_is_dropped_from_the_manifest(tmp_path):
    run = _folder(tmp_path)
    shutil.rmtree(run.final)
    [damage] = check(run.path)
    assert damage.part == "final" and "missing (sealed in manifest.json)" in str(damage)
    assert repair(run.path, [damage]) == [f"{damage}; made again"]
    assert check(run.path) == [] and run.record()["status"] == "planned"


def test_a_damaged_record_reads_as_damaged_and_is_replaced_on_update(tmp_path, capsys):
    run = _folder(tmp_path)
    run.record_path.write_bytes(b"\xff\xfe")
    assert run.record()["status"] == "damaged" and str(run.record_path) in run.record()["error"]
    with pytest.raises(DamagedFile, match="record.json: not JSON"):
        read_json(run.record_path)
    run.update_record(status="planned", arm="opd")
    assert run.record() == {"rebuilt": run.record()["rebuilt"], "status": "planned", "arm": "opd"}
    assert str(run.record_path) in capsys.readouterr().err


def test_log_lines_that_parse_but_are_not_records_are_bad(tmp_path):
    path = tmp_path / "metrics.jsonl"
    for bad, why in [("[1]", "not a JSON object"), ('{"step": 1}', "step 1 after step 2"),
                     ('{"step": "x"}', "step 'x'")]:
        path.write_text(f'{{"step": 1}}\n{{"step": 2}}\n{bad}\n')
        records, problem = read_jsonl_intact(path)
        assert [r["step"] for r in records] == [1, 2] and problem.startswith("line 3") and why in problem


def test_atomic_writes_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        write_json_atomic(tmp_path / "record.json", {"a": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "record.json").stat().st_mode) == 0o644
