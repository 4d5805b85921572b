"""`brts sweep run` on the tiny models: trials are runs (reused when finished), budget, pruning, failures."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from brts.cli import app
from brts.runs.run import execute_run
from brts.sweep.load import load_sweep
from brts.sweep.study import create_or_load, open_storage, storage_url
from brts.training import trainer as train_mod
from tests.sweep.conftest import plain_study

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_grid_sweep_reuses_the_experiment_run_and_opens_with_plain_optuna(tmp_path, tiny_sweep):
    store = tmp_path / "store"
    exp = invoke("exp", "run", str(tiny_sweep.parent / "tiny.yaml"), "--store", str(store), "--set", "arms=[brts]")
    assert exp.exit_code == 0, exp.output
    (experiment_run,) = list(store.glob("tiny/*/record.json"))

    result = invoke("sweep", "run", str(tiny_sweep), "--store", str(store), "--workers", "2")
    assert result.exit_code == 0, result.output
    assert "4/4 completed trials" in result.output

    study = plain_study(store)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 4
    assert {(t.params["teacher_samples"], t.params["aux_weight"]) for t in study.trials} == {
        (2, 0.1), (2, 0.5), (4, 0.1), (4, 0.5)}
    for trial in study.trials:
        run_id, run_path = trial.user_attrs["run_id"], trial.user_attrs["run_path"]
        assert trial.user_attrs["run_ids"] == [run_id] and trial.user_attrs["run_paths"] == [run_path]
        record = json.loads((Path(run_path) / "record.json").read_text())
        assert Path(run_path).name == run_id and record["status"] == "finished" and record["attempts"] == 1
        assert trial.values == [trial.user_attrs["seed_values"]["val/hard"][0]]
        last_val = [m for m in map(json.loads, (Path(run_path) / "metrics.jsonl").read_text().splitlines())
                    if "val/hard" in m][-1]
        assert trial.values[0] == last_val["val/hard"]
        reused = trial.params == {"teacher_samples": 4, "aux_weight": 0.5}
        assert trial.user_attrs["reused"] == [reused]
        assert (Path(run_path) == experiment_run.parent) is reused
    assert len(list(store.glob("sweeps/sweep/*/record.json"))) == 3  # the fourth point was the experiment's run

    stamps = {p: p.stat().st_mtime_ns for p in store.glob("**/metrics.jsonl")}
    again = invoke("sweep", "run", str(tiny_sweep), "--store", str(store))
    assert again.exit_code == 0 and len(plain_study(store).trials) == 4
    assert {p: p.stat().st_mtime_ns for p in store.glob("**/metrics.jsonl")} == stamps

    status = invoke("sweep", "status", str(tiny_sweep), "--store", str(store))
    assert status.exit_code == 0, status.output
    assert "best of 4 completed trials" in status.output and "runs reused from the store: 1 of 4" in status.output


def _strong_trial(sweep, pruner: str) -> optuna.trial.FrozenTrial:
    """A finished trial that scored 100% on every validation problem at every step: any real tiny run is worse
    (validation is in percent; a value of 1.0 would be beaten by a tiny student that solves one problem in six)."""
    train, stride = sweep.experiment.train, sweep.experiment.train.steps + 1
    steps = range(train.validate_every, train.steps + 1, train.validate_every)
    if pruner == "wilcoxon":
        ids = [(s * stride + step) * train.validation_problems + j
               for s in range(len(sweep.seeds)) for step in steps for j in range(train.validation_problems)]
    else:
        ids = [s * stride + step for s in range(len(sweep.seeds)) for step in steps]
    distributions = {"teacher_samples": optuna.distributions.CategoricalDistribution([2, 4]),
                     "aux_weight": optuna.distributions.FloatDistribution(0.1, 1.0, log=True)}
    return optuna.trial.create_trial(params={"teacher_samples": 2, "aux_weight": 0.2},
                                     distributions=distributions, value=100.0,
                                     intermediate_values=dict.fromkeys(ids, 100.0))


@pytest.mark.parametrize("pruner", ["wilcoxon", "median"])
def test_a_worse_trial_is_pruned_at_its_step_and_its_run_resumes_later(tmp_path, tiny_sweep, pruner):
    store = tmp_path / "store"
    overrides = ["sampler.name=random", "trials=2", "seeds=[0, 1]", f"pruner.name={pruner}", "pruner.startup_trials=1",
                 "pruner.startup_steps=0" if pruner == "median" else "pruner.startup_steps=2",
                 "overrides.train.validation_problems=6"]
    sweep = load_sweep(tiny_sweep, overrides)
    url = storage_url(sweep, store)
    Path(url).parent.mkdir(parents=True)
    create_or_load(sweep, open_storage(url, create=True), url).add_trial(_strong_trial(sweep, pruner))

    result = invoke("sweep", "run", str(tiny_sweep), "--store", str(store), *[a for o in overrides for a in ("--set", o)])
    assert result.exit_code == 0, result.output
    trial = plain_study(store).trials[1]
    assert trial.state == TrialState.PRUNED, result.output
    assert trial.user_attrs["pruned_step"] == 2 and trial.user_attrs["pruned_seed"] == 0
    assert "pruned at step 2 of seed 0" in result.output
    first, second = (Path(p) for p in trial.user_attrs["run_paths"])
    record = json.loads((first / "record.json").read_text())
    assert record["status"] == "stopped" and record["stopped_at"] == 2
    assert [json.loads(line)["step"] for line in (first / "metrics.jsonl").read_text().splitlines()] == [0, 1, 2]
    assert not second.exists()  # the second seed never started

    resumed = execute_run(sweep.trial_runs(trial.params, [0])[0], store)
    assert resumed["status"] == "finished" and resumed["attempts"] == 2


def test_a_failing_run_fails_its_trial_with_the_error_and_the_sweep_goes_on(tmp_path, tiny_sweep, monkeypatch):
    step = train_mod.Trainer.step

    def broken_for_n2(self, index):
        if self.cfg.method.teacher_samples == 2:
            raise RuntimeError("teacher out of memory")
        return step(self, index)

    monkeypatch.setattr(train_mod.Trainer, "step", broken_for_n2)
    store = tmp_path / "store"
    result = invoke("sweep", "run", str(tiny_sweep), "--store", str(store))
    assert result.exit_code == 0, result.output
    assert "the grid is exhausted" in result.output
    trials = plain_study(store).trials
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert sorted(t.params["teacher_samples"] for t in failed) == [2, 2]
    assert all("failed: RuntimeError: teacher out of memory" in t.user_attrs["error"] for t in failed)
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 2
    status = invoke("sweep", "status", str(tiny_sweep), "--store", str(store))
    assert status.output.count("teacher out of memory") == 2


def test_a_sweep_over_several_arms_trains_each_averages_over_them_and_shares_what_an_arm_ignores(tmp_path,
                                                                                                   tiny_models):
    from tests.sweep.conftest import write_sweep

    text = """\
