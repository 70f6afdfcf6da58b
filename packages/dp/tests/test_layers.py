"""One harness for every supported layer and block: random shapes (hypothesis), float64, compared
with torch.func per-sample gradients of the layer itself. A layer's own rule is checked on its own
(explicit gradients, ghost norms); every case then goes through the engine's hooks."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from privaudit.dp.engine import PerSampleClipper
from privaudit.dp.layers import FALLBACK_RULE, LayerCall, rule_for
from privaudit.dp.layers.conv import conv_ghost_norm_sq
from torch import nn
from torch.func import functional_call, grad, vmap

SETTINGS = settings(max_examples=6, deadline=None, derandomize=True)


class Gate(nn.Module):
    """No registered rule: exercised through the torch.func fallback."""

    def __init__(self, width):
        super().__init__()
        self.gate = nn.Parameter(torch.randn(width))

    def forward(self, x):
        return x * torch.sigmoid(self.gate) + self.gate


class FirstOutput(nn.Module):
    """A module returning a tuple (attention, recurrent networks) as a layer of one tensor input:
    self-attention module(x, x, x)[0], or module(x)[0]."""

    def __init__(self, module, self_attention=False):
        super().__init__()
        self.module, self.self_attention = module, self_attention

    def forward(self, x):
        return (
            self.module(x, x, x, need_weights=False) if self.self_attention else self.module(x)
        )[0]


def batch_and_steps(draw):
    return draw(st.integers(1, 3)), [
        draw(st.integers(1, 3)) for _ in range(draw(st.integers(0, 2)))
    ]


def linear_case(draw):
    batch, steps = batch_and_steps(draw)
    d_in, d_out = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    return nn.Linear(d_in, d_out, bias=draw(st.booleans())), torch.randn(batch, *steps, d_in)


def conv_case(draw, dims):
    batch, groups = draw(st.integers(1, 3)), draw(st.integers(1, 2))
    c_in, c_out = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 3))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(dims))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(dims))
    padding_kind = draw(st.sampled_from(["int", "same", "reflect", "circular"]))
    stride = 1 if padding_kind == "same" else tuple(draw(st.integers(1, 2)) for _ in range(dims))
    padding = (
        "same" if padding_kind == "same" else tuple(draw(st.integers(0, 1)) for _ in range(dims))
    )
    mode = padding_kind if padding_kind in ("reflect", "circular") else "zeros"
    if mode != "zeros":  # torch needs the padding to be smaller than the input for these modes
        padding = tuple(max(p, 1) for p in padding)
    size = [dilation[i] * (kernel[i] - 1) + 1 + draw(st.integers(0, 3)) for i in range(dims)]
    if mode != "zeros":  # reflect / circular padding must also be smaller than the input
        size = [max(s, p + 1) for s, p in zip(size, padding, strict=True)]
    conv = getattr(nn, f"Conv{dims}d")(
        c_in,
        c_out,
        kernel,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        bias=draw(st.booleans()),
        padding_mode=mode,
    )
    return conv, torch.randn(batch, c_in, *size)


def embedding_case(draw):
    batch, steps = batch_and_steps(draw)
    vocab = draw(st.integers(2, 8))
    module = nn.Embedding(
        vocab, draw(st.integers(1, 5)), padding_idx=draw(st.sampled_from([None, 0]))
    )
    return module, torch.randint(0, vocab, (batch, *steps))


def layer_norm_case(draw):
    batch, steps = batch_and_steps(draw)
    shape = [draw(st.integers(1, 4)) for _ in range(draw(st.integers(1, 2)))]
    module = nn.LayerNorm(shape, bias=draw(st.booleans()))
    return module, torch.randn(batch, *steps, *shape)


def rms_norm_case(draw):
    batch, steps = batch_and_steps(draw)
    shape = [draw(st.integers(1, 4)) for _ in range(draw(st.integers(1, 2)))]
    return nn.RMSNorm(shape), torch.randn(batch, *steps, *shape)


def group_norm_case(draw):
    groups = draw(st.integers(1, 3))
    channels = groups * draw(st.integers(1, 2))
    # torch needs more than one value per group to normalise
    spatial = [
        draw(st.integers(2, 4)),
        *[draw(st.integers(1, 4)) for _ in range(draw(st.integers(0, 1)))],
    ]
    return nn.GroupNorm(groups, channels), torch.randn(draw(st.integers(1, 3)), channels, *spatial)


def instance_norm_case(draw):
    dims = draw(st.integers(1, 2))
    channels = draw(st.integers(1, 3))
    spatial = [draw(st.integers(2, 4)) for _ in range(dims)]
    module = getattr(nn, f"InstanceNorm{dims}d")(channels, affine=True)
    return module, torch.randn(draw(st.integers(1, 3)), channels, *spatial)


def gpt2_conv1d_case(draw):
    conv1d = pytest.importorskip("transformers.pytorch_utils").Conv1D
    batch, steps = batch_and_steps(draw)
    d_in, d_out = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    module = conv1d(d_out, d_in)
    nn.init.normal_(module.bias)
    return module, torch.randn(batch, *steps, d_in)


def timm_layer_norm_case(draw):
    norm = pytest.importorskip("timm.layers")
    batch, steps = batch_and_steps(draw)
    width = draw(st.integers(1, 4))
    if draw(st.booleans()):  # channels-last LayerNorm, or LayerNorm2d over the channels of NCHW
        return norm.LayerNorm(width), torch.randn(batch, *steps, width)
    return norm.LayerNorm2d(width), torch.randn(
        batch, width, draw(st.integers(1, 3)), draw(st.integers(1, 3))
    )


def timm_layer_scale_case(draw):
    scale = pytest.importorskip("timm.layers")
    batch, steps = batch_and_steps(draw)
    width = draw(st.integers(1, 4))
    if draw(st.booleans()):
        return scale.LayerScale(width), torch.randn(batch, *steps, width)
    return scale.LayerScale2d(width), torch.randn(
        batch, width, draw(st.integers(1, 3)), draw(st.integers(1, 3))
    )


def sequence_bias_case(draw):
    from privaudit.dp.layers.attention import SequenceBias

    batch, width = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    return SequenceBias(width), torch.randn(batch, draw(st.integers(0, 3)), width)


def fallback_case(draw):
    batch, steps = batch_and_steps(draw)
    width = draw(st.integers(1, 5))
    return Gate(width), torch.randn(batch, *steps, width)


CASES = {
    "linear": linear_case,
    "conv1d": lambda draw: conv_case(draw, 1),
    "conv2d": lambda draw: conv_case(draw, 2),
    "conv3d": lambda draw: conv_case(draw, 3),
    "embedding": embedding_case,
    "layer_norm": layer_norm_case,
    "rms_norm": rms_norm_case,
    "group_norm": group_norm_case,
    "instance_norm": instance_norm_case,
    "gpt2_conv1d": gpt2_conv1d_case,
    "timm_layer_norm": timm_layer_norm_case,
    "timm_layer_scale": timm_layer_scale_case,
    "sequence_bias": sequence_bias_case,
    "fallback": fallback_case,
}


def attention_case(draw):
    from privaudit.dp.layers.attention import DPMultiheadAttention

    batch, tokens, heads = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 2))
    width = heads * draw(st.integers(1, 3))
    kwargs = {
        "bias": draw(st.booleans()),
        "add_bias_kv": draw(st.booleans()),
        "add_zero_attn": draw(st.booleans()),
    }
    batch_first = draw(st.booleans())
    x = torch.randn(batch, tokens, width)
    attention = DPMultiheadAttention(width, heads, batch_first=batch_first, **kwargs)
    if batch_first:
        return FirstOutput(attention, self_attention=True), x
    # sequence-first attention inside a batch-first model: the engine needs the batch on dim 0
    return nn.Sequential(Transpose(), FirstOutput(attention, self_attention=True), Transpose()), x


class Transpose(nn.Module):
    def forward(self, x):
        return x.transpose(0, 1)


def recurrent_case(draw):
    layers = pytest.importorskip("opacus.layers")
    network = draw(st.sampled_from(["DPLSTM", "DPGRU", "DPRNN"]))
    batch, steps, d_in, hidden = (draw(st.integers(1, 3)) for _ in range(4))
    module = getattr(layers, network)(
        d_in,
        hidden,
        num_layers=draw(st.integers(1, 2)),
        batch_first=True,
        bidirectional=draw(st.booleans()),
    )
    return FirstOutput(module), torch.randn(batch, steps, d_in)


def timm_vit_block_case(draw):
    vit = pytest.importorskip("timm.models.vision_transformer")
    batch, tokens, heads = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 2))
    block = vit.Block(
        4 * heads,
        heads,
        mlp_ratio=2,
        qkv_bias=draw(st.booleans()),
        qk_norm=draw(st.booleans()),
        init_values=draw(st.sampled_from([None, 1e-5])),
    )
    return block, torch.randn(batch, tokens, 4 * heads)


def timm_convnext_block_case(draw):
    convnext = pytest.importorskip("timm.models.convnext")
    channels, size = draw(st.sampled_from([2, 4])), draw(st.integers(1, 4))
    block = convnext.ConvNeXtBlock(
        channels,
        kernel_size=3,
        mlp_ratio=2,
        conv_mlp=draw(st.booleans()),
        ls_init_value=draw(st.sampled_from([None, 1e-6])),
    )
    return block, torch.randn(draw(st.integers(1, 3)), channels, size, size)


def timm_beit_block_case(draw):
    beit = pytest.importorskip("timm.models.beit")
    window = draw(st.sampled_from([None, (1, 2), (2, 2)]))
    tokens = window[0] * window[1] + 1 if window else draw(st.integers(1, 3))
    block = beit.Block(
        4,
        2,
        mlp_ratio=2,
        qkv_bias=draw(st.booleans()),
        window_size=window,
        init_values=draw(st.sampled_from([None, 0.1])),
    )
    return block, torch.randn(draw(st.integers(1, 3)), tokens, 4)


# modules built from several layers: checked through the engine only
BLOCKS = {
    "dp_multihead_attention": attention_case,
    "dp_recurrent": recurrent_case,
    "timm_vit_block": timm_vit_block_case,
    "timm_convnext_block": timm_convnext_block_case,
    "timm_beit_block": timm_beit_block_case,
}


def reference_grads(module, x, g):
    params = {n: p.detach() for n, p in module.named_parameters()}

    def one(p, xi, gi):
        return (functional_call(module, p, (xi.unsqueeze(0),)) * gi.unsqueeze(0)).sum()

    return vmap(grad(one), in_dims=(None, 0, 0))(params, x, g)


def draw_case(data, cases, kind, input_needs_grad):
    """A module and input of this kind in float64 with random parameters, an output gradient, and
    the reference per-sample gradients and norms."""
    module, x = data.draw(st.composite(lambda draw: cases[kind](draw))())
    torch.manual_seed(data.draw(st.integers(0, 2**16)))
    for p in module.parameters():  # random affine parameters, not the identity initialisation
        nn.init.normal_(p)
    module = module.double()
    x = x.double() if x.is_floating_point() else x
    if input_needs_grad and x.is_floating_point():
        x.requires_grad_(True)
    g = torch.randn_like(module(x).double())
    expected = reference_grads(module, x.detach(), g)
    norms = torch.sqrt(sum(e.flatten(1).pow(2).sum(1) for e in expected.values()))
    return module, x, g, expected, norms


def check_engine(module, x, g, expected, norms, rtol=1e-4, atol=1e-10, **options):
    """The engine: per-sample norms and the clipped sum, through hooks and one backward pass."""
    clipper = PerSampleClipper(
        module, max_grad_norm=float(norms.median()) + 1e-3, loss_reduction="sum", **options
    )
    (module(x) * g).sum().backward()
    torch.testing.assert_close(
        clipper.per_sample_norms(), norms.to(clipper.per_sample_norms().dtype), rtol=rtol, atol=atol
    )
    factors = (clipper.max_grad_norm / (norms + 1e-6)).clamp(max=1.0)
    sums = clipper.clipped_sum()
    for name, p in module.named_parameters():
        want = torch.einsum("b,b...->...", factors, expected[name]).to(sums[p].dtype)
        torch.testing.assert_close(sums[p], want, rtol=rtol, atol=atol)
    clipper.detach()


@pytest.mark.parametrize("kind", list(CASES))
@pytest.mark.parametrize("input_needs_grad", [False, True])
@SETTINGS
@given(data=st.data())
def test_layer_matches_torch_func(kind, input_needs_grad, data):
    module, x, g, expected, norms = draw_case(data, CASES, kind, input_needs_grad)
    check_rule(kind, module, x.detach(), g, expected)
    check_engine(module, x, g, expected, norms)


@pytest.mark.parametrize("kind", list(BLOCKS))
@settings(max_examples=4, deadline=None, derandomize=True)
@given(data=st.data())
def test_block_matches_torch_func(kind, data):
    module, x, g, expected, norms = draw_case(data, BLOCKS, kind, data.draw(st.booleans()))
    check_engine(module, x, g, expected, norms)


@pytest.mark.parametrize(
    "kind", ["linear", "conv2d", "embedding", "layer_norm", "group_norm", "gpt2_conv1d"]
)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@settings(max_examples=3, deadline=None, derandomize=True)
@given(data=st.data())
def test_autocast_matches_torch_func_loosely(kind, dtype, data):
    """A float32 layer under CPU autocast (its matmuls and convolutions in bf16 / fp16) against the
    float64 reference: norms come back in float32 and agree to low precision's tolerance."""
    module, x, g, expected, norms = draw_case(data, CASES, kind, data.draw(st.booleans()))
    module = module.float()
    x = x.detach().float().requires_grad_(x.requires_grad) if x.is_floating_point() else x
    clipper = PerSampleClipper(
        module, max_grad_norm=float(norms.median()) + 1e-3, loss_reduction="sum"
    )
    with torch.autocast("cpu", dtype=dtype):
        out = module(x)
    (out.float() * g.float()).sum().backward()
    found = clipper.per_sample_norms()
    assert found.dtype == torch.float32
    torch.testing.assert_close(found.double(), norms, rtol=5e-2, atol=5e-2 * float(norms.max()))
    factors = (clipper.max_grad_norm / (found.double() + 1e-6)).clamp(max=1.0)
    sums = clipper.clipped_sum()
    for name, p in module.named_parameters():
        want = torch.einsum("b,b...->...", factors, expected[name])
        assert sums[p].dtype == torch.float32
        torch.testing.assert_close(
            sums[p].double(), want, rtol=5e-2, atol=5e-2 * float(want.abs().max()) + 1e-6
        )
    clipper.detach()


