"""The pool's storage: round trips, first write wins, bounded size, clear, and several writing processes."""

from __future__ import annotations

import multiprocessing as mp
import threading
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

from brts.rollout.base import Completion
from brts.rollout.pool import PooledSample, SampleKey, SamplePool


def _key(i: int, stream: str = "seed0/epoch0") -> SampleKey:
    return SampleKey(teacher="t", sampler="s", prompt_sha=f"p{i // 4}", temperature=0.7, top_p=0.95,
                     max_new_tokens=64, tier="tier1", stream=stream, index=i % 4)


def _sample(i: int, length: int = 20) -> PooledSample:
    """A sample whose content is a function of i, so a torn or mixed-up record shows."""
    ids = tuple((i * 7 + j) % 50 for j in range(length))
    return PooledSample(Completion(ids, f"text {i} " + "x" * (length - 8), "stop" if i % 2 else "length"),
                        "integer-1", i % 3 == 0)


def test_round_trip_and_the_first_write_wins(tmp_path):
    pool = SamplePool(tmp_path / "pool.sqlite")
    assert pool.put_many([(_key(i), _sample(i)) for i in range(10)]) == 10
    assert pool.put_many([(_key(3), _sample(99)), (_key(10), _sample(10))]) == 1
    got = pool.get_many([_key(i) for i in range(12)])
    assert set(got) == {_key(i) for i in range(11)}
    assert all(got[_key(i)] == _sample(i) for i in range(11))
    stats = pool.stats()
    assert (stats.samples, stats.tokens, stats.teachers) == (11, 220, {"t": 11})
    assert pool.clear() == 11 and pool.stats().samples == 0 and pool.get_many([_key(0)]) == {}


def test_keys_differ_in_every_field_and_seed_from_their_digest():
    base = _key(0)
    variants = [SampleKey(**{**base.__dict__, name: value}) for name, value in [
        ("teacher", "u"), ("sampler", "z"), ("prompt_sha", "q"), ("temperature", 1.0), ("top_p", 1.0),
        ("max_new_tokens", 32), ("tier", "tier2"), ("stream", "seed1/epoch0"), ("index", 5)]]
    assert len({k.digest for k in [base, *variants]}) == 10
    assert len({k.seed for k in [base, *variants]}) == 10 and all(0 <= k.seed < 2**63 for k in variants)


def test_size_cap_evicts_the_oldest_and_bounds_the_file(tmp_path):
    cap = 256 * 1024
    pool = SamplePool(tmp_path / "pool.sqlite", max_bytes=cap)
    for batch in range(40):
        pool.put_many([(_key(batch * 100 + i), _sample(batch * 100 + i, 200)) for i in range(100)])
    stats = pool.stats()
    assert 0 < stats.samples < 4000
    assert pool._live_bytes() <= cap
    # Freed pages are reused, so the database stops growing near the cap (the WAL beside it is bounded by
    # SQLite's checkpoints, about 4 MiB).
    assert (tmp_path / "pool.sqlite").stat().st_size < 2 * cap
    newest = [_key(3900 + i) for i in range(100)]
    assert len(pool.get_many(newest)) == 100 and pool.get_many([_key(0)]) == {}


def _writer(path: str, worker: int, out: mp.Queue) -> None:
    pool = SamplePool(path, timeout_s=60)
    added = 0
    # Overlapping ranges: every key is written by two workers, in batches of different sizes.
    keys = list(range(worker * 150, worker * 150 + 300))
    for start in range(0, len(keys), 7 + worker):
        chunk = keys[start : start + 7 + worker]
        added += pool.put_many([(_key(i), _sample(i)) for i in chunk])
        pool.get_many([_key(i) for i in chunk])
    pool.close()
    out.put(added)


def test_concurrent_writers_lose_and_duplicate_nothing(tmp_path):
    path = str(tmp_path / "pool.sqlite")
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    workers = [ctx.Process(target=_writer, args=(path, w, out)) for w in range(4)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(120)
    assert [p.exitcode for p in workers] == [0] * 4
    added = sum(out.get(timeout=5) for _ in workers)
    pool = SamplePool(path)
    expected = range(0, 3 * 150 + 300)
    got = pool.get_many([_key(i) for i in expected])
    assert added == len(expected) == pool.stats().samples
    assert all(got[_key(i)] == _sample(i) for i in expected)


OPENERS, ROUNDS = 8, 200


def _open_at_once(root: str, worker: int, barrier: Barrier, out: mp.Queue) -> None:
    """Each round: wait for every opener, then open that round's new pool, write one sample and read it back."""
    for r in range(ROUNDS):
        try:
            barrier.wait(timeout=60)
            pool = SamplePool(Path(root) / f"pool-{r}.sqlite", timeout_s=60)
            pool.put_many([(_key(worker), _sample(worker))])
            got = pool.get_many([_key(worker)])
            pool.close()
            out.put((worker, r, "ok" if got == {_key(worker): _sample(worker)} else f"read back {got}"))
        except Exception as exc:
            out.put((worker, r, f"{type(exc).__name__}: {exc}"))
            if isinstance(exc, threading.BrokenBarrierError):
                return


def test_processes_creating_one_new_pool_at_the_same_instant_all_open_it(tmp_path):
    """Opening a pool file that other processes are creating at that instant is no error: SQLite does not wait for
    the lock that switching a new file to WAL takes ("database is locked" at once), so the pool retries."""
    if "fork" not in mp.get_all_start_methods():
        pytest.skip("needs the fork start method")
    ctx = mp.get_context("fork")  # a spawned opener would import torch (seconds each); these touch only SQLite
    barrier, out = ctx.Barrier(OPENERS), ctx.Queue()
    openers = [ctx.Process(target=_open_at_once, args=(str(tmp_path), w, barrier, out), daemon=True)
               for w in range(OPENERS)]
    for p in openers:
        p.start()
    outcomes = {}
    for _ in range(OPENERS * ROUNDS):
        worker, r, outcome = out.get(timeout=120)
        outcomes[worker, r] = outcome
    for p in openers:
        p.join(30)
    failed = sorted(f"opener {w} round {r}: {o}" for (w, r), o in outcomes.items() if o != "ok")
    assert failed == [], f"{len(failed)} of {OPENERS * ROUNDS} opens failed:\n" + "\n".join(failed[:10])
    assert len(outcomes) == OPENERS * ROUNDS and [p.exitcode for p in openers] == [0] * OPENERS
    for r in range(ROUNDS):  # every opener's sample is in its round's pool
        pool = SamplePool(tmp_path / f"pool-{r}.sqlite")
        assert pool.get_many([_key(w) for w in range(OPENERS)]) == {_key(w): _sample(w) for w in range(OPENERS)}
        pool.close()
