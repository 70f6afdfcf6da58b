"""Training classifiers on index subsets: one at a time, or many at once with torch.func + vmap."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap


@dataclass(frozen=True)
class TrainConfig:
    """SGD with momentum; the same settings for the target and every reference model."""

    epochs: int = 10
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 0.0

    def __post_init__(self):
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("training epochs and batch_size must be >= 1")
        if self.lr <= 0 or not 0 <= self.momentum < 1 or self.weight_decay < 0:
            raise ValueError("training needs lr > 0, 0 <= momentum < 1 and weight_decay >= 0")


def batch_order(size: int, config: TrainConfig, seed: int) -> list[np.ndarray]:
    """Positions 0..size-1 in the mini-batches of every epoch (a fresh permutation per epoch)."""
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(config.epochs):
        permutation = rng.permutation(size)
        batches += [
            permutation[i : i + config.batch_size] for i in range(0, size, config.batch_size)
        ]
    return batches


def _optimizer(params, config: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.SGD(
        params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )


def train_model(
    model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, indices: np.ndarray,
    config: TrainConfig, seed: int,
) -> np.ndarray:  # fmt: skip
    """Train `model` in place on inputs[indices] (model and inputs on one device); returns the loss
    of every step."""
    optimizer = _optimizer(model.parameters(), config)
    model.train()
    losses = []
    for batch in batch_order(len(indices), config, seed):
        rows = torch.as_tensor(indices[batch], device=inputs.device)
        loss = F.cross_entropy(model(inputs[rows]), labels[rows])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return np.asarray(losses)


def train_models_batched(
    models: Sequence[nn.Module], inputs: torch.Tensor, labels: torch.Tensor,
    index_sets: np.ndarray, config: TrainConfig, seeds: Sequence[int],
) -> tuple[list[dict[str, torch.Tensor]], np.ndarray]:  # fmt: skip
    """Train R same-architecture models at once, model r on inputs[index_sets[r]] with batch order
    from seeds[r]; equivalent to R calls of `train_model`. Returns (state dicts, losses [R, steps])."""
    index_sets = np.asarray(index_sets)
    if index_sets.ndim != 2 or len(index_sets) != len(models) or len(seeds) != len(models):
        raise ValueError(
            "batched training needs one index set of equal length and one seed per model"
        )
    params, buffers = stack_module_state(list(models))
    skeleton = copy.deepcopy(models[0]).to("meta")

    def forward(model_params, model_buffers, batch):
        return functional_call(skeleton, (model_params, model_buffers), (batch,))

    batched_forward = vmap(forward)
    optimizer = _optimizer(params.values(), config)
    orders = [batch_order(index_sets.shape[1], config, seed) for seed in seeds]
    losses = []
    for step in range(len(orders[0])):
        rows = torch.as_tensor(
            np.stack([index_sets[r][orders[r][step]] for r in range(len(models))]),
            device=inputs.device,
        )
        logits = batched_forward(params, buffers, inputs[rows])
        per_model = F.cross_entropy(logits.flatten(0, 1), labels[rows].flatten(), reduction="none")
        per_model = per_model.view(rows.shape).mean(dim=1)
        optimizer.zero_grad()
        # Models share no parameters, so the gradient of the sum is each model's own gradient.
        per_model.sum().backward()
        optimizer.step()
        losses.append(per_model.detach().cpu().numpy())
    states = [
        {name: tensor[r].detach().clone() for name, tensor in {**params, **buffers}.items()}
        for r in range(len(models))
    ]
    return states, np.stack(losses, axis=1)
