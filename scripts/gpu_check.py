"""GPU check: three training steps of `opd` and `brts` on a randomly initialised Qwen2-style model, nothing downloaded.

    python scripts/gpu_check.py                       # ~0.5B (Qwen2.5-0.5B's shape), vLLM rollouts, on the GPU
    python scripts/gpu_check.py --size tiny --backend hf   # the same path on CPU in seconds (no vLLM)

Builds a tokenizer here (one token per character plus filler tokens up to the vocabulary size), a random
teacher and a random student of one architecture, and a spec over the synthetic task; then trains each arm in
its own process (so each arm's vLLM engines start and end with it) and prints per-step times, the time
breakdown and peak GPU memory. Random models rarely sample EOS, so every response runs to the length limit:
the step times are those of full-length rollouts.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = {  # Qwen2.5-0.5B's architecture (494M parameters, tied embeddings) and a CPU-sized one
    "0.5b": {"hidden_size": 896, "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
             "intermediate_size": 4864, "vocab_size": 151936, "tie_word_embeddings": True},
    "tiny": {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
             "intermediate_size": 128, "vocab_size": 512, "tie_word_embeddings": True},
}


def build_tokenizer(vocab_size: int) -> object:
    """The character tokenizer of the built-in models, padded with filler tokens to `vocab_size` entries."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    from brts.tokenizer import BOS, CHARACTERS, EOS, PAD, SPECIAL_TOKENS, UNK

    tokens = list(SPECIAL_TOKENS + CHARACTERS)
    tokens += [f"<f{i}>" for i in range(vocab_size - len(tokens))]
    vocab = {t: i for i, t in enumerate(tokens)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    core.decoder = decoders.Fuse()
    core.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", special_tokens=[(BOS, vocab[BOS])])
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token=BOS, eos_token=EOS, pad_token=PAD,
                                   unk_token=UNK, padding_side="left", clean_up_tokenization_spaces=False)


def build_models(folder: Path, size: str) -> tuple[Path, Path, int]:
    """Random teacher and student folders (model + tokenizer); returns them and the parameter count."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tokenizer = build_tokenizer(SIZES[size]["vocab_size"])
    config = Qwen2Config(**SIZES[size], max_position_embeddings=2048, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    out = []
    for role, seed in (("teacher", 1), ("student", 2)):
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config)
        count = sum(p.numel() for p in model.parameters())
        model.save_pretrained(folder / role)
        tokenizer.save_pretrained(folder / role)  # type: ignore[attr-defined]
        out.append(folder / role)
        del model
    return out[0], out[1], count


def spec_text(teacher: Path, student: Path, args: argparse.Namespace) -> str:
    dtype = "bfloat16" if args.device == "cuda" else "float32"
    return f"""name: gpu-check
models: {{teacher: {teacher}, student: {student}}}
train: {{steps: {args.steps}, prompts_per_step: {args.prompts}, samples_per_prompt: 2,
        max_new_tokens: {args.max_new_tokens}, lr: 1.0e-6, compute_dtype: {dtype}, micro_batch_size: 4,
        checkpoint_every: 1000, validate_every: 1000, validation_problems: 2, validation_k: 1, threads: 4}}
