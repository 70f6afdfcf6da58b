"""transformers' GPT-2 Conv1D (y = x W + b with W [in, out]): the Linear rule on the transposed weight.

Registered by name, so privaudit.dp never imports transformers.
"""

import torch
from privaudit.dp.layers.linear import (
    as_sequence,
    linear_ghost_norm_sq,
    linear_weighted_weight,
    triton_norms_sq,
    triton_weighted_weight,
    uses_kernel,
)
from privaudit.dp.layers.registry import LayerCall, LayerRule, norm_sq, register_rule
from torch import Tensor


@register_rule("transformers.pytorch_utils.Conv1D")
class GPT2Conv1DRule(LayerRule):
    def per_sample_grads(self, call: LayerCall) -> dict[str, Tensor]:
        a, g = as_sequence(call.input), as_sequence(call.grad_out)
        return {"weight": torch.einsum("btd,btp->bdp", a, g), "bias": g.sum(1)}

    def ghost_norms_sq(self, call: LayerCall) -> dict[str, Tensor] | None:
        a, g = as_sequence(call.input), as_sequence(call.grad_out)
        weight = None if uses_kernel(call, a) else linear_ghost_norm_sq(a, g)
        return None if weight is None else {"weight": weight, "bias": g.sum(1).pow(2).sum(1)}

    def explicit_norms_sq(
        self, call: LayerCall, keep: bool
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        a, g = as_sequence(call.input), as_sequence(call.grad_out)
        if not uses_kernel(call, a):
            return super().explicit_norms_sq(call, keep)
        weight_norms, weight = triton_norms_sq(a, g, keep)
        bias = g.sum(1)
        grads = {"weight": None if weight is None else weight.transpose(1, 2), "bias": bias}
        return {"weight": weight_norms, "bias": norm_sq(bias)}, grads if keep else {}

    def weighted_grads(self, call: LayerCall, coef: Tensor) -> dict[str, Tensor]:
        if call.per_sample:
            return super().weighted_grads(call, coef)
        a, g = as_sequence(call.input), as_sequence(call.grad_out)
        bias = torch.einsum("b,btp->p", coef.to(g.dtype), g)
        if call.kernels == "triton":
            # written into an [in, out] buffer through its transposed view, as the weight is laid out
            accumulate = (
                torch.float64
                if torch.promote_types(a.dtype, g.dtype) == torch.float64
                else torch.float32
            )
            out = a.new_zeros(call.module.weight.shape, dtype=accumulate)
            triton_weighted_weight(a, g, coef, out=out.t())
            return {"weight": out.to(call.module.weight.dtype), "bias": bias}
        # [in, out] directly (the transpose of the Linear form would leave a strided copy to the optimizer)
        return {"weight": linear_weighted_weight(g, a, coef), "bias": bias}
