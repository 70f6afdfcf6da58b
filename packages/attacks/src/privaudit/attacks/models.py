"""Small architectures for reference models, built deterministically from a seed."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class ModelSpec:
    """Architecture of target and reference models: `mlp` or `cnn` over images [C, H, W]."""

    kind: str = "cnn"
    input_shape: tuple[int, int, int] = (1, 28, 28)
    num_classes: int = 10
    width: int = 16

    def __post_init__(self):
        if self.kind not in ("mlp", "cnn"):
            raise ValueError(f"model kind must be 'mlp' or 'cnn', got {self.kind!r}")
        if self.width < 1 or self.num_classes < 2:
            raise ValueError("model width must be >= 1 and num_classes >= 2")


class SmallCNN(nn.Sequential):
    """Two 3x3 convolutions with max-pooling and a linear head; no batch norm, so it vmaps."""

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int, width: int):
        channels, height, width_px = input_shape
        flat = 2 * width * (((height - 2) // 2 - 2) // 2) * (((width_px - 2) // 2 - 2) // 2)
        super().__init__(
            nn.Conv2d(channels, width, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(flat, num_classes),
        )  # fmt: skip


class MLP(nn.Sequential):
    """One hidden layer over flattened inputs."""

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int, width: int):
        channels, height, width_px = input_shape
        super().__init__(
            nn.Flatten(), nn.Linear(channels * height * width_px, width), nn.ReLU(),
            nn.Linear(width, num_classes),
        )  # fmt: skip


def build_model(spec: ModelSpec, seed: int) -> nn.Module:
    """A freshly initialised model; the same seed always gives the same weights."""
    architecture = {"cnn": SmallCNN, "mlp": MLP}[spec.kind]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return architecture(tuple(spec.input_shape), spec.num_classes, spec.width)
