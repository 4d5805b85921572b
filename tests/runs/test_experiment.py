"""`run_experiment`, the one path every run takes: what it returns, the events an observer sees, the pre-fill."""

from __future__ import annotations

from brts.runs.experiment import run_experiment
from brts.runs.observer import Observers, RunObserver
from brts.spec import load_spec
from brts.store import RunStore


class Recorder(RunObserver):
    def __init__(self) -> None:
        self.events: list[tuple] = []

    def prefill_progress(self, done, total):
        self.events.append(("prefill", done, total))

    def runs_started(self, todo, cached):
        self.events.append(("started", len(todo), len(cached)))

    def step(self, planned, step, total, metrics):
        self.events.append(("step", planned.arm, step, total, "surrogate/total" in metrics or "loss/total" in metrics))

    def run_finished(self, outcome):
        self.events.append(("finished", outcome.planned.arm, outcome.action))

    def runs_finished(self, outcomes):
        self.events.append(("all", len(outcomes)))

    def log(self, line):
        self.events.append(("log", line))


def test_an_experiment_runs_in_order_with_every_event_and_a_second_call_reuses_it(tmp_path, tiny_spec_file):
    spec = load_spec(str(tiny_spec_file), ["train.steps=2", "pool.prefill=true"])
    one, two = Recorder(), Recorder()
    result = run_experiment(spec, tmp_path / "store", observer=Observers(one, two))
    assert one.events == two.events
    kinds = [e[0] for e in one.events]
    assert kinds.index("prefill") < kinds.index("started") < kinds.index("step") < kinds.index("all")
    assert ("started", 2, 0) in one.events and ("all", 2) in one.events
    assert [e for e in one.events if e[0] == "step"] == [
        ("step", "opd", 1, 2, True), ("step", "opd", 2, 2, True), ("step", "brts", 1, 2, True),
        ("step", "brts", 2, 2, True)]
    assert [e for e in one.events if e[0] == "finished"] == [("finished", "opd", "ran"), ("finished", "brts", "ran")]
    assert [e[1] for e in one.events if e[0] == "log"] == [
        "evaluating the reference teacher (" + spec.models.teacher + ")",
        "evaluating the reference student_start (" + spec.models.student + ")"]
    assert result.ok and result.counts() == {"ran": 2} and result.prefilled is not None
    assert result.prefilled.samples > 0 and set(result.references) == {"teacher", "student_start"}
    brts = RunStore(tmp_path / "store").run(result.planned[1]).metrics()
    assert brts[-1]["teacher/tokens_generated"] == 0  # the pre-fill drew every teacher sample it uses

    again = Recorder()
    second = run_experiment(spec, tmp_path / "store", observer=again)
    assert second.counts() == {"cached": 2} and second.prefilled is None
    assert [e[0] for e in again.events] == ["started", "all"]
