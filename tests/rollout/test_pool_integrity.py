"""The pool never hands out a sample whose stored bytes changed: edited rows, flipped bytes, a garbage file or a
pool from before rows carried digests. What fails is dropped (and drawn again by the caller) or moved aside,
with one line naming the file."""

from __future__ import annotations

import sqlite3

import pytest

from brts.rollout.pool import PoolDamaged, SamplePool, clear_file
from tests.rollout.test_sample_pool import _key, _sample

KEYS = [_key(i) for i in range(200)]


def _filled(path, n: int = 200, length: int = 20) -> None:
    pool = SamplePool(path)
    pool.put_many([(_key(i), _sample(i, length)) for i in range(n)])
    pool._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # every row in the main file, none in the WAL
    pool.close()


def _warnings(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]


def test_an_edited_but_valid_row_is_dropped_and_stored_again(tmp_path, capsys):
    path = tmp_path / "pool.sqlite"
    _filled(path, 10)
    with sqlite3.connect(path) as db:  # the file stays a valid database: only a row's text and grade change
        db.execute("UPDATE samples SET text = 'forged', grade = 1 - grade WHERE key = ?", (_key(3).digest,))
    pool = SamplePool(path)
    got = pool.get_many([_key(i) for i in range(10)])
    assert set(got) == {_key(i) for i in range(10)} - {_key(3)}
    assert all(got[_key(i)] == _sample(i) for i in range(10) if i != 3)
    [line] = _warnings(capsys)
    assert str(path) in line and "1 stored sample(s) failed their integrity check" in line
    assert pool.stats().samples == 9  # deleted, so the caller's draw is stored again
    assert pool.put_many([(_key(3), _sample(3))]) == 1 and pool.get_many([_key(3)]) == {_key(3): _sample(3)}


def test_a_pool_from_before_digests_is_migrated_and_its_rows_drawn_again(tmp_path, capsys):
    path = tmp_path / "pool.sqlite"
    with sqlite3.connect(path) as db:  # the schema and a row as brts stored them before rows carried digests
        db.execute("CREATE TABLE samples (key TEXT PRIMARY KEY, teacher TEXT NOT NULL, tier TEXT NOT NULL, "
                   "stream TEXT NOT NULL, idx INTEGER NOT NULL, token_ids BLOB NOT NULL, text TEXT NOT NULL, "
                   "finish_reason TEXT NOT NULL, grader TEXT, grade INTEGER, created REAL NOT NULL)")
        db.execute("INSERT INTO samples VALUES (?, 't', 'tier1', 's', 0, ?, 'old', 'stop', NULL, NULL, 0)",
                   (_key(0).digest, b"\x01\x00\x00\x00"))
    pool = SamplePool(path)
    assert pool.get_many([_key(0)]) == {}
    assert "failed their integrity check" in _warnings(capsys)[0]
    assert pool.put_many([(_key(0), _sample(0))]) == 1 and pool.get_many([_key(0)]) == {_key(0): _sample(0)}


@pytest.mark.parametrize("content", [b"garbage " * 1000, b"SQLite format 3\x00" + b"\xff" * 5000])
def test_a_file_that_is_not_a_pool_is_moved_aside_and_a_new_pool_starts(tmp_path, capsys, content):
    path = tmp_path / ".pool" / "teacher-samples.sqlite"
    path.parent.mkdir()
    path.write_bytes(content)
    with pytest.raises(PoolDamaged, match=str(path)):  # looking does not change anything
        SamplePool(path, repair=False)
    assert path.read_bytes() == content
    pool = SamplePool(path)
    assert pool.stats().samples == 0 and pool.put_many([(_key(0), _sample(0))]) == 1
    [line] = _warnings(capsys)
    assert str(path) in line and "moved aside" in line
    [moved] = (path.parent / ".quarantine").glob("*/teacher-samples.sqlite")
    assert moved.read_bytes() == content


def test_flipped_bytes_never_give_a_changed_sample(tmp_path, capsys):
    path = tmp_path / "pool.sqlite"
    _filled(path, 200, length=60)
    data = bytearray(path.read_bytes())
    for offset in range(len(data) // 3, len(data), len(data) // 7):  # a few bytes across the data pages
        data[offset] ^= 0x5A
    path.write_bytes(bytes(data))
    pool = SamplePool(path)
    got = pool.get_many(KEYS)
    assert all(got[k] == _sample(i, 60) for i, k in enumerate(KEYS) if k in got)  # what comes back is intact
    assert len(got) < len(KEYS)
    lines = _warnings(capsys)
    assert lines and all(str(path) in line for line in lines)


def test_verify_lists_the_damage_and_repair_deletes_failing_rows(tmp_path):
    path = tmp_path / "pool.sqlite"
    _filled(path, 10)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE samples SET grade = 1 - grade WHERE key IN (?, ?)", (_key(1).digest, _key(2).digest))
    pool = SamplePool(path)
    [line] = pool.verify()
    assert str(path) in line and "2 sample(s) fail their digest" in line
    assert pool.stats().samples == 10
    pool.verify(repair=True)
    assert pool.verify() == [] and pool.stats().samples == 8


def test_clear_moves_a_damaged_file_aside(tmp_path):
    path = tmp_path / "pool.sqlite"
    path.write_bytes(b"not a database " * 100)
    deleted, moved = clear_file(path)
    assert deleted == 0 and moved is not None and moved.read_bytes().startswith(b"not a database")
    assert not path.exists()
    _filled(path, 3)
    assert clear_file(path) == (3, None)
