"""nn.Embedding: ghost norm from token equality, sum_{t,s} [i_t = i_s] <g_t, g_s>; clipped sum by index_add."""

import torch
from privaudit.dp.layers.registry import LayerCall, LayerRule, register_rule
from torch import Tensor, nn


def _tokens_and_grads(call: LayerCall) -> tuple[Tensor, Tensor]:
    tokens = call.input.reshape(call.input.shape[0], -1)
    grads = call.grad_out.reshape(tokens.shape[0], tokens.shape[1], -1)
    if call.module.padding_idx is not None:
        # the padding row never receives a gradient
        grads = grads * (tokens != call.module.padding_idx).unsqueeze(-1).to(grads.dtype)
    return tokens, grads


@register_rule(nn.Embedding)
class EmbeddingRule(LayerRule):
    def per_sample_grads(self, call: LayerCall) -> dict[str, Tensor]:
        tokens, grads = _tokens_and_grads(call)
        batch, rows = tokens.shape[0], call.module.num_embeddings
        flat = (tokens + rows * torch.arange(batch, device=tokens.device).unsqueeze(1)).flatten()
        out = grads.new_zeros(batch * rows, grads.shape[-1]).index_add_(
            0, flat, grads.reshape(-1, grads.shape[-1])
        )
        return {"weight": out.reshape(batch, rows, -1)}

    def ghost_norms_sq(self, call: LayerCall) -> dict[str, Tensor]:
        tokens, grads = _tokens_and_grads(call)
        same = (tokens.unsqueeze(2) == tokens.unsqueeze(1)).to(grads.dtype)
        return {"weight": (same * (grads @ grads.transpose(1, 2))).sum((1, 2))}

    def weighted_grads(self, call: LayerCall, coef: Tensor) -> dict[str, Tensor]:
        if call.per_sample:
            return super().weighted_grads(call, coef)
        tokens, grads = _tokens_and_grads(call)
        scaled = grads * coef.to(grads.dtype).view(-1, 1, 1)
        out = grads.new_zeros(call.module.weight.shape)
        return {"weight": out.index_add_(0, tokens.flatten(), scaled.reshape(-1, grads.shape[-1]))}
