"""Streamed log-probs: final hidden states → `lm_head` → log-softmax over chunks of response positions.

A scoring forward never holds the `[rows, R, V]` log-probs of a batch. The model's body runs once
(`response_hidden`: the final hidden states at the positions that predict response tokens, prompt and padding
positions left out, each distinct prompt computed once for all its rows); the output layer then runs over `chunk` positions at a time, and of each chunk's
`[chunk, V]` log-probs only what the losses, alignment scores and metrics read is kept (`brts.method.support`):
per position the student's and the teacher's top-K and the response token, with both models' log-probs
there, and the student's entropy. When K covers the vocabulary the kept columns are the vocabulary itself, in id
order (no top-K sort, no deduplication). The student's part is an autograd function whose backward recomputes one
chunk's log-probs at a time (activation checkpointing per chunk), so the backward is bounded the same way (the
whole-vocabulary path, which holds them all anyway, reads the kept ones).
On CPU a chunk is also kept to `CPU_CHUNK_VALUES` logits (`brts.training.output_head`).

Results equal those of the full-vocabulary computation to float rounding (tests/training/test_logprobs.py).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from transformers import DynamicCache, PreTrainedModel

from brts.method.alignment import kth_largest
from brts.method.losses import entropy
from brts.method.support import first_occurrences, restricted, token_column
from brts.training.output_head import OutputHead, chunks, compute_dtype
from brts.training.scoring import ResponseBatch


def response_hidden(model: PreTrainedModel, batch: ResponseBatch) -> Tensor:
    """The final hidden states `[N, H]` at the positions that predict the batch's N real response tokens, in
    row-major order (`batch.mask`): the model's body without its output layer.

    Rows that share a prompt share its forward: each distinct prompt runs once, its key/value cache is copied to
    its rows, and the responses run on top of it (the same values to float rounding, and the gradient flows
    through the copies; the student's samples of one prompt and the selected teacher trajectory for it are such
    rows). Under gradient checkpointing, which turns the cache off, every row runs whole."""
    device = model.device
    ids, attention = batch.input_ids.to(device), batch.attention_mask.to(device)
    positions, mask = batch.position_ids.to(device), batch.mask.to(device)
    width, resp_len = batch.prompt_width, batch.tokens.shape[1]
    body = model.base_model
    shared = None if getattr(body, "gradient_checkpointing", False) else _distinct_prompts(ids, attention, width)
    if shared is None:
        out = body(input_ids=ids, attention_mask=attention, position_ids=positions, use_cache=False)
        return out.last_hidden_state[:, width - 1 : width - 1 + resp_len][mask]
    first, rows = shared
    cache = DynamicCache()
    cache_arg = "cache" if "cache" in inspect.signature(body.forward).parameters else "past_key_values"
    prompt = body(input_ids=ids[first, :width], attention_mask=attention[first, :width],
                  position_ids=positions[first, :width], use_cache=True, **{cache_arg: cache})
    hidden = prompt.last_hidden_state[rows, width - 1 :]  # [B, 1, H]: predicts the first response token
    if resp_len > 1:  # the last response token predicts nothing: its position is left out
        cache.batch_select_indices(rows)
        end = width + resp_len - 1
        rest = body(input_ids=ids[:, width:end], attention_mask=attention[:, :end], position_ids=positions[:, width:end],
                    use_cache=True, **{cache_arg: cache})
        hidden = torch.cat([hidden, rest.last_hidden_state], dim=1)
    return hidden[mask]


def _distinct_prompts(ids: Tensor, attention: Tensor, width: int) -> tuple[Tensor, Tensor] | None:
    """(one row of each distinct prompt `[P]`, each row's prompt among them `[B]`), or None when no prompt repeats."""
    key = torch.cat([ids[:, :width], attention[:, :width]], dim=1)
    distinct, rows = torch.unique(key, dim=0, return_inverse=True)
    if len(distinct) == len(key):
        return None
    first = torch.empty(len(distinct), dtype=torch.long, device=ids.device)
    first.scatter_(0, rows, torch.arange(len(key), device=ids.device))
    return first, rows


@dataclass(frozen=True)
class TopTokens:
    """Per position: the K most likely tokens and their log-probs (most likely first), the log-prob of the
    response token, and the log-normaliser of the logits."""

    values: Tensor  # [N, K]
    indices: Tensor  # [N, K]
    token: Tensor  # [N]
    log_normaliser: Tensor  # [N] logsumexp of the logits


@torch.no_grad()
def top_tokens(head: OutputHead, hidden: Tensor, tokens: Tensor, k: int, chunk: int) -> TopTokens:
    """`TopTokens` of `hidden[N, H]` (no gradient), `chunk` positions at a time."""
    n, k = hidden.shape[0], min(k, head.vocab_size)
    head = head.cast(compute_dtype(hidden, head))
    values = hidden.new_empty(n, k, dtype=torch.float32)
    indices = torch.empty(n, k, dtype=torch.long, device=hidden.device)
    token = hidden.new_empty(n, dtype=torch.float32)
    log_normaliser = hidden.new_empty(n, dtype=torch.float32)
    for part in chunks(n, chunk, head.vocab_size, hidden.device):
        logits = head.logits(hidden[part])
        # Log-probs only where kept: logit minus log-normaliser (no [chunk, V] log-softmax; the same order).
        normaliser = log_normaliser[part] = logits.logsumexp(-1)
        top = logits.topk(k, dim=-1)
        values[part], indices[part] = top.values - normaliser.unsqueeze(-1), top.indices
        token[part] = logits.gather(-1, tokens[part].unsqueeze(-1)).squeeze(-1) - normaliser
    return TopTokens(values, indices, token, log_normaliser)


@torch.no_grad()
def logprobs_at(head: OutputHead, hidden: Tensor, columns: Tensor, log_normaliser: Tensor, chunk: int) -> Tensor:
    """Log-probs `[N, C]` of the tokens `columns[N, C]` from `hidden[N, H]` and `TopTokens.log_normaliser`,
    through the C rows of the output layer each position needs (no full-vocabulary product, unless the columns
    are a good part of the vocabulary: then one matrix product beats gathering C rows per position)."""
    dtype = compute_dtype(hidden, head)
    out = hidden.new_empty(columns.shape, dtype=torch.float32)
    whole = head.cast(dtype) if columns.shape[-1] * 4 >= head.vocab_size else None
    with torch.autocast(hidden.device.type, enabled=False):
        for part in chunks(hidden.shape[0], chunk, head.vocab_size, hidden.device):
            if whole is not None:
                out[part] = whole.logits(hidden[part]).gather(-1, columns[part]) - log_normaliser[part].unsqueeze(-1)
                continue
            rows = head.weight[columns[part]].to(dtype)  # [n, C, H]
            logits = (rows @ hidden[part].to(dtype).unsqueeze(-1)).squeeze(-1)
            if head.bias is not None:
                logits = logits + head.bias[columns[part]].to(dtype)
            out[part] = logits.float() - log_normaliser[part].unsqueeze(-1)
    return out


def _head_backward(hidden: Tensor, weight: Tensor, bias: Tensor | None, dtype: torch.dtype, chunk: int,
                   upstream: Callable[[slice], tuple[Tensor, Tensor]],
                   logp: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor | None]:
    """Gradients of (hidden, weight, bias) through log_softmax(lm_head(hidden)), one chunk of positions at a time;
    `upstream(part)` is the gradient on the chunk's full-vocabulary log-probs `[n, V]` (float32) and its sum over
    the vocabulary `[n, 1]`. The log-probs are recomputed chunk by chunk, or read from `logp` `[N, V]` when the
    forward kept them all."""
    head = OutputHead(weight, bias).cast(dtype)
    grad_hidden = torch.zeros_like(hidden)
    grad_weight = torch.zeros_like(weight)
    grad_bias = None if bias is None else torch.zeros_like(bias)
    with torch.autocast(hidden.device.type, enabled=False):
        for part in chunks(hidden.shape[0], chunk, head.vocab_size, hidden.device):
            # d log_softmax: g - softmax * sum(g), g the upstream gradient.
            probs = torch.log_softmax(head.logits(hidden[part]), -1).exp_() if logp is None else logp[part].exp()
            grad_logits, grad_sum = upstream(part)
            grad_logits.sub_(probs.mul_(grad_sum))
            del probs
            grad_logits_c, hidden_c = grad_logits.to(dtype), hidden[part].to(dtype)
            grad_hidden[part] = (grad_logits_c @ head.weight).to(hidden.dtype)
            if grad_weight.dtype == dtype:
                grad_weight.addmm_(grad_logits_c.T, hidden_c)
            else:
                grad_weight += (grad_logits_c.T @ hidden_c).to(grad_weight.dtype)
            if grad_bias is not None:
                grad_bias += grad_logits.sum(0).to(grad_bias.dtype)
    return grad_hidden, grad_weight, grad_bias


class _StudentColumns(torch.autograd.Function):
    """Student log-probs at its own top-K and at given extra columns, with a chunk-at-a-time backward."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, hidden: Tensor, weight: Tensor, bias: Tensor | None, extra: Tensor, k: int, chunk: int,
        dtype: torch.dtype,
    ) -> tuple[Tensor, Tensor, Tensor]:
        head, n = OutputHead(weight, bias).cast(dtype), hidden.shape[0]
        values = hidden.new_empty(n, k + extra.shape[1], dtype=torch.float32)
        columns = torch.empty(n, k + extra.shape[1], dtype=torch.long, device=hidden.device)
        ent = hidden.new_empty(n, dtype=torch.float32)
        for part in chunks(n, chunk, head.vocab_size, hidden.device):
            logp = torch.log_softmax(head.logits(hidden[part]), -1)
            top = logp.topk(k, dim=-1)
            columns[part] = torch.cat([top.indices, extra[part]], dim=-1)
            values[part] = torch.cat([top.values, logp.gather(-1, extra[part])], dim=-1)
            ent[part] = entropy(logp)
        ctx.save_for_backward(hidden, weight, bias, columns)
        ctx.chunk, ctx.dtype = chunk, dtype
        ctx.mark_non_differentiable(columns, ent)
        return values, columns, ent

    @staticmethod
    def backward(ctx: Any, grad_values: Tensor, *_: Any) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        hidden, weight, bias, columns = ctx.saved_tensors
        vocab = weight.shape[0]

        def scattered(part: slice) -> tuple[Tensor, Tensor]:
            """The gradient of each kept column, put on its token's column of the vocabulary."""
            grad = grad_values[part].float()
            return grad.new_zeros(grad.shape[0], vocab).scatter_add_(-1, columns[part], grad), grad.sum(-1, keepdim=True)

        return *_head_backward(hidden, weight, bias, ctx.dtype, ctx.chunk, scattered), None, None, None, None


class _StudentVocabulary(torch.autograd.Function):
    """Student log-probs at every token of the vocabulary `[N, V]` and its entropy (what `_StudentColumns` keeps
    when K covers the vocabulary, without the sort); the backward reads the kept log-probs."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, hidden: Tensor, weight: Tensor, bias: Tensor | None, chunk: int, dtype: torch.dtype,
    ) -> tuple[Tensor, Tensor]:
        head, n = OutputHead(weight, bias).cast(dtype), hidden.shape[0]
        values = hidden.new_empty(n, head.vocab_size, dtype=torch.float32)
        ent = hidden.new_empty(n, dtype=torch.float32)
        for part in chunks(n, chunk, head.vocab_size, hidden.device):
            values[part] = torch.log_softmax(head.logits(hidden[part]), -1)
            ent[part] = entropy(values[part])
        ctx.save_for_backward(hidden, weight, bias, values)  # the backward reads them: no second head product
        ctx.chunk, ctx.dtype = chunk, dtype
        ctx.mark_non_differentiable(ent)
        return values, ent

    @staticmethod
    def backward(ctx: Any, grad_values: Tensor, *_: Any) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        hidden, weight, bias, values = ctx.saved_tensors

        def whole(part: slice) -> tuple[Tensor, Tensor]:
            grad = grad_values[part].float().clone()  # modified in place
            return grad, grad.sum(-1, keepdim=True)

        grads = _head_backward(hidden, weight, bias, ctx.dtype, ctx.chunk, whole, values)
        return *grads, None, None


@dataclass(frozen=True)
class KeptLogprobs:
    """Both models' log-probs at the support columns of every response position (`brts.method.support`):
    `[B, R, W]`, repeated columns at −inf, padding positions 0. What the losses take in place of the
    full-vocabulary log-probs; the student's part carries the gradient.

    With K below the vocabulary, W = 2K + 1: the student's top-K (most likely first, never repeats), the teacher's
    top-K and the response token. For metrics over either top-k (k <= top_k): the student's top-k are columns
    `[:k]`, with `teacher[..., :k]` the teacher's log-probs there (a reverse KL on the student's top-k); the
    teacher's top-k are `brts.method.losses.topk_mask(teacher, k)` (a forward KL on the teacher's top-k).
    With K covering the vocabulary (`whole`), W = V: the columns are the vocabulary in id order.
    """

    student: Tensor  # [B, R, W]
    teacher: Tensor  # [B, R, W]
    columns: Tensor  # [B, R, W] token ids: the student's top-K, the teacher's top-K, the response token
    token: Tensor  # [B, R] the column of the response token
    entropy: Tensor  # [B, R] the student's full-vocabulary entropy
    top_k: int
    whole: bool = False  # the columns are the whole vocabulary, in id order

    def kth(self, k: int) -> Tensor:
        """The student's k-th largest log-prob `[B, R]`."""
        if self.whole:
            return kth_largest(self.student.detach(), k)
        return self.student[..., min(k, self.top_k) - 1].detach()  # its top-K come first, most likely first

    def token_logprob(self) -> Tensor:
        """The student's log-prob of each response token `[B, R]`."""
        return self.student.gather(-1, self.token.unsqueeze(-1)).squeeze(-1)


