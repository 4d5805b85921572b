"""`brts report` for a sweep: a real Optuna study whose trials name run folders."""

from __future__ import annotations

import math
import re

import optuna
import pandas as pd
import pytest

from brts.report import ReportError, build_report
from brts.report.study import load_study
from brts.spec import ExperimentSpec
from tests.report.fake_runs import write_experiment

GRID = [(n, lam) for n in (1, 2, 4, 8) for lam in (0.01, 0.1, 1.0)]


def make_sweep(store, objectives: int) -> optuna.Study:
    """12 complete trials over N x λ, each naming its run, plus one failed trial without a run."""
    arms = [{"name": f"n{n}-l{lam}", "preset": "brts", "set": {"teacher_samples": n, "aux_weight": lam}}
            for n, lam in GRID]
    exp = ExperimentSpec(name="nl-runs", arms=arms, seeds=[0], train={"steps": 10, "validate_every": 5},
                         eval={"splits": ["easy", "hard"], "problems": 20, "k": 2}, method={"alignment_top_k": 3})
    shift = {f"n{n}-l{lam}": 0.04 * math.log2(n) - 0.1 * abs(math.log10(lam) + 1) for n, lam in GRID}
    planned = write_experiment(store, exp, shift, references=False)
    (store / "sweeps" / "nl").mkdir(parents=True)
    study = optuna.create_study(study_name="nl", storage=f"sqlite:///{store / 'sweeps' / 'nl' / 'study.db'}",
                                directions=["maximize", "minimize"][:objectives])
    study.set_metric_names(["hard avg@k", "teacher tokens"][:objectives])
    dists = {"teacher_samples": optuna.distributions.CategoricalDistribution([1, 2, 4, 8]),
             "aux_weight": optuna.distributions.FloatDistribution(0.01, 1.0, log=True)}
    for i, p in enumerate(planned):
        record = (store / "nl-runs" / p.run_id / "record.json").read_text()
        hard = float(re.search(r'"brts_synthetic_hard": ([0-9.]+)', record).group(1))
        values = [hard, 1000.0 * p.config.method.teacher_samples][:objectives]
        path = store / "nl-runs" / p.run_id
        study.add_trial(optuna.trial.create_trial(
            params={"teacher_samples": p.config.method.teacher_samples, "aux_weight": p.config.method.aux_weight},
            distributions=dists, values=values,
            user_attrs={"run_id": p.run_id, "run_path": str(path if i % 2 else path.relative_to(store))}))
    study.add_trial(optuna.trial.create_trial(params={"teacher_samples": 8, "aux_weight": 0.5}, distributions=dists,
                                              state=optuna.trial.TrialState.FAIL))
    return study


pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


def test_single_objective_sweep_report(tmp_path):
    store = tmp_path / "store"
    study = make_sweep(store, objectives=1)
    result = build_report("nl", store, tmp_path / "out")
    out = tmp_path / "out"
    assert result.kind == "sweep"
    assert {p.stem for p in (out / "figures").glob("*.png")} == {"sweep_objective", "sweep_history",
                                                                 "sweep_importance"}
    best = study.best_trial
    assert f"Best hard avg@k: {best.value:.2f}" in " ".join(result.summary)
    assert f"(trial {best.number})" in " ".join(result.summary)
    assert "13 trials: 12 complete, 1 failed." in result.summary
    assert any("No run folder found for trial(s) 12" in s for s in result.summary)
    trials = pd.read_csv(out / "trials.csv")
    assert len(trials) == 13 and set(trials["param:teacher_samples"].dropna()) == {1, 2, 4, 8}
    results = pd.read_parquet(out / "results.parquet")
    assert len(results) == 12 * 2 * 20 * 2 and set(results["trial"]) == set(range(12))
    md = (out / "index.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith(f"| {best.number} | complete |"))
    run = results[(results["trial"] == best.number) & (results["task"] == "brts_synthetic_hard")]
    assert f"{100 * run.groupby('problem_id')['correct'].mean().mean():.1f}" in row
    assert (out / "index.html").exists()


def test_two_objective_sweep_report_draws_the_pareto_front(tmp_path):
    store = tmp_path / "store"
    study = make_sweep(store, objectives=2)
    result = build_report("nl", store, tmp_path / "out")
    assert (tmp_path / "out" / "figures" / "sweep_pareto.svg").exists()
    front = sorted(t.number for t in study.best_trials)
    assert load_study(store / "sweeps" / "nl", "nl").pareto == front
    assert f"{len(front)} trial(s) on the Pareto front" in " ".join(result.summary)


def test_sweep_folder_without_a_storage_is_refused(tmp_path):
    (tmp_path / "store" / "sweeps" / "empty").mkdir(parents=True)
    with pytest.raises(ReportError, match="holds no Optuna storage"):
        build_report("empty", tmp_path / "store", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_journal_file_study_is_read(tmp_path):
    from optuna.storages import JournalStorage

    journal = getattr(optuna.storages, "journal", None)
    backend = getattr(journal, "JournalFileBackend", None) or optuna.storages.JournalFileStorage
    folder = tmp_path / "sweeps" / "j"
    folder.mkdir(parents=True)
    study = optuna.create_study(study_name="j", storage=JournalStorage(backend(str(folder / "study.log"))))
    study.optimize(lambda t: t.suggest_float("aux_weight", 0.01, 1.0, log=True), n_trials=3)
    loaded = load_study(folder, "j")
    assert list(loaded.trials["number"]) == [0, 1, 2] and loaded.objectives == ["objective"]
    assert loaded.trials["objective"].tolist() == [t.value for t in study.trials]


def test_a_trial_is_reported_over_every_seed_run(tmp_path):
    store = tmp_path / "store"
    exp = ExperimentSpec(name="nl-seeds", arms=[{"name": "n4", "preset": "brts"}], seeds=[0, 1],
                         train={"steps": 10, "validate_every": 5},
                         eval={"splits": ["easy", "hard"], "problems": 20, "k": 2}, method={"alignment_top_k": 3})
    planned = write_experiment(store, exp, {"n4": 0.0}, references=False)
    paths = [str(store / "nl-seeds" / p.run_id) for p in planned]
    (store / "sweeps" / "nl").mkdir(parents=True)
    study = optuna.create_study(study_name="nl", storage=f"sqlite:///{store / 'sweeps' / 'nl' / 'study.db'}")
    study.set_metric_names(["hard avg@k"])
    study.add_trial(optuna.trial.create_trial(
        params={"teacher_samples": 4}, distributions={"teacher_samples": optuna.distributions.CategoricalDistribution([2, 4])},
        value=50.0, user_attrs={"run_id": planned[0].run_id, "run_path": paths[0], "run_paths": paths,
                                "seed_sd": {"hard avg@k": 1.25}}))
    out = tmp_path / "out"
    build_report("nl", store, out)
    results = pd.read_parquet(out / "results.parquet")
    assert set(results["seed"]) == {0, 1} and len(results) == 2 * 2 * 20 * 2  # both seeds' runs, not the first
    hard = results[results["task"] == "brts_synthetic_hard"]
    row = next(line for line in (out / "index.md").read_text().splitlines() if line.startswith("| 0 | complete |"))
    assert "50.00 ± 1.25" in row and "2 seeds" in row
    assert f"{100 * hard.groupby('problem_id')['correct'].mean().mean():.1f}" in row
