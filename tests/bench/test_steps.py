"""`brts bench` end to end on the tiny models, at a size that takes seconds."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from brts.cli import app


def test_bench_prints_the_table_and_its_figures_hold_together(tmp_path, tiny_models, monkeypatch):
    monkeypatch.setenv("BRTS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("BRTS_VLLM_PYTHON", raising=False)
    monkeypatch.setenv("COLUMNS", "250")  # one table row per line
    sets = [f"models.teacher={tiny_models.teacher_dir}", f"models.student={tiny_models.student_dir}",
            "train.max_new_tokens=12", "train.prompts_per_step=2", "seeds=[0, 1]"]
    args = ["bench", *[x for s in sets for x in ("--set", s)], "--steps", "1", "--count-steps", "2",
            "--store", str(tmp_path / "store"), "--gen-models", "builtin", "--gen-batches", "2", "--gen-reps", "1",
            "--json", str(tmp_path / "bench.json")]
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    for row in ("opd", "brts N=1, pool cold", "brts N=8, pool warm", "N=8 runs alone", "built-in teacher, batch 2",
                "keyed / generate", "wall time"):
        assert row in result.output, row
    data = json.loads((tmp_path / "bench.json").read_text())
    tokens = data["tokens"]
    assert tokens["runs"] == 5 * 2 + 4 * 2
    assert tokens["n8_alone"] <= tokens["with_pool"] < tokens["without_pool"]
    assert tokens["drawn_now"] == tokens["distinct_samples"]  # a cold count pool
    steps = {(s["arm"], s["pool"]): s for s in data["steps"]}
    assert len(steps) == 9
    assert all(steps[(f"brts_n{n}", "warm")]["teacher_tokens_generated"] == 0 for n in (1, 2, 4, 8))
    assert all(steps[(f"brts_n{n}", "cold")]["teacher_tokens_generated"] > 0 for n in (1, 2, 4, 8))
    assert steps[("opd", "-")]["seconds"]["teacher_sample"] == 0 and steps[("opd", "-")]["peak_rss_mib"] > 0
    (rate,) = data["throughput"]["rates"]
    assert rate["batch"] == 2 and rate["keyed"] > 0 and rate["generate"] > 0 and len(rate["ratios"]) == 1
    assert data["throughput"]["vllm"] is None


def test_generation_only_measures_model_folders_and_refuses_bad_options(tmp_path, tiny_models, monkeypatch):
    monkeypatch.setenv("BRTS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("BRTS_VLLM_PYTHON", raising=False)
    sets = ["--set", f"models.teacher={tiny_models.teacher_dir}", "--set", f"models.student={tiny_models.student_dir}"]
    args = ["bench", *sets, "--generation-only", "--gen-models", str(tiny_models.student_dir), "--gen-batches", "1,3",
            "--gen-reps", "2", "--json", str(tmp_path / "bench.json")]
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "bench.json").read_text())
    assert data["steps"] == [] and data["tokens"] == {}
    assert [(r["model"], r["batch"], len(r["ratios"])) for r in data["throughput"]["rates"]] == [
        (str(tiny_models.student_dir), 1, 2), (str(tiny_models.student_dir), 3, 2)]
    for bad in (["--gen-models", str(tmp_path)], ["--gen-batches", "8,x"], ["--gen-batches", "0"]):
        refused = CliRunner().invoke(app, ["bench", *sets, "--generation-only", *bad])
        assert refused.exit_code == 2 and "--gen-" in refused.output and "Traceback" not in refused.output
