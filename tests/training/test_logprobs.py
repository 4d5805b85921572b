"""Streamed log-probs equal the full-vocabulary computation, and no scoring forward holds more than one chunk."""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode, _disable_current_modes
from torch.utils._pytree import tree_flatten
from transformers import Qwen2Config, Qwen2ForCausalLM

from brts.method import MethodConfig, kth_largest, opd_loss, support_top_k, teacher_context_loss
from brts.training.logprobs import kept_logprobs, response_hidden, teacher_pass, token_scores
from brts.training.output_head import OutputHead, UnsupportedHeadError
from brts.training.scoring import build_batch

PROMPTS = [[1, 5, 6], [1, 7], [1, 9, 9, 4]]
RESPONSES = [[8, 9, 2, 11, 40], [4], [3, 3, 250, 7]]
# Rows that share prompts (their forwards share the prompt's): [0, 1, 7] pads to the ids of [1, 7] (pad 0) but
# its first token is real, so it is a prompt of its own.
SHARED = ([[1, 5, 6], [1, 7], [1, 5, 6], [0, 1, 7], [1, 7], [1, 5, 6]],
          [[8, 9, 2], [4, 4, 9, 9, 1], [3], [3, 3, 250, 7], [5, 6], [8, 9, 2, 11, 40]])


def _model(seed: int, vocab: int = 300) -> Qwen2ForCausalLM:
    torch.manual_seed(seed)
    config = Qwen2Config(vocab_size=vocab, hidden_size=24, intermediate_size=48, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64,
                         tie_word_embeddings=seed % 2 == 0)
    return Qwen2ForCausalLM(config)


def full_logprobs(model, batch):
    """The reference: full-vocabulary log-probs [B, R, V] from the model's own logits (what brts did before)."""
    out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, position_ids=batch.position_ids)
    width, length = batch.prompt_width, batch.tokens.shape[1]
    return torch.log_softmax(out.logits[:, width - 1 : width - 1 + length].float(), -1)


@pytest.mark.parametrize("chunk, pairs", [(1, (PROMPTS, RESPONSES)), (5, (PROMPTS, RESPONSES)),
                                          (1000, (PROMPTS, RESPONSES)), (5, SHARED), (1000, SHARED)])
