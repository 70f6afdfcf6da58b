"""A whole GPT-2 (transformers, the `models` extra) through the engine, against torch.func."""

import pytest
import torch

pytest.importorskip("transformers")
from privaudit.dp.engine import PerSampleClipper  # noqa: E402
from torch import nn  # noqa: E402


class SmallGPT2(nn.Module):
    """GPT2LMHeadModel returning logits, with explicit per-example positions (so the position
    embedding's per-sample norms see the batch), as privaudit.text builds it."""

    def __init__(self, vocab_size, block, layers, width, heads):
        super().__init__()
        from transformers import GPT2Config, GPT2LMHeadModel

        self.gpt = GPT2LMHeadModel(
            GPT2Config(
                vocab_size=vocab_size,
                n_positions=block,
                n_embd=width,
                n_layer=layers,
                n_head=heads,
                tie_word_embeddings=False,
                attn_implementation="eager",
            )
        )

    def forward(self, ids):
        positions = torch.arange(ids.shape[1]).expand_as(ids).contiguous()
        return self.gpt(input_ids=ids, position_ids=positions, use_cache=False).logits


def per_sample_lm_loss(logits, ids):
    per_token = nn.functional.cross_entropy(
        logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten(), reduction="none"
    )
    return per_token.view(len(ids), -1).mean(1)


@pytest.mark.parametrize("mode", ["bookkeeping", "two_pass"])
def test_whole_gpt2_norms_and_clipped_sum_match_torch_func(reference, mode):
    torch.manual_seed(0)
    model = SmallGPT2(vocab_size=23, block=6, layers=1, width=8, heads=2).double()
    model.eval()  # no dropout, so the reference sees the same function
    ids = torch.randint(0, 23, (5, 6))
    expected = reference.grads(model, lambda out, y: per_sample_lm_loss(out, y).sum(), ids, ids)
    clipper = PerSampleClipper(model, max_grad_norm=0.5, mode=mode)
    if mode == "two_pass":  # two embeddings start the graph: the first backward must reach both
        sums = clipper.two_pass_backward(per_sample_lm_loss(model(ids), ids))
    else:
        per_sample_lm_loss(model(ids), ids).mean().backward()
        norms = torch.sqrt(sum(g.flatten(1).pow(2).sum(1) for g in expected.values()))
        torch.testing.assert_close(clipper.per_sample_norms(), norms, rtol=1e-6, atol=1e-10)
        sums = clipper.clipped_sum()
    want = reference.clipped(expected, 0.5)
    for name, p in model.named_parameters():
        torch.testing.assert_close(sums[p], want[name], rtol=1e-6, atol=1e-10)
