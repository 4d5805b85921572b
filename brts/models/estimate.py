"""What a run will cost, from its config alone (nothing is downloaded): teacher tokens and memory per process.

Model sizes come from the architecture values of a small table of known hub models, a local folder's
`config.json`, or the built-in models' build settings; parameters are counted with the Qwen2/Llama layout
(embeddings, attention with grouped KV heads and Qwen2's q/k/v biases, gated MLP, norms, an untied head).

Memory per training process (one per GPU under data parallelism; every rank holds whole models) is what stays
resident plus the largest of the three phases of a step, which do not overlap:
  student   16 bytes/parameter: float32 weights, gradients and AdamW's two moments (master weights)
  teacher   2 bytes/parameter in bf16, 4 in float32 (frozen, no gradients or optimiser state)
  sampling  the keyed decode loop (rollout.backend hf, brts.rollout.keyed) over the largest batch it draws
            (at most 256 rows: the teacher's N samples of every prompt, the student's own, or validation's),
            the larger of its two stages: the prefill, one per distinct prompt (one layer's activations over
            the distinct prompts, their logits at the last position only and a copy for each row), and each
            decode step (the KV cache at full length and one layer's copy as it grows, the step's logits beside
            the previous step's, and the sampler's temporaries over one chunk of rows, brts.rollout.nucleus).
            vLLM engines are outside this figure: they take `rollout.vllm_memory_fraction` of the GPU each
            (`fits`).
  alignment the student's no-grad forward over the candidates the selection ranks (at most all N + M of every
            prompt, `train.micro_batch_size` rows at a time): one layer's activations and the streamed head
  update    one micro-batch's forward and backward: layer activations (34 bytes x tokens x hidden size x
            layers at 2-byte precision, the usual estimate without recomputation; with gradient checkpointing
            each layer's input plus one layer's 34) and the streamed head: `train.logprob_chunk` positions (on
            CPU at most 2^22 logits, brts.training.logprobs) x vocabulary x 4 bytes x 3 (logits, log-probs, a
            temporary), with the kept columns and the teacher's hidden states (and in bf16 the student's weight
            copies autocast keeps, 2 bytes/parameter)
  runtime   on CPU only, the Python process itself (interpreter, torch, transformers, the tokenizer)
`streamed=False` gives what the full-vocabulary computation before `brts.training.logprobs` needed instead: the
alignment scored every candidate of the step in one forward, and every scoring forward held `[rows, P + R, V]`
logits and `[rows, R, V]` float32 log-probs (with their gradients in the update).
Teacher tokens are an upper bound: every sample at the length limit and every prompt sent to Tier 2.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from brts.spec import BUILTIN_MODELS, ResourcesSpec, RunConfig


@dataclass(frozen=True)
class Architecture:
    hidden: int
    layers: int
    intermediate: int
    heads: int
    kv_heads: int
    vocab: int
    tied: bool
    qkv_bias: bool = True

    @property
    def parameters(self) -> int:
        head_dim = self.hidden // self.heads
        kv = self.kv_heads * head_dim
        attention = self.hidden * self.hidden * 2 + self.hidden * kv * 2
        attention += (self.hidden + 2 * kv) if self.qkv_bias else 0
        per_layer = attention + 3 * self.hidden * self.intermediate + 2 * self.hidden
        embeddings = self.vocab * self.hidden * (1 if self.tied else 2)
        return embeddings + self.layers * per_layer + self.hidden


# Architecture values from each model's published config.json.
KNOWN_MODELS: dict[str, Architecture] = {
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B": Architecture(1536, 28, 8960, 12, 2, 151936, tied=False),
    "hbx/JustRL-DeepSeek-1.5B": Architecture(1536, 28, 8960, 12, 2, 151936, tied=False),  # RL-trained from the above
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B": Architecture(3584, 28, 18944, 28, 4, 152064, tied=False),
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-14B": Architecture(5120, 48, 13824, 40, 8, 152064, tied=False),
    "Qwen/Qwen2.5-Math-1.5B": Architecture(1536, 28, 8960, 12, 2, 151936, tied=True),
    "Qwen/Qwen2.5-Math-7B": Architecture(3584, 28, 18944, 28, 4, 152064, tied=False),
    "Qwen/Qwen2.5-0.5B": Architecture(896, 24, 4864, 14, 2, 151936, tied=True),
}


def architecture(name: str) -> Architecture | None:
    """The architecture of a spec's model entry without downloading it; None when it is not known here."""
    if name in KNOWN_MODELS:
        return KNOWN_MODELS[name]
    if name in BUILTIN_MODELS:
        from brts.models.recipe import BuildSettings
        from brts.models.tokenizer import CHARACTERS, SPECIAL_TOKENS

        s = BuildSettings()
        vocab = len(SPECIAL_TOKENS) + len(CHARACTERS)
        return Architecture(s.hidden_size, s.layers, s.intermediate_size, s.heads, s.heads, vocab, False, False)
    config = Path(name).expanduser() / "config.json"
    if not config.is_file():
        return None
    c = json.loads(config.read_text())
    heads = int(c["num_attention_heads"])
    return Architecture(int(c["hidden_size"]), int(c["num_hidden_layers"]), int(c["intermediate_size"]), heads,
                        int(c.get("num_key_value_heads") or heads), int(c["vocab_size"]),
                        bool(c.get("tie_word_embeddings", False)), c.get("model_type") == "qwen2")


