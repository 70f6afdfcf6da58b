"""nn.GroupNorm."""

import torch.nn.functional as F
from privaudit.dp.layers.normalization import AffineNormRule, sum_trailing
from privaudit.dp.layers.registry import register_rule
from torch import nn


@register_rule(nn.GroupNorm)
class GroupNormRule(AffineNormRule):
    def normalized(self, call):
        return F.group_norm(call.input, call.module.num_groups, eps=call.module.eps)

    def reduce(self, call, t):
        return sum_trailing(t)
