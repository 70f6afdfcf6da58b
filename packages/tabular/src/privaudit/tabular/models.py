"""Feature encoding and the MLP classifier used as target (normal, overfit, DP) and as helper."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from privaudit.dp.randomness import seed_for
from privaudit.dp.training import PrivacySettings, train
from privaudit.tabular.data import Table
from sklearn.compose import ColumnTransformer
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from torch import nn
from torch.utils.data import TensorDataset


class FeatureEncoder:
    """One-hot categorical and standardised numerical features, fitted on one split (deterministic)."""

    def __init__(self, table: Table, fit_on: pd.DataFrame):
        self.table = table
        self.transform_ = ColumnTransformer(
            [
                (
                    "categorical",
                    OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                    table.categorical,
                ),
                ("numerical", StandardScaler(), table.numerical),
            ]
        ).fit(fit_on[table.features])

    def features(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.transform_.transform(frame[self.table.features]), dtype=np.float32)

    def labels(self, frame: pd.DataFrame) -> np.ndarray:
        return self.label_indices(frame[self.table.label])

    def label_indices(self, values) -> np.ndarray:
        """Class indices (in the table's sorted class order) of label values."""
        index = {c: i for i, c in enumerate(self.table.classes)}
        return pd.Series(values).map(index).to_numpy(dtype=np.int64)

    def records(self, frame: pd.DataFrame) -> np.ndarray:
        """Features and the one-hot label: the whole record, as the attack classifiers see it."""
        one_hot = np.eye(len(self.table.classes), dtype=np.float32)[self.labels(frame)]
        return np.hstack([self.features(frame), one_hot])


class TabularMLP(nn.Module):
    """ReLU MLP from features to class logits; `hidden` lists the hidden layer widths."""

    def __init__(self, in_features: int, hidden: Sequence[int], n_classes: int):
        super().__init__()
        widths = [in_features, *hidden]
        layers: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:], strict=True):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(widths[-1], n_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@dataclass(frozen=True)
class TrainSettings:
    """How one MLP is trained; `dp_epsilon` set means DP-SGD through privaudit.dp at that epsilon."""

    hidden: tuple[int, ...]
    epochs: int
    lr: float
    batch_size: int
    weight_decay: float = 0.0
    dp_epsilon: float | None = None
    dp_delta: float = 1e-5
    max_grad_norm: float = 1.0
    reproducible_noise: bool = False


def train_mlp(
    x: np.ndarray, y: np.ndarray, n_classes: int, settings: TrainSettings, *, seed: int, desc: str
):
    """Train a TabularMLP; returns (model, DP record or None)."""
    torch.manual_seed(seed_for(seed, "init"))
    model = TabularMLP(x.shape[1], settings.hidden, n_classes)
    dataset = TensorDataset(
        torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.int64)
    )  # copies: inputs may be read-only
    privacy = None
    if settings.dp_epsilon is not None:
        privacy = PrivacySettings(
            settings.dp_epsilon,
            settings.dp_delta,
            settings.max_grad_norm,
            reproducible_noise=settings.reproducible_noise,
        )
    result = train(
        model,
        dataset,
        lambda m, batch: F.cross_entropy(m(batch[0]), batch[1]),
        optimizer=lambda params: torch.optim.Adam(
            params, lr=settings.lr, weight_decay=settings.weight_decay
        ),
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        seed=seed,
        privacy=privacy,
        desc=desc,
    )
    return model, result.privacy
