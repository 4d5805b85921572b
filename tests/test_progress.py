"""The progress reporter: plain lines or JSON when nobody watches (start, stage changes, finish, and at most
every 30 s per task, also while it reports nothing), nothing when quiet, and the mode the CLI chose."""

from __future__ import annotations

import io
import json
import time

import pytest

from brts import progress
from brts.progress import JsonReporter, LinesReporter, Reporter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def lines_of(stream: io.StringIO) -> list[str]:
    return [line.split(" ", 1)[1] for line in stream.getvalue().splitlines()]  # without the HH:MM:SS stamp


def test_lines_at_start_stage_change_and_finish_and_at_most_every_interval() -> None:
    clock, out = Clock(), io.StringIO()
    with LinesReporter(out, interval=30, clock=clock, heartbeat=False) as rep:
        rep.start("r1", "opd seed 0", 240, stage="train")
        for step in range(1, 121):
            clock.now += 0.5  # 2 steps/s: 60 s for 120 steps
            rep.update("r1", step)
        rep.update("r1", stage="eval")
        clock.now += 5
        rep.finish("r1", "finished")
    assert lines_of(out) == [
        "opd seed 0: train 0/240 steps, 0s elapsed",
        "opd seed 0: train 60/240 steps, 30s elapsed, 2 steps/s, ETA 1m30s",
        "opd seed 0: train 120/240 steps, 1m00s elapsed, 2 steps/s, ETA 1m00s",
        "opd seed 0: eval 120/240 steps, 1m00s elapsed",  # the rate counts the new stage's work only
        "opd seed 0: finished after 1m05s (120/240 steps)",
    ]


def test_the_heartbeat_repeats_a_silent_task_and_finished_tasks_drop_out() -> None:
    clock, out = Clock(), io.StringIO()
    rep = LinesReporter(out, interval=30, clock=clock, heartbeat=False)
    rep.start("eval", "reference teacher", stage="evaluating aime24")
    clock.now += 29
    rep.heartbeat()
    assert len(lines_of(out)) == 1
    clock.now += 1
    rep.heartbeat()
    assert lines_of(out)[-1] == "reference teacher: evaluating aime24, 30s elapsed"
    rep.finish("eval")
    clock.now += 60
    rep.heartbeat()
    assert lines_of(out)[-1] == "reference teacher: done after 30s"
    rep.note("failed brts seed 1: boom [/x] :x:")  # plain text: never read as markup or emoji codes
    assert lines_of(out)[-1] == "failed brts seed 1: boom [/x] :x:"
    rep.update("eval", 3)  # an ended task: ignored
    assert len(lines_of(out)) == 4


def test_the_heartbeat_thread_writes_while_nothing_else_happens() -> None:
    out = io.StringIO()
    with LinesReporter(out, interval=0.05) as rep:
        rep.start("build", "building default models", 100, stage="teacher")
        deadline = time.monotonic() + 5
        while len(out.getvalue().splitlines()) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert len(out.getvalue().splitlines()) >= 3


def test_json_progress_is_one_object_a_line_with_counts_rate_and_eta() -> None:
    clock, out = Clock(), io.StringIO()
    rep = JsonReporter(out, interval=30, clock=clock, heartbeat=False)
    rep.start("runs", "runs (0 cached)", 4, unit="runs")
    clock.now += 40
    rep.update("runs", advance=1)
    rep.note("failed opd seed 0: boom")
    rep.finish("runs")
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [e["event"] for e in events] == ["start", "progress", "note", "finish"]
    progress_event = events[1]
    assert (progress_event["done"], progress_event["total"], progress_event["unit"]) == (1, 4, "runs")
    assert progress_event["elapsed_s"] == 40 and progress_event["rate"] == 0.025 and progress_event["eta_s"] == 120
    assert events[2]["text"] == "failed opd seed 0: boom" and events[3]["stage"] == "done"


def test_modes_quiet_shows_nothing_and_auto_follows_the_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(progress.ENV, "auto")
    monkeypatch.setattr(progress, "_mode", None)
    assert type(progress.make("quiet")) is Reporter
    assert progress.resolve("auto", io.StringIO()) == "lines"

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert progress.resolve("auto", Terminal()) == "bars"
    assert progress.configure(json_progress=True) == "json" and progress.mode() == "json"
    assert progress.configure(quiet=True) == "quiet"
    assert progress.configure() == "lines"  # no flag: $BRTS_PROGRESS, here auto, under pytest's captured stdout
    monkeypatch.setenv(progress.ENV, "json")
    assert progress.configure() == "json"
