"""timm's own layers, registered by name so privaudit.dp never imports timm.

LayerNorm2d normalises the channels of an NCHW tensor; LayerScale / LayerScale2d multiply by a
per-channel gamma; BEiT's attention calls F.linear on its qkv child's weight with a q/v bias of its
own (so the child's forward never runs), and takes torch.func over the whole attention.
"""

import torch.nn.functional as F
from privaudit.dp.layers.fallback import SubtreeFuncRule
from privaudit.dp.layers.normalization import AffineNormRule, sum_leading, sum_trailing
from privaudit.dp.layers.registry import LayerCall, LayerRule, register_rule
from torch import Tensor


@register_rule("timm.layers.norm.LayerNorm2d")
class ChannelLayerNormRule(AffineNormRule):
    def normalized(self, call):
        x = call.input.permute(0, 2, 3, 1)
        shape, eps = call.module.normalized_shape, call.module.eps
        return F.layer_norm(x, shape, eps=eps).permute(0, 3, 1, 2)

    def reduce(self, call, t):
        return sum_trailing(t)


@register_rule("timm.layers.layer_scale.LayerScale")
class LayerScaleRule(LayerRule):
    """y = x * gamma over the last axis: the gamma gradient is sum over positions of x * g."""

    def per_sample_grads(self, call: LayerCall) -> dict[str, Tensor]:
        return {"gamma": sum_leading(call.input * call.grad_out, 1)}


@register_rule("timm.layers.layer_scale.LayerScale2d")
class ChannelLayerScaleRule(LayerRule):
    """y = x * gamma over the channel axis of [B, C, ...]."""

    def per_sample_grads(self, call: LayerCall) -> dict[str, Tensor]:
        return {"gamma": sum_trailing(call.input * call.grad_out)}


register_rule("timm.models.beit.Attention")(SubtreeFuncRule)
