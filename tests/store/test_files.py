"""The store's files: JSON-lines logs read back whole, a torn last line left out, a damaged one named."""

from __future__ import annotations

import json

import pytest

from brts.store import DamagedFile, JsonlLog, read_jsonl, write_json_atomic


def test_a_torn_last_line_is_left_out_and_a_whole_one_without_newline_is_kept(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 0}\n{"step": 1}\n{"step": 2, "loss')
    assert read_jsonl(path) == [{"step": 0}, {"step": 1}]
    path.write_text('{"step": 0}\n{"step": 1}')  # only the newline was lost
    assert read_jsonl(path) == [{"step": 0}, {"step": 1}]
    assert read_jsonl(tmp_path / "absent.jsonl") == []


def test_a_damaged_line_in_the_middle_is_a_one_line_error_naming_the_file(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 0}\nnot json\n{"step": 2}\n')
    with pytest.raises(DamagedFile, match=r"metrics.jsonl: line 2 is not a JSON record"):
        read_jsonl(path)


def test_truncating_on_resume_drops_later_steps_and_the_torn_line(tmp_path):
    log = JsonlLog(tmp_path / "metrics.jsonl")
    for step in range(4):
        log.write({"step": step, "loss": 0.5 * step})
    with open(log.path, "a") as fh:
        fh.write('{"step": 4, "lo')  # killed mid-write
    log.truncate_after(2)
    assert log.read() == [{"step": 0, "loss": 0.0}, {"step": 1, "loss": 0.5}, {"step": 2, "loss": 1.0}]
    log.write({"step": 3, "loss": 9.0})  # appends after a whole line, not after the torn fragment
    assert [r["step"] for r in log.read()] == [0, 1, 2, 3]
    assert log.path.read_text().endswith("\n")


def test_json_is_replaced_whole(tmp_path):
    path = tmp_path / "record.json"
    write_json_atomic(path, {"status": "running"})
    write_json_atomic(path, {"status": "finished", "eval": {"a": 1.5}})
    assert json.loads(path.read_text()) == {"eval": {"a": 1.5}, "status": "finished"}
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]  # no temp file left behind
