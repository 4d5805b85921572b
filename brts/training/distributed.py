"""Data-parallel training across processes started by `accelerate launch` (one process per GPU, or gloo on CPU).

Each rank takes a contiguous block of the step's prompts, samples and scores it, and backpropagates its share
of the global token-mean losses; `all_reduce_gradients` then sums the shares, so every rank holds the gradient
of the whole step and takes the same optimiser step. This is DDP's arithmetic done once per optimiser step
rather than in DDP's per-backward hooks: a step makes several backward passes of different kinds (OPD
micro-batches, then the teacher-context loss) around generation with the bare model, and one flattened
all-reduce after them is simpler and costs the same bytes (the overlap DDP would win is small next to a
step's generation time). In one process every collective is the identity.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from accelerate import PartialState
from accelerate.utils import DistributedType

from brts.errors import UserError

T = TypeVar("T")
BUCKET_ELEMENTS = 64 * 1024 * 1024 // 4  # 64 MiB of float32 per all-reduce


class UnsupportedLayout(UserError, RuntimeError):
    """A launch configuration this loop cannot train under; the message names it and the fix."""


class Ranks:
    """This process's place among the training processes, and the collectives the training loop needs."""

    def __init__(self) -> None:
        # Without cpu=True accelerate sets up gloo but reports one process on a machine without CUDA.
        state = PartialState(cpu=not torch.cuda.is_available())
        if state.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED, DistributedType.MEGATRON_LM):
            raise UnsupportedLayout(
                f"accelerate is configured for {state.distributed_type.value}; brts trains with data parallelism "
                "only (every rank holds the whole student): launch with --multi_gpu, without FSDP/DeepSpeed")
        self.rank = state.process_index
        self.world = state.num_processes
        self.device = state.device

    @property
    def is_main(self) -> bool:
        return bool(self.rank == 0)

    def block(self, count: int) -> tuple[int, int]:
        """[start, end) of this rank's contiguous block of `count` items; blocks differ in size by at most one."""
        if count < self.world:
            raise UnsupportedLayout(f"train.prompts_per_step is {count} but {self.world} processes train; give "
                                    f"each process at least one prompt (prompts_per_step >= {self.world})")
        base, extra = divmod(count, self.world)
        start = self.rank * base + min(self.rank, extra)
        return start, start + base + (1 if self.rank < extra else 0)

    def sum(self, values: Sequence[float]) -> list[float]:
        """Element-wise sum over ranks (float64)."""
        if self.world == 1:
            return [float(v) for v in values]
        tensor = torch.tensor(list(values), dtype=torch.float64, device=self._comm_device())
        dist.all_reduce(tensor)
        return [float(v) for v in tensor.tolist()]

    def gather(self, obj: T) -> list[T]:
        """Every rank's `obj`, in rank order, on every rank."""
        if self.world == 1:
            return [obj]
        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def all_reduce_gradients(self, parameters: Iterable[torch.nn.Parameter]) -> None:
        """Sum the gradients of `parameters` over ranks in place (a missing gradient counts as zero)."""
        if self.world == 1:
            return
        params = [p for p in parameters if p.requires_grad]
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        for bucket in _buckets(params):
            flat = torch.cat([p.grad.reshape(-1) for p in bucket])  # type: ignore[union-attr]
            dist.all_reduce(flat)
            offset = 0
            for p in bucket:
                n = p.numel()
                p.grad.copy_(flat[offset : offset + n].view_as(p))  # type: ignore[union-attr]
                offset += n

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def _comm_device(self) -> torch.device:
        # NCCL reduces CUDA tensors only; gloo reduces CPU tensors.
        return self.device if dist.get_backend() == "nccl" else torch.device("cpu")


def _buckets(params: Sequence[torch.nn.Parameter]) -> list[list[torch.nn.Parameter]]:
    buckets: list[list[torch.nn.Parameter]] = [[]]
    size = 0
    for p in params:
        if buckets[-1] and size + p.numel() > BUCKET_ELEMENTS:
            buckets.append([])
            size = 0
        buckets[-1].append(p)
        size += p.numel()
    return buckets
