"""Per-layer rules for per-sample gradient norms and clipped sums, registered by exact module type."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

# keyed by "module.QualName" so a rule can name a class of an optional library without importing it
_RULES: dict[str, LayerRule] = {}


def _type_name(module_type: type) -> str:
    return f"{module_type.__module__}.{module_type.__qualname__}"


@dataclass(eq=False)
class LayerCall:
    """One forward call of a hooked module: what its rule needs once the output gradient is known.

    `grad_out` is the output gradient as autograd delivered it; `grad_scale * grad_out` is the gradient
    of the per-sample losses (not their mean). Rules work on `grad_out` as it is: every per-sample
    gradient is linear in it, so the engine applies the scale to the norms and clipping factors.
    """

    module: nn.Module
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    # where the output enters the graph (for the two-pass norms backward); never the output itself,
    # which would keep every layer's activation alive until its gradient arrives
    edge: Any = None
    grad_out: Tensor | None = None
    grad_scale: float = 1.0
    # per-sample squared norms per parameter name, filled once grad_out is known
    norms_sq: dict[str, Tensor] = field(default_factory=dict)
    # explicit per-sample gradients, kept when they were computed anyway (mixed rule, tied parameters)
    per_sample: dict[str, Tensor] = field(default_factory=dict)
    # "triton" or "torch": which implementation the rule uses where it has both (privaudit.dp.kernels)
    kernels: str = "torch"

    @property
    def input(self) -> Tensor:
        return self.args[0]


class LayerRule:
    """How to get per-sample gradient norms and the clipped sum for one module type.

    Subclasses implement `per_sample_grads`; they override `ghost_norms_sq` when the norms can be had
    without materialising per-sample gradients, and `weighted_grads` when sum_i c_i g_i is cheaper
    than going through per-sample gradients.

    A rule with `covers_submodules` handles every parameter below its module too (a module whose
    forward uses a child's weight without calling the child); the engine then hooks no descendant.
    """

    covers_submodules = False

    def per_sample_grads(self, call: LayerCall) -> dict[str, Tensor]:
        raise NotImplementedError

    def ghost_norms_sq(self, call: LayerCall) -> dict[str, Tensor] | None:
        """Per-sample squared gradient norms, or None when the explicit route is cheaper."""
        return None

    def explicit_norms_sq(
        self, call: LayerCall, keep: bool
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Per-sample squared norms from explicit per-sample gradients, and those gradients when
        `keep` (else an empty dict: a rule may then form them piece by piece and drop them)."""
        grads = self.per_sample_grads(call)
        return {name: norm_sq(g) for name, g in grads.items()}, grads if keep else {}

    def weighted_grads(self, call: LayerCall, coef: Tensor) -> dict[str, Tensor]:
        """sum_i coef_i * (per-sample gradient i) for every parameter of the call's module."""
        grads = call.per_sample or self.per_sample_grads(call)
        return {name: torch.einsum("b,b...->...", coef.to(g.dtype), g) for name, g in grads.items()}


def register_rule(*module_types: type[nn.Module] | str):
    """Class decorator: the decorated LayerRule handles exactly these module types (not subclasses),
    given as classes or as "package.module.ClassName"."""

    def decorate(rule_class: type[LayerRule]) -> type[LayerRule]:
        for module_type in module_types:
            name = module_type if isinstance(module_type, str) else _type_name(module_type)
            if name in _RULES:
                raise ValueError(f"a per-sample rule for {name} is already registered")
            _RULES[name] = rule_class()
        return rule_class

    return decorate


def rule_for(module: nn.Module) -> LayerRule | None:
    """The registered rule for this module's exact type, or None (the torch.func fallback applies)."""
    return _RULES.get(_type_name(type(module)))


def norm_sq(g: Tensor) -> Tensor:
    """Squared norm of each row of a [B, ...] tensor, without a squared copy of it."""
    return (
        torch.linalg.vector_norm(g, dim=tuple(range(1, g.dim()))).square()
        if g.dim() > 1
        else g.square()
    )


def batch_dot(x: Tensor, y: Tensor) -> Tensor:
    """Per-sample inner product of two [B, ...] tensors."""
    return (x * y).flatten(1).sum(1)