@dataclass(frozen=True)
class TeacherPass:
    """The teacher's part of a scoring forward: its hidden states at every response position, and there its top
    tokens, or every token's log-prob `[N, V]` when K covers the vocabulary (`logp`)."""

    head: OutputHead
    hidden: Tensor  # [N, H]
    top: TopTokens | None
    logp: Tensor | None = None


@torch.no_grad()
def teacher_pass(teacher: PreTrainedModel, batch: ResponseBatch, k: int, chunk: int) -> TeacherPass:
    """The teacher's forward over `batch` (no gradient), kept to its top-`k` per response position, or to every
    token's log-prob when `k` covers the vocabulary."""
    head, hidden = OutputHead.of(teacher), response_hidden(teacher, batch)
    if k >= head.vocab_size:
        cast = head.cast(compute_dtype(hidden, head))
        logp = hidden.new_empty(hidden.shape[0], head.vocab_size, dtype=torch.float32)
        for part in chunks(hidden.shape[0], chunk, head.vocab_size, hidden.device):
            logp[part] = torch.log_softmax(cast.logits(hidden[part]), -1)
        return TeacherPass(head, hidden, None, logp)
    return TeacherPass(head, hidden, top_tokens(head, hidden, batch.tokens[batch.mask].to(hidden.device), k, chunk))


