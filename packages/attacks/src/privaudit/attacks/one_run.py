"""The one-run DP audit (Steinke, Nasr, Jagielski 2023): m canaries, each in one training run
with probability 1/2; the canaries' losses give guesses with abstention and an eps lower bound."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from privaudit.attacks.config import OneRunConfig
from privaudit.attacks.data import load_images, split_indices
from privaudit.attacks.models import ModelSpec, build_model
from privaudit.attacks.signals import example_loss
from privaudit.attacks.training import TrainConfig, train_model
from privaudit.core.bounds import one_run_audit
from privaudit.core.errors import InputError
from privaudit.core.report import write_report
from privaudit.core.rundir import atomic_write_text
from privaudit.dp.randomness import seed_for
from torch import nn
from tqdm.auto import tqdm

CANARY_ROLE, MODEL_ROLE = 4, 5


def make_canaries(labels: torch.Tensor, kind: str, num_classes: int, seed: int) -> torch.Tensor:
    """Canary labels: the true ones (natural) or a uniformly drawn wrong class (mislabelled)."""
    if kind == "natural":
        return labels.clone()
    offsets = torch.as_tensor(
        np.random.default_rng(seed).integers(1, num_classes, size=len(labels))
    )
    return (labels + offsets) % num_classes


def train_private(model: nn.Module, inputs, labels, config: TrainConfig, dp, seed: int) -> float:
    """DP-SGD with privaudit-dp at dp.target_epsilon; returns the epsilon actually spent."""
    from privaudit.dp import DPError, make_private
    from privaudit.dp.training import fit

    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(inputs, labels), batch_size=config.batch_size, shuffle=True,
                                         generator=torch.Generator().manual_seed(seed_for(seed, "shuffle")))  # fmt: skip
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum)
    try:
        model, optimizer, loader, accountant = make_private(
            model, optimizer, loader, target_epsilon=dp.target_epsilon, target_delta=dp.delta,
            epochs=config.epochs, max_grad_norm=dp.max_grad_norm,
        )  # fmt: skip
    except DPError as exc:
        raise InputError(f"dp: {exc}") from exc
    fit(model, optimizer, loader, lambda m, batch: F.cross_entropy(m(batch[0]), batch[1]), config.epochs, progress=False)
    return float(accountant.get_epsilon(dp.delta))


def run_one_run(config: OneRunConfig, out_dir: str | Path, *, progress: bool = True) -> dict:
    """Train one model on the base set plus the included canaries, audit it, write the report."""
    images, labels = load_images(config.dataset)
    num_classes = int(labels.max()) + 1
    base_idx, canary_idx = split_indices(
        len(images), (config.train_size, config.canaries.count), config.seed
    )
    canary_labels = make_canaries(
        labels[canary_idx], config.canaries.kind, num_classes, seed_for(config.seed, CANARY_ROLE)
    )
    included = (
        np.random.default_rng(seed_for(config.seed, CANARY_ROLE, 1)).random(len(canary_idx)) < 0.5
    )
    inputs = torch.cat([images[base_idx], images[canary_idx][included]])
    targets = torch.cat([labels[base_idx], canary_labels[included]])

    spec: ModelSpec = dataclasses.replace(
        config.model, input_shape=tuple(images.shape[1:]), num_classes=num_classes
    )
    model_seed = seed_for(config.seed, MODEL_ROLE)
    model = build_model(spec, model_seed)
    with tqdm(
        total=1,
        desc="one-run training" + (" (DP)" if config.dp.enabled else ""),
        disable=not progress,
    ) as bar:
        if config.dp.enabled:
            eps_spent = train_private(
                model, inputs, targets, config.training, config.dp, model_seed
            )
        else:
            train_model(model, inputs, targets, np.arange(len(inputs)), config.training, model_seed)
            eps_spent = None
        bar.update()
    model.eval()
    with torch.no_grad():
        canary_scores = -example_loss(model(images[canary_idx]).double(), canary_labels).numpy()
    delta = config.dp.delta if config.dp.enabled else 0.0
    audit = one_run_audit(canary_scores, included, delta=delta, alpha=config.alpha)
    scores = pd.DataFrame(
        {"member": included.astype(np.int64), "mia_canary_loss_pred": canary_scores}
    )
    out_dir = Path(out_dir)
    atomic_write_text(out_dir / "scores.csv", scores.to_csv(index=False))
    return write_report(
        scores, out_dir, baseline=None, alpha=config.alpha, delta=delta,
        title="privaudit attacks: one-run DP audit", config=dataclasses.asdict(config),
        extra={"one_run": audit, "eps_lower_bound": audit["eps_lb"], "dp_epsilon_spent": eps_spent},
    )  # fmt: skip
