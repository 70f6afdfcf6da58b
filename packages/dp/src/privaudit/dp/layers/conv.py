"""nn.Conv1d/2d/3d with any stride, padding, dilation and groups, by the mixed ghost clipping rule.

Per layer, the mixed ghost clipping rule of Bu et al. picks the cheaper route: the ghost norm
(Gram matrices of unfolded inputs and output gradients, 2 T^2 per sample for T output positions)
or explicit per-sample gradients (p D per sample, p D = weight size), which come from one grouped
convolution-backward over the batch, never from an unfolded input. The paper's test is
2 T^2 <= p D; ours also counts the T D unfolded patches the ghost route builds, so it reads
2 T^2 + T D <= p D. (On ResNet-18 the paper's test sends the 16x16 stage to the ghost route, which
there costs more time and memory than explicit gradients: 1.47x vs 1.29x non-private CPU time at
batch 32.) The clipped sum is one convolution-backward with the output gradient scaled per sample.

Both routes go through the batch in chunks of CHUNK samples: the transient memory (per-sample
gradients, unfolded patches) is that of one chunk, and explicit gradients the engine keeps are
written into one preallocated [B, *weight.shape] tensor.
"""

import torch
import torch.nn.functional as F
from privaudit.dp.layers.registry import LayerCall, LayerRule, norm_sq, register_rule
from torch import Tensor, nn
from torch.nn import grad as conv_grad

_WEIGHT_GRAD = {1: conv_grad.conv1d_weight, 2: conv_grad.conv2d_weight, 3: conv_grad.conv3d_weight}
_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
# samples per chunk on a CPU: on one thread a grouped convolution-backward over 8 samples is as fast
# or faster per sample than over 64 (ResNet-18, 32x32: 0.06 s vs 0.09-0.10 s per 64 samples)
CHUNK = 8
# On a GPU small chunks only add kernel launches (ResNet-18-GN, batch 256, H200: 191 ms per step in
# chunks of 8, 72 ms in one chunk): chunks there hold up to this many elements of their largest tensor.
GPU_CHUNK_ELEMENTS = 2**24


