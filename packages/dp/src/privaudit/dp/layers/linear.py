"""nn.Linear on [B, in] or sequence inputs [B, ..., in]: ghost norm or explicit, by the mixed rule."""

import torch
from privaudit.dp.layers.registry import LayerCall, LayerRule, norm_sq, register_rule
from torch import Tensor, nn


def as_sequence(x: Tensor) -> Tensor:
    """[B, ..., d] -> [B, T, d] with T the product of the middle dimensions (1 for 2-D inputs)."""
    return x.reshape(x.shape[0], -1, x.shape[-1])


def linear_ghost_norm_sq(a: Tensor, g: Tensor) -> Tensor | None:
    """||sum_t g_t a_t^T||_F^2 per sample from [B, T, D] inputs and [B, T, p] output gradients.

    Uses the Gram-matrix identity when it is cheaper (2 T^2 <= p D) and returns None otherwise.
    """
    steps = a.shape[1]
    if steps == 1:
        return a.pow(2).sum((1, 2)) * g.pow(2).sum((1, 2))
    if 2 * steps * steps > a.shape[2] * g.shape[2]:
        return None
    return (torch.bmm(a, a.transpose(1, 2)) * torch.bmm(g, g.transpose(1, 2))).sum((1, 2))


def linear_weighted_weight(a: Tensor, g: Tensor, coef: Tensor) -> Tensor:
    """sum_i coef_i sum_t g_it a_it^T as one matmul, [p, D]."""
    if (
        a.shape[-1] < g.shape[-1]
    ):  # scale the smaller of the two (a 512-wide input, not 8192 logits)
        a = a * coef.to(a.dtype).view(-1, 1, 1)
    else:
        g = g * coef.to(g.dtype).view(-1, 1, 1)
    return g.reshape(-1, g.shape[-1]).t() @ a.reshape(-1, a.shape[-1])


def triton_norms_sq(a: Tensor, g: Tensor, keep: bool) -> tuple[Tensor, Tensor | None]:
    """Per-sample ||sum_t g_t a_t^T||^2 by the Triton kernel, and the [B, p, D] gradients when `keep`."""
    from privaudit.dp.kernels import per_sample

    return per_sample.norms_sq(
        per_sample.linear_view(a), per_sample.linear_view(g), per_sample.Geometry(), keep
    )


def triton_weighted_weight(a: Tensor, g: Tensor, coef: Tensor, out: Tensor | None = None) -> Tensor:
    """sum_i coef_i sum_t g_it a_it^T by the Triton kernel, [p, D] (or added into `out`)."""
    from privaudit.dp.kernels import per_sample

    x, grads = per_sample.linear_view(a), per_sample.linear_view(g)
    return per_sample.weighted_sum(x, grads, coef, per_sample.Geometry(), out=out)


def uses_kernel(call: LayerCall, a: Tensor) -> bool:
    """Triton forms the norms of sequence inputs; 2-D inputs keep the ghost norm |a|^2 |g|^2."""
    return call.kernels == "triton" and a.shape[1] > 1


# Opacus' RNNLinear (the cells of DPLSTM / DPGRU / DPRNN) is an nn.Linear called once per time step
@register_rule(nn.Linear, "opacus.layers.dp_rnn.RNNLinear")
class LinearRule(LayerRule):
    def per_sample_grads(self, call: LayerCall) -> dict[str, Tensor]:
        a, g = as_sequence(call.input), as_sequence(call.grad_out)
        grads = {"weight": torch.einsum("btp,btd->bpd", g, a)}
        if call.module.bias is not None:
            grads["bias"] = g.sum(1)
        return grads

    def ghost_norms_sq(self, call: LayerCall) -> dict[str, Tensor] | None:
        a, g = as_sequence(call.input), as_sequence(call.grad_out)
        weight = None if uses_kernel(call, a) else linear_ghost_norm_sq(a, g)
        if weight is None:
            return None
        norms = {"weight": weight}
        if call.module.bias is not None:
            norms["bias"] = g.sum(1).pow(2).sum(1)
        return norms

    def explicit_norms_sq(
        self, call: LayerCall, keep: bool
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        a, g = as_sequence(call.input), as_sequence(call.grad_out)
        if not uses_kernel(call, a):
            return super().explicit_norms_sq(call, keep)
        weight_norms, weight = triton_norms_sq(a, g, keep)
        norms, grads = {"weight": weight_norms}, {"weight": weight}
        if call.module.bias is not None:
            grads["bias"] = g.sum(1)
            norms["bias"] = norm_sq(grads["bias"])
        return norms, grads if keep else {}

    def weighted_grads(self, call: LayerCall, coef: Tensor) -> dict[str, Tensor]:
        if call.per_sample:
            return super().weighted_grads(call, coef)
        a, g = as_sequence(call.input), as_sequence(call.grad_out)
        if call.kernels == "triton":
            weight = triton_weighted_weight(a, g, coef).to(call.module.weight.dtype)
        else:
            weight = linear_weighted_weight(a, g, coef)
        grads = {"weight": weight}
        if call.module.bias is not None:
            grads["bias"] = torch.einsum("b,btp->p", coef.to(g.dtype), g)
        return grads
