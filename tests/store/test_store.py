"""The run store's layout: where runs, sweep trials, references and the one teacher sample pool live."""

from __future__ import annotations

from pathlib import Path

from brts.runs.plan import plan
from brts.spec import ExperimentSpec, PoolSpec
from brts.store import RunFolder, RunStore


def _spec(**fields) -> ExperimentSpec:
    return ExperimentSpec.model_validate({"name": "exp", "arms": ["opd"], "seeds": [0], **fields})


def test_runs_of_experiments_and_sweeps_and_references_have_their_folders(tmp_path):
    store = RunStore(tmp_path)
    [run] = plan(_spec())
    [trial] = plan(_spec(name="n-sweep"), kind="sweep")
    assert store.run(run).path == tmp_path / "exp" / run.run_id
    assert store.run(trial).path == tmp_path / "sweeps" / "n-sweep" / trial.run_id
    assert store.sweep_dir("n-sweep") == tmp_path / "sweeps" / "n-sweep"
    assert store.reference("exp", "teacher").path == tmp_path / "exp" / "reference" / "teacher"


def test_one_pool_per_store_unless_the_spec_names_a_file(tmp_path):
    store = RunStore(tmp_path / "store")
    assert store.pool_file(PoolSpec()) == tmp_path / "store" / ".pool" / "teacher-samples.sqlite"
    assert store.pool_file(PoolSpec(path=str(tmp_path / "p.sqlite"))) == tmp_path / "p.sqlite"


def test_prepare_writes_config_and_a_planned_record_once(tmp_path):
    store = RunStore(tmp_path)
    [run] = plan(_spec())
    folder = store.prepare(run)
    assert folder.config() == run.config and folder.status == "planned"
    record = folder.record()
    assert (record["arm"], record["seed"], record["experiment"], record["run_id"]) == ("opd", 0, "exp", run.run_id)
    folder.update_record(status="finished")
    assert store.prepare(run).status == "finished"  # an existing record is kept


def test_finished_runs_are_found_in_experiments_and_sweeps(tmp_path):
    store = RunStore(tmp_path)
    [run] = plan(_spec())
    [trial] = plan(_spec(name="n-sweep", arms=[{"name": "b", "preset": "brts"}]), kind="sweep")
    store.prepare(run).update_record(status="running")
    store.prepare(trial).update_record(status="finished")
    assert store.find_finished(run.run_id) is None and store.find(run.run_id) == store.run(run)
    assert store.find_finished(trial.run_id) == store.run(trial) == store.find(trial.run_id)
    assert store.experiments() == ["exp"] and store.sweeps() == ["n-sweep"]
    assert [f.path for f in store.runs("exp")] == [store.run(run).path]


def test_a_folder_without_a_record_is_planned_and_not_a_run(tmp_path):
    folder = RunFolder(Path(tmp_path) / "nothing")
    assert folder.status == "planned" and not folder.is_run and folder.metrics() == [] and folder.last_step() == 0


def test_record_and_config_honour_the_umask(tmp_path):
    """A store shared by a group: record.json and config.yaml get the mode `open` would give (0666 less the umask),
    not mkstemp's 0600. In a process with umask 027, so the test does not depend on the caller's."""
    import os
    import subprocess
    import sys

    script = ("import sys; from brts.runs.plan import plan; from brts.spec import ExperimentSpec; "
              "from brts.store import RunStore; import pathlib; "
              "[run] = plan(ExperimentSpec.model_validate({'name': 'exp', 'arms': ['opd'], 'seeds': [0]})); "
              "RunStore(pathlib.Path(sys.argv[1])).prepare(run).update_record(status='finished')")
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True, preexec_fn=lambda: os.umask(0o027))
    [record] = tmp_path.glob("exp/*/record.json")
    for path in (record, record.parent / "config.yaml"):
        assert path.stat().st_mode & 0o777 == 0o640, oct(path.stat().st_mode)
