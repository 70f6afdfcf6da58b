"""Small architectures for reference models, built deterministically from a seed."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
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


class Erf(nn.Module):
    def forward(self, x):
        return torch.erf(x)


# The activations whose NNGP/NTK privaudit.attacks.lood computes in closed form.
FC_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "erf": Erf}


@dataclass(frozen=True)
class FCSpec(ModelSpec):
    """A fully connected network of `depth` hidden layers of `width` units in the NTK
    parameterisation: the finite-width network whose kernels privaudit.attacks.lood computes."""

    kind: str = "fc"
    depth: int = 2
    activation: str = "relu"
    w_std: float = math.sqrt(2.0)
    b_std: float = 0.0

    def __post_init__(self):
        if self.kind != "fc" or self.depth < 1 or self.width < 1 or self.num_classes < 2:
            raise ValueError("an FC model needs kind 'fc', depth, width >= 1 and num_classes >= 2")
        if self.activation not in FC_ACTIVATIONS:
            names = ", ".join(FC_ACTIVATIONS)
            raise ValueError(f"FC activation must be one of {names}, got {self.activation!r}")
        if not (self.w_std > 0 and self.b_std >= 0):
            raise ValueError("FC models need w_std > 0 and b_std >= 0")


class NTKLinear(nn.Module):
    """A dense layer in the NTK parameterisation: standard-normal parameters, the weights scaled
    by w_std / sqrt(fan_in) and the bias by b_std in the forward pass."""

    def __init__(self, fan_in: int, fan_out: int, w_std: float, b_std: float):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(fan_out, fan_in))
        self.bias = nn.Parameter(torch.randn(fan_out))
        self.weight_scale, self.bias_scale = w_std / math.sqrt(fan_in), b_std

    def forward(self, x):
        return F.linear(x, self.weight * self.weight_scale, self.bias * self.bias_scale)


class FCNet(nn.Sequential):
    """Flatten, `depth` x (NTKLinear, activation), NTKLinear readout."""

    def __init__(self, spec: FCSpec):
        fan_in = math.prod(spec.input_shape)
        layers: list[nn.Module] = [nn.Flatten()]
        for _ in range(spec.depth):
            layers.append(NTKLinear(fan_in, spec.width, spec.w_std, spec.b_std))
            layers.append(FC_ACTIVATIONS[spec.activation]())
            fan_in = spec.width
        super().__init__(*layers, NTKLinear(fan_in, spec.num_classes, spec.w_std, spec.b_std))


def build_model(spec: ModelSpec, seed: int) -> nn.Module:
    """A freshly initialised model; the same seed always gives the same weights."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if isinstance(spec, FCSpec):
            return FCNet(spec)
        architecture = {"cnn": SmallCNN, "mlp": MLP}[spec.kind]
        return architecture(tuple(spec.input_shape), spec.num_classes, spec.width)
