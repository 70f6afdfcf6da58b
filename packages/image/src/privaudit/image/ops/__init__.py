"""The generator's fused ops, bias + activation and upfirdn2d (up/down-sampling with a FIR filter).

Each op has a plain PyTorch implementation (always used on GPU tensors, non-float32 tensors, or
when the extension is unavailable) and an optional C++ CPU kernel built with ninja through
`torch.utils.cpp_extension.load` on first use. `use_compiled(True)` asks for the kernels; a failed
build (no compiler, no ninja) is reported once and everything falls back to PyTorch.
"""

from __future__ import annotations

import math
import os
import sys
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

ACTIVATIONS = {"linear": (0, 1.0), "lrelu": (1, math.sqrt(2.0)), "relu": (2, math.sqrt(2.0))}

_state = {"wanted": False, "module": None, "tried": False, "error": None}


def build_extension(verbose: bool = False):
    """Build (or load the cached build of) the C++ kernels; returns the module or None with the reason kept."""
    if _state["tried"]:
        return _state["module"]
    _state["tried"] = True
    try:
        from torch.utils import cpp_extension

        build_dir = Path(
            os.environ.get(
                "PRIVAUDIT_EXTENSIONS_DIR", Path.home() / ".cache" / "privaudit" / "extensions"
            )
        )
        build_dir = build_dir / f"fused_ops-torch{torch.__version__.split('+')[0]}"
        build_dir.mkdir(parents=True, exist_ok=True)
        # ninja from the `compiled` extra lives beside the interpreter; make sure the build finds it.
        bin_dir = str(Path(sys.executable).parent)
        if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
            os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
        _state["module"] = cpp_extension.load(
            name="privaudit_fused_ops",
            sources=[str(Path(__file__).with_name("fused_ops.cpp"))],
            build_directory=str(build_dir),
            extra_cflags=["-O3"],
            verbose=verbose,
        )
    except Exception as exc:  # no compiler, no ninja, headers missing: fall back to PyTorch
        _state["error"] = (
            f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        )
        warnings.warn(
            f"fused ops unavailable, using the PyTorch implementation ({_state['error']})",
            stacklevel=2,
        )
    return _state["module"]


def use_compiled(wanted: bool) -> str:
    """Ask for (or turn off) the compiled kernels; returns the implementation now in use."""
    _state["wanted"] = bool(wanted)
    if wanted:
        build_extension()
    return implementation()


def implementation() -> str:
    return "compiled C++ (CPU)" if _state["wanted"] and _state["module"] is not None else "PyTorch"


def build_error() -> str | None:
    return _state["error"]


def _compiled_for(x: torch.Tensor):
    if (
        _state["wanted"]
        and _state["module"] is not None
        and x.device.type == "cpu"
        and x.dtype == torch.float32
    ):
        return _state["module"]
    return None


# ---- bias + activation -------------------------------------------------------------------------


def bias_act_reference(x, b=None, act="lrelu", alpha=0.2, gain=None, clamp=None):
    """act(x + b) * gain, optionally clamped, in PyTorch (b broadcast over dim 1)."""
    code, default_gain = ACTIVATIONS[act]
    gain = default_gain if gain is None else gain
    if b is not None:
        x = x + b.reshape([1, -1] + [1] * (x.ndim - 2))
    if code == 1:
        x = F.leaky_relu(x, alpha)
    elif code == 2:
        x = F.relu(x)
    if gain != 1:
        x = x * gain
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


class _BiasActCompiled(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, b, code, alpha, gain, clamp):
        module = _state["module"]
        empty = x.new_empty(0)
        y = module.bias_act(x, empty if b is None else b, code, alpha, gain, clamp)
        ctx.save_for_backward(y)
        ctx.meta = (code, alpha, gain, clamp, b is not None)
        return y

    @staticmethod
    def backward(ctx, dy):
        (y,) = ctx.saved_tensors
        code, alpha, gain, clamp, has_bias = ctx.meta
        dx = _state["module"].bias_act_grad(dy, y, code, alpha, gain, clamp)
        db = (
            dx.sum(dim=[0] + list(range(2, dx.ndim)))
            if has_bias and ctx.needs_input_grad[1]
            else None
        )
        return dx, db, None, None, None, None


def bias_act(x, b=None, act="lrelu", alpha=0.2, gain=None, clamp=None):
    """Bias + activation; the compiled kernel when enabled for this tensor (first-order gradients)."""
    module = _compiled_for(x)
    # The compiled backward is not itself differentiable: under `double_backward()` (R1) PyTorch runs.
    if module is None or _double_backward_needed():
        return bias_act_reference(x, b, act, alpha, gain, clamp)
    code, default_gain = ACTIVATIONS[act]
    gain = default_gain if gain is None else gain
    return _BiasActCompiled.apply(
        x, b, code, float(alpha), float(gain), -1.0 if clamp is None else float(clamp)
    )


_double_backward = {"on": False}


class double_backward:
    """Context in which the ops use PyTorch code, so gradients of gradients (R1) are exact."""

    def __enter__(self):
        self.previous = _double_backward["on"]
        _double_backward["on"] = True

    def __exit__(self, *exc):
        _double_backward["on"] = self.previous


def _double_backward_needed() -> bool:
    return _double_backward["on"]


# ---- grid sampling -----------------------------------------------------------------------------