def test_kept_logprobs_equal_the_full_vocabulary_values_losses_and_gradients(chunk, pairs):
    student, teacher = _model(2), _model(1)
    batch = build_batch(*pairs, pad_id=0)
    cfg = MethodConfig(teacher_context=True, opd_top_k=4, aux_top_k=3, alignment_top_k=2)
    k, mask = 4, batch.mask

    s_full = full_logprobs(student, batch)
    with torch.no_grad():
        tau_full = full_logprobs(teacher, batch)
        kept = kept_logprobs(student, batch, teacher_pass(teacher, batch, k, chunk), chunk)
    columns = kept.columns[mask]
    finite = kept.student[mask] > float("-inf")
    torch.testing.assert_close(kept.student[mask][finite], s_full[mask].gather(-1, columns)[finite].detach())
    torch.testing.assert_close(kept.teacher[mask][finite], tau_full[mask].gather(-1, columns)[finite])
    torch.testing.assert_close(columns[:, :k], s_full[mask].topk(k, -1).indices)
    # The teacher's top-k from its logits: the reference's top-k values (two tokens within float rounding of each
    # other may come in either order).
    torch.testing.assert_close(tau_full[mask].gather(-1, columns[:, k : 2 * k]), tau_full[mask].topk(k, -1).values)
    assert torch.equal(columns.gather(-1, kept.token[mask].unsqueeze(-1)).squeeze(-1), batch.tokens[mask])
    p = s_full.detach().exp()
    torch.testing.assert_close(kept.entropy[mask], -(p * s_full.detach()).sum(-1)[mask])
    torch.testing.assert_close(kept.kth(2)[mask], kth_largest(s_full.detach(), 2)[mask])

    def losses_and_grads(s, tau, tokens):
        student.zero_grad()
        loss = opd_loss(s, tau, tokens, mask, cfg) + teacher_context_loss(s, tau, mask, cfg)
        loss.backward()
        return loss.detach(), {n: q.grad.clone() for n, q in student.named_parameters()}

    ref_loss, ref_grads = losses_and_grads(s_full, tau_full, batch.tokens)
    with torch.no_grad():
        teacher_part = teacher_pass(teacher, batch, k, chunk)
    kept = kept_logprobs(student, batch, teacher_part, chunk)
    loss, grads = losses_and_grads(kept.student, kept.teacher, kept.token)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-6)
    for name, grad in ref_grads.items():
        torch.testing.assert_close(grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_kept_logprobs_under_bf16_autocast_match_the_autocast_reference():
    student, teacher = _model(2), _model(1).to(torch.bfloat16)
    batch = build_batch(PROMPTS, RESPONSES, pad_id=0)
    cfg = MethodConfig(opd_top_k=4)
    with torch.autocast("cpu", torch.bfloat16):
        with torch.no_grad():
            tau_full = full_logprobs(teacher, batch)
        ref = opd_loss(full_logprobs(student, batch), tau_full, batch.tokens, batch.mask, cfg)
        ref.backward()
        ref_grads = {n: q.grad.clone() for n, q in student.named_parameters()}
        student.zero_grad()
        with torch.no_grad():
            teacher_part = teacher_pass(teacher, batch, 4, 3)
        kept = kept_logprobs(student, batch, teacher_part, 3)
        loss = opd_loss(kept.student, kept.teacher, kept.token, batch.mask, cfg)
    loss.backward()
    torch.testing.assert_close(loss, ref, rtol=2e-2, atol=1e-3)
    for name, q in student.named_parameters():
        assert q.grad.dtype == torch.float32
        torch.testing.assert_close(q.grad, ref_grads[name], rtol=0.1, atol=2e-3, msg=name)


@pytest.mark.parametrize("pairs", [(PROMPTS, RESPONSES), SHARED])
def test_token_scores_are_the_token_log_prob_and_the_kth_largest(pairs):
    model, batch = _model(3), build_batch(*pairs, pad_id=0)
    with torch.no_grad():
        full = full_logprobs(model, batch)
        token, kth = token_scores(model, batch, k=3, chunk=2)
    mask = batch.mask
    torch.testing.assert_close(token[mask], full.gather(-1, batch.tokens.unsqueeze(-1)).squeeze(-1)[mask])
    torch.testing.assert_close(kth[mask], kth_largest(full, 3)[mask])
    assert torch.all(token[~mask] == 0)


def test_rows_of_one_prompt_share_its_forward_and_checkpointing_runs_every_row_whole():
    model, batch = _model(3), build_batch(*SHARED, pad_id=0)
    widths = []
    model.model.register_forward_pre_hook(lambda _, args, kwargs: widths.append(tuple(kwargs["input_ids"].shape)),
                                          with_kwargs=True)
    with torch.no_grad():
        shared = response_hidden(model, batch)
    assert widths == [(3, 3), (6, 4)]  # the 3 distinct prompts, then every row's response but its last token
    model.gradient_checkpointing_enable()
    widths.clear()
    whole = response_hidden(model, batch)
    assert widths == [(6, 8)]
    torch.testing.assert_close(shared, whole.detach())


def test_a_model_that_transforms_its_logits_is_refused():
    model, batch = _model(1), build_batch(PROMPTS, RESPONSES, pad_id=0)
    model.config.final_logit_softcapping = 30.0
    with pytest.raises(UnsupportedHeadError, match="final_logit_softcapping"):
        teacher_pass(model, batch, 4, 8)


class VocabularyRows(TorchDispatchMode):
    """Records the most rows of any vocabulary-wide float tensor an op produces (views left out)."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.vocab, self.rows = vocab, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if not func.is_view:
            for t in tree_flatten(out)[0]:
                if isinstance(t, torch.Tensor) and t.is_floating_point() and t.dim() and t.shape[-1] == self.vocab:
                    self.rows = max(self.rows, t.numel() // self.vocab)
        return out


def _long_vocab_trainer(tmp_path, alignment: str, chunk: int):
    from brts.models.load import load_pair
    from brts.models.random_pairs import build_models
    from brts.runs.plan import plan
    from brts.spec import load_spec
    from brts.tasks.registry import make_task
    from brts.training.trainer import Trainer

    arch = {"hidden_size": 24, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
            "intermediate_size": 32, "vocab_size": 6000, "tie_word_embeddings": True}
    teacher, student, _ = build_models(tmp_path, arch)
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"""name: long-vocab
models: {{teacher: {teacher}, student: {student}}}
train: {{steps: 1, prompts_per_step: 2, samples_per_prompt: 2, max_new_tokens: 10, logprob_chunk: {chunk},
        validation_problems: 1}}
eval: {{problems: 1, k: 1, max_new_tokens: 4}}
method: {{alignment_top_k: 3, opd_top_k: 4, aux_top_k: 2}}
arms: [{{name: b, preset: brts, set: {{alignment: {alignment}, teacher_samples: 3, fallback: most_similar}}}}]
pool: {{enabled: false}}
seeds: [0]
""")
    planned = plan(load_spec(str(spec)))[0]
    trainer = Trainer(planned.config, load_pair(planned.config), make_task(planned.config.task), tmp_path / "run")
    # Generation is the samplers' business (it holds one position per row); this test is about scoring.
    for gen in (trainer.student_gen, trainer.teacher.generator):
        sample = gen.sample

        def untracked(*args, _sample=sample, **kwargs):
            with _disable_current_modes():
                return _sample(*args, **kwargs)

        gen.sample = untracked
    return trainer


@pytest.mark.parametrize("alignment", ["teacher_forced", "positional"])
def test_no_scoring_forward_holds_more_than_one_chunk_of_vocabulary_rows(tmp_path, alignment):
    (tmp_path / "run").mkdir()
    trainer = _long_vocab_trainer(tmp_path, alignment, chunk=4)
    recorder = VocabularyRows(6000)
    with recorder:
        record = trainer.step(1)  # student and teacher scoring, alignment of candidates, forward and backward
    assert record["surrogate/aux"] is not None and record["selection/frac_tier3"] is not None
    assert 0 < recorder.rows <= 4
    # The recorder does see a full-vocabulary computation: the reference holds every response position.
    batch = build_batch([[1, 5, 6]] * 4, [[7] * 10] * 4, pad_id=0)
    with VocabularyRows(6000) as reference, torch.no_grad():
        full_logprobs(trainer.models.student, batch)
    assert reference.rows >= 40


def test_on_cpu_a_chunk_holds_at_most_cpu_chunk_values_logits(monkeypatch):
    from brts.training import logprobs, output_head
    assert output_head.positions_per_chunk(256, 151_936, torch.device("cpu")) == (1 << 22) // 151_936 == 27
    assert output_head.positions_per_chunk(256, 59, torch.device("cpu")) == 256  # a small vocabulary: the spec's
    assert output_head.positions_per_chunk(256, 151_936, torch.device("meta")) == 256  # not CPU: the spec's
    assert output_head.positions_per_chunk(256, 10**8, torch.device("cpu")) == 1
    # Scoring follows it: with the cap at 3 x 6000 logits, a chunk of 8 positions scores 3 at a time.
    monkeypatch.setattr(output_head, "CPU_CHUNK_VALUES", 3 * 6000)
    head = OutputHead(torch.randn(6000, 16), None)
    recorder = VocabularyRows(6000)
    with recorder:
        top = logprobs.top_tokens(head, torch.randn(10, 16), torch.zeros(10, dtype=torch.long), 4, 8)
    assert recorder.rows == 3 and top.values.shape == (10, 4)


def test_on_the_built_in_models_with_the_default_grids_method_the_losses_and_gradients_are_unchanged(tiny_models):
    from brts.method import arm_config
    from brts.models.load import load_model
    from brts.tasks.synthetic import SyntheticTask

    student, tok = load_model(str(tiny_models.student_dir))
    teacher, _ = load_model(str(tiny_models.teacher_dir))
    task = SyntheticTask(seed=0)
    problems = task.train_problems()[:3]
    prompts = [list(tok(task.prompt(p))["input_ids"]) for p in problems]
    responses = [list(tok(text, add_special_tokens=False)["input_ids"]) + [tok.eos_token_id]
                 for text in ("A1\nB2\n\\boxed{3}", "A4\n\\boxed{4}", "B9\nC0\nD1\n\\boxed{1}")]
    batch = build_batch(prompts, responses, pad_id=tok.pad_token_id)
    cfg = arm_config("brts", {"opd_top_k": 64, "alignment_top_k": 3, "aux_top_k": 1})  # experiments/ablation-grid
    k = support_top_k(cfg, OutputHead.of(student).vocab_size)  # the whole 59-symbol vocabulary

    def losses_and_grads(s, tau, tokens):
        student.zero_grad()
        loss = opd_loss(s, tau, tokens, batch.mask, cfg) + 0.5 * teacher_context_loss(s, tau, batch.mask, cfg)
        loss.backward()
        return loss.detach(), [q.grad.clone() for q in student.parameters()]

    with torch.no_grad():
        tau_full = full_logprobs(teacher, batch)
    ref_loss, ref_grads = losses_and_grads(full_logprobs(student, batch), tau_full, batch.tokens)
    with torch.no_grad():
        teacher_part = teacher_pass(teacher, batch, k, 16)
    kept = kept_logprobs(student, batch, teacher_part, 16)
    loss, grads = losses_and_grads(kept.student, kept.teacher, kept.token)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-6, atol=1e-7)
    for grad, ref in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(grad, ref, rtol=1e-5, atol=1e-7)


def test_both_top_k_kls_follow_from_the_kept_columns():
    from brts.method.losses import renormalised, topk_mask

    student, teacher, batch, k = _model(2), _model(1), build_batch(PROMPTS, RESPONSES, pad_id=0), 5
    with torch.no_grad():
        s_full, tau_full = full_logprobs(student, batch), full_logprobs(teacher, batch)
        kept = kept_logprobs(student, batch, teacher_pass(teacher, batch, k, 4), 4)

    def kl(p_logp, q_logp, candidates):  # Σ_{c} p̃(c) (log p(c) − log q(c)), p renormalised over the candidates
        terms = renormalised(p_logp, candidates) * (p_logp - q_logp).masked_fill(~candidates, 0)
        return terms.sum(-1)[batch.mask]

    s_top, t_top = topk_mask(s_full, 3), topk_mask(tau_full, 3)
    kept_s_top = torch.zeros_like(kept.student, dtype=torch.bool)
    kept_s_top[..., :3] = True
    torch.testing.assert_close(kl(kept.student, kept.teacher, kept_s_top), kl(s_full, tau_full, s_top))
    kept_t_top = topk_mask(kept.teacher, 3)
    torch.testing.assert_close(kl(kept.teacher, kept.student, kept_t_top), kl(tau_full, s_full, t_top))


class Sorts(TorchDispatchMode):
    """Records the largest k of any `topk` and the longest axis of any `sort` (the cost of a top-K over the
    vocabulary)."""

    def __init__(self) -> None:
        super().__init__()
        self.widest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket is torch.ops.aten.topk:
            self.widest = max(self.widest, int(args[1]))
        elif func.overloadpacket is torch.ops.aten.sort:
            self.widest = max(self.widest, int(args[0].shape[-1]))
        return func(*args, **(kwargs or {}))


# The last: every response as long as the longest, so no position is padding.
@pytest.mark.parametrize("chunk, pairs", [(1, (PROMPTS, RESPONSES)), (1000, (PROMPTS, RESPONSES)), (5, SHARED),
                                          (4, (PROMPTS, [[8, 9, 2], [4, 4, 9], [3, 3, 250]]))])
def test_with_k_covering_the_vocabulary_the_kept_columns_are_the_vocabulary_with_no_sort(chunk, pairs):
    """K >= V (`opd_top_k` the vocabulary: the full reverse KL, like TRL's trainers): the kept columns are the
    vocabulary in id order, the values, losses, metrics and gradients the full computation's, and no op sorts a
    vocabulary-wide axis (a 2K + 1 support would sort it three times: both top-Ks and the deduplication)."""
    from brts.method import forward_kl, reverse_kl

    vocab = 300
    student, teacher = _model(2, vocab), _model(1, vocab)
    batch = build_batch(*pairs, pad_id=0)
    cfg = MethodConfig(teacher_context=True, opd_top_k=vocab, aux_top_k=3, alignment_top_k=vocab)
    k, mask = support_top_k(cfg, vocab), batch.mask
    assert k == vocab

    def losses_and_grads(s, tau, tokens):
        student.zero_grad()
        loss = opd_loss(s, tau, tokens, mask, cfg) + teacher_context_loss(s, tau, mask, cfg)
        loss.backward()
        return loss.detach(), {n: q.grad.clone() for n, q in student.named_parameters()}

    s_full = full_logprobs(student, batch)
    with torch.no_grad():
        tau_full = full_logprobs(teacher, batch)
    ref_loss, ref_grads = losses_and_grads(s_full, tau_full, batch.tokens)
    with Sorts() as sorts:
        with torch.no_grad():
            teacher_part = teacher_pass(teacher, batch, k, chunk)
        kept = kept_logprobs(student, batch, teacher_part, chunk)
        loss, grads = losses_and_grads(kept.student, kept.teacher, kept.token)
        kl_opd = reverse_kl(kept.student.detach(), kept.teacher, mask, cfg.opd_top_k)
        kl_aux = forward_kl(kept.student.detach(), kept.teacher, mask, cfg.aux_top_k)
        kth = kept.kth(cfg.effective_alignment_top_k)
    assert sorts.widest <= cfg.aux_top_k
    assert kept.whole and kept.student.shape == (*mask.shape, vocab)
    assert torch.equal(kept.columns[mask], torch.arange(vocab).expand(int(mask.sum()), vocab))
    torch.testing.assert_close(kept.student[mask].detach(), s_full[mask].detach())
    torch.testing.assert_close(kept.teacher[mask], tau_full[mask])
    assert torch.equal(kept.token[mask], batch.tokens[mask])
    torch.testing.assert_close(kept.token_logprob()[mask].detach(),
                               s_full.detach().gather(-1, batch.tokens.unsqueeze(-1)).squeeze(-1)[mask])
    p = s_full.detach().exp()
    torch.testing.assert_close(kept.entropy[mask], -(p * s_full.detach()).sum(-1)[mask])
    torch.testing.assert_close(kth[mask], s_full.detach().amin(-1)[mask])
    torch.testing.assert_close(kl_opd, reverse_kl(s_full.detach(), tau_full, mask, cfg.opd_top_k))
    torch.testing.assert_close(kl_aux, forward_kl(s_full.detach(), tau_full, mask, cfg.aux_top_k))
    torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-6)
    for name, grad in ref_grads.items():
        torch.testing.assert_close(grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)