def kept_logprobs(student: PreTrainedModel, batch: ResponseBatch, teacher: TeacherPass, chunk: int) -> KeptLogprobs:
    """The student's forward over `batch` (with gradient), kept with the teacher's pass to the support columns.

    K is the teacher pass's; the student keeps its own top-K plus the teacher's top-K and the response token,
    and the teacher's log-probs at the student's top-K come from the C rows of its output layer they need. When the
    teacher pass kept the whole vocabulary, so does the student.
    """
    head, hidden = OutputHead.of(student), response_hidden(student, batch)
    mask = batch.mask.to(hidden.device)
    tokens = batch.tokens.to(hidden.device)[mask]

    def unflatten(flat: Tensor) -> Tensor:
        if len(flat) == mask.numel():  # every position real (no response ended early): a view, no copy
            return flat.view(*mask.shape, *flat.shape[1:])
        out = flat.new_zeros(*mask.shape, *flat.shape[1:])
        return out.index_put(mask.nonzero(as_tuple=True), flat)

    if teacher.logp is not None:
        values, ent = _StudentVocabulary.apply(hidden, head.weight, head.bias, chunk, compute_dtype(hidden, head))
        vocab = head.vocab_size
        return KeptLogprobs(
            student=unflatten(values), teacher=unflatten(teacher.logp),
            columns=torch.arange(vocab, device=hidden.device).expand(*mask.shape, vocab),
            token=batch.tokens.to(hidden.device).masked_fill(~mask, 0), entropy=unflatten(ent), top_k=vocab,
            whole=True,
        )
    assert teacher.top is not None
    k = teacher.top.indices.shape[1]
    extra = torch.cat([teacher.top.indices, tokens.unsqueeze(-1)], dim=-1)
    values, columns, ent = _StudentColumns.apply(hidden, head.weight, head.bias, extra, k, chunk,
                                                 compute_dtype(hidden, head))
    teacher_at_student = logprobs_at(teacher.head, teacher.hidden, columns[:, :k], teacher.top.log_normaliser, chunk)
    teacher_values = torch.cat([teacher_at_student, teacher.top.values, teacher.top.token.unsqueeze(-1)], dim=-1)
    distinct = first_occurrences(columns)
    return KeptLogprobs(
        student=unflatten(restricted(values, distinct)), teacher=unflatten(restricted(teacher_values, distinct)),
        columns=unflatten(columns), token=unflatten(token_column(columns, tokens)), entropy=unflatten(ent), top_k=k,
    )


@torch.no_grad()
def token_scores(model: PreTrainedModel, batch: ResponseBatch, k: int, chunk: int) -> tuple[Tensor, Tensor]:
    """The model's log-prob of each response token and its K-th largest log-prob there, `[B, R]` each (0 at
    padding): what the top-K and log-prob alignment scores read."""
    head, hidden = OutputHead.of(model), response_hidden(model, batch)
    mask = batch.mask.to(hidden.device)
    top = top_tokens(head, hidden, batch.tokens.to(hidden.device)[mask], k, chunk)
    token, kth = (torch.zeros(mask.shape, device=hidden.device) for _ in range(2))
    token[mask], kth[mask] = top.token, top.values[:, -1]
    return token, kth
