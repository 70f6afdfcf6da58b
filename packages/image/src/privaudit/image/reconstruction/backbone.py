"""Frozen backbones whose penultimate features the attacked heads are trained on: ccexam's CNN
architecture pre-trained here on images the attack never targets (the default), or ccexam's own
weights (trained on all of MNIST train, so they saw the attacked digits)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from privaudit.core.rundir import atomic_write_bytes
from privaudit.dp.randomness import seed_for
from privaudit.dp.training import fit
from privaudit.image.models import CCEXAM_MEAN, CCEXAM_STD, CcexamMNISTNet, ScaledInput
from privaudit.image.quality import FeatureSpace
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

BACKBONES = ("pretrained", "ccexam-mnist")
BACKBONE_SIZE = 28  # ccexam's architecture reads 1 x 28 x 28


class Penultimate(nn.Module):
    """The 128-d penultimate layer (after the hidden ReLU) of a ccexam-architecture CNN over the
    package's [-1, 1] images."""

    def __init__(self, scaled: ScaledInput):
        super().__init__()
        self.net: CcexamMNISTNet = scaled.model
        self.mean, self.std = scaled.mean, scaled.std

    def forward(self, x):
        return self.net.embed(((x + 1) / 2 - self.mean) / self.std)


def to_backbone_size(images: torch.Tensor) -> torch.Tensor:
    """Images [N, 1, h, w] in [-1, 1] resized (bilinear) to the backbone's 28 x 28."""
    if images.shape[1] != 1:
        raise ValueError("the backbones read grayscale images")
    if images.shape[-1] == BACKBONE_SIZE and images.shape[-2] == BACKBONE_SIZE:
        return images
    return F.interpolate(
        images, size=(BACKBONE_SIZE, BACKBONE_SIZE), mode="bilinear", align_corners=False
    )


def _architecture(classes: int) -> ScaledInput:
    net = CcexamMNISTNet()
    if classes != 10:
        net.classifier[2] = nn.Linear(128, classes)
    return ScaledInput(net, CCEXAM_MEAN, CCEXAM_STD)


def pretrain(images: torch.Tensor, labels: torch.Tensor, classes: int, *, epochs: int, seed: int,
             device: torch.device, progress: bool = True) -> ScaledInput:  # fmt: skip
    """ccexam's architecture with a `classes`-way output, trained with Adam (lr 1e-3, batch 64)."""
    torch.manual_seed(seed_for(seed, "init"))
    model = _architecture(classes).to(device)
    loader = DataLoader(TensorDataset(to_backbone_size(images), labels), batch_size=64, shuffle=True,
                        generator=torch.Generator().manual_seed(seed_for(seed, "shuffle")))  # fmt: skip
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def loss(m, batch):
        return F.cross_entropy(m(batch[0].to(device)), batch[1].to(device))

    fit(model, optimizer, loader, loss, epochs, desc="backbone", progress=progress)
    return model.cpu().eval()


def cached_pretrain(path: Path, images, labels, classes: int, **settings) -> ScaledInput:
    """`pretrain`, its state dict kept at `path` (loaded weights-only on a rerun)."""
    if path.exists():
        model = _architecture(classes)
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return model.eval()
    model = pretrain(images, labels, classes, **settings)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    atomic_write_bytes(path, buffer.getvalue())
    return model


@torch.no_grad()
def penultimate_features(
    model: ScaledInput, images: torch.Tensor, device: torch.device, name: str
) -> np.ndarray:
    """[N, 128] float32 features of images [N, 1, h, w] in [-1, 1]."""
    space = FeatureSpace(Penultimate(model).to(device), name)
    return space(to_backbone_size(images)).astype(np.float32)


@torch.no_grad()
def accuracy(
    model: ScaledInput, images: torch.Tensor, labels: torch.Tensor, device: torch.device
) -> float:
    model = model.to(device).eval()
    x = to_backbone_size(images)
    predicted = torch.cat(
        [model(x[s : s + 512].to(device)).argmax(1).cpu() for s in range(0, len(x), 512)]
    )
    model.cpu()
    return float((predicted == labels).float().mean())
