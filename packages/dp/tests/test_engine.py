"""The engine's norms and clipped sums against torch.func per-sample gradients (float64)."""

import gc
import weakref

import pytest
import torch
import torch.nn.functional as F
from privaudit.dp import DPError
from privaudit.dp.engine import PerSampleClipper
from torch import nn


class Scale(nn.Module):
    """A layer with no registered rule: the torch.func fallback handles it."""

    def __init__(self, width):
        super().__init__()
        self.scale = nn.Parameter(torch.randn(width))

    def forward(self, x):
        return torch.tanh(x * self.scale)


class SequenceNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(6, 8)
        self.scale = Scale(8)
        self.mix = nn.Linear(8, 8, bias=False)
        self.out = nn.Linear(8, 3)

    def forward(self, x):  # x: [B, T, 6]
        h = torch.relu(self.inp(x))
        h = self.mix(self.scale(h))
        return self.out(h.mean(1))


class TiedNet(nn.Module):
    """Input embedding and output layer share one weight (as in GPT-2), and a layer runs twice."""

    def __init__(self, vocab=11, width=5):
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.hidden = nn.Linear(width, width)
        self.head = nn.Linear(width, vocab, bias=False)
        self.head.weight = self.embed.weight

    def forward(self, tokens):
        h = self.hidden(torch.tanh(self.hidden(self.embed(tokens))))
        return self.head(h).mean(1)


def conv_net() -> nn.Module:
    """Three convolutions, one per route of the mixed rule at 12x12 input: explicit gradients kept
    (T=144 positions > D=27), explicit norms with the clipped sum recomputed from input and output
    gradient (T=36 < D=72), and ghost norms (T=9)."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.GroupNorm(2, 8),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1),
        nn.GroupNorm(4, 16),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(32 * 9, 3),
    )


def ce_sum(out, y):
    return F.cross_entropy(out, y, reduction="sum")


def make_batch(model_kind, size=7, steps=4):
    torch.manual_seed(1)
    if model_kind == "sequence":
        return (
            SequenceNet().double(),
            torch.randn(size, steps, 6, dtype=torch.float64),
            torch.randint(0, 3, (size,)),
        )
    if (
        model_kind == "conv"
    ):  # more samples than one chunk of the convolution rule, not a multiple of it
        return (
            conv_net().double(),
            torch.randn(19, 3, 12, 12, dtype=torch.float64),
            torch.randint(0, 3, (19,)),
        )
    return TiedNet().double(), torch.randint(0, 11, (size, steps)), torch.randint(0, 11, (size,))


@pytest.mark.parametrize("model_kind", ["sequence", "tied", "conv"])
@pytest.mark.parametrize("kind", ["abadi", "automatic"])
def test_norms_and_clipped_sum_match_torch_func(reference, model_kind, kind):
    model, x, y = make_batch(model_kind)
    expected = reference.grads(model, ce_sum, x, y)
    clipper = PerSampleClipper(model, max_grad_norm=0.5, clipping=kind)
    F.cross_entropy(model(x), y).backward()
    norms = torch.sqrt(sum(g.flatten(1).pow(2).sum(1) for g in expected.values()))
    torch.testing.assert_close(clipper.per_sample_norms(), norms, rtol=1e-8, atol=1e-10)
    sums = clipper.clipped_sum()
    want = reference.clipped(expected, 0.5, kind)
    for name, p in model.named_parameters():
        torch.testing.assert_close(sums[p], want[name], rtol=1e-8, atol=1e-10)


def test_conv_routes_are_the_intended_ones():
    model, x, y = make_batch("conv")
    clipper = PerSampleClipper(model)
    F.cross_entropy(model(x), y).backward()
    convs = [c for c in clipper.calls if isinstance(c.module, nn.Conv2d)]
    assert [bool(c.per_sample) for c in convs] == [True, False, False]
    assert [c.grad_out is not None for c in convs] == [False, True, True]


def test_layer_outputs_are_not_kept():
    """A normalisation output that only feeds a ReLU is freed after the forward, as without hooks."""
    model, x, y = make_batch("conv")
    for mode in ("bookkeeping", "two_pass"):
        clipper = PerSampleClipper(model, mode=mode)
        seen = []
        handle = model[1].register_forward_hook(
            lambda module, args, output, seen=seen: seen.append(weakref.ref(output))
        )
        out = model(x)
        assert seen[0]() is None
        handle.remove()
        del out
        clipper.detach()


def test_two_pass_frees_its_records():
    """The gradient edges two-pass records form a cycle through autograd (node -> output hook -> call
    -> edge -> node) that Python's collector cannot break: every record must go after the step."""
    model, x, y = make_batch("conv")
    clipper = PerSampleClipper(model, mode="two_pass")
    records = []
    for backward in (
        True,
        False,
    ):  # the second forward never gets its backward: detach() lets it go
        losses = F.cross_entropy(model(x), y, reduction="none")
        records += [weakref.ref(call) for call in clipper.calls]
        if backward:
            clipper.two_pass_backward(losses)
    del losses
    clipper.detach()
    gc.collect()
    assert records and not [r for r in records if r() is not None]


@pytest.mark.parametrize("model_kind", ["sequence", "conv"])
def test_two_pass_equals_bookkeeping(reference, model_kind):
    model, x, y = make_batch(model_kind)
    clipper = PerSampleClipper(model, max_grad_norm=0.3, mode="two_pass")
    sums = clipper.two_pass_backward(F.cross_entropy(model(x), y, reduction="none"))
    want = reference.clipped(reference.grads(model, ce_sum, x, y), 0.3)
    for name, p in model.named_parameters():
        torch.testing.assert_close(sums[p], want[name], rtol=1e-8, atol=1e-10)


