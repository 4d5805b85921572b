"""What the cluster executors ask of a cluster (per-run resources) and what `--dry-run` shows; that they run a
plan like the local executor is in test_executor_conformance.py."""

from __future__ import annotations

import pytest

from brts.runs.cluster import ray_options, submitit_plan
from brts.runs.plan import plan
from brts.spec import load_spec
from tests.conftest import SMALL_JOBS


def _grid(spec_file, *extra):
    return plan(load_spec(str(spec_file), [*SMALL_JOBS, *extra]))


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


HOSTILE_COMMENT = "a b' \"c\" #SBATCH --wrap=touch /tmp/x; rm -rf ~ $(id)"


@pytest.mark.parametrize("setting", [
    {"slurm": {"comment": "x\n#SBATCH --wrap=touch /tmp/pwned"}},
    {"slurm": {"comment": "x\r#SBATCH --y"}},
    {"slurm": {"comment": "x\u2028#SBATCH --y"}},
    {"slurm": {"x\n#SBATCH --wrap=id": 1}},
    {"slurm": {"comment": ["a", "b"]}},
    {"partition": "gpu\n#SBATCH --wrap=id"},
], ids=["newline", "carriage return", "line separator", "key", "list", "partition"])
def test_a_slurm_setting_that_could_leave_its_sbatch_line_is_one_line(tmp_path, setting):
    import json

    from brts.spec import SpecError

    spec = tmp_path / "spec.yaml"
    spec.write_text(f"arms: [opd]\nseeds: [0]\nresources: {json.dumps(setting)}\n")
    with pytest.raises(SpecError) as caught:
        load_spec(str(spec))
    message = str(caught.value)
    assert "\n" not in message and "resources." in message, message
    assert "sbatch option name" in message or "#SBATCH line" in message or "expected a string" in message


def test_the_job_script_keeps_every_user_value_inside_its_own_sbatch_line(tmp_path, monkeypatch, tiny_spec_file):
    """The script submitit writes from brts's parameters (no Slurm needed: a stand-in `srun` on PATH): each
    value, quoted, reads back as written and adds no line."""
    import json
    import shlex

    submitit = pytest.importorskip("submitit")
    fake = tmp_path / "bin" / "srun"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'slurm 23.02.0'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{__import__('os').environ['PATH']}")
    setting = {"partition": "gpu #SBATCH --wrap=id", "slurm": {"comment": HOSTILE_COMMENT, "mail-user": "me@x.org"}}
    grid = _grid(tiny_spec_file, f"resources={json.dumps({**setting, 'cpus': 1, 'memory_gb': 0.5})}")
    (array,) = submitit_plan(grid, parallelism=2)
    executor = submitit.AutoExecutor(folder=tmp_path / "jobs", cluster="slurm")
    executor.update_parameters(**array["parameters"])
    script = executor._executor._make_submission_file_text("python -u -m submitit.core._submit /x", "uid")
    lines = script.splitlines()
    directives = [line for line in lines if line.startswith("#SBATCH")]
    assert all("#SBATCH" not in line for line in lines if not line.startswith("#SBATCH"))
    parsed = {}
    for line in directives:
        key, _, value = line.removeprefix("#SBATCH --").partition("=")
        [parsed[key]] = shlex.split(value) if value else [True]
    assert parsed["comment"] == HOSTILE_COMMENT and parsed["partition"] == "gpu #SBATCH --wrap=id"
    assert parsed["mail-user"] == "me@x.org" and len(directives) == len(parsed)
