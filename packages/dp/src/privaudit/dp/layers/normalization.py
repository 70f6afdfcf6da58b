"""Shared rule for affine normalisation layers: per-sample gradients are small (one value per channel
or normalised element), so they are formed explicitly from the normalised input."""

from privaudit.dp.layers.registry import LayerCall, LayerRule
from torch import Tensor


class AffineNormRule(LayerRule):
    """weight gradient = sum over the non-parameter axes of g * x_hat; bias gradient = sum of g."""

    def normalized(self, call: LayerCall) -> Tensor:
        raise NotImplementedError

    def reduce(self, call: LayerCall, t: Tensor) -> Tensor:
        """Sum a [B, ...] tensor down to [B, *parameter shape]."""
        raise NotImplementedError

    def per_sample_grads(self, call: LayerCall) -> dict[str, Tensor]:
        module, g = call.module, call.grad_out
        grads = {}
        if getattr(module, "weight", None) is not None:
            grads["weight"] = self.reduce(call, g * self.normalized(call))
        if getattr(module, "bias", None) is not None:
            grads["bias"] = self.reduce(call, g)
        return grads


def sum_leading(t: Tensor, kept: int) -> Tensor:
    """Sum over every axis between the batch axis and the last `kept` axes."""
    axes = tuple(range(1, t.dim() - kept))
    return t.sum(axes) if axes else t


def sum_trailing(t: Tensor) -> Tensor:
    """Sum over every axis after the channel axis ([B, C, ...] -> [B, C])."""
    return t.flatten(2).sum(2)
