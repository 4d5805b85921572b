"""Sweep specs: loading, `extends`/`--set`, resolution against the experiment, and one-line errors (exit 2)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from brts.cli import app
from brts.runs.plan import plan
from brts.spec import SpecError, load_spec
from brts.sweep.load import load_sweep

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_default_sweeps_load_and_show_creates_nothing(tmp_path):
    sweep = load_sweep("n-lambda")
    assert sweep.experiment.name == "ablation-grid" and [a.name for a in sweep.arms] == ["brts"]
    assert [p.name for p in sweep.params] == ["teacher_samples", "aux_weight"]
    assert [p.kind for p in sweep.params] == ["categorical", "float"]
    assert sweep.spec.objective.metric == "val/hard" and sweep.spec.objective.direction == "maximize"
    pareto = load_sweep("n-lambda-pareto")
    assert pareto.spec.trials == sweep.spec.trials and pareto.spec.space == sweep.spec.space  # extends
    assert [o.metric for o in pareto.objectives] == ["val/hard", "teacher/tokens_generated"]
    assert pareto.objectives[1].direction == "minimize"

    store = tmp_path / "store"
    result = invoke("sweep", "show", "n-lambda", "--store", str(store), "--set", "trials=3")
    assert result.exit_code == 0, result.output
    assert "trials: 3" in result.output and f"{store}/sweeps/n-lambda/study.log" in result.output.replace("\n", "")
    assert not store.exists()


def test_trial_run_is_the_experiment_run_with_the_same_values(tiny_sweep):
    sweep = load_sweep(tiny_sweep)
    experiment = load_spec(tiny_sweep.parent / "tiny.yaml")
    brts_run = next(p for p in plan(experiment) if p.arm == "brts")
    [same] = sweep.trial_runs({"teacher_samples": 4, "aux_weight": 0.5}, [brts_run.seed])
    assert same.run_id == brts_run.run_id and same.config == brts_run.config
    [other] = sweep.trial_runs({"teacher_samples": 2, "aux_weight": 0.5}, [brts_run.seed])
    assert other.run_id != brts_run.run_id and other.config.method.teacher_samples == 2


def test_method_overrides_go_into_the_swept_arms_even_for_a_field_a_preset_sets(tiny_sweep):
    # As a shared override `teacher_samples: 3` would change the experiment's other arms' presets (refused);
    # the sweep trains only its arms, so it sets it there.
    sweep = load_sweep(tiny_sweep, ["overrides.method.teacher_samples=3", "space.method={aux_weight: {choices: [0.2]}}",
                                    "sampler.name=random"])
    [run] = sweep.trial_runs({"aux_weight": 0.2}, [0])
    assert run.config.method.teacher_samples == 3 and run.config.method.aux_weight == 0.2
    several = load_sweep(tiny_sweep, ["arm=null", "arms=[opd, brts]"])
    assert [(r.arm, r.seed) for r in several.trial_runs({"teacher_samples": 2, "aux_weight": 0.5})] == [
        ("opd", 0), ("brts", 0)]
    assert "arms" in several.identity() and "arms" not in load_sweep(tiny_sweep).identity()


def test_an_arm_keeps_the_experiments_value_of_a_sampled_field_it_does_not_read(tmp_path, tiny_sweep):
    several = load_sweep(tiny_sweep, ["arm=null", "arms=[opd, brts]"])
    assert several.unread() == {"opd": ["teacher_samples", "aux_weight"]}
    opd_a, brts_a = several.trial_runs({"teacher_samples": 2, "aux_weight": 0.1})
    opd_b, brts_b = several.trial_runs({"teacher_samples": 4, "aux_weight": 0.5})
    assert opd_a.run_id == opd_b.run_id  # the same opd run in both trials, found finished in the second
    assert (opd_a.config.method.teacher_samples, opd_a.config.method.aux_weight) == (4, 0.5)  # tiny.yaml's
    assert brts_a.run_id != brts_b.run_id and brts_a.config.method.aux_weight == 0.1
    shown = invoke("sweep", "show", str(tiny_sweep), "--store", str(tmp_path / "store"), "--set", "arm=null",
                   "--set", "arms=[opd, brts]")
    assert shown.exit_code == 0, shown.output
    assert "arm 'opd' does not read teacher_samples, aux_weight" in " ".join(shown.output.split())


def test_overrides_reach_the_base_experiment(tiny_sweep):
    sweep = load_sweep(tiny_sweep, ["overrides.train.steps=3", "seeds=[0, 1]"])
    assert sweep.experiment.train.steps == 3 and sweep.seeds == (0, 1)
    [run] = sweep.trial_runs({}, [1])
    assert run.config.train.steps == 3 and run.config.seed == 1


BAD = {
    "empty_range": (["space.method.aux_weight={low: 0.5, high: 0.5}"], "empty range"),
    "reversed_range": (["space.method.aux_weight={low: 1.0, high: 0.1}"], "reversed range"),
    "boolean_bound": (["space.method.aux_weight={low: true, high: 1}"], "aux_weight.low"),
    "log_not_positive": (["space.method.aux_weight={low: 0, high: 1, log: true}"], "log range needs low > 0"),
    "n_below_1": (["space.method.teacher_samples={choices: [0, 2]}"], "teacher_samples.choices[0]: expected an integer >= 1"),
    "n_range_below_1": (["space.method.teacher_samples={low: 0, high: 8}"], "teacher_samples.low: expected an integer >= 1"),
    "unknown_metric": (["objective.metric=val/hardest"], "did you mean 'val/hard'"),
    "unknown_sampler": (["sampler.name=cmaes"], "sampler.name: expected 'tpe', 'random', 'grid' or 'points'"),
    "unknown_field": (["space.method.teacher_sample={choices: [1]}"], "did you mean 'teacher_samples'"),
    "unknown_arm": (["arm=best"], "is not an arm of experiment"),
    "empty_space": (["space={}"], "search space is empty"),
    "grid_without_points": (["space.method.aux_weight={low: 0.1, high: 1.0}"], "grid sampler needs points"),
    "grid_too_small": (["trials=5"], "exceeds the 4 points of the grid"),
    "prune_two_objectives": (["pruner.name=median", "second_objective={metric: teacher/tokens_generated}"],
                             "cannot prune a multi-objective study"),
    "prune_not_validation": (["pruner.name=wilcoxon", "objective.metric=surrogate/total"], "must be val/<split>"),
    "bad_experiment_override": (["overrides.train.steps=0"], "train.steps: expected an integer >= 1"),
    "arm_and_arms": (["arms=[opd, brts]"], "one of the two"),
    "unknown_arm_of_several": (["arm=null", "arms=[opd, best]"], "'best' is not an arm of experiment"),
    "repeated_arms": (["arm=null", "arms=[opd, opd]"], "arms must be unique"),
    "bad_method_override": (["overrides.method.aux_top_k=0"], "overrides.method.aux_top_k: expected an integer >= 1"),
    "final_eval_off": (["overrides.eval.final=false", "objective.metric=eval/hard"],
                       "which eval.final: false turns off; choose a val/<split> metric"),
    "points_lack_a_param": (["sampler={name: points, points: [{teacher_samples: 2}]}", "trials=1"],
                            "sampler.points[0]: lacks aux_weight; every point gives each of teacher_samples, aux_weight"),
    "points_outside_the_space": (["sampler={name: points, points: [{teacher_samples: 3, aux_weight: 0.2}]}",
                                  "trials=1"], "sampler.points[0]: teacher_samples: 3 is not in its search space"),
    "points_outside_a_range": (["sampler={name: points, points: [{teacher_samples: 2, aux_weight: 2.0}]}",
                                "trials=1"], "aux_weight: 2.0 is not in its search space (float [0.1, 1.0] log"),
    "points_repeated": (["sampler={name: points, points: [{teacher_samples: 2, aux_weight: 0.2}, "
                         "{teacher_samples: 2, aux_weight: 0.2}]}", "trials=2"], "sampler.points[1]: repeats sampler.points[0]"),
    "points_fewer_than_trials": (["sampler={name: points, points: [{teacher_samples: 2, aux_weight: 0.2}]}"],
                                 "trials: 4 exceeds the 1 points"),
    "points_missing": (["sampler.name=points"], "the points sampler runs the trials listed under points"),
    "points_for_another_sampler": (["sampler.points=[{teacher_samples: 2, aux_weight: 0.2}]"],
                                   "points are read by the points sampler only"),
    "unread_field": (["arm=opd"], "no swept arm reads teacher_samples (opd), so every trial would be the same"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_sweep_is_one_line_exit_2_no_study(tmp_path, tiny_sweep, case):
    overrides, expected = BAD[case]
    with pytest.raises(SpecError, match="sweep.yaml"):
        load_sweep(tiny_sweep, overrides)
    store = tmp_path / "store"
    args = [a for o in overrides for a in ("--set", o)]
    result = invoke("sweep", "run", str(tiny_sweep), "--store", str(store), *args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "sweep.yaml" in lines[0], result.output
    assert expected in " ".join(result.output.split()), result.output
    assert not store.exists()


@pytest.mark.parametrize("url", ["sqlite:////no/such/folder/study.db", "/no/such/folder/study.log",
                                 "nosuchdriver://host/db"])
def test_storage_that_cannot_be_opened_is_one_line_exit_2(tmp_path, tiny_sweep, url):
    store = tmp_path / "store"
    result = invoke("sweep", "run", str(tiny_sweep), "--store", str(store), "--storage", url)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and ("cannot open" in lines[0] or "does not exist" in lines[0]), result.output
    assert not (store / "sweeps").exists()


def test_status_of_a_sweep_never_run_is_one_line(tmp_path, tiny_sweep):
    result = invoke("sweep", "status", str(tiny_sweep), "--store", str(tmp_path / "store"))
    assert result.exit_code == 2 and "run `brts sweep run` first" in result.output
    assert not (tmp_path / "store").exists()


def test_the_grid_settings_sweep_is_a_half_fraction_on_validation_only():
    sweep = load_sweep("grid-settings")
    grid = load_spec("ablation-grid")
    assert [a.name for a in sweep.arms] == [a.name for a in grid.arms]
    assert not set(sweep.seeds) & set(grid.seeds)  # the final table's runs are not the ones chosen on
    assert sweep.spec.objective.metric.startswith("val/")
    points = sweep.points()
    assert len(points) == sweep.spec.trials == 8
    names = [p.name for p in sweep.params]
    assert names == ["opd_top_k", "aux_top_k", "aux_weight", "alignment_top_k"]
    paper = dict(zip(names, [16, 16, 0.05, 16], strict=True))
    before = {n: getattr(sweep.base_config().method, n) for n in names}
    assert paper in points and before in points
    # Coded -1 at the paper's value: the fourth level is the product of the other three, and every two settings
    # meet in each of their four combinations twice (main effects free of two-setting interactions).
    coded = [[-1 if pt[n] == paper[n] else 1 for n in names] for pt in points]
    assert all(c[3] == c[0] * c[1] * c[2] for c in coded)
    for i in range(4):
        for j in range(i + 1, 4):
            assert sorted((c[i], c[j]) for c in coded) == [(-1, -1)] * 2 + [(-1, 1)] * 2 + [(1, -1)] * 2 + [(1, 1)] * 2
    for run in sweep.trial_runs(points[0]):
        assert not run.config.eval.final and run.config.eval.splits == ("hard",)  # validates on hard, no test split


def test_a_sweep_on_the_built_in_models_is_another_study_once_they_are_re_shipped(tiny_sweep, monkeypatch):
    builtin, local = load_sweep("n-lambda"), load_sweep(tiny_sweep)  # builtin:* models, then model folders
    before = (builtin.identity(), local.identity())
    assert '"builtin":"shipped:' in before[0]["base"] and "builtin" not in before[1]["base"]
    monkeypatch.setattr("brts.models.builtin.shipped_digest", lambda folder=None: "0" * 16)
    assert builtin.identity()["base"] != before[0]["base"] and local.identity() == before[1]
