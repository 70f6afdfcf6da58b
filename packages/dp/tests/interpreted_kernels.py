"""Triton kernels under Triton's interpreter (CPU tensors) against torch.func, in float64 and float32.

Run by test_layers.test_triton_kernels_under_the_interpreter in a process started with
TRITON_INTERPRET=1 (skipped without it). The interpreter runs each program in Python: few, tiny cases.
"""

import os

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_layers import CASES, check_engine, draw_case, reference_grads
from torch import nn

pytestmark = pytest.mark.skipif(
    os.environ.get("TRITON_INTERPRET") != "1", reason="needs TRITON_INTERPRET=1"
)


@pytest.fixture(scope="module")
def kernels():
    return pytest.importorskip("privaudit.dp.kernels.per_sample")


@pytest.mark.parametrize("kind", ["linear", "conv1d", "conv2d", "gpt2_conv1d"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@settings(max_examples=3, deadline=None, derandomize=True)
@given(data=st.data())
def test_triton_kernels_match_torch_func(kind, dtype, data):
    """The engine with kernels='triton' through the layer harness."""
    module, x, g, expected, norms = draw_case(data, CASES, kind, data.draw(st.booleans()))
    module, g = module.to(dtype), g.to(dtype)
    x = x.detach().to(dtype).requires_grad_(x.requires_grad)
    tolerance = (
        {"rtol": 1e-9, "atol": 1e-12} if dtype == torch.float64 else {"rtol": 1e-4, "atol": 1e-5}
    )
    check_engine(module, x, g, expected, norms, kernels="triton", **tolerance)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_triton_conv_kernels_store_per_sample_gradients(kernels, dtype):
    """Both kernels on one grouped, strided, dilated, padded convolution larger than one tile, with
    the per-sample gradients stored."""
    torch.manual_seed(0)
    module = nn.Conv2d(
        4, 34, (3, 2), stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2, bias=False
    ).double()
    x = torch.randn(3, 4, 9, 7, dtype=torch.float64)
    g = torch.randn_like(module(x))
    expected = reference_grads(module, x, g)["weight"]
    coef = torch.rand(3, dtype=torch.float64)
    geometry = kernels.Geometry(
        module.kernel_size, module.stride, module.padding, module.dilation, 2
    )
    norms, grads = kernels.norms_sq(x.to(dtype), g.to(dtype), geometry, store=True)
    tolerance = (
        {"rtol": 1e-10, "atol": 1e-12} if dtype == torch.float64 else {"rtol": 1e-4, "atol": 1e-4}
    )
    torch.testing.assert_close(
        norms, expected.flatten(1).pow(2).sum(1).to(norms.dtype), **tolerance
    )
    torch.testing.assert_close(grads.reshape(expected.shape), expected.to(dtype), **tolerance)
    summed = kernels.weighted_sum(x.to(dtype), g.to(dtype), coef, geometry).reshape(
        module.weight.shape
    )
    torch.testing.assert_close(
        summed, torch.einsum("b,b...->...", coef, expected).to(summed.dtype), **tolerance
    )
