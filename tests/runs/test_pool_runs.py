"""The pool end to end: it changes no result, and the teacher tokens counted without training are exact."""

from __future__ import annotations

import json

from brts.rollout.pool import open_pool
from brts.runs.executor import execute
from brts.runs.plan import plan
from brts.runs.prefill import plan_demand, totals
from brts.spec import load_spec
from brts.store import RunStore

COST = ("teacher/tokens_generated", "teacher/tokens_from_pool")


def _metrics(store, planned):
    path = store.run(planned).metrics_path
    return [json.loads(line) for line in path.read_text().splitlines()]


def _results(log):
    return [{k: v for k, v in m.items() if not k.startswith("time/") and k not in COST} for m in log]


def test_pool_changes_no_result_and_token_counts_are_exact(tmp_path, tiny_spec_file):
    overrides = ["arms=[brts_no_alignment, brts, first_rollout]", "train.steps=3", "train.max_new_tokens=16"]
    pooled_plan = plan(load_spec(str(tiny_spec_file), overrides))
    online_plan = plan(load_spec(str(tiny_spec_file), [*overrides, "pool.enabled=false"]))
    assert [p.run_id for p in pooled_plan] == [p.run_id for p in online_plan]  # the pool is not in the run id
    pooled, online = RunStore(tmp_path / "pooled"), RunStore(tmp_path / "online")
    assert {o.action for o in execute(pooled_plan, pooled)} == {"ran"}
    assert {o.action for o in execute(online_plan, online)} == {"ran"}

    for a, b in zip(pooled_plan, online_plan, strict=True):
        with_pool, without = _metrics(pooled, a), _metrics(online, b)
        assert _results(with_pool) == _results(without)
        assert pooled.run(a).record()["eval"] == online.run(b).record()["eval"]
        assert sum(with_pool[-1][k] for k in COST) == without[-1]["teacher/tokens_generated"]
        assert without[-1]["teacher/tokens_from_pool"] == 0
    # brts asks for exactly the samples brts_no_alignment drew (same seed, N, retries): all from the pool.
    brts = _metrics(pooled, pooled_plan[1])[-1]
    assert brts["teacher/tokens_generated"] == 0 and brts["teacher/tokens_from_pool"] > 0

    # Counting without training gives exactly what the runs generated, with and without the pool.
    counted = totals(plan_demand(online_plan, pool=None))
    assert counted.without_pool == sum(_metrics(online, p)[-1]["teacher/tokens_generated"] for p in online_plan)
    assert counted.with_pool == sum(_metrics(pooled, p)[-1]["teacher/tokens_generated"] for p in pooled_plan)
    assert counted.with_pool < counted.without_pool
    pool = open_pool(pooled_plan[0].pool, pooled.pool_file(pooled_plan[0].pool))
    assert pool.stats().samples == counted.samples


def test_a_damaged_pool_changes_no_result(tmp_path, tiny_spec_file, capfd):
    """Rows edited in place (the file still a valid database) and a pool file overwritten with garbage: the runs
    that read them finish with the numbers of an undamaged run, and say which file they found damaged."""
    import sqlite3

    overrides = ["arms=[brts]", "train.steps=2", "train.max_new_tokens=16"]
    first = RunStore(tmp_path / "first")
    [planned] = plan(load_spec(str(tiny_spec_file), overrides))
    assert [o.action for o in execute([planned], first)] == ["ran"]
    expected = (_results(_metrics(first, planned)), first.run(planned).record()["eval"])
    pool_file = first.pool_file(planned.pool)

    with sqlite3.connect(pool_file) as db:  # forged samples: other text, flipped grades
        db.execute("UPDATE samples SET text = 'The answer is \\boxed{0}', grade = 1 - COALESCE(grade, 0)")
    capfd.readouterr()
    edited = RunStore(tmp_path / "edited")
    [again] = plan(load_spec(str(tiny_spec_file), [*overrides, f"pool.path={pool_file}"]))
    assert [o.action for o in execute([again], edited)] == ["ran"]
    assert (_results(_metrics(edited, again)), edited.run(again).record()["eval"]) == expected
    assert _metrics(edited, again)[-1]["teacher/tokens_generated"] > 0  # drawn again: none was used
    assert f"teacher sample pool {pool_file}" in capfd.readouterr().err

    pool_file.write_bytes(b"\x00garbage" * 4096)
    for extra in pool_file.parent.glob("*-wal"):
        extra.unlink()
    garbage = RunStore(tmp_path / "garbage")
    assert [o.action for o in execute([again], garbage)] == ["ran"]
    assert (_results(_metrics(garbage, again)), garbage.run(again).record()["eval"]) == expected
    err = capfd.readouterr().err
    assert f"teacher sample pool {pool_file} is damaged" in err and "moved aside" in err
