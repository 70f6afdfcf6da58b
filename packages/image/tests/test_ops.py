"""The fused ops: PyTorch implementations against independent computations, and the compiled C++
kernels against the PyTorch ones (forward and gradients) where the extension builds."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from privaudit.image import ops
from scipy.signal import convolve2d


def test_bias_act_reference_is_leaky_relu_times_gain():
    x, b = torch.randn(3, 5, 4, 4), torch.randn(5)
    expected = F.leaky_relu(x + b.reshape(1, 5, 1, 1), 0.2) * np.sqrt(2)
    torch.testing.assert_close(ops.bias_act_reference(x, b), expected)
    assert ops.bias_act_reference(x * 100, b, clamp=3.0).abs().max() <= 3.0


def test_upfirdn2d_reference_matches_scipy_convolution():
    x = torch.randn(1, 1, 9, 7, dtype=torch.float64)
    f = torch.tensor([[1.0, 2.0, 1.0], [0.0, 1.0, 3.0]], dtype=torch.float64)
    got = ops.upfirdn2d_reference(x, f, padding=(2, 2, 1, 1))
    # padding (x0, x1, y0, y1) then a true convolution with f == scipy's full convolution, cropped
    full = convolve2d(x[0, 0].numpy(), f.numpy(), mode="full")
    expected = full[1 - 1 : 1 - 1 + got.shape[2], 2 - 2 : 2 - 2 + got.shape[3]]
    np.testing.assert_allclose(got[0, 0].numpy(), expected, atol=1e-12)


def test_resampling_keeps_a_constant_image_constant_inside():
    f = ops.setup_filter()
    x = torch.full((2, 3, 8, 8), 0.7)
    up = ops.upsample2d(x, f)
    down = ops.downsample2d(x, f)
    assert up.shape == (2, 3, 16, 16) and down.shape == (2, 3, 4, 4)
    torch.testing.assert_close(up[..., 2:-2, 2:-2], torch.full_like(up[..., 2:-2, 2:-2], 0.7))
    torch.testing.assert_close(down[..., 1:-1, 1:-1], torch.full_like(down[..., 1:-1, 1:-1], 0.7))


@pytest.fixture(scope="module")
def compiled():
    if ops.build_extension() is None:
        pytest.skip(f"the C++ extension cannot be built here: {ops.build_error()}")
    yield
    ops.use_compiled(False)


@pytest.mark.slow  # builds the C++ extension first
@pytest.mark.parametrize(
    "case",
    [
        dict(up=2, down=1, padding=(2, 1, 2, 1), gain=4.0),
        dict(up=1, down=2, padding=(1, 1, 1, 1), gain=1.0),
        dict(up=1, down=1, padding=(-1, 2, 0, 3), gain=1.0),
        dict(up=(2, 1), down=(1, 2), padding=(0, 3, 1, 2), gain=2.0, flip_filter=True),
    ],
)
def test_compiled_upfirdn2d_agrees_with_pytorch(compiled, case):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 7, 6, requires_grad=True)
    f = torch.rand(4, 3)
    ops.use_compiled(False)
    ref = ops.upfirdn2d(x, f, **case)
    (ref_grad,) = torch.autograd.grad((ref * torch.cos(ref)).sum(), x)
    assert ops.use_compiled(True) == "compiled C++ (CPU)"
    got = ops.upfirdn2d(x, f, **case)
    (got_grad,) = torch.autograd.grad((got * torch.cos(got)).sum(), x)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got_grad, ref_grad, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("act,clamp", [("lrelu", None), ("relu", 0.5), ("linear", None)])
def test_compiled_bias_act_agrees_with_pytorch(compiled, act, clamp):
    torch.manual_seed(1)
    x = torch.randn(4, 6, 5, 5, requires_grad=True)
    b = torch.randn(6, requires_grad=True)
    ops.use_compiled(False)
    ref = ops.bias_act(x, b, act=act, clamp=clamp)
    ref_grads = torch.autograd.grad((ref**2).sum(), (x, b))
    ops.use_compiled(True)
    got = ops.bias_act(x, b, act=act, clamp=clamp)
    got_grads = torch.autograd.grad((got**2).sum(), (x, b))
    torch.testing.assert_close(got, ref)
    for g, r in zip(got_grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-5)


def test_failed_build_falls_back_to_pytorch(monkeypatch):
    saved = dict(ops._state)
    monkeypatch.setattr(
        ops, "_state", {"wanted": False, "module": None, "tried": False, "error": None}
    )
    from torch.utils import cpp_extension

    def no_compiler(*args, **kwargs):
        raise RuntimeError("no C++ compiler found")

    monkeypatch.setattr(cpp_extension, "load", no_compiler)
    with pytest.warns(UserWarning, match="fused ops unavailable"):
        assert ops.use_compiled(True) == "PyTorch"
    assert "no C++ compiler" in ops.build_error()
    x = torch.randn(1, 2, 4, 4)
    torch.testing.assert_close(
        ops.upsample2d(x, ops.setup_filter()),
        ops.upfirdn2d_reference(x, ops.setup_filter(), up=2, padding=(2, 1, 2, 1), gain=4),
    )
    assert saved  # the module state is restored by monkeypatch


def _warp_case(device="cpu"):
    torch.manual_seed(0)  # drawn on the CPU: CUDA's generator gives other numbers for the same seed
    x = torch.randn(3, 2, 8, 8, dtype=torch.float64).to(device).requires_grad_(True)
    theta = torch.tensor([[0.9, -0.2, 0.1], [0.25, 1.1, -0.15]], dtype=torch.float64, device=device)
    grid = F.affine_grid(theta.expand(3, 2, 3), [3, 2, 8, 8], align_corners=False)
    return x, grid


def test_grid_sample_matches_pytorch_and_has_a_second_derivative():
    x, grid = _warp_case()
    want = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    torch.testing.assert_close(ops.grid_sample(x, grid), want)
    g = torch.randn_like(want)
    (ours,) = torch.autograd.grad(ops.grid_sample(x, grid), x, g)
    (theirs,) = torch.autograd.grad(want, x, g)
    torch.testing.assert_close(ours, theirs)
    assert torch.autograd.gradgradcheck(lambda inp: ops.grid_sample(inp, grid), (x,))


def _r1_parameter_grads(warp, device="cpu"):
    """Gradient, with respect to a small critic's weights, of the R1 penalty taken through a warp."""
    x, grid = _warp_case(device)
    torch.manual_seed(1)
    critic = (
        torch.nn.Sequential(
            torch.nn.Conv2d(2, 4, 3),
            torch.nn.Softplus(),
            torch.nn.Flatten(),
            torch.nn.Linear(4 * 36, 1),
        )
        .double()
        .to(device)
    )
    (grad_x,) = torch.autograd.grad(critic(warp(x, grid)).sum(), x, create_graph=True)
    # the last bias does not change the input gradient: its gradient is zero
    return torch.autograd.grad(
        grad_x.square().sum(), list(critic.parameters()), allow_unused=True, materialize_grads=True
    )


def test_r1_through_the_warp_equals_pytorchs_on_the_cpu():
    def pytorch_warp(x, grid):
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    for ours, theirs in zip(
        _r1_parameter_grads(ops.grid_sample), _r1_parameter_grads(pytorch_warp), strict=True
    ):
        torch.testing.assert_close(ours, theirs)


@pytest.mark.gpu
def test_r1_through_the_warp_runs_on_cuda_and_equals_the_cpu():
    for gpu, cpu in zip(
        _r1_parameter_grads(ops.grid_sample, "cuda"),
        _r1_parameter_grads(ops.grid_sample),
        strict=True,
    ):
        torch.testing.assert_close(gpu.cpu(), cpu)
