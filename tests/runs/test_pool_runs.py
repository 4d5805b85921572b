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
