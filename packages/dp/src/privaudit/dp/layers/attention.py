"""Multi-head attention from nn.Linear layers, for per-sample clipping.

nn.MultiheadAttention packs the q/k/v projections into one in_proj_weight and applies its out_proj
weight inside F.multi_head_attention_forward, so out_proj's own forward never runs and no layer
hook sees the inputs of either. DPMultiheadAttention computes the same function with four
nn.Linear layers that always see batch-first [B, T, E] inputs (ghost norms apply to each), and
appends bias_k / bias_v through SequenceBias, whose per-sample gradient is the output gradient at
the appended position. `privaudit.dp.validate.fix(model)` swaps one for the other, weights copied.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from privaudit.dp.errors import DPError
from privaudit.dp.layers.registry import LayerCall, LayerRule, register_rule
from torch import Tensor, nn


class SequenceBias(nn.Module):
    """Appends one learned position to a batch-first sequence: [B, S, E] -> [B, S + 1, E]."""

    def __init__(self, embed_dim: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(embed_dim))

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([x, self.bias.to(x.dtype).expand(x.shape[0], 1, -1)], 1)


@register_rule(SequenceBias)
class SequenceBiasRule(LayerRule):
    def per_sample_grads(self, call: LayerCall) -> dict[str, Tensor]:
        return {"bias": call.grad_out[:, -1]}


class DPMultiheadAttention(nn.Module):
    """nn.MultiheadAttention's forward (masks, need_weights, average_attn_weights, dropout,
    add_bias_kv, add_zero_attn, kdim / vdim, batch_first) from q_proj / k_proj / v_proj / out_proj
    Linears. Batched inputs only: DP needs a batch."""

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        add_bias_kv: bool = False,
        add_zero_attn: bool = False,
        kdim: int | None = None,
        vdim: int | None = None,
        batch_first: bool = False,
    ):
        super().__init__()
        if embed_dim % num_heads:
            raise DPError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}.")
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.head_dim = embed_dim // num_heads
        self.dropout, self.batch_first, self.add_zero_attn = dropout, batch_first, add_zero_attn
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.k_proj = nn.Linear(kdim or embed_dim, embed_dim, bias=bias)
        self.v_proj = nn.Linear(vdim or embed_dim, embed_dim, bias=bias)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.bias_k = SequenceBias(embed_dim) if add_bias_kv else None
        self.bias_v = SequenceBias(embed_dim) if add_bias_kv else None

    @classmethod
    def from_torch(cls, module: nn.MultiheadAttention) -> DPMultiheadAttention:
        """The same attention as `module`, its weights copied."""
        new = cls(
            module.embed_dim,
            module.num_heads,
            module.dropout,
            module.out_proj.bias is not None,
            module.bias_k is not None,
            module.add_zero_attn,
            module.kdim,
            module.vdim,
            module.batch_first,
        )
        new = new.to(module.out_proj.weight.device, module.out_proj.weight.dtype)
        with torch.no_grad():
            if module.in_proj_weight is not None:
                weights = module.in_proj_weight.chunk(3)
            else:
                weights = (module.q_proj_weight, module.k_proj_weight, module.v_proj_weight)
            projections = (new.q_proj, new.k_proj, new.v_proj)
            for linear, weight in zip(projections, weights, strict=True):
                linear.weight.copy_(weight)
            if module.in_proj_bias is not None:
                for linear, b in zip(projections, module.in_proj_bias.chunk(3), strict=True):
                    linear.bias.copy_(b)
            new.out_proj.load_state_dict(module.out_proj.state_dict())
            if module.bias_k is not None:
                new.bias_k.bias.copy_(module.bias_k.flatten())
                new.bias_v.bias.copy_(module.bias_v.flatten())
        for p_new, p_old in zip(new.parameters(), _torch_parameters(module), strict=True):
            p_new.requires_grad_(p_old.requires_grad)
        return new.train(module.training)

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        key_padding_mask: Tensor | None = None,
        need_weights: bool = True,
        attn_mask: Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        if query.dim() != 3:
            raise DPError("DPMultiheadAttention needs batched [B, T, E] (or [T, B, E]) inputs.")
        if is_causal and attn_mask is None:
            raise DPError(
                "is_causal is a hint that attn_mask is the causal mask: give attn_mask too."
            )
        if not self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        q, k, v = self.q_proj(query), self.k_proj(key), self.v_proj(value)
        batch, length = q.shape[:2]
        mask = _additive_mask(attn_mask, key_padding_mask, batch, self.num_heads, length, q.dtype)
        if self.bias_k is not None:
            k, v = self.bias_k(k), self.bias_v(v)
            mask = None if mask is None else F.pad(mask, (0, 1))
        q, k, v = (
            t.reshape(batch, -1, self.num_heads, self.head_dim).transpose(1, 2) for t in (q, k, v)
        )
        if self.add_zero_attn:
            k, v = (F.pad(t, (0, 0, 0, 1)) for t in (k, v))
            mask = None if mask is None else F.pad(mask, (0, 1))
        dropout = self.dropout if self.training else 0.0
        if need_weights:
            scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)
            weights = torch.softmax(scores if mask is None else scores + mask, -1)
            out = F.dropout(weights, dropout) @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
            weights = None
        out = self.out_proj(out.transpose(1, 2).reshape(batch, length, self.embed_dim))
        if not self.batch_first:
            out = out.transpose(0, 1)
        if weights is not None and average_attn_weights:
            weights = weights.mean(1)
        return out, weights


def _torch_parameters(module: nn.MultiheadAttention) -> list[Tensor]:
    """nn.MultiheadAttention's parameters in DPMultiheadAttention's order (q, k, v, out, bias_k/v)."""
    if module.in_proj_weight is not None:
        weights = [module.in_proj_weight] * 3
    else:
        weights = [module.q_proj_weight, module.k_proj_weight, module.v_proj_weight]
    params = []
    for weight in weights:
        params += [weight] + ([module.in_proj_bias] if module.in_proj_bias is not None else [])
    params += list(module.out_proj.parameters())
    return params + [b for b in (module.bias_k, module.bias_v) if b is not None]


def _additive_mask(attn_mask, key_padding_mask, batch, heads, length, dtype) -> Tensor | None:
    """attn_mask ([T, S] or [B * heads, T, S]) and key_padding_mask ([B, S]), bool (True: masked)
    or float (added), as one float mask broadcastable to [B, heads, T, S]."""
    mask = None
    for m, shape in ((attn_mask, None), (key_padding_mask, (batch, 1, 1, -1))):
        if m is None:
            continue
        if m.dtype == torch.bool:
            m = torch.zeros(m.shape, dtype=dtype, device=m.device).masked_fill(m, float("-inf"))
        m = m.to(dtype)
        if shape is None:
            shape = (1, 1, length, -1) if m.dim() == 2 else (batch, heads, length, -1)
        m = m.reshape(shape)
        mask = m if mask is None else mask + m
    return mask
