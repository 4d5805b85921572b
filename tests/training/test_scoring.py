import torch
from transformers import LlamaConfig, LlamaForCausalLM

from brts.training.logprobs import response_hidden
from brts.training.output_head import OutputHead
from brts.training.scoring import build_batch


def test_build_batch_aligns_every_response_after_one_prompt_width():
    batch = build_batch([[1, 5, 6], [1, 7]], [[8, 9, 2], [4]], pad_id=0)
    assert batch.prompt_width == 3
    assert batch.input_ids.tolist() == [[1, 5, 6, 8, 9, 2], [0, 1, 7, 4, 0, 0]]
    assert batch.mask.tolist() == [[True, True, True], [True, False, False]]
    assert batch.tokens.tolist() == [[8, 9, 2], [4, 0, 0]]
    assert batch.position_ids.tolist() == [[0, 1, 2, 3, 4, 5], [0, 0, 1, 2, 2, 2]]
    assert batch.num_tokens == 4


def test_response_hidden_states_give_the_unpadded_forwards_log_probs():
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=12, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=32))
    model.eval()
    prompts, responses = [[1, 5, 6], [1, 7]], [[8, 9, 2], [4, 3]]
    batch = build_batch(prompts, responses, pad_id=0)
    with torch.no_grad():
        hidden = response_hidden(model, batch)  # [N, H]: the real response positions, row by row
        logp = torch.log_softmax(OutputHead.of(model).logits(hidden), -1)
        expected = []
        for p, r in zip(prompts, responses, strict=True):
            alone = torch.log_softmax(model(torch.tensor([p + r])).logits[0].float(), -1)
            expected.append(alone[len(p) - 1 : len(p) - 1 + len(r)])
        torch.testing.assert_close(logp, torch.cat(expected), atol=1e-5, rtol=1e-5)
