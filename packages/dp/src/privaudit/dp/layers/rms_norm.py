"""nn.RMSNorm."""

import torch.nn.functional as F
from privaudit.dp.layers.normalization import AffineNormRule, sum_leading
from privaudit.dp.layers.registry import register_rule
from torch import nn


@register_rule(nn.RMSNorm)
class RMSNormRule(AffineNormRule):
    def normalized(self, call):
        return F.rms_norm(call.input, call.module.normalized_shape, eps=call.module.eps)

    def reduce(self, call, t):
        return sum_leading(t, len(call.module.normalized_shape))