def test_per_layer_clipping_bounds_each_layer(reference):
    model, x, y = make_batch("sequence")
    clipper = PerSampleClipper(model, max_grad_norm=0.4, per_layer=True)
    F.cross_entropy(model(x), y).backward()
    factors = clipper.clip_factors()
    grads = reference.grads(model, ce_sum, x, y)
    threshold = 0.4 / len(clipper.layer_params) ** 0.5
    for module, factor in factors.items():
        names = [
            n
            for n, _ in model.named_parameters()
            if n.startswith(next(k for k, m in model.named_modules() if m is module))
        ]
        layer = torch.sqrt(sum(grads[n].flatten(1).pow(2).sum(1) for n in names))
        assert torch.all(layer * factor <= threshold * (1 + 1e-9))


def test_parameter_used_outside_its_layer_is_refused():
    class Sneaky(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(3, 3)
            self.b = nn.Linear(3, 1)

        def forward(self, x):
            return self.b(self.a(x)) + (x @ self.a.weight).sum(1, keepdim=True)

    from privaudit.dp import make_private
    from torch.utils.data import DataLoader, TensorDataset

    model = Sneaky()
    data = DataLoader(TensorDataset(torch.randn(8, 3), torch.randn(8, 1)), batch_size=4)
    model, opt, loader, _ = make_private(
        model, torch.optim.SGD(model.parameters(), lr=0.1), data, noise_multiplier=1.0, noise_seed=0
    )
    x, y = next(iter(loader))
    x = x.requires_grad_(True)  # the first layer's weight is hidden from autograd too
    F.mse_loss(model(x), y).backward()
    with pytest.raises(DPError, match="outside its layer"):
        opt.step()


@pytest.mark.gpu
@pytest.mark.parametrize("kernels", ["triton", "torch"])
@pytest.mark.parametrize(
    "model_kind, mode",
    [
        ("sequence", "bookkeeping"),
        ("tied", "bookkeeping"),
        ("conv", "bookkeeping"),
        ("sequence", "two_pass"),
        ("conv", "two_pass"),
    ],
)
def test_cuda_clipped_sum_matches_torch_func(reference, model_kind, mode, kernels):
    model, x, y = make_batch(model_kind)
    model, x, y = model.cuda(), x.cuda(), y.cuda()
    want = reference.clipped(reference.grads(model, ce_sum, x, y), 0.5)
    clipper = PerSampleClipper(model, max_grad_norm=0.5, mode=mode, kernels=kernels)
    if mode == "two_pass":
        sums = clipper.two_pass_backward(F.cross_entropy(model(x), y, reduction="none"))
    else:
        F.cross_entropy(model(x), y).backward()
        sums = clipper.clipped_sum()
    for name, p in model.named_parameters():
        assert sums[p].device == p.device
        torch.testing.assert_close(sums[p], want[name], rtol=1e-7, atol=1e-9)


def vision_model(name):
    """Tiny image classifiers built from config (no weights): one block per stage."""
    if name == "torchvision_vit":
        from torchvision.models import VisionTransformer

        return VisionTransformer(
            8, 4, num_layers=1, num_heads=2, hidden_dim=8, mlp_dim=8, num_classes=3
        )
    timm = pytest.importorskip("timm")
    if name == "timm_convnext":
        return timm.models.convnext.ConvNeXt(
            depths=(1, 1, 1, 1),
            dims=(4, 4, 8, 8),
            kernel_sizes=3,
            patch_size=2,
            num_classes=3,
            ls_init_value=0.5,
        )
    kwargs = {
        "img_size": 8,
        "patch_size": 4,
        "embed_dim": 8,
        "depth": 1,
        "num_heads": 2,
        "num_classes": 3,
    }
    if name == "timm_beit":
        return timm.models.beit.Beit(use_rel_pos_bias=True, init_values=0.5, **kwargs)
    return timm.models.vision_transformer.VisionTransformer(init_values=0.5, **kwargs)


@pytest.mark.parametrize("name", ["torchvision_vit", "timm_vit", "timm_convnext", "timm_beit"])
def test_vision_transformers_and_convnext_match_torch_func(reference, name):
    """Whole models, after fix() swaps torchvision's MultiheadAttention: every parameter, including
    class tokens and position embeddings of the top module (through the torch.func fallback)."""
    from privaudit.dp.validate import fix, problems

    torch.manual_seed(0)
    model = fix(vision_model(name)).double()
    assert problems(model) == []
    for p in model.parameters():  # no zero-initialised tokens or biases
        nn.init.normal_(p, std=0.5)
    size = 32 if name == "timm_convnext" else 8  # ConvNeXt halves the image five times
    x, y = torch.randn(5, 3, size, size, dtype=torch.float64), torch.randint(0, 3, (5,))
    expected = reference.grads(model, ce_sum, x, y)
    clipper = PerSampleClipper(model, max_grad_norm=1.0)
    F.cross_entropy(model(x), y).backward()
    norms = torch.sqrt(sum(g.flatten(1).pow(2).sum(1) for g in expected.values()))
    torch.testing.assert_close(clipper.per_sample_norms(), norms, rtol=1e-8, atol=1e-10)
    sums = clipper.clipped_sum()
    for name_, p in model.named_parameters():
        torch.testing.assert_close(
            sums[p], reference.clipped(expected, 1.0)[name_], rtol=1e-8, atol=1e-10
        )
