"""Cluster executors on this machine: submitit's local executor and a local Ray instance, on a tiny grid,
give the same results as the local executor; the dry-run plan shows per-run resources."""

from __future__ import annotations

import pytest

from brts.progress import Reporter  # shows nothing
from brts.runs.cluster import ray_options, submitit_plan
from brts.runs.executor import execute
from brts.runs.plan import plan
from brts.runs.store import RunStore
from brts.spec import load_spec

SMALL = ("resources.memory_gb=0.5", "resources.cpus=1", "resources.time_min=20", "train.steps=2")



def _grid(spec_file, *extra):
    return plan(load_spec(str(spec_file), [*SMALL, *extra]))


@pytest.fixture(scope="module")
def local_results(tmp_path_factory, tiny_models):
    from tests.conftest import tiny_spec_text

    folder = tmp_path_factory.mktemp("local")
    spec = folder / "tiny.yaml"
    spec.write_text(tiny_spec_text(tiny_models))
    outcomes = execute(_grid(spec), RunStore(folder / "store"), reporter=Reporter())
    assert [o.action for o in outcomes] == ["ran", "ran"]
    return spec, [o.record["eval"] for o in outcomes]


def test_submitit_local_executor_matches_local_pool(tmp_path, local_results):
    pytest.importorskip("submitit")
    spec, expected = local_results
    store = RunStore(tmp_path / "store")
    outcomes = execute(_grid(spec), store, workers=2, executor="slurm", submitit_cluster="local", reporter=Reporter())
    assert [o.action for o in outcomes] == ["ran", "ran"], [o.record.get("error") for o in outcomes]
    assert [o.record["eval"] for o in outcomes] == expected
    assert list((tmp_path / "store" / ".submitit" / "tiny").iterdir())  # job logs next to the runs
    # A second submission finds every run finished and submits nothing.
    assert [o.action for o in execute(_grid(spec), store, executor="slurm", submitit_cluster="local",
                                      reporter=Reporter())] == ["cached", "cached"]


def test_ray_local_instance_matches_local_pool(tmp_path, local_results):
    ray = pytest.importorskip("ray")
    spec, expected = local_results
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=80 * 2**20)
    try:
        outcomes = execute(_grid(spec), RunStore(tmp_path / "store"), executor="ray", reporter=Reporter())
    finally:
        ray.shutdown()
    assert [o.action for o in outcomes] == ["ran", "ran"], [o.record.get("error") for o in outcomes]
    assert [o.record["eval"] for o in outcomes] == expected


def test_cluster_requests_follow_the_resources_section(tiny_spec_file):
    grid = plan(load_spec(str(tiny_spec_file), [
        "resources={gpus: 8, cpus: 32, memory_gb: 200, time_min: 720, partition: gpu, slurm: {qos: high}}"]))
    (array,) = submitit_plan(grid, parallelism=4)
    assert array["parameters"] == {
        "name": "brts-tiny", "nodes": 1, "tasks_per_node": 1, "cpus_per_task": 32, "gpus_per_node": 8,
        "mem_gb": 200, "timeout_min": 720, "slurm_array_parallelism": 4, "slurm_partition": "gpu",
        "slurm_additional_parameters": {"qos": "high"},
    }
    assert [r["processes"] for r in array["runs"]] == [8, 8]  # one training process per GPU
    assert ray_options(grid[0].resources) == {"num_cpus": 32, "num_gpus": 8, "memory": 200 * 2**30,
                                              "max_retries": 3}


def test_dry_run_prints_the_submission_and_runs_nothing(tmp_path, tiny_spec_file):
    from typer.testing import CliRunner

    from brts.cli import app

    store = tmp_path / "store"
    args = ["exp", "run", str(tiny_spec_file), "--store", str(store), "--dry-run", "--set", "resources.partition=gpu"]
    slurm = CliRunner().invoke(app, [*args, "--executor", "slurm"], env={"COLUMNS": "300"})
    assert slurm.exit_code == 0, slurm.output
    assert "2 to run with --executor slurm" in slurm.output and "job array of 2" in slurm.output
    assert '"slurm_partition": "gpu"' in slurm.output and '"timeout_min": 60' in slurm.output
    ray = CliRunner().invoke(app, [*args, "--executor", "ray"], env={"COLUMNS": "300"})
    assert ray.exit_code == 0 and ray.output.count("ray task") == 2
    assert not store.exists()  # nothing prepared, built or run


def test_a_preempted_job_is_requeued_as_the_same_run(tmp_path, tiny_spec_file):
    submitit = pytest.importorskip("submitit")
    from brts.runs.cluster import RunJob

    planned = _grid(tiny_spec_file)[0]
    requeued = RunJob(planned, tmp_path).checkpoint()  # what submitit calls on preemption or timeout
    assert isinstance(requeued, submitit.helpers.DelayedSubmission)
    assert isinstance(requeued.function, RunJob)
    assert (requeued.function.planned, requeued.function.store_root) == (planned, tmp_path)


@pytest.mark.slow
def test_a_preempted_local_job_requeues_and_resumes_from_its_checkpoint(tmp_path, tiny_spec_file):
    """Preemption for real: SIGUSR2 to a running submitit job after its step-2 checkpoint; the job requeues
    and the run finishes with the metrics of an uninterrupted run."""
    submitit = pytest.importorskip("submitit")
    import json
    import signal
    import time

    import psutil

    from brts.runs.cluster import RunJob
    from brts.runs.run import load_pair
    from brts.tasks.registry import make_task
    from brts.train import Trainer

    (planned,) = plan(load_spec(str(tiny_spec_file), [*SMALL, "arms=[opd]", "train.steps=40",
                                                      "train.checkpoint_every=2"]))
    executor = submitit.AutoExecutor(folder=tmp_path / "jobs", cluster="local")
    executor.update_parameters(timeout_min=20)
    job = executor.submit(RunJob(planned, tmp_path / "store"))
    folder = tmp_path / "store" / planned.experiment / planned.run_id
    deadline = time.time() + 300
    while not (folder / "checkpoints" / "step_000002").exists():
        assert time.time() < deadline and not job.done(), "the job never reached its first checkpoint"
        time.sleep(0.1)
    for task in psutil.Process(job._process.pid).children(recursive=True):  # the job's python process
        task.send_signal(signal.SIGUSR2)
    status, record = job.result()
    assert status == "done" and record["status"] == "finished", record.get("error")
    assert record["attempts"] == 2  # preempted once, requeued, resumed

    reference = tmp_path / "reference"
    reference.mkdir()
    expected = Trainer(planned.config, load_pair(planned.config), make_task(planned.config.task), reference).run()
    got = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    drop_time = lambda log: [{k: v for k, v in m.items() if not k.startswith("time/")} for m in log]  # noqa: E731
    assert drop_time(got) == drop_time(expected)