# The CPU process without any model: interpreter, torch, transformers, lm-eval's imports (measured, see docs/LOG.md).
CPU_RUNTIME_GIB = 0.45
# Rows the keyed decode loop samples together (brts.rollout.keyed.KeyedHFGenerator's batch_size).
SAMPLING_BATCH = 256
# Logits per chunk of the streamed head on CPU (brts.training.output_head.CPU_CHUNK_VALUES).
CPU_CHUNK_VALUES = 1 << 22
# Vocabulary entries of the rows the token sampler works on at once (brts.rollout.nucleus._CHUNK; one row when
# the vocabulary is larger).
SAMPLER_CHUNK = 1 << 20
# Bytes per entry of that chunk: float32 weights, their cumulative sum and a rejection round's masked copy, and
# the boolean masks of the nucleus test.
SAMPLER_BYTES = 3 * 4 + 4


@dataclass(frozen=True)
class RunEstimate:
    teacher_tokens: int  # generated by the teacher over the run, at most
    student_params: int | None
    teacher_params: int | None
    memory_gib: dict[str, float]  # per GPU: student, teacher, sampling, alignment, update, total (empty when unknown)


def teacher_tokens(cfg: RunConfig) -> int:
    """Upper bound on teacher tokens generated: N Tier-1 samples plus M hinted retries per prompt and step."""
    m, tc = cfg.method, cfg.train
    if not m.teacher_context:
        return 0
    per_prompt = m.teacher_samples + (m.recovery_samples if m.recovery else 0)
    return tc.steps * tc.prompts_per_step * per_prompt * tc.max_new_tokens


def _activations(arch: Architecture, tokens: int, precision: int, checkpointing: bool, grad: bool) -> float:
    """Bytes of layer activations for `tokens` positions: kept for backward (all layers, or with checkpointing
    each layer's input plus one layer) or, without gradient, one layer's working set."""
    per_layer = 17 * precision * tokens * arch.hidden  # 34 bytes at 2-byte precision
    if not grad:
        return per_layer
    if checkpointing:
        return precision * tokens * arch.hidden * arch.layers + per_layer
    return per_layer * arch.layers


