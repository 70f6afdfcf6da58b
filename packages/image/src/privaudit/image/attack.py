"""PANORAMIA's image classifier (baseline and MIA): an image branch and a branch over one model's
loss signals, trained to tell real members from other images."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from privaudit.attacks.panoramia import TensorExamples
from privaudit.attacks.signals import Signals
from privaudit.dp.devices import model_device
from privaudit.dp.randomness import seed_for
from privaudit.dp.training import train
from torch import nn
from torch.utils.data import TensorDataset


class AttackNet(nn.Module):
    """An image branch (a small CNN) and a loss branch (an MLP over the loss signals of a model),
    their embeddings stacked and read by a linear head -> member logit."""

    def __init__(self, channels: int, signal_features: int, width: int = 16):
        super().__init__()
        self.image_branch = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(2),
            nn.Flatten(),
            nn.Linear(8 * width, 32),
            nn.ReLU(),
        )
        self.loss_branch = nn.Sequential(
            nn.Linear(signal_features, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU()
        )
        self.head = nn.Linear(64, 1)

    def forward(self, images, signals):
        return self.head(
            torch.cat([self.image_branch(images), self.loss_branch(signals)], dim=1)
        ).squeeze(1)


def signal_features(signals: Signals, reference: Signals | None = None) -> np.ndarray:
    """The loss branch's input: log loss and (clipped) logit-scaled confidence of each image; with
    a reference (the helper's signals, for the MIA), its two as well and the log-loss difference."""
    columns = [
        np.log(np.maximum(signals.loss[:, 0], 1e-12)),
        np.clip(signals.confidence[:, 0], -50, 50),
    ]
    if reference is not None:
        helper = signal_features(reference)
        columns += [helper[:, 0], helper[:, 1], columns[0] - helper[:, 0]]
    return np.column_stack(columns)


class ImageAttack:
    """The LearnedAttack of the image audit; signal features standardised on the training set.
    `ensemble` networks from independent seeds, their logits averaged: one network's score
    depends on its seed about as much as on the data (tools/bench/image_attack_seeds.py)."""

    def __init__(
        self,
        *,
        epochs: int,
        seed: int,
        desc: str,
        device,
        ensemble: int = 1,
        lr: float = 1e-3,
        batch_size: int = 128,
    ):
        if ensemble < 1:
            raise ValueError(f"ensemble must be at least 1, not {ensemble}")
        self.epochs, self.seed, self.desc, self.device = epochs, seed, desc, device
        self.ensemble, self.lr, self.batch_size = ensemble, lr, batch_size

    def _standard(self, signals: Signals, reference: Signals | None) -> torch.Tensor:
        return torch.from_numpy(
            ((signal_features(signals, reference) - self.mean) / self.std).astype(np.float32)
        )

    def fit(
        self,
        examples: TensorExamples,
        signals: Signals,
        is_member: np.ndarray,
        reference: Signals | None = None,
    ) -> None:
        features = signal_features(signals, reference)
        self.mean, self.std = features.mean(0), features.std(0) + 1e-6
        device = self.device
        data = TensorDataset(
            examples.inputs,
            self._standard(signals, reference),
            torch.as_tensor(is_member, dtype=torch.float32),
        )
        self.models = []
        for i in range(self.ensemble):
            # the first network keeps the attack's own seed, so ensemble = 1 is one such network
            seed = self.seed if i == 0 else seed_for(self.seed, "ensemble", i)
            torch.manual_seed(seed_for(seed, "init"))
            model = AttackNet(examples.inputs.shape[1], features.shape[1]).to(device)
            train(
                model,
                data,
                lambda m, b: F.binary_cross_entropy_with_logits(
                    m(b[0].to(device), b[1].to(device)), b[2].to(device)
                ),
                optimizer=lambda params: torch.optim.Adam(params, lr=self.lr, weight_decay=1e-4),
                epochs=self.epochs,
                batch_size=self.batch_size,
                seed=seed,
                desc=self.desc if self.ensemble == 1 else f"{self.desc} {i + 1}/{self.ensemble}",
            )
            self.models.append(model.eval())

    @torch.no_grad()
    def score(
        self,
        examples: TensorExamples,
        signals: Signals,
        reference: Signals | None = None,
        batch_size: int = 512,
    ) -> np.ndarray:
        device = model_device(self.models[0])
        images, standard = examples.inputs, self._standard(signals, reference)
        out = [
            torch.sigmoid(
                torch.stack(
                    [
                        model(
                            images[s : s + batch_size].to(device),
                            standard[s : s + batch_size].to(device),
                        )
                        for model in self.models
                    ]
                ).mean(0)
            ).cpu()
            for s in range(0, len(images), batch_size)
        ]
        return torch.cat(out).double().numpy()
