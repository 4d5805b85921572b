"""Sweep trials run in the experiment's store and share its one teacher sample pool (and its resources).

The token counts use the arm without recovery: which prompts need Tier-2 samples depends on the Tier-1 grades,
so a trial with a smaller N may rightly ask Tier 2 for a prompt the grid's N = 4 solved in Tier 1."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from typer.testing import CliRunner

from brts.cli import app
from brts.sweep.load import load_sweep
from tests.conftest import tiny_spec_text
from tests.sweep.conftest import plain_study, write_sweep

N_SWEEP = """\
experiment: tiny.yaml
arm: brts_no_recovery
seeds: [0]
space:
  method:
    teacher_samples: {choices: [2, 8]}
sampler: {name: grid}
trials: 2
"""


def _pool(store: Path) -> dict[str, tuple[str, int, int]]:
    """key -> (tier, index, tokens) of every sample in the store's pool."""
    with sqlite3.connect(store / ".pool" / "teacher-samples.sqlite") as db:
        rows = db.execute("SELECT key, tier, idx, LENGTH(token_ids) FROM samples").fetchall()
    return {key: (tier, idx, size // 4) for key, tier, idx, size in rows}  # token ids are int32


def _last_metrics(run_path: str) -> dict:
    return json.loads((Path(run_path) / "metrics.jsonl").read_text().splitlines()[-1])


def test_trials_after_the_grid_draw_only_the_teacher_samples_the_grid_lacks(tmp_path, tiny_models):
    sweep = write_sweep(tmp_path, tiny_models, N_SWEEP)
    (tmp_path / "tiny.yaml").write_text(tiny_spec_text(tiny_models).replace("[opd, brts]", "[opd, brts_no_recovery]"))
    store = tmp_path / "store"
    runner = CliRunner()
    grid = runner.invoke(app, ["exp", "run", str(tmp_path / "tiny.yaml"), "--store", str(store), "--set",
                               "arms=[brts_no_recovery]"], catch_exceptions=False)
    assert grid.exit_code == 0, grid.output
    after_grid = _pool(store)
    assert after_grid and {idx for _, idx, _ in after_grid.values()} >= {0, 1, 2, 3}  # N = 4 in the grid

    result = runner.invoke(app, ["sweep", "run", str(sweep), "--store", str(store)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert not (store / "sweeps" / ".pool").exists()  # one pool per store
    trials = {t.params["teacher_samples"]: t for t in plain_study(store).trials}
    n2, n8 = (_last_metrics(trials[n].user_attrs["run_path"]) for n in (2, 8))
    assert n2["teacher/tokens_generated"] == 0 and n2["teacher/tokens_from_pool"] > 0

    drawn = {k: v for k, v in _pool(store).items() if k not in after_grid}
    assert {(tier, idx) for tier, idx, _ in drawn.values()} == {("tier1", i) for i in (4, 5, 6, 7)}
    assert n8["teacher/tokens_generated"] == sum(tokens for _, _, tokens in drawn.values()) > 0
    assert n8["teacher/tokens_from_pool"] > 0


def test_a_trial_inherits_the_experiments_pool_resources_and_rollout(tmp_path, tiny_models):
    lines = "pool: {max_gb: 1.5, prefill: true}\nresources: {processes: 2, cpus: 3}\n"
    path = write_sweep(tmp_path, tiny_models, N_SWEEP)
    (tmp_path / "tiny.yaml").write_text(
        tiny_spec_text(tiny_models).replace("[opd, brts]", "[opd, brts_no_recovery]") + lines)
    sweep = load_sweep(path)
    [run] = sweep.trial_runs({"teacher_samples": 8})
    assert run.kind == "sweep" and run.experiment == "sweep" and run.arm == "brts_no_recovery"
    assert run.pool == sweep.experiment.pool and run.pool.max_gb == 1.5 and run.pool.prefill
    assert run.resources.world_size == 2 and run.resources.cpus == 3
    assert run.config.rollout == sweep.experiment.rollout and run.config.method.teacher_samples == 8