@pytest.mark.slow
def test_triton_kernels_under_the_interpreter():
    """interpreted_kernels.py in a process of its own with TRITON_INTERPRET=1: @triton.jit (in Triton's
    own library too) reads it when a kernel is defined, so it must be set before Triton is imported."""
    if importlib.util.find_spec("triton") is None:
        pytest.skip("needs triton")
    here = Path(__file__).parent
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        str(here / "interpreted_kernels.py"),
    ]
    # the harness is imported from this module (test_layers) by name
    env = os.environ | {
        "TRITON_INTERPRET": "1",
        "PYTHONPATH": os.pathsep.join([str(here), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert (
        " passed" in done.stdout.splitlines()[-1] and "skipped" not in done.stdout.splitlines()[-1]
    )


def test_kernel_choice(monkeypatch):
    from privaudit.dp import DPError
    from privaudit.dp.kernels import ENV, resolve

    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    cpu = torch.device("cpu")
    assert resolve("auto", cpu) == "torch" and resolve("torch", torch.device("cuda")) == "torch"
    with pytest.raises(DPError, match="TRITON_INTERPRET"):
        resolve("triton", cpu)
    monkeypatch.setenv(ENV, "torch")
    assert resolve("auto", torch.device("cuda")) == "torch"
    monkeypatch.setenv(ENV, "cuda")
    with pytest.raises(DPError, match=ENV):
        resolve("auto", cpu)
    with pytest.raises(DPError, match="kernels must be"):
        PerSampleClipper(nn.Linear(2, 2), kernels="fast")


def check_rule(kind, module, x, g, expected):
    """The rule itself: explicit per-sample gradients and, where offered, the ghost norm."""
    rule = rule_for(module) or FALLBACK_RULE
    assert (rule is FALLBACK_RULE) == (kind == "fallback")
    call = LayerCall(module, (x,), {}, grad_out=g)
    explicit = rule.per_sample_grads(call)
    for name, want in expected.items():
        torch.testing.assert_close(explicit[name], want, rtol=1e-4, atol=1e-10)
    ghost = rule.ghost_norms_sq(call)
    if isinstance(module, nn.Conv1d | nn.Conv2d | nn.Conv3d):  # both routes of the mixed rule
        ghost = {"weight": conv_ghost_norm_sq(module, x, g)}
    for name, value in (ghost or {}).items():
        torch.testing.assert_close(
            value, expected[name].flatten(1).pow(2).sum(1), rtol=1e-4, atol=1e-10
        )


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
@pytest.mark.parametrize("dims", [1, 2, 3])
def test_conv_chunks_match_torch_func(dims, device, monkeypatch):
    """A batch longer than one chunk, and not a multiple of it: explicit (kept or not) and ghost norms.
    On a GPU, once in chunks of CHUNK samples and once in one chunk."""
    from privaudit.dp.layers import conv

    torch.manual_seed(dims)
    batch = 2 * conv.CHUNK + 3
    module = getattr(nn, f"Conv{dims}d")(4, 6, 3, stride=2, padding=1, groups=2).double()
    x = torch.randn(batch, 4, *[7] * dims, dtype=torch.float64)
    g = torch.randn_like(module(x))
    expected = reference_grads(module, x, g)
    want = {name: e.flatten(1).pow(2).sum(1).to(device) for name, e in expected.items()}
    module, x, g = module.to(device), x.to(device), g.to(device)
    call = LayerCall(module, (x,), {}, grad_out=g)
    rule = rule_for(module)
    for budget in [conv.GPU_CHUNK_ELEMENTS] if device == "cpu" else [1, conv.GPU_CHUNK_ELEMENTS]:
        monkeypatch.setattr(conv, "GPU_CHUNK_ELEMENTS", budget)
        for keep in (True, False):
            norms, grads = rule.explicit_norms_sq(call, keep=keep)
            for name in expected:
                torch.testing.assert_close(norms[name], want[name], rtol=1e-10, atol=1e-12)
                if keep:
                    torch.testing.assert_close(
                        grads[name].cpu(), expected[name], rtol=1e-10, atol=1e-12
                    )
            assert keep or not grads
        torch.testing.assert_close(
            conv.conv_ghost_norm_sq(module, x, g), want["weight"], rtol=1e-10, atol=1e-12
        )


def test_conv_chunks_are_small_on_a_cpu_and_large_elsewhere():
    from privaudit.dp.layers import conv

    on_cpu, elsewhere = torch.empty(256, 3), torch.empty(256, 3, device="meta")
    assert conv.chunk_size(on_cpu, 10) == conv.CHUNK
    assert conv.chunk_size(elsewhere, 10) == 256  # the whole batch when it fits the budget
    assert conv.chunk_size(elsewhere, conv.GPU_CHUNK_ELEMENTS // 20) == 20
    assert (
        conv.chunk_size(elsewhere, conv.GPU_CHUNK_ELEMENTS) == conv.CHUNK
    )  # never below the CPU's chunk
