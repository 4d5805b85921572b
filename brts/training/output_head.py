"""A causal LM's output layer as brts's streamed log-probs use it (`brts.training.logprobs`): the head's weight and
bias, the dtype its product runs in, and the chunks of response positions it runs over."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from transformers import PreTrainedModel


class UnsupportedHeadError(ValueError):
    """A model whose logits are not a plain linear map of its final hidden states."""


# Config fields of transformers models that rescale or cap the logits after `lm_head`.
_LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_logits_scale")


@dataclass(frozen=True)
class OutputHead:
    """A causal LM's output layer: logits = hidden @ weight.T (+ bias), weight `[V, H]`."""

    weight: Tensor
    bias: Tensor | None

    @classmethod
    def of(cls, model: PreTrainedModel) -> OutputHead:
        head = model.get_output_embeddings()
        if not isinstance(head, nn.Linear):
            raise UnsupportedHeadError(f"{type(model).__name__}: its output layer is not a linear map; "
                                       "brts scores only models whose logits are lm_head(hidden states)")
        for name in _LOGIT_TRANSFORMS:
            if getattr(model.config, name, None) not in (None, 1, 1.0):
                raise UnsupportedHeadError(f"{type(model).__name__}: config.{name} transforms the logits after "
                                           "lm_head; brts's streamed log-probs do not support it")
        return cls(head.weight, head.bias)

    @property
    def vocab_size(self) -> int:
        return int(self.weight.shape[0])

    def cast(self, dtype: torch.dtype) -> OutputHead:
        """This head in `dtype` (itself when it already is): cast once, outside a loop over chunks."""
        if self.weight.dtype == dtype:
            return self
        return OutputHead(self.weight.to(dtype), None if self.bias is None else self.bias.to(dtype))

    def logits(self, hidden: Tensor) -> Tensor:
        """float32 logits `[N, V]` of `hidden[N, H]`, the product computed in the head's dtype."""
        with torch.autocast(hidden.device.type, enabled=False):
            return F.linear(hidden.to(self.weight.dtype), self.weight, self.bias).float()


def compute_dtype(hidden: Tensor, head: OutputHead) -> torch.dtype:
    """The dtype `lm_head` would compute in here: the autocast dtype inside an autocast region, else the
    promoted dtype of its input and weight."""
    device = hidden.device.type
    if torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return torch.promote_types(hidden.dtype, head.weight.dtype)


# On CPU, at most this many logits per chunk (16 MiB of float32): glibc maps a larger block afresh for every
# allocation and unmaps it when freed, and faulting in those fresh pages cost as much CPU time as the arithmetic
# over a 151,936-token vocabulary (docs/LOG.md); blocks this small are reused. GPUs' caching allocator reuses any.
CPU_CHUNK_VALUES = 1 << 22


def positions_per_chunk(chunk: int, vocab: int, device: torch.device) -> int:
    """Response positions per chunk: `chunk` (`train.logprob_chunk`), on CPU at most CPU_CHUNK_VALUES // vocab."""
    if device.type == "cpu":
        chunk = min(chunk, CPU_CHUNK_VALUES // vocab)
    return max(1, chunk)


def chunks(count: int, chunk: int, vocab: int, device: torch.device) -> Iterator[slice]:
    """The slices of `count` positions that one chunk each covers."""
    step = positions_per_chunk(chunk, vocab, device)
    return (slice(start, start + step) for start in range(0, count, step))
