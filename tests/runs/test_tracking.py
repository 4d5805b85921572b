"""Experiment trackers (the spec's `tracking`) with the real libraries in their local modes: TensorBoard event
files and an MLflow SQLite store read back hold every metrics.jsonl value, the config and the final evaluation; a
stopped run resumed continues the same tracker runs without sending a step twice; a tracker that cannot start is
one warning line; W&B offline leaves its run files."""

from __future__ import annotations

import json
import math
import sys

import pytest

from brts.runs.experiment import run_experiment
from brts.runs.observer import RunObserver
from brts.runs.plan import plan
from brts.runs.run import RunStopped
from brts.runs.tracking import RECORD_KEY, run_name
from brts.spec import load_spec
from brts.store import RunStore
from tests.conftest import tiny_spec_text

pytest.importorskip("tensorboard")
pytest.importorskip("mlflow")


def _spec(tmp_path, tiny_models, backends, *overrides):
    path = tmp_path / "tiny.yaml"
    path.write_text(tiny_spec_text(tiny_models, tracking=f"{{backends: [{', '.join(backends)}], tags: [paper]}}"))
    return load_spec(str(path), ["arms=[brts]", *overrides])


@pytest.fixture
def mlflow_uri(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def _numbers(row):
    return {k: v for k, v in row.items() if k != "step" and isinstance(v, (int, float))}


def _tensorboard(run, planned):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run.tracking_dir / "tensorboard" / run_name(planned)), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def _mlflow(uri, planned):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(planned.experiment)
    runs = client.search_runs([experiment.experiment_id], f"tags.`brts.run_id` = '{planned.run_id}'")
    assert len(runs) == 1  # one tracker run per brts run, resumed or not
    found = runs[0]
    history = {key: [(m.step, m.value) for m in sorted(client.get_metric_history(found.info.run_id, key),
                                                          key=lambda m: m.step)] for key in found.data.metrics}
    return found, history


def _per_key(rows):
    """metrics.jsonl as {key: [(step, value)]}, the None values (metrics that do not apply) left out."""
    out: dict[str, list] = {}
    for row in rows:
        for key, value in _numbers(row).items():
            out.setdefault(key, []).append((row["step"], value))
    return out


def _same(sent, expected, skip=()):
    keys = {k for k in expected if not k.startswith(skip)} if skip else set(expected)
    assert keys <= set(sent), keys - set(sent)
    for key in keys:
        assert [s for s, _ in sent[key]] == [s for s, _ in expected[key]], key
        for (_, got), (_, want) in zip(sent[key], expected[key], strict=True):
            assert math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-6), (key, got, want)


def test_tensorboard_and_mlflow_hold_every_metric_the_config_and_the_final_evaluation(tmp_path, tiny_models, mlflow_uri):
    spec = _spec(tmp_path, tiny_models, ["tensorboard", "mlflow"])
    result = run_experiment(spec, tmp_path / "store", references=False)
    assert result.ok
    planned = result.planned[0]
    run = RunStore(tmp_path / "store").run(planned)
    rows, record = run.metrics(), run.record()
    expected = _per_key(rows)
    assert [r["step"] for r in rows] == [0, 1, 2, 3, 4] and any(k.startswith("val/") for k in expected)
    task = next(iter(record["eval"]))

    assert record[RECORD_KEY]["tensorboard"] == {"id": None, "step": 4}
    scalars = _tensorboard(run, planned)
    _same(scalars, expected)
    assert scalars[f"eval/{task}/avg_at_k"] == [(4, pytest.approx(record["eval"][task]))]

    found, history = _mlflow(mlflow_uri, planned)
    assert record[RECORD_KEY]["mlflow"] == {"id": found.info.run_id, "step": 4}
    _same(history, expected)
    assert found.data.metrics[f"eval/{task}/avg_at_k"] == pytest.approx(record["eval"][task])
    assert {f"eval/{t}/pass_at_k" for t in record["eval"]} <= set(found.data.metrics)
    assert found.info.run_name == f"brts-seed0-{planned.run_id}"
    tags = found.data.tags
    assert (tags["brts.arm"], tags["brts.seed"], tags["brts.experiment"], "paper" in tags) == ("brts", "0", "tiny", True)
    params = found.data.params
    assert params["train.steps"] == "4" and params["method.aux_weight"] == "0.5" and params["brts.run_id"] == planned.run_id
    assert params["train.micro_batch_size"] == "null"


class StopAt(RunObserver):
    def __init__(self, step: int) -> None:
        self.at = step

    def step(self, planned, step, total, metrics):
        if step == self.at:
            raise RunStopped(step, "test")


