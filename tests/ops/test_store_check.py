"""`check_store` beyond run folders: a sweep's Optuna journal and the pool file, each damage one line naming the
file, each repair a move aside."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from brts.ops.store_check import check_store
from brts.rollout.pool import SamplePool
from tests.rollout.test_sample_pool import _key, _sample


def test_an_empty_or_absent_store_is_intact(tmp_path):
    result = check_store(tmp_path / "none")
    assert result.ok and result.summary().startswith(f"store {tmp_path / 'none'}: every artefact intact")


def test_a_garbled_sweep_journal_is_named_and_moved_aside(tmp_path):
    journal = tmp_path / "sweeps" / "nl" / "study.log"
    journal.parent.mkdir(parents=True)
    journal.write_bytes(b'{"op_code": 0}\n\x00\x01garbage\n{"op_code": 1}\n')
    result = check_store(tmp_path)
    assert result.damaged == [f"{journal}: line 2 is not a journal entry"] and result.sweeps == 1
    assert not check_store(tmp_path, repair=True).ok
    assert not journal.exists() and list((journal.parent / ".quarantine").glob("*/study.log"))
    assert check_store(tmp_path).ok


def test_a_pool_with_a_damaged_file_is_moved_aside_and_failing_rows_deleted(tmp_path):
    path = tmp_path / ".pool" / "teacher-samples.sqlite"
    pool = SamplePool(path)
    pool.put_many([(_key(i), _sample(i)) for i in range(5)])
    pool._db.execute("UPDATE samples SET text = 'x' WHERE key = ?", (_key(0).digest,))
    pool.close()
    result = check_store(tmp_path)
    assert result.damaged == [f"{path}: 1 sample(s) fail their digest (changed since stored, or stored before "
                              "samples carried one)"]
    check_store(tmp_path, repair=True)
    assert check_store(tmp_path).ok and "a pool of 4 samples" in check_store(tmp_path).summary()

    path.write_bytes(b"garbage" * 1000)
    result = check_store(tmp_path, repair=True)
    assert result.damaged[0].startswith(f"teacher sample pool {path} is damaged") and not path.exists()
    assert check_store(tmp_path).ok


def _store_with_a_run_and_a_pool(root):
    """A store with one sealed run folder and a pool of 3 samples, checked intact."""
    from tests.store.test_integrity import _folder

    run = _folder(root / "exp")
    pool = SamplePool(root / ".pool" / "teacher-samples.sqlite")
    pool.put_many([(_key(i), _sample(i)) for i in range(3)])
    pool.close()
    assert check_store(root).ok
    return run


def _snapshot(root):
    return {p: (p.stat().st_mtime_ns, p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def _as_a_user_who_cannot_write(*args):
    """`brts ARGS` in a process without the right to write what its mode forbids (root: its DAC capabilities
    dropped with setpriv)."""
    command = [sys.executable, "-m", "brts.cli", *args]
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv to drop the right to write anything")
        command = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--", *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def test_a_read_only_store_is_checked_without_writing_and_a_repair_there_is_one_line(tmp_path):
    root = tmp_path / "store"
    run = _store_with_a_run_and_a_pool(root)
    before = _snapshot(root)
    subprocess.run(["chmod", "-R", "a-w", str(root)], check=True)
    try:
        checked = _as_a_user_who_cannot_write("store", "check", "--store", str(root))
        assert checked.returncode == 0 and "every artefact intact" in checked.stdout, checked.stderr
        assert "a pool of 3 samples" in checked.stdout
        shown = _as_a_user_who_cannot_write("pool", "show", "--store", str(root))
        assert shown.returncode == 0 and "3" in shown.stdout, shown.stderr
        os.chmod(run.eval_dir / "summary.json", 0o644)
        (run.eval_dir / "summary.json").write_text('{"edited": 1}')
        os.chmod(run.eval_dir / "summary.json", 0o444)
        repaired = _as_a_user_who_cannot_write("store", "check", "--store", str(root), "--repair")
        lines = repaired.stderr.strip().splitlines()
        assert repaired.returncode == 2 and len(lines) == 1 and "Traceback" not in repaired.stderr, repaired.stderr
        assert lines[0].startswith("error: ") and "as a user who can write the store" in lines[0]
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(root)], check=True)
    after = _snapshot(root)
    after.pop(run.eval_dir / "summary.json")
    before.pop(run.eval_dir / "summary.json")
    assert after == before  # nothing written, nothing created (no lock, no WAL, no quarantine)
