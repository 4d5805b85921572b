"""`brts bench --peer trl`: TRL's GKD trainer against brts's arms on one model pair, one table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from brts.bench.peer import Measured, PeerResult, render_peer, step_prompts, write_spec
from brts.cli import app
from tests.gguf_files import write_tiny_gguf

pytest.importorskip("gguf")
runner = CliRunner()


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny chat model (ChatML template, BPE tokenizer) and its first two layers as the student."""
    from brts.models.gguf import import_gguf

    root = tmp_path_factory.mktemp("peer")
    gguf = write_tiny_gguf(root / "tiny.gguf", layers=3)
    import_gguf(gguf, root / "teacher")
    import_gguf(gguf, root / "student", layers=2)
    return root / "teacher", root / "student"


@pytest.mark.slow
def test_the_peer_bench_runs_every_configuration_on_the_same_prompts(pair, tmp_path, monkeypatch):
    pytest.importorskip("trl")
    monkeypatch.setenv("COLUMNS", "300")
    teacher, student = pair
    result = runner.invoke(app, ["bench", "--peer", "trl", "--teacher", str(teacher), "--student", str(student),
                                 "--steps", "1", "--peer-reps", "1", "--json", str(tmp_path / "peer.json")],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    for row in ("DistillationTrainer", "GKDTrainer", "top-K = vocabulary", "brts opd (top-16)", "pool cold",
                "cold + producer", "pool warm", "opd_full / trl <= 0.9", "brts_producer / brts_warm (wall)",
                "identical", "dense over the full vocabulary"):
        assert row in result.output, row
    data = json.loads((tmp_path / "peer.json").read_text())
    assert data["prompts_identical"] is True and data["trl_version"]
    runs = {r["config"]: r for r in data["runs"]}
    assert set(runs) == {"trl", "trl_gkd", "opd_full", "opd", "brts_cold", "brts_producer", "brts_warm"}
    for key in ("trl", "trl_gkd"):
        trl = runs[key]
        assert set(trl["phases"]) == {"generate", "teacher_forward", "update"}
        assert trl["phases"]["generate"] > 0 and trl["phases"]["teacher_forward"] > 0, key
        assert sum(trl["phases"].values()) == pytest.approx(trl["total"], rel=1e-6)
    assert all(0 < r["student_tokens"] <= 8 * 48 for r in runs.values())
    # The warm pool holds what the cold run drew: no teacher sampling left to time.
    assert runs["brts_cold"]["phases"]["teacher_sample"] > 10 * runs["brts_warm"]["phases"]["teacher_sample"]
    assert runs["opd"]["phases"]["teacher_sample"] == 0 == runs["opd_full"]["phases"]["teacher_sample"]
    # With the producer the steps train on the very samples the cold run drew itself: the same results.
    assert runs["brts_producer"]["results_digest"] == runs["brts_cold"]["results_digest"] == \
        runs["brts_warm"]["results_digest"]
    assert runs["opd_full"]["results_digest"] != runs["opd"]["results_digest"]  # another estimator


def test_the_like_for_like_arm_covers_the_vocabulary(pair, tmp_path):
    from brts.bench.peer import PeerSetup, vocabulary
    from brts.runs.plan import plan
    from brts.spec import load_spec

    teacher, student = pair
    planned = {p.arm: p.config.method for p in plan(load_spec(write_spec(PeerSetup(teacher, student), tmp_path)))}
    assert planned["opd_full"].opd_top_k == vocabulary(student) == json.loads(
        (student / "config.json").read_text())["vocab_size"]
    assert planned["opd"].opd_top_k == 16 and not planned["opd_full"].teacher_context


def test_trl_is_fed_the_prompts_brts_trains_on(pair, tmp_path):
    from brts.bench.peer import PeerSetup

    teacher, student = pair
    spec = write_spec(PeerSetup(teacher=teacher, student=student), tmp_path)
    texts, ids, answers = step_prompts(spec, 3)
    assert [len(t) for t in texts] == [8, 8, 8]
    for step_texts, step_ids, step_answers in zip(texts, ids, answers, strict=True):
        assert step_texts[0::2] == step_texts[1::2] and step_ids[0::2] == step_ids[1::2]  # each prompt twice
        assert len(set(step_texts)) == 4
        for text, answer in zip(step_texts, step_answers, strict=True):
            a, b = text.removeprefix("What is ").split("?")[0].split(" + ")
            assert int(a) + int(b) == int(answer) and text.endswith("\\boxed{}.")
    assert texts[0] != texts[1]


def _result() -> PeerResult:
    totals = {"trl": (10.0, 12.0), "opd": (8.0, 12.0), "brts_cold": (20.0, 26.0), "brts_warm": (10.0, 14.4),
              "brts_producer": (11.0, 20.0)}
    result = PeerResult(setup={"teacher": "/m/teacher", "student": "/m/student", "prompts": 4, "samples": 2,
                               "max_new_tokens": 48, "threads": 1}, trl_version="1.16.0", prompts_identical=True,
                        steps=2)
    for config, per_rep in totals.items():
        for rep, total in enumerate(per_rep):
            result.runs.append(Measured(config, rep, {"update": total}, total, 384, 100.0, wall=total,
                                        results_digest="d"))
    return result


def test_ratios_pair_each_repetition_and_the_table_says_what_each_target_does():
    result = _result()
    assert result.ratios("opd", "trl") == [0.8, 1.0]
    assert result.ratios("brts_cold", "opd") == [2.5, 26.0 / 12.0]
    from rich.console import Console

    console = Console(width=250, record=True)
    console.print(render_peer(result))
    text = console.export_text()
    assert "0.90 (0.80-1.00)" in text  # opd / TRL: median and range over the two repetitions
    assert "missed by 0%" not in text and "opd / trl <= 0.9" in text
    line = next(ln for ln in text.splitlines() if "brts_cold / opd" in ln)
    assert "2.33" in line and "missed by 17%" in line
    assert "met" in next(ln for ln in text.splitlines() if "brts_warm / opd" in ln)
    line = next(ln for ln in text.splitlines() if "brts_producer / brts_warm (wall)" in ln)
    assert "1.24" in line and "met" in line  # median of 1.10 and 1.39, on wall time
    assert "producer vs pool cold" in text and "identical" in next(
        ln for ln in text.splitlines() if "producer vs pool cold" in ln)


@pytest.mark.parametrize("args, message", [
    (["--peer", "nope"], "--peer 'nope'"),
    (["--peer", "trl", "--teacher", "."], "--teacher and --student go together"),
    (["--peer", "trl", "--teacher", ".", "--student", "."], "not a model folder"),
    (["--teacher", ".", "--student", "."], "choose the model pair of --peer"),
    (["--peer", "trl", "--peer-configs", "opd,nope"], "--peer-configs: 'nope' is not a configuration"),
])
def test_bad_peer_options_are_one_line_and_exit_2(args, message):
    result = runner.invoke(app, ["bench", *args])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
