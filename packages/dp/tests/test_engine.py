"""The engine's norms and clipped sums against torch.func per-sample gradients (float64)."""

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


def ce_sum(out, y):
    return F.cross_entropy(out, y, reduction="sum")


def make_batch(model_kind, size=7, steps=4):
    torch.manual_seed(1)
    if model_kind == "sequence":
        return SequenceNet().double(), torch.randn(size, steps, 6, dtype=torch.float64), torch.randint(0, 3, (size,))
    return TiedNet().double(), torch.randint(0, 11, (size, steps)), torch.randint(0, 11, (size,))


@pytest.mark.parametrize("model_kind", ["sequence", "tied"])
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


def test_two_pass_equals_bookkeeping(reference):
    model, x, y = make_batch("sequence")
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
        names = [n for n, _ in model.named_parameters() if n.startswith(next(k for k, m in model.named_modules() if m is module))]
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
    model, opt, loader, _ = make_private(model, torch.optim.SGD(model.parameters(), lr=0.1), data, noise_multiplier=1.0, seed=0)
    x, y = next(iter(loader))
    x = x.requires_grad_(True)  # the first layer's weight is hidden from autograd too
    F.mse_loss(model(x), y).backward()
    with pytest.raises(DPError, match="outside its layer"):
        opt.step()
