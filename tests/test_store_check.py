"""`check_store` beyond run folders: a sweep's Optuna journal and the pool file, each damage one line naming the
file, each repair a move aside."""

from __future__ import annotations

from brts.rollout.pool import SamplePool
from brts.store_check import check_store
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