eval: {{problems: 1, k: 1, max_new_tokens: 16}}
rollout: {{backend: {args.backend}, vllm_memory_fraction: {args.vllm_memory_fraction}}}
method: {{alignment_top_k: 3}}
arms: [opd, brts]
seeds: [0]
"""


def run_arm(spec_path: Path, arm: str, out_dir: Path) -> dict[str, object]:
    """Train one arm in this process; return its step times and peak memory."""
    import torch

    from brts.runs.plan import plan
    from brts.runs.run import load_pair
    from brts.spec import load_spec
    from brts.tasks.registry import make_task
    from brts.train import Trainer

    planned = next(p for p in plan(load_spec(str(spec_path))) if p.arm == arm)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    trainer = Trainer(planned.config, load_pair(planned.config), make_task(planned.config.task), out_dir)
    ready = time.perf_counter()
    step_walls: list[float] = []
    last = [time.perf_counter()]

    def on_step(step: int, record: dict[str, object]) -> None:
        now = time.perf_counter()
        step_walls.append(now - last[0])
        last[0] = now
        print(f"  {arm} step {step}: {step_walls[-1]:.2f} s, loss/total {record['loss/total']:.4f}", flush=True)

    log = trainer.run(on_step)
    steps = [m for m in log if "loss/total" in m]
    result: dict[str, object] = {
        "arm": arm, "setup_s": round(ready - started, 1), "step_s": [round(s, 2) for s in step_walls],
        "breakdown_s": {k.removeprefix("time/"): round(sum(m[k] for m in steps) / len(steps), 3)
                        for k in steps[0] if k.startswith("time/")},
        "teacher_tokens": steps[-1]["teacher/tokens_generated"],
        "response_tokens": steps[-1]["student/response_tokens"],
    }
    if torch.cuda.is_available():
        free, total = torch.cuda.mem_get_info()
        result["peak_allocated_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        result["device_used_gib"] = round((total - free) / 2**30, 2)
        result["device"] = torch.cuda.get_device_name()
    else:
        result["peak_rss_gib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
        result["device"] = "cpu"
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="0.5b")
    parser.add_argument("--backend", choices=["vllm", "hf"], default="vllm")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--prompts", type=int, default=8, help="prompts per step (2 student samples each)")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--vllm-memory-fraction", type=float, default=0.2)
    parser.add_argument("--arm", help=argparse.SUPPRESS)  # internal: train one arm in this process
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    import torch

    args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.arm:  # child: one arm, one JSON line
        work = Path(args.work)
        result = run_arm(work / "spec.yaml", args.arm, work / args.arm)
        print("RESULT " + json.dumps(result), flush=True)
        return 0
    if args.backend == "vllm" and args.device != "cuda":
        print("error: --backend vllm needs a GPU here; use --backend hf on CPU", file=sys.stderr)
        return 2
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="brts-gpu-check-") as tmp:
        work = Path(tmp)
        teacher, student, params = build_models(work, args.size)
        print(f"built random Qwen2 teacher and student: {params / 1e6:.2f} M parameters each, "
              f"{time.perf_counter() - started:.1f} s", flush=True)
        (work / "spec.yaml").write_text(spec_text(teacher, student, args))
        results = []
        for arm in ("opd", "brts"):
            (work / arm).mkdir()
            cmd = [sys.executable, __file__, "--arm", arm, "--work", str(work), "--size", args.size,
                   "--backend", args.backend]
            child = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=os.environ.copy())
            lines = child.stdout.splitlines()
            print("\n".join(line for line in lines if not line.startswith("RESULT ")), flush=True)
            if child.returncode != 0:
                print(f"error: arm {arm} failed (exit {child.returncode}); its output is above", file=sys.stderr)
                return 1
            results.append(json.loads(next(line for line in lines if line.startswith("RESULT "))[7:]))
    print(f"\n{'arm':6} {'setup s':>8} {'step times s':>22} {'peak GiB':>9}  breakdown (mean s/step)")
    for r in results:
        peak = r.get("peak_allocated_gib", r.get("peak_rss_gib"))
        steps = ", ".join(f"{s:.2f}" for s in r["step_s"])  # type: ignore[attr-defined]
        print(f"{r['arm']:6} {r['setup_s']:>8} {steps:>22} {peak:>9}  {r['breakdown_s']}")
    print(f"device: {results[0]['device']}; backend: {args.backend}; peak = "
          + ("torch.cuda.max_memory_allocated (vLLM engines in-process included)" if args.device == "cuda"
             else "peak resident memory of the arm's process"))
    print(f"total wall time: {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
