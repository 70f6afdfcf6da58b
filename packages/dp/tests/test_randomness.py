"""DP randomness: the noise reveals neither who was sampled nor anything computable from the seed.

Both regression tests failed before the randomness fix (sampler and noise seeded with the same
value; the noise recomputable from initial weights built after torch.manual_seed(seed)).
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from privaudit.dp import DPError, make_private
from privaudit.dp.randomness import REPRODUCIBLE_WARNING, seed_for
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

N = 64


def first_step(noise_seed, *, model=None, secure=False):
    """One private step with zero gradients, so each weight coordinate's gradient is pure noise:
    returns (noise per coordinate in units of sigma*C, mask of the examples sampled)."""
    model = model or nn.Linear(N, 1, bias=False)
    data = TensorDataset(torch.zeros(N, N), torch.zeros(N, 1), torch.arange(N))
    model, opt, loader, _ = make_private(
        model,
        torch.optim.SGD(model.parameters(), lr=0.0),
        DataLoader(data, batch_size=N // 4),
        noise_multiplier=1.0,
        max_grad_norm=1.0,
        noise_seed=noise_seed,
        secure_rng=secure,
    )
    x, y, index = next(iter(loader))
    if len(x):
        F.mse_loss(model(x), y).backward()
    opt.step()
    sampled = torch.zeros(N, dtype=torch.bool)
    sampled[index] = True
    weight = next(model.parameters())
    return (weight.grad.flatten() * loader.expected_batch_size).double(), sampled


@pytest.mark.parametrize("noise_seed", ["run seed", None])
def test_noise_magnitude_does_not_depend_on_being_sampled(noise_seed):
    sampled_sum = unsampled_sum = 0.0
    sampled_count = unsampled_count = 0
    for seed in range(120):
        noise, sampled = first_step(seed if noise_seed else None)
        sampled_sum += noise[sampled].abs().sum().item()
        unsampled_sum += noise[~sampled].abs().sum().item()
        sampled_count += int(sampled.sum())
        unsampled_count += int((~sampled).sum())
    ratio = (sampled_sum / sampled_count) / (unsampled_sum / unsampled_count)
    assert 0.85 < ratio < 1.15, ratio


def box_muller_from_uniform_weights(weight: torch.Tensor, bound: float) -> torch.Tensor:
    """What an attacker who knows the initial weights predicts for torch's CPU normal draws from a
    generator in the same state: the uniforms behind uniform(-bound, bound), through the
    Box-Muller transform torch applies to blocks of 16 (radius from u[i], angle from u[i + 8])."""
    u = ((weight.flatten().double() + bound) / (2 * bound)).clamp(1e-12, 1 - 1e-12)
    out = torch.empty_like(u)
    for start in range(0, len(u) - 15, 16):
        u1, u2 = 1 - u[start : start + 8], u[start + 8 : start + 16]
        radius = torch.sqrt(-2 * torch.log(u1))
        out[start : start + 8] = radius * torch.cos(2 * math.pi * u2)
        out[start + 8 : start + 16] = radius * torch.sin(2 * math.pi * u2)
    return out


def test_first_noise_is_uncorrelated_with_initial_weights_built_from_the_same_seed():
    predicted, observed = [], []
    for seed in range(20):
        torch.manual_seed(seed)
        model = nn.Linear(N, 1, bias=False)
        predicted.append(box_muller_from_uniform_weights(model.weight.detach(), 1 / math.sqrt(N)))
        observed.append(
            first_step(seed, model=model)[0]
        )  # the worst case: the run seed as noise seed
    r = np.corrcoef(torch.cat(predicted).numpy(), torch.cat(observed).numpy())[0, 1]
    assert abs(r) < 0.2, r


def test_default_noise_differs_between_identical_runs_and_a_noise_seed_reproduces_it():
    assert not torch.equal(first_step(None)[0], first_step(None)[0])
    assert not torch.equal(first_step(None, secure=True)[0], first_step(None, secure=True)[0])
    assert torch.equal(first_step(5)[0], first_step(5)[0])


def test_reproducible_noise_is_recorded_as_not_private():
    model = nn.Linear(2, 1)
    data = DataLoader(TensorDataset(torch.zeros(8, 2), torch.zeros(8, 1)), batch_size=2)
    _, opt, _, _ = make_private(
        model, torch.optim.SGD(model.parameters(), lr=0.1), data, noise_multiplier=1.0
    )
    assert opt.dp_randomness["private"] and opt.dp_randomness["source"] == "os-entropy"
    model = nn.Linear(2, 1)
    _, opt, _, _ = make_private(
        model, torch.optim.SGD(model.parameters(), lr=0.1), data, noise_multiplier=1.0, noise_seed=3
    )
    assert not opt.dp_randomness["private"] and opt.dp_randomness["warning"] == REPRODUCIBLE_WARNING


def test_shuffled_batches_and_contradictory_seeds_are_refused():
    model = nn.Linear(2, 1)
    data = DataLoader(TensorDataset(torch.zeros(8, 2), torch.zeros(8, 1)), batch_size=2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(DPError, match="poisson_sampling=False"):
        make_private(model, opt, data, noise_multiplier=1.0, poisson_sampling=False)
    with pytest.raises(DPError, match="noise_seed and secure_rng"):
        make_private(model, opt, data, noise_multiplier=1.0, noise_seed=1, secure_rng=True)


def test_role_seeds_are_distinct_and_stable():
    seeds = {seed_for(0, role) for role in ("split", "init", "poisson-sampling", "gaussian-noise")}
    assert len(seeds) == 4 and 0 not in seeds
    assert seed_for(7, "init", 2) == seed_for(7, "init", 2) != seed_for(7, "init", 3)
