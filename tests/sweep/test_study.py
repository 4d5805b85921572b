"""The Optuna side without training: sampler seeding, dead-worker detection, one study per sweep spec."""

from __future__ import annotations

import multiprocessing as mp
import threading
import time
from multiprocessing.synchronize import Barrier

import optuna
import pytest
from optuna.trial import TrialState

from brts.sweep.load import load_sweep
from brts.sweep.study import (
    SweepError,
    WorkerLock,
    create_or_load,
    fail_stale,
    make_sampler,
    open_storage,
    storage_url,
)
from brts.sweep.trial import suggest, tag_worker


def test_each_trial_draws_from_its_own_seed(tiny_sweep):
    sweep = load_sweep(tiny_sweep, ["sampler.name=tpe"])

    def draws(count):
        study = optuna.create_study(direction="maximize")
        out = []
        for _ in range(count):
            study.sampler = make_sampler(sweep, draw=len(study.trials))
            out.append(suggest(study.ask(), sweep)["aux_weight"])  # left running, as in parallel workers
        return out

    first = draws(4)
    assert len(set(first)) == 4  # two workers asking at once do not get the same values
    assert draws(4) == first  # and a rerun of the same sweep draws the same ones


def _hold_lock(folder, tags):
    worker = WorkerLock(folder)
    tags.put(worker.tag())
    time.sleep(120)  # killed by the test


def test_a_dead_workers_trial_is_failed_and_enqueued_again_a_live_ones_is_not(tmp_path, tiny_sweep):
    sweep = load_sweep(tiny_sweep)
    url = storage_url(sweep, tmp_path)
    (tmp_path / "sweeps" / "sweep").mkdir(parents=True)
    study = create_or_load(sweep, open_storage(url, create=True), url)
    ctx = mp.get_context("spawn")  # as the sweep's workers; a fork of a process with torch threads can hang
    tags = ctx.Queue()
    workers = [ctx.Process(target=_hold_lock, args=(tmp_path / "workers", tags), daemon=True)
               for _ in range(2)]
    for w in workers:
        w.start()
    try:
        for _ in range(2):
            trial = study.ask()
            suggest(trial, sweep)
            tag_worker(study, trial, tags.get(timeout=120))
        dead = next(w for w in workers if w.pid == study.trials[0].system_attrs["brts:worker"]["pid"])
        dead.kill()
        dead.join()

        assert fail_stale(study) == [0]
        assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.RUNNING, TrialState.WAITING]
        retry = study.trials[2]
        assert retry.system_attrs["fixed_params"] == study.trials[0].params and retry.user_attrs["retry_of"] == 0
        assert fail_stale(study) == []  # the live worker's trial stays running
    finally:
        for w in workers:
            w.kill()
            w.join()


def test_a_study_made_by_another_spec_is_refused(tmp_path, tiny_sweep):
    sweep = load_sweep(tiny_sweep)
    url = storage_url(sweep, tmp_path)
    (tmp_path / "sweeps" / "sweep").mkdir(parents=True)
    create_or_load(sweep, open_storage(url, create=True), url)
    create_or_load(load_sweep(tiny_sweep, ["trials=2", "sampler.name=random"]), open_storage(url, create=True), url)
    changed = load_sweep(tiny_sweep, ["space.method.teacher_samples={choices: [1, 2]}"])
    with pytest.raises(SweepError, match=r"different sweep \(space changed\)"):
        create_or_load(changed, open_storage(url, create=True), url)


def test_a_damaged_journal_is_one_line_naming_it(tiny_sweep, tmp_path):
    from brts.sweep.study import load_existing

    sweep = load_sweep(tiny_sweep)
    url = str(tmp_path / "study.log")
    create_or_load(sweep, open_storage(url, create=True), url)
    lines = (tmp_path / "study.log").read_bytes().split(b"\n")
    (tmp_path / "study.log").write_bytes(b"\n".join([lines[0], b"\x00\xffgarbage", *lines[1:]]))
    for attempt in (lambda: load_existing(sweep, url), lambda: create_or_load(sweep, open_storage(url, create=True), url)):
        with pytest.raises(SweepError, match=f"storage {url}: damaged.*store check --repair"):
            attempt()


def _create_at_once(sweep, root: str, rounds: int, barrier: Barrier, out: mp.Queue) -> None:
    """Each round: wait for the others, then create or load the sweep's study in that round's new SQLite file."""
    for r in range(rounds):
        try:
            barrier.wait(timeout=60)
            url = f"sqlite:///{root}/study-{r}.db"
            create_or_load(sweep, open_storage(url, create=True), url)
            out.put("ok")
        except Exception as exc:
            out.put(f"{type(exc).__name__}: {exc}")
            if isinstance(exc, threading.BrokenBarrierError):
                return


def test_sweeps_creating_one_new_sqlite_study_at_once_all_open_it(tmp_path, tiny_sweep):
    """Several `brts sweep run` on one new sqlite:/// file: Optuna creates its tables when missing, and without the
    lock beside the file several would at once ("table studies already exists")."""
    if "fork" not in mp.get_all_start_methods():
        pytest.skip("needs the fork start method")
    sweep, processes, rounds = load_sweep(tiny_sweep), 4, 5
    ctx = mp.get_context("fork")  # a spawned process would import torch (seconds); these touch only Optuna's SQLite
    barrier, out = ctx.Barrier(processes), ctx.Queue()
    procs = [ctx.Process(target=_create_at_once, args=(sweep, str(tmp_path), rounds, barrier, out), daemon=True)
             for _ in range(processes)]
    for p in procs:
        p.start()
    outcomes = [out.get(timeout=120) for _ in range(processes * rounds)]
    for p in procs:
        p.join(30)
    assert [o for o in outcomes if o != "ok"] == [] and [p.exitcode for p in procs] == [0] * processes
    for r in range(rounds):
        assert [s.study_name for s in optuna.get_all_study_summaries(f"sqlite:///{tmp_path}/study-{r}.db")] == ["sweep"]
