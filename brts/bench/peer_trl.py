"""The TRL side of `brts bench --peer trl`: one of TRL's distillation trainers over the bench's batches, in a child
process, timed per phase.

Two trainers, each configured to do what brts's `opd` does per step (sample the student on-policy, score the samples
with the teacher, one optimiser step on the reverse KL):

- `DistillationTrainer` (`trl.DistillationTrainer`, the stable one; the headline peer): beta = 1, so its generalised
  JSD is the reverse KL(student || teacher), computed densely over the full vocabulary at every response position by
  its chunked kernel (the logits are projected tile by tile and never held whole). Generation by transformers
  `generate` (no vLLM), one completion per dataset row, the dataset in order (`shuffle_dataset=False`).
- `GKDTrainer` (`trl.experimental.gkd`): lmbda = 1 (every step on-policy), beta = 1, the same full-vocabulary reverse
  KL computed from materialised logits of both models.

Both run with bf16 off and gradient checkpointing off (on CPU both only slow a step; with checkpointing on, GKD
generates without a KV cache), their default fused AdamW, the bench's learning rate (constant), gradient clip,
temperature and top-p = 1, top-k off. Each step starts from the initial student (a callback reloads it), as brts's
timed steps do.
"""

from __future__ import annotations

import os
import resource
import tempfile
import time
from typing import Any

TRAINERS = ("distillation", "gkd")
PHASES = ("generate", "teacher_forward", "update")


def trl_steps(kind: str, setup: Any, texts: list[list[str]], answers: list[list[str]], out: Any) -> None:
    """In a child process: TRL's `kind` trainer (one of TRAINERS) over the given batches (one per step), each step from
    the initial student; puts per-step phase seconds, student tokens, the prompt ids it generated from, TRL's
    version and the peak memory."""
    if kind not in TRAINERS:
        raise ValueError(f"TRL trainer {kind!r}: expected one of {', '.join(TRAINERS)}")
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    import logging
    import warnings

    import torch
    import trl
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback, TrainerCallback
    from transformers.utils import logging as hf_logging

    # The peer's advice and deprecation notes are not the bench's output.
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    logging.getLogger("trl").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning)
    torch.set_num_threads(setup.threads)
    cuda = torch.cuda.is_available()

    def clock() -> float:
        if cuda:
            torch.cuda.synchronize()
            return time.perf_counter()
        return time.process_time()

    tok = AutoTokenizer.from_pretrained(setup.student)
    student = AutoModelForCausalLM.from_pretrained(setup.student, dtype=torch.float32)
    teacher = AutoModelForCausalLM.from_pretrained(setup.teacher, dtype=torch.float32)
    initial = {k: v.clone() for k, v in student.state_dict().items()}
    phase: dict[str, float] = {}
    seen: dict[str, Any] = {"prompts": [], "tokens": 0}
    started = [0.0]
    # GKD calls the whole teacher; DistillationTrainer its backbone (its head runs inside the loss, in `update`).
    timed = teacher if kind == "gkd" else teacher.base_model
    timed.register_forward_pre_hook(lambda *_: started.__setitem__(0, clock()))
    timed.register_forward_hook(lambda *_: phase.__setitem__("teacher_forward", phase["teacher_forward"]
                                                             + clock() - started[0]))

    records: list[dict[str, float]] = []

    class Steps(TrainerCallback):  # type: ignore[misc]
        def on_step_begin(self, *_: Any, **__: Any) -> None:
            with torch.no_grad():
                student.load_state_dict(initial)
            phase.update(generate=0.0, teacher_forward=0.0)
            self.begun = clock()

        def on_step_end(self, *_: Any, **__: Any) -> None:
            total = clock() - self.begun
            records.append({**phase, "update": total - sum(phase.values()), "total": total,
                            "tokens": seen["tokens"]})

    common = dict(
        per_device_train_batch_size=len(texts[0]), gradient_accumulation_steps=1, max_steps=len(texts),
        learning_rate=setup.lr, lr_scheduler_type="constant", max_grad_norm=1.0, beta=1.0,
        temperature=setup.temperature, bf16=False, fp16=False, gradient_checkpointing=False, use_cpu=not cuda,
        seed=setup.seed, report_to=[], save_strategy="no", logging_strategy="no", disable_tqdm=True,
        dataloader_num_workers=0,
    )
    pairs = [(t, a) for step_texts, step_answers in zip(texts, answers, strict=True)
             for t, a in zip(step_texts, step_answers, strict=True)]
    with tempfile.TemporaryDirectory() as folder:
        if kind == "gkd":
            trainer = _gkd(folder, common, setup, student, teacher, tok, pairs, clock, phase, seen)
        else:
            trainer = _distillation(folder, common, setup, student, teacher, tok, pairs, clock, phase, seen)
        trainer.add_callback(Steps())
        trainer.remove_callback(PrinterCallback)  # it prints the run's summary on stdout, where the table goes
        trainer.train()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if cuda:
        peak = torch.cuda.max_memory_allocated() / 2**20
    out.put({"records": records, "prompts": seen["prompts"], "version": trl.__version__, "peak": peak})