def grid_sample(x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """F.grid_sample (bilinear, zero padding, align_corners=False) whose gradient with respect to x is
    itself differentiable on every device, for R1 through ADA's warp; the grid gets no gradient.

    PyTorch's CUDA kernel has no derivative for its own backward. Sampling is linear in x, out = A x,
    so the backward is A^T g and the backward's backward is A v: grid sampling again.
    """
    return _GridSample.apply(x, grid.detach())


def _grid_sample_input_grad(
    grad_out: torch.Tensor, x: torch.Tensor, grid: torch.Tensor
) -> torch.Tensor:
    # interpolation 0 = bilinear, padding 0 = zeros; output_mask: the input's gradient only
    grad_x, _ = torch.ops.aten.grid_sampler_2d_backward(
        grad_out, x, grid, 0, 0, False, [True, False]
    )
    return grad_x


class _GridSample(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, grid):
        ctx.save_for_backward(x, grid)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    @staticmethod
    def backward(ctx, grad_out):
        x, grid = ctx.saved_tensors
        return _GridSampleTranspose.apply(grad_out, x, grid), None


class _GridSampleTranspose(torch.autograd.Function):
    @staticmethod
    def forward(ctx, grad_out, x, grid):
        ctx.save_for_backward(grid)
        return _grid_sample_input_grad(grad_out, x, grid)

    @staticmethod
    def backward(ctx, v):
        (grid,) = ctx.saved_tensors
        return _GridSample.apply(v, grid), None, None


# ---- upfirdn2d ---------------------------------------------------------------------------------


def setup_filter(taps=(1, 3, 3, 1), normalize=True) -> torch.Tensor:
    """A separable 2-D FIR filter from 1-D taps, normalised to sum 1."""
    f = torch.as_tensor(taps, dtype=torch.float32)
    f = f.ger(f)
    return f / f.sum() if normalize else f


def _parse(value, n):
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * n


def upfirdn2d_reference(x, f, up=1, down=1, padding=0, flip_filter=False, gain=1.0):
    """Pad, upsample, FIR-filter and downsample [N, C, H, W] with a 2-D filter, in PyTorch."""
    upx, upy = _parse(up, 2)
    downx, downy = _parse(down, 2)
    padx0, padx1, pady0, pady1 = _pad4(padding)
    n, c, h, w = x.shape
    x = x.reshape(n, c, h, 1, w, 1)
    x = F.pad(x, [0, upx - 1, 0, 0, 0, upy - 1])
    x = x.reshape(n, c, h * upy, w * upx)
    x = F.pad(x, [max(padx0, 0), max(padx1, 0), max(pady0, 0), max(pady1, 0)])
    x = x[
        :,
        :,
        max(-pady0, 0) : x.shape[2] - max(-pady1, 0),
        max(-padx0, 0) : x.shape[3] - max(-padx1, 0),
    ]
    f = (f * gain).to(x.dtype)
    if not flip_filter:
        f = f.flip([0, 1])
    weight = f[None, None].repeat(c, 1, 1, 1)
    x = F.conv2d(x, weight, groups=c)
    return x[:, :, ::downy, ::downx]


def _pad4(padding):
    if isinstance(padding, (tuple, list)) and len(padding) == 4:
        return tuple(int(p) for p in padding)
    px, py = _parse(padding, 2)
    return (int(px), int(px), int(py), int(py))


def _upfirdn2d_compiled(x, f, up, down, padding, flip_filter, gain):
    upx, upy = _parse(up, 2)
    downx, downy = _parse(down, 2)
    padx0, padx1, pady0, pady1 = padding

    class Upfirdn2d(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, f):
            ctx.x_shape = x.shape
            ctx.save_for_backward(f)
            return _state["module"].upfirdn2d(
                x, f, upx, upy, downx, downy, padx0, padx1, pady0, pady1, flip_filter, float(gain)
            )

        @staticmethod
        def backward(ctx, dy):
            (f,) = ctx.saved_tensors
            _, _, ih, iw = ctx.x_shape
            _, _, oh, ow = dy.shape
            fh, fw = f.shape
            # The adjoint is another upfirdn2d: up and down swap, the filter flips, padding mirrors.
            p = (
                fw - padx0 - 1,
                iw * upx - ow * downx + padx0 - upx + 1,
                fh - pady0 - 1,
                ih * upy - oh * downy + pady0 - upy + 1,
            )
            dx = _upfirdn2d_compiled(dy, f, (downx, downy), (upx, upy), p, not flip_filter, gain)
            return dx, None

    return Upfirdn2d.apply(x, f)


def upfirdn2d(x, f, up=1, down=1, padding=0, flip_filter=False, gain=1.0):
    """upfirdn2d through the compiled kernel when enabled for this tensor, else PyTorch."""
    padding = _pad4(padding)
    if _compiled_for(x) is None or _double_backward_needed():
        return upfirdn2d_reference(x, f, up, down, padding, flip_filter, gain)
    return _upfirdn2d_compiled(x, f, up, down, padding, flip_filter, gain)


def upsample2d(x, f, up=2):
    """Upsample by `up` with the FIR filter (gain up**2 keeps the mean)."""
    fh = f.shape[0]
    p0 = (fh + up - 1) // 2
    p1 = (fh - up) // 2
    return upfirdn2d(x, f, up=up, padding=(p0, p1, p0, p1), gain=up * up)


def downsample2d(x, f, down=2):
    """Low-pass with the FIR filter, then keep every `down`-th pixel."""
    fh = f.shape[0]
    p0 = (fh - down + 1) // 2
    p1 = (fh - down) // 2
    return upfirdn2d(x, f, down=down, padding=(p0, p1, p0, p1))