def test_a_stopped_run_resumed_continues_the_same_tracker_runs_and_sends_no_step_twice(tmp_path, tiny_models,
                                                                                     mlflow_uri):
    # Checkpoints at steps 2 and 4: stopped after step 3, the resumed run redoes step 3 from the step-2 checkpoint.
    spec = _spec(tmp_path, tiny_models, ["tensorboard", "mlflow"], "train.steps=4")
    first = run_experiment(spec, tmp_path / "store", references=False, observer=StopAt(3))
    planned = first.planned[0]
    run = RunStore(tmp_path / "store").run(planned)
    assert run.record()["status"] == "stopped" and run.record()[RECORD_KEY]["mlflow"]["step"] == 3
    mlflow_id = run.record()[RECORD_KEY]["mlflow"]["id"]

    assert run_experiment(spec, tmp_path / "store", references=False).ok
    record = run.record()
    assert record["status"] == "finished" and record[RECORD_KEY]["mlflow"] == {"id": mlflow_id, "step": 4}
    expected = _per_key(run.metrics())
    found, history = _mlflow(mlflow_uri, planned)  # one run, each step once
    assert found.info.run_id == mlflow_id
    # Step 3 was sent once, from the first attempt: its times, and the teacher token counters (the redo read its
    # teacher samples from the pool the first attempt filled), are that attempt's; every other value is the same.
    redone = ("time/", "teacher/")
    _same(history, expected, skip=redone)
    scalars = _tensorboard(run, planned)
    assert len(list((run.tracking_dir / "tensorboard" / run_name(planned)).glob("events.out.tfevents.*"))) >= 2
    _same(scalars, expected, skip=redone)


def test_a_tracker_that_cannot_start_is_one_warning_line_and_the_run_goes_on(tmp_path, tiny_models, monkeypatch,
                                                                            capfd):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "nosuchscheme://nowhere")  # MLflow refuses it when the run starts
    monkeypatch.setitem(sys.modules, "wandb", None)  # `import wandb` fails, as without the package
    spec = _spec(tmp_path, tiny_models, ["mlflow", "wandb", "tensorboard"], "train.steps=1")
    result = run_experiment(spec, tmp_path / "store", references=False)
    assert result.ok
    warnings = [line for line in capfd.readouterr().err.splitlines() if "tracker" in line]
    assert len(warnings) == 2, warnings
    assert warnings[0].startswith("warning: tiny brts seed 0: tracker mlflow did not start (")
    assert warnings[1].startswith("warning: tiny brts seed 0: tracker wandb did not start (ModuleNotFoundError")
    assert warnings[1].endswith("pip install 'brts[trackers]'); the run goes on without it (metrics.jsonl keeps "
                                "every metric)")
    run = RunStore(tmp_path / "store").run(result.planned[0])
    assert set(run.record()[RECORD_KEY]) == {"tensorboard"}
    assert [s for s, _ in _tensorboard(run, result.planned[0])["surrogate/total"]] == [1]  # the other one went on


def test_wandb_offline_leaves_its_run_files_and_a_resumed_run_keeps_its_id(tmp_path, tiny_models, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    spec = _spec(tmp_path, tiny_models, ["wandb"], "train.steps=2", "train.checkpoint_every=1")
    first = run_experiment(spec, tmp_path / "store", references=False, observer=StopAt(1))
    run = RunStore(tmp_path / "store").run(first.planned[0])
    wandb_id = run.record()[RECORD_KEY]["wandb"]["id"]
    assert wandb_id and run.record()[RECORD_KEY]["wandb"]["step"] == 1
    assert run_experiment(spec, tmp_path / "store", references=False).ok
    assert run.record()[RECORD_KEY]["wandb"] == {"id": wandb_id, "step": 2}
    files = sorted(run.tracking_dir.glob(f"wandb/offline-run-*-{wandb_id}/run-{wandb_id}.wandb"))
    assert len(files) == 2 and all(f.stat().st_size > 0 for f in files)  # both starts, one W&B run id


def test_tracking_changes_no_run_id_and_an_unknown_backend_is_one_line(tmp_path, tiny_models):
    from typer.testing import CliRunner

    from brts.cli import app

    path = tmp_path / "tiny.yaml"
    path.write_text(tiny_spec_text(tiny_models))
    plain = [p.run_id for p in plan(load_spec(str(path)))]
    tracked = load_spec(str(path), ["tracking.backends=[tensorboard, mlflow]", "tracking.project=x"])
    assert [p.run_id for p in plan(tracked)] == plain and plan(tracked)[0].tracking.backends == ("tensorboard", "mlflow")

    result = CliRunner().invoke(app, ["exp", "run", str(path), "--store", str(tmp_path / "s"), "--set",
                                      "tracking.backends=[tensorbored]"])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "tracking.backends" in lines[0] and "tensorbored" in lines[0]
    assert "tensorboard, mlflow, wandb" in lines[0]
    assert not (tmp_path / "s").exists()
    assert json.loads(json.dumps(tracked.tracking.model_dump()))["project"] == "x"


def test_an_error_while_the_trackers_start_is_a_failed_run_not_a_crash(tmp_path, tiny_models, monkeypatch):
    from brts.runs import run as run_module

    def broken(*_args, **_kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(run_module.RunTracking, "start", broken)
    spec = _spec(tmp_path, tiny_models, ["tensorboard"], "train.steps=1")
    result = run_experiment(spec, tmp_path / "store", references=False)
    [outcome] = result.outcomes
    assert not result.ok and outcome.record["status"] == "failed"
    assert outcome.record["error"] == "OSError: disk full"
