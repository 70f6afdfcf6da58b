"""nn.LayerNorm, and timm's LayerNorm (the same normalisation, optionally by a fused kernel)."""

import torch.nn.functional as F
from privaudit.dp.layers.normalization import AffineNormRule, sum_leading
from privaudit.dp.layers.registry import register_rule
from torch import nn


@register_rule(nn.LayerNorm, "timm.layers.norm.LayerNorm")
class LayerNormRule(AffineNormRule):
    def normalized(self, call):
        return F.layer_norm(call.input, call.module.normalized_shape, eps=call.module.eps)

    def reduce(self, call, t):
        return sum_leading(t, len(call.module.normalized_shape))
