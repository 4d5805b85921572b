"""Cost estimates from the spec alone: parameter counts, teacher tokens, memory; the paper spec plans offline."""

from __future__ import annotations

import json

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM
from typer.testing import CliRunner

from brts.cli import app
from brts.models.estimate import (
    GPUS,
    KNOWN_MODELS,
    architecture,
    estimate,
    fits,
    memory_estimate,
    teacher_tokens,
)
from brts.runs.plan import plan
from brts.spec import load_spec


def test_parameter_counts_match_published_and_instantiated_models(tmp_path):
    # Published totals (safetensors metadata) of two known models.
    assert KNOWN_MODELS["Qwen/Qwen2.5-0.5B"].parameters == 494_032_768
    assert KNOWN_MODELS["deepseek-ai/DeepSeek-R1-Distill-Qwen-7B"].parameters == 7_615_616_512
    config = Qwen2Config(hidden_size=64, num_hidden_layers=3, intermediate_size=160, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=300, tie_word_embeddings=False)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config)
    (tmp_path / "config.json").write_text(json.dumps(config.to_dict()))
    assert architecture(str(tmp_path)).parameters == sum(p.numel() for p in model.parameters())
    assert architecture("unknown-org/unknown-model") is None


def test_paper_spec_estimates():
    runs = {p.arm: p for p in plan(load_spec("paper-r1-distill"))}
    assert set(runs) == {"opd", "brts_n2", "brts_n4"}
    # 220 steps x 64 prompts x (N + 1 hinted retry) x 7168 tokens, at most.
    assert teacher_tokens(runs["opd"].config) == 0
    assert teacher_tokens(runs["brts_n4"].config) == 220 * 64 * 5 * 7168
    est = estimate(runs["brts_n4"].config, runs["brts_n4"].resources)
    assert est.student_params == est.teacher_params == 1_777_088_000  # JustRL is an RL-trained copy of the student
    assert est.memory_gib["student"] == 16 * 1_777_088_000 / 2**30
    memory = est.memory_gib
    assert memory["total"] == memory["student"] + memory["teacher"] + max(
        memory["sampling"], memory["alignment"], memory["update"])
    assert memory["sampling"] == 0  # vLLM rollouts: the engines are the GPU fractions beside the process


def test_streamed_log_probs_are_what_let_the_paper_runs_fit():
    runs = {p.arm: p for p in plan(load_spec("paper-r1-distill"))}
    cfg, resources = runs["brts_n4"].config, runs["brts_n4"].resources
    streamed, full = memory_estimate(cfg, resources), memory_estimate(cfg, resources, streamed=False)
    # Before: 8 prompts x 5 candidates x (256 + 7168) x 151,936 bf16 logits and 7168 x V float32 log-probs.
    assert full["alignment"] > 200 and full["total"] > GPUS["141 GB"]
    assert streamed["alignment"] < 2 and streamed["update"] < 5
    assert fits(streamed, cfg, GPUS["80 GB"]) and not fits(full, cfg, GPUS["141 GB"])
    # Two vLLM engines at 25% each leave half an 80 GB GPU: the 1.78B student's 26.5 GiB of weights, gradients
    # and AdamW state and the 7.6B teacher's 14.2 GiB do not fit there; with engines at 10% they do.
    larger = next(p for p in plan(load_spec("paper-r1-distill-7b")) if p.arm == "brts_n4").config
    assert not fits(memory_estimate(larger, resources), larger, GPUS["80 GB"])
    assert fits(memory_estimate(larger, resources), larger, GPUS["141 GB"])
    lean = larger.model_copy(update={"rollout": larger.rollout.model_copy(update={"vllm_memory_fraction": 0.1})})
    assert fits(memory_estimate(lean, resources), lean, GPUS["80 GB"])
    smaller_chunk = cfg.model_copy(update={"train": cfg.train.model_copy(update={"logprob_chunk": 64})})
    assert memory_estimate(smaller_chunk, resources)["update"] < streamed["update"]


def test_exp_show_paper_specs_validate_and_plan_without_the_hub(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = CliRunner().invoke(app, ["exp", "show", "paper-r1-distill"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "3 planned runs (8 training process(es) each)" in result.output
    assert "student 1.78 B parameters, teacher 1.78 B parameters" in result.output
    assert "0.50 B" in result.output  # brts_n4's teacher-token bound
    larger = CliRunner().invoke(app, ["exp", "show", "paper-r1-distill-7b"], env={"COLUMNS": "200"})
    assert larger.exit_code == 0, larger.output
    assert "student 1.78 B parameters, teacher 7.62 B parameters" in larger.output
    assert "fits 80 GB" in result.output and "fits 141 GB" in result.output

    def fit_columns(output: str) -> list[str]:
        row = next(line for line in output.splitlines() if "brts_n4" in line and "planned" in line)
        return [cell.strip() for cell in row.split("│")[-3:-1]]

    assert fit_columns(result.output) == ["yes", "yes"]
    assert fit_columns(larger.output) == ["no", "yes"]


def test_sampling_follows_the_keyed_sampler(tmp_path):
    config = Qwen2Config(hidden_size=64, num_hidden_layers=2, intermediate_size=128, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=1000, tie_word_embeddings=True)
    (tmp_path / "config.json").write_text(json.dumps(config.to_dict()))
    (tmp_path / "spec.yaml").write_text(
        f"name: sampling\nmodels: {{teacher: {tmp_path}, student: {tmp_path}}}\n"
        "train: {prompts_per_step: 8, samples_per_prompt: 2, max_new_tokens: 16, validation_problems: 2,\n"
        "        validation_k: 1}\neval: {max_new_tokens: 16}\narms: [opd, brts]\nseeds: [0]\n")
    runs = {p.arm: p for p in plan(load_spec(str(tmp_path / "spec.yaml")))}
    memory = memory_estimate(runs["brts"].config, runs["brts"].resources, prompt_tokens=10, device="cpu")
    # float32 KV cache: 2 (keys, values) x 2 KV heads x 16 dims x 2 layers x 4 bytes = 512 bytes per token.
    # The teacher's Tier-1 draw is the largest: 8 prompts x N = 4 = 32 rows, 26 tokens at the end.
    prefill = 32 * 10 * 512 + 17 * 4 * (8 * 10) * 64 + (8 + 32) * 1000 * 4  # cache, one layer, last-position logits
    decode = (32 * 26 * 512 * 1.5  # the cache at full length, and one layer's copy as it grows
              + 2 * 32 * 1000 * 4  # the step's logits and the previous step's
              + 32 * 1000 * 16)  # the sampler's temporaries: all 32 rows fit one chunk of 2^20 entries
    assert memory["sampling"] * 2**30 == decode > prefill
    # opd draws only the student's 16 rows
    opd = memory_estimate(runs["opd"].config, runs["opd"].resources, prompt_tokens=10, device="cpu")
    assert opd["sampling"] * 2**30 == 16 * 26 * 512 * 1.5 + 2 * 16 * 1000 * 4 + 16 * 1000 * 16


def test_the_chunk_sizes_are_the_codes():
    from brts.models import estimate
    from brts.rollout import nucleus
    from brts.training import output_head

    assert estimate.SAMPLER_CHUNK == nucleus._CHUNK
    assert estimate.CPU_CHUNK_VALUES == output_head.CPU_CHUNK_VALUES
