"""Generator quality: a Fréchet distance in the feature space of an offline classifier, a detector
trained to tell generated images from real ones, and image grids."""

from __future__ import annotations

import numpy as np
import torch
from privaudit.attacks.targets import ClassifierTarget
from privaudit.core import metrics
from privaudit.core.plots import pixels_png
from privaudit.dp.devices import model_device
from privaudit.image.models import (
    CcexamMNISTNet,
    ScaledInput,
    TrainSettings,
    ccexam_mnist,
    train_classifier,
)
from scipy import linalg
from torch import nn


class FeatureSpace:
    """Penultimate-layer features of a classifier; `name` says which one (for the report)."""

    def __init__(self, embed: nn.Module, name: str):
        self.embed, self.name = embed.eval(), name

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, batch_size: int = 512) -> np.ndarray:
        device = model_device(self.embed)
        return (
            torch.cat(
                [
                    self.embed(images[s : s + batch_size].to(device)).cpu()
                    for s in range(0, len(images), batch_size)
                ]
            )
            .double()
            .numpy()
        )


class _CcexamEmbed(nn.Module):
    def __init__(self):
        super().__init__()
        scaled: ScaledInput = ccexam_mnist()
        self.net: CcexamMNISTNet = scaled.model
        self.mean, self.std = scaled.mean, scaled.std

    def forward(self, x):
        return self.net.embed(((x + 1) / 2 - self.mean) / self.std)


def feature_space(
    shape: tuple[int, int, int],
    images: torch.Tensor,
    labels: torch.Tensor,
    classes: int,
    seed: int,
    device: torch.device | str = "cpu",
) -> FeatureSpace:
    """ccexam's pretrained MNIST CNN for 1x28x28 images; otherwise a small CNN trained here on `images`."""
    if tuple(shape) == (1, 28, 28) and classes == 10:
        return FeatureSpace(
            _CcexamEmbed().to(device),
            "ccexam MNIST CNN, 128-d penultimate layer (pretrained on MNIST train)",
        )
    model, _ = train_classifier(
        images,
        labels,
        classes,
        TrainSettings("cnn", epochs=10),
        seed=seed,
        desc="features",
        device=device,
    )
    return FeatureSpace(
        model[:-1],
        "small GroupNorm CNN trained on the generator's training images, 512-d penultimate layer",
    )


DETECTOR_EPOCHS = 10
DETECTOR_HELD_OUT = 0.3


def detector_auc(
    real: torch.Tensor,
    synthetic: torch.Tensor,
    seed: int,
    device: torch.device | str = "cpu",
    epochs: int = DETECTOR_EPOCHS,
) -> float:
    """Held-out AUC of the GroupNorm CNN ("cnn") trained `epochs` on images alone to tell
    `synthetic` from `real` (as many of each, DETECTOR_HELD_OUT of them held out): how far the
    generator is from the data for a classifier that sees neither the target nor a helper (at the
    default sizes about 330 steps of batch 64, against 240 of batch 128 per attack network)."""
    n = min(len(real), len(synthetic))
    images = torch.cat([real[:n], synthetic[:n]])
    is_real = torch.cat([torch.ones(n, dtype=torch.int64), torch.zeros(n, dtype=torch.int64)])
    order = torch.from_numpy(np.random.default_rng(seed).permutation(2 * n))
    cut = int(round(2 * n * (1 - DETECTOR_HELD_OUT)))
    train, test = order[:cut], order[cut:]
    model, _ = train_classifier(
        images[train],
        is_real[train],
        2,
        TrainSettings("cnn", epochs=epochs),
        seed=seed,
        desc="detector",
        device=device,
    )
    logits = ClassifierTarget(model, batch_size=512).logits(images[test])[:, 0]
    return float(metrics.auc(is_real[test].numpy(), (logits[:, 1] - logits[:, 0]).double().numpy()))


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^1/2) between Gaussians fitted to two feature sets."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    # ReLU features leave dead units: a tiny ridge keeps the covariances non-singular (as the FID code does).
    ridge = np.eye(a.shape[1]) * 1e-6
    s_a, s_b = np.cov(a, rowvar=False) + ridge, np.cov(b, rowvar=False) + ridge
    covmean = np.real(linalg.sqrtm(s_a @ s_b))
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(s_a) + np.trace(s_b) - 2 * np.trace(covmean))


def image_grid_png(
    images: torch.Tensor, labels: torch.Tensor, classes: int, per_class: int = 8, scale: int = 3
) -> bytes:
    """A PNG grid: one row per class, up to `per_class` images in each, from images in [-1, 1]."""
    rows = []
    c, h, w = images.shape[1:]
    blank = torch.full((c, h, w), -1.0)
    for k in range(classes):
        chosen = images[labels == k][:per_class]
        cells = [chosen[i] if i < len(chosen) else blank for i in range(per_class)]
        rows.append(torch.cat(cells, dim=2))
    grid = torch.cat(rows, dim=1)
    array = ((grid.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    return pixels_png(array[:, :, 0] if c == 1 else array, scale)
