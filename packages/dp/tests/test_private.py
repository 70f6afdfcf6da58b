"""make_private end to end: the zero-noise step, physical batches, empty batches, a tiny DP run."""

import pytest
import torch
import torch.nn.functional as F
from privaudit.dp import DPError, make_private
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def small_problem(n=64, seed=0):
    torch.manual_seed(seed)
    x = torch.randn(n, 5, dtype=torch.float64)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 2)).double()
    return model, TensorDataset(x, y)


def ce_sum(out, y):
    return F.cross_entropy(out, y, reduction="sum")


def private_step(model, opt, x, y, mode):
    """One optimizer step: book-keeping hooks the mean loss's backward, two-pass takes per-sample losses."""
    if mode == "bookkeeping":
        F.cross_entropy(model(x), y).backward()
    else:
        opt.backward(F.cross_entropy(model(x), y, reduction="none"))
    opt.step()


@pytest.mark.parametrize("mode", ["bookkeeping", "two_pass"])
def test_zero_noise_step_equals_reference_step(reference, mode):
    model, data = small_problem()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    model, opt, loader, _ = make_private(
        model,
        torch.optim.SGD(model.parameters(), lr=0.7),
        DataLoader(data, batch_size=16),
        noise_multiplier=0.0,
        max_grad_norm=0.2,
        noise_seed=3,
        mode=mode,
    )
    x, y = next(iter(loader))
    assert len(x) > 0
    want = reference.clipped(reference.grads(model, ce_sum, x, y), 0.2)
    private_step(model, opt, x, y, mode)
    for n, p in model.named_parameters():
        torch.testing.assert_close(
            p.detach(),
            before[n] - 0.7 * want[n] / loader.expected_batch_size,
            rtol=1e-9,
            atol=1e-12,
        )


def test_physical_batches_give_the_same_logical_step():
    results = []
    for physical in (None, 3):
        model, data = small_problem()
        model, opt, loader, acc = make_private(
            model,
            torch.optim.SGD(model.parameters(), lr=0.5),
            DataLoader(data, batch_size=16),
            noise_multiplier=0.5,
            noise_seed=11,
            max_physical_batch_size=physical,
        )
        sizes = []
        for x, y in loader:
            sizes.append(len(x))
            F.cross_entropy(model(x), y).backward()
            opt.step()
            opt.zero_grad()
        results.append(([p.detach().clone() for p in model.parameters()], acc.history, sizes))
    (whole, history_whole, sizes_whole), (split, history_split, sizes_split) = results
    assert history_whole == history_split == [(0.5, 0.25, 4)]
    assert max(sizes_split) <= 3 and sum(sizes_split) == sum(sizes_whole)
    for a, b in zip(whole, split, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_empty_poisson_batches_still_step_with_noise():
    model, data = small_problem(n=10)
    model, opt, loader, acc = make_private(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        DataLoader(data, batch_size=1),
        noise_multiplier=1.0,
        noise_seed=0,
    )
    sizes = []
    for x, y in loader:
        sizes.append(len(x))
        assert x.shape[1:] == (5,)
        before = [p.detach().clone() for p in model.parameters()]
        F.cross_entropy(model(x), y).backward()
        opt.step()
        opt.zero_grad()
        assert all(not torch.equal(a, p) for a, p in zip(before, model.parameters(), strict=True))
    assert 0 in sizes and len(sizes) == 10
    assert acc.history == [(1.0, 0.1, 10)]


def test_tiny_dp_run_trains_and_reports_epsilon():
    model, data = small_problem(n=512, seed=1)
    model = model.float()
    data = TensorDataset(data.tensors[0].float(), data.tensors[1])
    model, opt, loader, acc = make_private(
        model,
        torch.optim.SGD(model.parameters(), lr=1.0),
        DataLoader(data, batch_size=64),
        target_epsilon=3.0,
        epochs=4,
        max_grad_norm=1.0,
        noise_seed=0,
    )
    losses = []
    for _ in range(4):
        total = 0.0
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            opt.zero_grad()
            total += loss.item()
        losses.append(total / len(loader))
    assert losses[-1] < 0.8 * losses[0]
    epsilon = acc.get_epsilon(1e-5)
    assert 2.0 < epsilon <= 3.05


def test_secure_rng_runs_and_differs_between_runs():
    grads = []
    for _ in range(2):
        model, data = small_problem()
        model, opt, loader, _ = make_private(
            model,
            torch.optim.SGD(model.parameters(), lr=0.1),
            DataLoader(data, batch_size=16),
            noise_multiplier=1.0,
            secure_rng=True,
        )
        x, y = next(iter(loader))
        F.cross_entropy(model(x), y).backward()
        opt.step()
        grads.append(next(model.parameters()).grad.clone())
    assert not torch.equal(*grads)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "exactly one"),
        ({"noise_multiplier": 1.0, "target_epsilon": 1.0}, "exactly one"),
        ({"target_epsilon": 1.0}, "epochs"),
        ({"noise_multiplier": 1.0, "clipping": "hard"}, "clipping"),
        ({"noise_multiplier": 1.0, "accountant": "moments"}, "accountant"),
        ({"noise_multiplier": 1.0, "max_grad_norm": 0}, "max_grad_norm"),
        ({"noise_multiplier": 1.0, "mode": "two_pass", "per_layer_clipping": True}, "per-layer"),
    ],
)
def test_bad_configuration_is_one_sentence(kwargs, message):
    model, data = small_problem()
    with pytest.raises(DPError, match=message) as info:
        make_private(
            model,
            torch.optim.SGD(model.parameters(), lr=0.1),
            DataLoader(data, batch_size=16),
            **kwargs,
        )
    assert str(info.value).count(". ") == 0 and str(info.value).endswith(".")


@pytest.mark.gpu
@pytest.mark.parametrize("mode", ["bookkeeping", "two_pass"])
def test_cuda_noisy_step_matches_the_reference_step_plus_gaussian_noise(reference, mode):
    """On CUDA: the noisy step differs from the noiseless reference step by noise of the right scale."""
    model, data = small_problem(n=256)
    model = model.cuda()
    data = TensorDataset(*(t.cuda() for t in data.tensors))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    model, opt, loader, _ = make_private(
        model,
        torch.optim.SGD(model.parameters(), lr=1.0),
        DataLoader(data, batch_size=128),
        noise_multiplier=2.0,
        max_grad_norm=0.5,
        noise_seed=3,
        mode=mode,
    )
    x, y = next(iter(loader))
    assert x.is_cuda and len(x) > 0
    want = reference.clipped(reference.grads(model, ce_sum, x, y), 0.5)
    private_step(model, opt, x, y, mode)
    noise = torch.cat(
        [
            (before[n] - p.detach() - want[n] / loader.expected_batch_size).flatten()
            for n, p in model.named_parameters()
        ]
    )
    assert noise.is_cuda
    # the update's noise is N(0, (sigma C / B)^2) per coordinate: 2 * 0.5 / 128
    assert noise.std().item() == pytest.approx(2.0 * 0.5 / 128, rel=0.35)
