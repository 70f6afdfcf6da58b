"""Hooks that record each trainable layer's inputs and output gradients, and turn them into clipped sums.

Book-keeping: one ordinary backward pass; the per-sample norms are formed as each output gradient
arrives, and the clipped sum sum_i c_i g_i is formed per layer once every norm is known. Parameters of
layers whose inputs already need gradients are hidden from autograd during the forward, so the
backward pass never computes the (discarded) non-private parameter gradients.

Until the clipped sum, a layer keeps either its per-sample gradients or its input and output gradient,
whichever is smaller, counting the output gradient only (the input is an activation autograd holds
until the layer's backward anyway). No layer output is kept (two-pass keeps its gradient edge), and
the output gradient is kept as autograd delivered it: the 1/B of a mean loss is undone on the norms
and clipping factors (LayerCall.grad_scale), not by a scaled copy.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from functools import partial

import torch
from privaudit.dp.clipping import check_clipping, clip_factors
from privaudit.dp.errors import DPError
from privaudit.dp.kernels import check_kernels, resolve
from privaudit.dp.layers import FALLBACK_RULE, LayerCall, rule_for
from privaudit.dp.layers.registry import LayerRule
from torch import Tensor, nn
from torch.autograd.graph import GradientEdge, get_gradient_edge

MODES = ("bookkeeping", "two_pass")


class PerSampleClipper:
    """Per-sample gradient clipping for every trainable parameter of `module`.

    `kernels`: "auto" (Triton for CUDA tensors, PyTorch elsewhere; PRIVAUDIT_DP_KERNELS overrides),
    "triton" or "torch" (see privaudit.dp.kernels).
    """

    def __init__(
        self,
        module: nn.Module,
        *,
        max_grad_norm: float = 1.0,
        clipping: str = "abadi",
        gamma: float = 0.01,
        per_layer: bool = False,
        loss_reduction: str = "mean",
        mode: str = "bookkeeping",
        kernels: str = "auto",
    ):
        check_clipping(clipping, max_grad_norm, gamma)
        check_kernels(kernels)
        if loss_reduction not in ("mean", "sum"):
            raise DPError(f"loss_reduction must be 'mean' or 'sum', got {loss_reduction!r}.")
        if mode not in MODES:
            raise DPError(f"mode must be one of {', '.join(MODES)}, got {mode!r}.")
        if mode == "two_pass" and per_layer:
            raise DPError(
                "per-layer clipping needs the book-keeping mode: one reweighted loss cannot carry a factor per layer."
            )
        self.module = module
        self.max_grad_norm = float(max_grad_norm)
        self.clipping = clipping
        self.gamma = gamma
        self.per_layer = per_layer
        self.loss_reduction = loss_reduction
        self.mode = mode
        self.kernels = kernels
        self._kernels_on: dict[torch.device, str] = {}  # kernels resolved per device
        self.layer_params = layer_parameters(module)
        self.params = list(
            dict.fromkeys(p for ps in self.layer_params.values() for p in ps.values())
        )
        if not self.params:
            raise DPError("the model has no trainable parameters.")
        owners = defaultdict(list)
        for m, ps in self.layer_params.items():
            for p in ps.values():
                owners[p].append(m)
        self.tied = {p for p, ms in owners.items() if len(ms) > 1}
        self._owner = {p: ms[0] for p, ms in owners.items()}
        if per_layer and self.tied:
            raise DPError(
                "per-layer clipping cannot split a parameter shared between layers; use flat clipping."
            )
        self.calls: list[LayerCall] = []
        self.exposed: set[nn.Parameter] = set()
        self._uses: dict[nn.Parameter, int] = defaultdict(int)
        self._capturing = True
        self._hidden: dict[nn.Module, list[nn.Parameter]] = {}
        self._handles = []
        for m in self.layer_params:
            self._handles.append(
                m.register_forward_pre_hook(self._before_forward, with_kwargs=True)
            )
            self._handles.append(m.register_forward_hook(self._after_forward, with_kwargs=True))

    def detach(self) -> None:
        """Remove every hook; the module is ordinary again."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self.clear()

    # ---------------------------------------------------------------- recording
    def _recording(self) -> bool:
        # Calls inside torch.func transforms (a user's own per-sample gradients, say) are not
        # training steps: leave them alone.
        return (
            self._capturing
            and torch.is_grad_enabled()
            and not torch._C._are_functorch_transforms_active()
        )

    def _before_forward(self, module, args, kwargs):
        if not (self._recording() and self.mode == "bookkeeping"):
            return
        inputs = [a for a in (*args, *kwargs.values()) if isinstance(a, Tensor)]
        if any(a.requires_grad for a in inputs):
            # the output still needs a gradient through the input, but autograd need not form the
            # non-private parameter gradient: the clipped sum replaces it
            hidden = list(self.layer_params[module].values())
            for p in hidden:
                p.requires_grad_(False)
            self._hidden[module] = hidden

    def _after_forward(self, module, args, kwargs, output):
        hidden = self._hidden.pop(module, ())
        for p in hidden:
            p.requires_grad_(True)
        if not self._recording():
            return
        if not isinstance(output, Tensor):
            raise DPError(
                f"layer {type(module).__name__} returns {type(output).__name__}, but a layer with its own "
                "trainable parameters must return one tensor for per-sample clipping."
            )
        if not output.requires_grad:
            return
        # two-pass asks autograd for the gradient at this edge; book-keeping needs no reference at all
        edge = get_gradient_edge(output) if self.mode == "two_pass" else None
        call = LayerCall(module, args, kwargs, edge)
        if output.device not in self._kernels_on:
            self._kernels_on[output.device] = resolve(self.kernels, output.device)
        call.kernels = self._kernels_on[output.device]
        if self.mode == "bookkeeping" and self.loss_reduction == "mean":
            # the loss was the batch mean: each row of the output gradient is one sample's loss
            # gradient over B, which the norms and factors undo instead of copying the gradient
            call.grad_scale = float(output.shape[0])
        call.versions = [a._version for a in args if isinstance(a, Tensor)]
        self.calls.append(call)
        for p in self.layer_params[module].values():
            self._uses[p] += 1
        if not hidden:  # autograd will also form this layer's ordinary parameter gradient
            self.exposed.update(self.layer_params[module].values())
        output.register_hook(partial(self._on_grad_out, call))

    def _on_grad_out(self, call: LayerCall, grad: Tensor) -> None:
        if not self._capturing or call.grad_out is not None:
            return
        call.grad_out = grad
        self._summarise(call)

    def _summarise(self, call: LayerCall) -> None:
        module = call.module
        if [a._version for a in call.args if isinstance(a, Tensor)] != call.versions:
            raise DPError(
                f"the input of layer {type(module).__name__} was modified in place after its forward; "
                "make the following operation out-of-place (e.g. inplace=False)."
            )
        params = self.layer_params[module]
        rule = rule_for(module) or FALLBACK_RULE
        shared = any(self._uses[p] > 1 for p in params.values())
        if call.grad_out.shape[0] == 0:  # an empty Poisson batch: nothing to clip
            call.norms_sq = {n: call.grad_out.new_zeros(0) for n in params}
            call.per_sample = {n: p.new_zeros(0, *p.shape) for n, p in params.items()}
            call.args, call.kwargs, call.grad_out = (), {}, None
            return
        self._capturing = False
        work = widened(call, next(iter(params.values())).dtype)
        try:
            with torch.autocast(call.grad_out.device.type, enabled=False):
                norms = self._norms(rule, call, work, params, shared)
        finally:
            self._capturing = True
        missing = sorted(set(params) - set(norms))
        if missing:
            raise DPError(
                f"the per-sample rule for {type(module).__name__} gives no gradient for its trainable "
                f"parameter(s) {', '.join(missing)}; register a rule or freeze them."
            )
        call.norms_sq = {n: norms[n] * call.grad_scale**2 for n in params}
        if self.mode == "two_pass":
            # the second backward forms the clipped sum: only the norms (and the per-sample
            # gradients of shared parameters, whose norms need their sum over calls) stay
            call.args, call.kwargs, call.grad_out = (), {}, None
            call.per_sample = {
                n: g for n, g in call.per_sample.items() if self._uses[params[n]] > 1
            }

    def _norms(
        self, rule, call: LayerCall, work: LayerCall, params, shared: bool
    ) -> dict[str, Tensor]:
        """The rule's per-sample squared norms, from `work` (the call in the parameters' precision);
        per-sample gradients are kept on `call` where the clipped sum will need them."""
        norms = None if shared else rule.ghost_norms_sq(work)
        if norms is None:
            # holding the input and output gradient until the clipped sum can take less memory
            # than holding B per-sample gradients (e.g. a conv with many channels and few
            # positions): then the rule's direct route forms the clipped sum from them instead
            # (two-pass keeps per-sample gradients only for shared parameters: the second backward forms the sum)
            keep = shared or (
                self.mode == "bookkeeping" and not self._recompute_is_smaller(rule, call, params)
            )
            norms, per_sample = rule.explicit_norms_sq(work, keep=keep)
            call.per_sample = {n: g for n, g in per_sample.items() if n in params}
            if keep:  # the per-sample gradients are all the clipped sum needs now
                call.args, call.kwargs, call.grad_out = (), {}, None
        return norms

    @staticmethod
    def _recompute_is_smaller(rule, call: LayerCall, params: dict[str, nn.Parameter]) -> bool:
        """Whether the rule forms sum_i c_i g_i directly from input and output gradient, and the
        output gradient holds fewer elements than the per-sample gradients would.

        The input does not count: it is an activation autograd holds until this layer's backward
        anyway, so holding it longer only adds memory late in the backward pass, after the peak
        (ResNet-18-GN: counting it keeps 19 MB of per-sample gradients at the peak instead of 8 MB)."""
        if type(rule).weighted_grads is LayerRule.weighted_grads:
            return False
        held = call.grad_out.shape[0] * sum(p.numel() for p in params.values())
        return call.grad_out.numel() < held

    # ---------------------------------------------------------------- clipping
    def pending(self) -> bool:
        return bool(self.calls)

    def batch_size(self) -> int:
        sizes = {len(c.norms_sq[next(iter(c.norms_sq))]) for c in self.calls if c.norms_sq}
        if len(sizes) > 1:
            raise DPError(
                f"layers saw different batch sizes {sorted(sizes)}; the batch must be dim 0 everywhere."
            )
        return sizes.pop() if sizes else 0

    def layer_norms_sq(self) -> dict[nn.Module, Tensor]:
        """Per-sample squared gradient norm of each layer's own parameters (tied ones counted once,
        under their first owner)."""
        unfinished = [c for c in self.calls if not c.norms_sq]
        if unfinished:
            raise DPError(
                f"layer {type(unfinished[0].module).__name__} ran forward but got no gradient; "
                "call backward on a loss that depends on every layer's output before stepping."
            )
        size = self.batch_size()
        zeros = (
            self.calls[0].norms_sq[next(iter(self.calls[0].norms_sq))].new_zeros(size)
            if self.calls
            else None
        )
        shared_sums: dict[nn.Parameter, Tensor] = {}
        parts: dict[nn.Module, list[Tensor]] = {}
        for call in self.calls:
            layer = parts.setdefault(call.module, [])
            for name, p in self.layer_params[call.module].items():
                if self._uses[p] > 1:
                    g = call.per_sample[name] * call.grad_scale
                    shared_sums[p] = shared_sums[p] + g if p in shared_sums else g
                else:
                    layer.append(call.norms_sq[name])
        for p, g in shared_sums.items():
            parts.setdefault(self._owner[p], []).append(g.flatten(1).pow(2).sum(1))
        # one stacked reduction per layer, not a chain of additions (each a kernel launch on a GPU)
        return {m: stacked_sum(ts) if ts else zeros for m, ts in parts.items()}

    def per_sample_norms(self) -> Tensor:
        """Per-sample norm of the whole gradient for the batch back-propagated so far."""
        return stacked_sum(list(self.layer_norms_sq().values())).sqrt()

    def clip_factors(self) -> dict[nn.Module, Tensor]:
        """Clipping factor per sample, per layer (the same tensor for every layer with flat clipping)."""
        layer_norms = self.layer_norms_sq()
        if self.per_layer:
            threshold = self.max_grad_norm / len(self.layer_params) ** 0.5
            factors = {
                m: clip_factors(n.sqrt(), threshold, self.clipping, self.gamma)
                for m, n in layer_norms.items()
            }
        else:
            flat = clip_factors(
                stacked_sum(list(layer_norms.values())).sqrt(),
                self.max_grad_norm,
                self.clipping,
                self.gamma,
            )
            factors = dict.fromkeys(layer_norms, flat)
        return factors

    def clipped_sum(self) -> dict[nn.Parameter, Tensor]:
        """sum_i c_i g_i for every parameter that took part in this batch; clears the records."""
        factors = self.clip_factors()
        sums: dict[nn.Parameter, Tensor] = {}
        for call in self.calls:
            rule = rule_for(call.module) or FALLBACK_RULE
            params = self.layer_params[call.module]
            work = widened(call, next(iter(params.values())).dtype)
            with torch.autocast(self.params[0].device.type, enabled=False):
                weighted = rule.weighted_grads(work, factors[call.module] * call.grad_scale)
            for name, g in weighted.items():
                if name in params:
                    p = params[name]
                    sums[p] = sums[p] + g if p in sums else g
        self.clear()
        return sums

    def clear(self) -> None:
        for call in self.calls:
            call.edge = None  # see two_pass_backward
        self.calls.clear()
        self.exposed.clear()
        self._uses.clear()

    def two_pass_backward(self, per_sample_losses: Tensor) -> dict[nn.Parameter, Tensor]:
        """First backward for the norms, second on the reweighted loss; returns sum_i c_i g_i."""
        if per_sample_losses.dim() != 1:
            raise DPError(
                f"two-pass backward needs one loss per sample (shape [B]), got shape {tuple(per_sample_losses.shape)}."
            )
        outputs = earliest_outputs([c.edge for c in self.calls])
        for call in self.calls:
            # an edge's node holds the output hook, which holds the call: a cycle through autograd
            # that Python's collector cannot see, and would keep the whole graph alive
            call.edge = None
        if outputs:
            # the output hooks fire for every layer on the way; asking for the earliest outputs
            # only keeps autograd from returning (and holding) one gradient per layer
            torch.autograd.grad(
                per_sample_losses.sum(), outputs, retain_graph=True, allow_unused=True
            )
        factor = (
            self.clip_factors()[self.calls[0].module]
            if self.calls
            else per_sample_losses.new_zeros(0)
        )
        self.clear()
        saved = [p.grad for p in self.params]
        for p in self.params:
            p.grad = None
        self._capturing = False
        try:
            (per_sample_losses * factor.detach()).sum().backward()
        finally:
            self._capturing = True
        sums = {p: p.grad for p in self.params if p.grad is not None}
        for p, g in zip(self.params, saved, strict=True):
            p.grad = g
        return sums


