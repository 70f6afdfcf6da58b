"""Language models the audits and dp-train build from scratch."""

from __future__ import annotations

import torch
from torch import nn


class SmallGPT2(nn.Module):
    """transformers' GPT2LMHeadModel from scratch, returning logits only (untied head, eager
    attention): every layer is one the DP engine has a rule for. The DP benchmark builds it too."""

    def __init__(
        self,
        vocab_size: int,
        block: int,
        layers: int = 2,
        width: int = 128,
        heads: int = 4,
        end_token: int = 0,
    ):
        super().__init__()
        from transformers import GPT2Config, GPT2LMHeadModel

        config = GPT2Config(
            vocab_size=vocab_size,
            n_positions=block,
            n_embd=width,
            n_layer=layers,
            n_head=heads,
            tie_word_embeddings=False,
            attn_implementation="eager",
            bos_token_id=end_token,
            eos_token_id=end_token,
        )
        self.gpt = GPT2LMHeadModel(config)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        # explicit per-example positions: GPT-2's default [1, T] would hide the batch from the
        # position embedding's per-sample norms
        positions = torch.arange(ids.shape[1], device=ids.device).expand_as(ids).contiguous()
        return self.gpt(input_ids=ids, position_ids=positions, use_cache=False).logits


def per_sample_lm_loss(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy of each block [N]: one block is one private example."""
    per_token = nn.functional.cross_entropy(
        logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten(), reduction="none"
    )
    return per_token.view(len(ids), -1).mean(1)