def _sampling(arch: Architecture, rows: int, distinct: int, prompt: int, response: int, precision: int) -> float:
    """Bytes the keyed decode loop holds beside the weights while it draws `rows` samples of `distinct` prompts
    of `prompt` tokens, `response` new tokens each (the module docstring's sampling stages)."""
    if rows == 0:
        return 0.0
    kv = 2 * arch.kv_heads * (arch.hidden // arch.heads) * arch.layers * precision  # bytes per cached token
    prefill = (rows * prompt * kv + _activations(arch, distinct * prompt, precision, False, False)
               + (distinct + rows) * arch.vocab * precision)
    chunk = min(rows, max(1, SAMPLER_CHUNK // arch.vocab)) * arch.vocab * SAMPLER_BYTES
    decode = rows * (prompt + response) * kv * (1 + 1 / arch.layers) + 2 * rows * arch.vocab * precision + chunk
    return max(prefill, decode)


def memory_estimate(
    cfg: RunConfig, resources: ResourcesSpec, *, prompt_tokens: int = 256, streamed: bool = True, device: str = "gpu"
) -> dict[str, float]:
    """Peak memory of one training process in GiB by part (module docstring) and `total`; `prompt_tokens`
    bounds the prompts' length, `device` "cpu" adds the process itself. Empty when a model is unknown."""
    student, teacher = architecture(cfg.models.student), architecture(cfg.models.teacher)
    if student is None or teacher is None:
        return {}
    tc, m = cfg.train, cfg.method
    gib, vocab, response, prompt = 2.0**30, student.vocab, tc.max_new_tokens, prompt_tokens
    precision = 2 if tc.compute_dtype == "bfloat16" else 4
    prompts = math.ceil(tc.prompts_per_step / resources.world_size)
    rows = prompts * tc.samples_per_prompt + (prompts if m.teacher_context else 0)  # own samples + aux rows
    micro = min(tc.micro_batch_size or rows, rows)
    candidates = prompts * (m.teacher_samples + (m.recovery_samples if m.recovery else 0)) if m.teacher_context else 0
    align_rows = min(tc.micro_batch_size or candidates, candidates) if streamed else candidates
    chunk = min(tc.logprob_chunk, CPU_CHUNK_VALUES // vocab) if device == "cpu" else tc.logprob_chunk
    head = min(max(1, chunk), micro * response) * vocab * (3 * 4 + (precision if precision != 4 else 0))
    width = 2 * min(vocab, max(m.opd_top_k, m.aux_top_k, m.effective_alignment_top_k)) + 1
    autocast_copies = 2 * student.parameters if precision == 2 else 0  # bf16 weights autocast keeps for backward

    draws = [(student, prompts, tc.samples_per_prompt, response),  # (model, prompts, samples each, tokens)
             (student, tc.validation_problems, tc.validation_k, cfg.eval.max_new_tokens)]
    if m.teacher_context:
        draws.append((teacher, prompts, m.teacher_samples, response))
    sampling = max(_sampling(arch, min(SAMPLING_BATCH, n * k), math.ceil(min(SAMPLING_BATCH, n * k) / k), prompt,
                             tokens, precision) for arch, n, k, tokens in draws)
    if cfg.rollout.backend == "vllm":
        sampling = 0.0

    if streamed:
        alignment = _activations(student, align_rows * (prompt + response), precision, False, False) + (head if align_rows else 0)
        update = (_activations(student, micro * (prompt + response), precision, tc.gradient_checkpointing, True)
                  + head + micro * response * (width * (4 + 4 + 8 + 4) + (student.hidden + teacher.hidden) * 4)
                  + autocast_copies)
    else:
        logits = (prompt + response) * vocab * precision + response * vocab * 4  # the logits and their log-probs
        alignment = _activations(student, align_rows * (prompt + response), precision, False, False) + align_rows * logits
        update = (_activations(student, micro * (prompt + response), precision, tc.gradient_checkpointing, True)
                  + micro * (2 * logits + response * vocab * 4 + (prompt + response) * vocab * 4) + autocast_copies)
    memory = {
        "student": 16 * student.parameters / gib,
        "teacher": (2 if tc.compute_dtype == "bfloat16" else 4) * teacher.parameters / gib,
        "sampling": sampling / gib,
        "alignment": alignment / gib,
        "update": update / gib,
    }
    if device == "cpu":
        memory["runtime"] = CPU_RUNTIME_GIB
    resident = memory["student"] + memory["teacher"] + memory.get("runtime", 0.0)
    memory["total"] = resident + max(memory["sampling"], memory["alignment"], memory["update"])
    return memory


# GPU memory as the driver reports it (nvidia-smi's total): an 80 GB A100/H100 and a 141 GB H200.
GPUS = {"80 GB": 81559 / 1024, "141 GB": 143771 / 1024}


def fits(memory: dict[str, float], cfg: RunConfig, gpu_gib: float) -> bool:
    """Whether a run's process fits a GPU of `gpu_gib` GiB beside its vLLM engines (two, student and teacher,
    at `rollout.vllm_memory_fraction` of the GPU each, when the backend is vllm)."""
    engines = 2 * cfg.rollout.vllm_memory_fraction if cfg.rollout.backend == "vllm" else 0.0
    return memory["total"] <= gpu_gib * (1 - engines)


def estimate(cfg: RunConfig, resources: ResourcesSpec) -> RunEstimate:
    student, teacher = architecture(cfg.models.student), architecture(cfg.models.teacher)
    return RunEstimate(teacher_tokens(cfg), student.parameters if student else None,
                       teacher.parameters if teacher else None, memory_estimate(cfg, resources))