def chunk_size(x: Tensor, per_sample_elements: int) -> int:
    """Samples per chunk for a layer whose largest per-chunk tensor holds this many elements per sample."""
    if x.device.type == "cpu":
        return CHUNK
    return max(CHUNK, min(len(x), GPU_CHUNK_ELEMENTS // max(per_sample_elements, 1)))


def padded_input(module: nn.Module, x: Tensor) -> tuple[Tensor, tuple[int, ...]]:
    """The input as the convolution sees it, and the padding still to apply inside the convolution."""
    if isinstance(module.padding, str) or module.padding_mode != "zeros":
        mode = "constant" if module.padding_mode == "zeros" else module.padding_mode
        return F.pad(x, module._reversed_padding_repeated_twice, mode=mode), (0,) * (x.dim() - 2)
    return x, module.padding


def unfold(x: Tensor, kernel_size, stride, padding, dilation) -> Tensor:
    """Patches [B, C * prod(kernel), T] of an N-d input, for any N, by a convolution with one-hot kernels."""
    channels, dims = x.shape[1], x.dim() - 2
    if dims == 2:  # im2col is a copy; the one-hot convolution costs as much as the Gram matrices
        return F.unfold(x, kernel_size, dilation, padding, stride)
    patch = int(torch.tensor(kernel_size).prod())
    eye = (
        torch.eye(patch, dtype=x.dtype, device=x.device)
        .reshape(patch, 1, *kernel_size)
        .repeat(channels, 1, *[1] * dims)
    )
    patches = _CONV[dims](x, eye, None, stride, padding, dilation, groups=channels)
    return patches.flatten(2)


def conv_ghost_norm_sq(module: nn.Module, x: Tensor, g: Tensor) -> Tensor:
    """||per-sample weight gradient||^2 from Gram matrices of patches and output gradients, per group,
    a chunk of samples at a time."""
    positions = g[0, 0].numel()
    size = chunk_size(
        x, positions * module.weight[0].numel() * module.groups + 2 * positions * positions
    )
    return torch.cat(
        [_ghost_norm_sq(module, x[i : i + size], g[i : i + size]) for i in range(0, len(x), size)]
    )


def _ghost_norm_sq(module: nn.Module, x: Tensor, g: Tensor) -> Tensor:
    x, padding = padded_input(module, x)
    batch, groups = x.shape[0], module.groups
    patches = unfold(x, module.kernel_size, module.stride, padding, module.dilation)
    patches = patches.reshape(batch, groups, -1, patches.shape[-1])
    grads = g.flatten(2).reshape(batch, groups, -1, patches.shape[-1])
    return (patches.transpose(2, 3) @ patches * (grads.transpose(2, 3) @ grads)).sum((1, 2, 3))


def conv_per_sample_weight(module: nn.Module, x: Tensor, g: Tensor) -> Tensor:
    """[B, *weight.shape]: the batch folded into the channel groups of one convolution-backward."""
    x, padding = padded_input(module, x)
    batch, dims = x.shape[0], x.dim() - 2
    weight_shape = (batch * module.out_channels, *module.weight.shape[1:])
    per_sample = _WEIGHT_GRAD[dims](
        x.reshape(1, -1, *x.shape[2:]),
        weight_shape,
        g.reshape(1, -1, *g.shape[2:]),
        module.stride,
        padding,
        module.dilation,
        batch * module.groups,
    )
    return per_sample.reshape(batch, *module.weight.shape)


def triton_operands(module: nn.Module, x: Tensor, g: Tensor):
    """Input, output gradient and geometry of a Conv1d/2d as the 2-D kernels see them (a Conv1d is a
    2-D convolution of height 1)."""
    from privaudit.dp.kernels.per_sample import Geometry

    x, padding = padded_input(module, x)
    pairs = [tuple(v) for v in (module.kernel_size, module.stride, padding, module.dilation)]
    if x.dim() == 3:
        x, g = x.unsqueeze(2), g.unsqueeze(2)
        pairs = [(first, *v) for first, v in zip((1, 1, 0, 1), pairs, strict=True)]
    return x, g, Geometry(*pairs, groups=module.groups)


def uses_kernel(call: LayerCall) -> bool:
    """Triton forms Conv1d / Conv2d norms and sums (Conv3d stays with PyTorch)."""
    return call.kernels == "triton" and call.input.dim() in (3, 4)


@register_rule(nn.Conv1d, nn.Conv2d, nn.Conv3d)
class ConvRule(LayerRule):
    def ghost_is_cheaper(self, call: LayerCall) -> bool:
        """2 T^2 (Gram matrices) + T D (unfolded patches) <= p D (one per-sample gradient)."""
        positions = call.grad_out[0, 0].numel()
        weight = call.module.weight
        patch = weight[0].numel()  # D = in_channels / groups * prod(kernel)
        return 2 * positions * positions + positions * patch <= weight.numel()

    def per_sample_grads(self, call: LayerCall) -> dict[str, Tensor]:
        return self.explicit_norms_sq(call, keep=True)[1]

    def explicit_norms_sq(
        self, call: LayerCall, keep: bool
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        module, x, g = call.module, call.input, call.grad_out
        if uses_kernel(call):
            return self._triton_norms_sq(call, keep)
        batch = x.shape[0]
        norms = {"weight": x.new_empty(batch)}
        grads = {"weight": x.new_empty(batch, *module.weight.shape)} if keep else {}
        size = chunk_size(x, module.weight.numel())
        for start in range(0, batch, size):
            piece = conv_per_sample_weight(module, x[start : start + size], g[start : start + size])
            norms["weight"][start : start + size] = norm_sq(piece)
            if keep:
                grads["weight"][start : start + size] = piece
        return _with_bias(module, g, keep, norms, grads)

    def _triton_norms_sq(
        self, call: LayerCall, keep: bool
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """One kernel: per-sample norms from input and output gradient, no patches, no per-sample
        gradients unless kept."""
        from privaudit.dp.kernels.per_sample import norms_sq

        module, g = call.module, call.grad_out
        weight_norms, weight = norms_sq(*triton_operands(module, call.input, g), store=keep)
        norms, grads = {"weight": weight_norms}, {}
        if keep:
            grads["weight"] = weight.reshape(len(g), *module.weight.shape)
        return _with_bias(module, g, keep, norms, grads)

    def ghost_norms_sq(self, call: LayerCall) -> dict[str, Tensor] | None:
        if uses_kernel(call) or not self.ghost_is_cheaper(call):
            return None
        norms = {"weight": conv_ghost_norm_sq(call.module, call.input, call.grad_out)}
        if call.module.bias is not None:
            norms["bias"] = call.grad_out.flatten(2).sum(2).pow(2).sum(1)
        return norms

    def weighted_grads(self, call: LayerCall, coef: Tensor) -> dict[str, Tensor]:
        if call.per_sample:
            return super().weighted_grads(call, coef)
        module = call.module
        if uses_kernel(call):
            from privaudit.dp.kernels.per_sample import weighted_sum

            x, g, geometry = triton_operands(module, call.input, call.grad_out)
            weight = weighted_sum(x, g, coef, geometry)
            grads = {"weight": weight.reshape(module.weight.shape).to(module.weight.dtype)}
            if module.bias is not None:
                grads["bias"] = torch.einsum(
                    "b,bo->o", coef.to(call.grad_out.dtype), call.grad_out.flatten(2).sum(2)
                )
            return grads
        x, padding = padded_input(module, call.input)
        scaled = call.grad_out * coef.to(call.grad_out.dtype).view(
            -1, *[1] * (call.grad_out.dim() - 1)
        )
        grads = {
            "weight": _WEIGHT_GRAD[x.dim() - 2](
                x,
                module.weight.shape,
                scaled,
                module.stride,
                padding,
                module.dilation,
                module.groups,
            )
        }
        if module.bias is not None:
            grads["bias"] = scaled.transpose(0, 1).flatten(1).sum(1)
        return grads


def _with_bias(module, g: Tensor, keep: bool, norms: dict, grads: dict) -> tuple[dict, dict]:
    """The bias's per-sample gradient (the output gradient summed over positions) and its norm."""
    if module.bias is not None:
        bias = g.flatten(2).sum(2)
        norms["bias"] = norm_sq(bias)
        if keep:
            grads["bias"] = bias
    return norms, grads
