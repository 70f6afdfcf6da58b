"""transformers' GPT-2 Conv1D (y = x W + b with W [in, out]): the Linear rule on the transposed weight.

Registered by name, so privaudit.dp never imports transformers.
"""

import torch
from privaudit.dp.layers.linear import as_sequence, linear_ghost_norm_sq, linear_weighted_weight
from privaudit.dp.layers.registry import LayerCall, LayerRule, register_rule
from torch import Tensor


@register_rule("transformers.pytorch_utils.Conv1D")
class GPT2Conv1DRule(LayerRule):
    def per_sample_grads(self, call: LayerCall) -> dict[str, Tensor]:
        a, g = as_sequence(call.input), as_sequence(call.grad_out)
        return {"weight": torch.einsum("btd,btp->bdp", a, g), "bias": g.sum(1)}

    def ghost_norms_sq(self, call: LayerCall) -> dict[str, Tensor] | None:
        a, g = as_sequence(call.input), as_sequence(call.grad_out)
        weight = linear_ghost_norm_sq(a, g)
        return None if weight is None else {"weight": weight, "bias": g.sum(1).pow(2).sum(1)}

    def weighted_grads(self, call: LayerCall, coef: Tensor) -> dict[str, Tensor]:
        if call.per_sample:
            return super().weighted_grads(call, coef)
        a, g = as_sequence(call.input), as_sequence(call.grad_out)
        # [in, out] directly (the transpose of the Linear form would leave a strided copy to the optimizer)
        return {"weight": linear_weighted_weight(g, a, coef), "bias": torch.einsum("b,btp->p", coef.to(g.dtype), g)}