def stacked_sum(tensors: list[Tensor]) -> Tensor:
    """The sum of same-shaped tensors by one stack and one reduction, in their widest dtype."""
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    return torch.stack([t.to(dtype) for t in tensors]).sum(0)


def widened(call: LayerCall, dtype: torch.dtype) -> LayerCall:
    """The call with its floating inputs and output gradient in `dtype`, the parameters' precision:
    under bf16 / fp16 autocast, norms and clipped sums are formed (and accumulated) in float32."""

    def cast(t):
        return (
            t.to(dtype)
            if isinstance(t, Tensor) and t.is_floating_point() and t.dtype != dtype
            else t
        )

    if all(cast(t) is t for t in (*call.args, call.grad_out)):
        return call
    return dataclasses.replace(
        call, args=tuple(cast(a) for a in call.args), grad_out=cast(call.grad_out)
    )


def layer_parameters(module: nn.Module) -> dict[nn.Module, dict[str, nn.Parameter]]:
    """The trainable parameters each hooked layer answers for: its own (less aliases of its
    descendants' parameters), or its whole subtree's when its rule covers submodules (whose
    descendants are then not hooked)."""
    covered: set[nn.Module] = set()
    layers = {}
    for m in module.modules():
        if m in covered:
            continue
        rule = rule_for(m)
        whole = rule is not None and rule.covers_submodules
        if whole:
            covered.update(m.modules())
        params = {n: p for n, p in m.named_parameters(recurse=whole) if p.requires_grad}
        if params and not whole:
            # a parameter also registered below (an alias, as in Opacus' renamed DPLSTM parameters)
            # belongs to the descendant whose forward uses it
            below = {p for child in m.children() for p in child.parameters()}
            params = {n: p for n, p in params.items() if p not in below}
        if params:
            layers[m] = params
    return layers


def earliest_outputs(outputs: list[GradientEdge]) -> list[GradientEdge]:
    """The outputs (as gradient edges) from which no other output can be reached going backward
    through the graph: a backward pass to them computes the gradient of every output (each lies on
    a path to one)."""
    nodes = {o.node: o for o in outputs if o.node is not None}
    earliest = []
    for output in outputs:
        start = output.node
        if start is None:
            continue
        seen, stack, reaches_another = {start}, [start], False
        while stack and not reaches_another:
            for child, _ in stack.pop().next_functions:
                if child is None or child in seen:
                    continue
                if child in nodes and child is not start:
                    reaches_another = True
                    break
                seen.add(child)
                stack.append(child)
        if not reaches_another:
            earliest.append(output)
    return earliest