experiment: tiny.yaml
arms: [opd, brts]
overrides: {method: {teacher_samples: 2}}
seeds: [0, 1]
space:
  method:
    aux_weight: {choices: [0.2, 0.5]}
sampler: {name: grid}
trials: 2
"""
    sweep_file = write_sweep(tmp_path, tiny_models, text)
    store = tmp_path / "store"
    result = invoke("sweep", "run", str(sweep_file), "--store", str(store))
    assert result.exit_code == 0, result.output
    assert "over 2 seeds x 2 arms" in result.output
    first, second = sorted(plain_study(store).trials, key=lambda t: t.number)
    assert first.state == second.state == TrialState.COMPLETE and first.user_attrs["arms"] == ["opd", "brts"]
    # opd does not read aux_weight: the second trial finds its two runs finished; brts trains again.
    assert second.user_attrs["reused"] == [True, True, False, False]
    assert second.user_attrs["run_paths"][:2] == first.user_attrs["run_paths"][:2]
    assert len(list(store.glob("sweeps/sweep/*/record.json"))) == 6
    sweep = load_sweep(sweep_file)

    def last(path: str) -> float:
        rows = [json.loads(line) for line in (Path(path) / "metrics.jsonl").read_text().splitlines()]
        return [r["val/hard"] for r in rows if r.get("val/hard") is not None][-1]

    for trial in (first, second):
        config = sweep.trial_runs(trial.params)[2].config
        assert config.method.teacher_samples == 2 and config.method.aux_weight == trial.params["aux_weight"]
        records = [json.loads((Path(p) / "record.json").read_text()) for p in trial.user_attrs["run_paths"]]
        assert [(r["arm"], r["seed"]) for r in records] == [("opd", 0), ("opd", 1), ("brts", 0), ("brts", 1)]
        values = [last(p) for p in trial.user_attrs["run_paths"]]  # opd 0, opd 1, brts 0, brts 1
        per_seed = [(values[0] + values[2]) / 2, (values[1] + values[3]) / 2]
        assert trial.user_attrs["seed_values"]["val/hard"] == pytest.approx(per_seed)
        assert trial.user_attrs["arm_values"]["val/hard"] == {"opd": values[:2], "brts": values[2:]}
        assert trial.values[0] == pytest.approx(sum(values) / 4)

    status = invoke("sweep", "status", str(sweep_file), "--store", str(store))
    assert status.exit_code == 0, status.output
    table = status.output[status.output.index("val/hard by arm"):]
    row = next(line for line in table.splitlines() if line.strip("│ ").startswith("1 "))
    cells = [c.strip() for c in row.strip("│").split("│")]
    arm_values = second.user_attrs["arm_values"]["val/hard"]
    assert cells == ["1", "0.5" if second.params["aux_weight"] == 0.5 else "0.2",
                     f"{sum(arm_values['opd']) / 2:.4g}", f"{sum(arm_values['brts']) / 2:.4g}", f"{second.values[0]:.4g}"]
    assert "runs reused from the store: 2 of 8" in status.output
    wide = runner.invoke(app, ["sweep", "status", str(sweep_file), "--store", str(store)], env={"COLUMNS": "200"})
    choices = wide.output[wide.output.index("by choice"):]
    seeds = second.user_attrs["seed_values"]["val/hard"]
    row = next(line for line in choices.splitlines() if f"│ {second.params['aux_weight']} " in line)
    assert [c.strip() for c in row.strip("│").split("│")][4] == f"{seeds[0]:.4g}, {seeds[1]:.4g}"  # by seed [0, 1]


def test_a_points_sweep_runs_exactly_its_points_in_order(tmp_path, tiny_sweep):
    points = "[{teacher_samples: 4, aux_weight: 0.3}, {teacher_samples: 2, aux_weight: 0.5}]"
    args = ["--store", str(tmp_path / "store"), "--set", f"sampler={{name: points, points: {points}}}", "--set",
            "trials=2"]
    result = invoke("sweep", "run", str(tiny_sweep), *args)
    assert result.exit_code == 0, result.output
    trials = sorted(plain_study(tmp_path / "store").trials, key=lambda t: t.number)
    assert [(t.state, t.params) for t in trials] == [
        (TrialState.COMPLETE, {"teacher_samples": 4, "aux_weight": 0.3}),
        (TrialState.COMPLETE, {"teacher_samples": 2, "aux_weight": 0.5})]
    sweep = load_sweep(tiny_sweep, args[3::2])
    for t in trials:  # each trial's run is the run of its point's values
        [run] = sweep.trial_runs(t.params)
        assert Path(t.user_attrs["run_path"]).name == run.run_id
    again = invoke("sweep", "run", str(tiny_sweep), *args)
    assert again.exit_code == 0 and len(plain_study(tmp_path / "store").trials) == 2