def _distillation(folder: str, common: dict[str, Any], setup: Any, student: Any, teacher: Any, tok: Any,
                  pairs: list[tuple[str, str]], clock: Any, phase: dict[str, float], seen: dict[str, Any]) -> Any:
    from datasets import Dataset
    from trl import DistillationConfig, DistillationTrainer

    class Timed(DistillationTrainer):  # type: ignore[misc]
        def _generate_single_turn(self, prompt_ids: Any, *args: Any, **kwargs: Any) -> Any:
            begun = clock()
            completions = DistillationTrainer._generate_single_turn(self, prompt_ids, *args, **kwargs)
            phase["generate"] += clock() - begun
            seen["prompts"].append([list(p) for p in prompt_ids])
            seen["tokens"] = sum(len(c) for c in completions)
            return completions

    args = DistillationConfig(output_dir=folder, max_completion_length=setup.max_new_tokens, top_p=1.0, top_k=0,
                              shuffle_dataset=False, use_vllm=False, **common)
    rows = [{"prompt": [{"role": "user", "content": t}]} for t, _ in pairs]
    return Timed(model=student, teacher_model=teacher, args=args, train_dataset=Dataset.from_list(rows),
                 processing_class=tok)


def _gkd(folder: str, common: dict[str, Any], setup: Any, student: Any, teacher: Any, tok: Any,
         pairs: list[tuple[str, str]], clock: Any, phase: dict[str, float], seen: dict[str, Any]) -> Any:
    from datasets import Dataset
    from torch.utils.data import SequentialSampler
    from trl.experimental.gkd import GKDConfig, GKDTrainer

    class Timed(GKDTrainer):  # type: ignore[misc]
        def _get_train_sampler(self, *args: Any, **kwargs: Any) -> SequentialSampler:
            return SequentialSampler(self.train_dataset)  # step s reads the batch brts's step s trains on

        def generate_on_policy_outputs(self, model: Any, inputs: Any, generation_config: Any) -> Any:
            begun = clock()
            ids, mask, labels = GKDTrainer.generate_on_policy_outputs(model, inputs, generation_config)
            phase["generate"] += clock() - begun
            seen["prompts"].append([row[m.bool()].tolist() for row, m in
                                    zip(inputs["prompts"], inputs["prompt_attention_mask"], strict=True)])
            seen["tokens"] = int((labels != -100).sum())
            return ids, mask, labels

    args = GKDConfig(output_dir=folder, lmbda=1.0, max_new_tokens=setup.max_new_tokens, **common)
    rows = [{"messages": [{"role": "user", "content": t}, {"role": "assistant", "content": a}]} for t, a in pairs]
    return Timed(model=student, teacher_model=teacher, args=args, train_dataset=Dataset.from_list(rows),
                 processing_class=tok)
