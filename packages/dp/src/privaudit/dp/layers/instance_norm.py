"""nn.InstanceNorm1d/2d/3d with affine=True (running statistics are refused by the validator)."""

import torch.nn.functional as F
from privaudit.dp.layers.normalization import AffineNormRule, sum_trailing
from privaudit.dp.layers.registry import register_rule
from torch import nn


@register_rule(nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)
class InstanceNormRule(AffineNormRule):
    def normalized(self, call):
        module = call.module
        if module.training or not module.track_running_stats:
            return F.instance_norm(call.input, eps=module.eps)
        return F.instance_norm(
            call.input,
            module.running_mean,
            module.running_var,
            use_input_stats=False,
            eps=module.eps,
        )

    def reduce(self, call, t):
        return sum_trailing(t)
