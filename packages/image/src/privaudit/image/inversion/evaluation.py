"""How well the reconstructions reveal their classes, judged by an evaluation classifier that is
not the target (another architecture and seed, trained on the private data, as PLG-MI evaluates):
top-1 / top-5 attack accuracy, the KNN distance to the class's private images in its feature
space, and a Frechet distance to the private images."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from privaudit.dp.devices import model_device
from privaudit.dp.randomness import seed_for
from privaudit.dp.training import train
from privaudit.image import quality
from torch import nn
from torch.utils.data import TensorDataset

EVALUATION_ARCHITECTURE = (
    "two 3x3 conv + max-pool blocks (32, 64 channels), 128-unit ReLU layer, no normalisation"
)


class EvaluationNet(nn.Module):
    """ccexam's MNIST CNN shape (it differs from every target architecture), any class count."""

    def __init__(self, channels: int, classes: int, size: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(64 * (size // 4) ** 2, 128), nn.ReLU(),
        )  # fmt: skip
        self.head = nn.Linear(128, classes)

    def forward(self, x):
        return self.head(self.features(x))


def train_evaluation_model(images: torch.Tensor, labels: torch.Tensor, classes: int, *, epochs: int, seed: int,
                           device, progress: bool = True) -> EvaluationNet:  # fmt: skip
    torch.manual_seed(seed_for(seed, "evaluation-init"))
    model = EvaluationNet(images.shape[1], classes, images.shape[-1]).to(device)
    train(model, TensorDataset(images, labels),
          lambda m, batch: F.cross_entropy(m(batch[0].to(device)), batch[1].to(device)),
          optimizer=lambda params: torch.optim.Adam(params, lr=1e-3), epochs=epochs, batch_size=64,
          seed=seed_for(seed, "evaluation-training"), desc="evaluation model", progress=progress)  # fmt: skip
    return model.eval()


@torch.no_grad()
def _apply(module: nn.Module, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    device = model_device(module)
    return torch.cat(
        [
            module(images[s : s + batch_size].to(device)).cpu()
            for s in range(0, len(images), batch_size)
        ]
    )


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    model.eval()
    return float((_apply(model, images).argmax(1) == labels).float().mean())


def attack_accuracy(model: EvaluationNet, images: torch.Tensor, labels: torch.Tensor) -> dict:
    """Top-1 and top-5 accuracy of the evaluation model on reconstructions of known classes (top-5
    is 1 by construction with 5 classes or fewer), and per class top-1."""
    logits = _apply(model.eval(), images)
    k = min(5, logits.shape[1])
    top = logits.topk(k, dim=1).indices
    hit1 = top[:, 0] == labels
    hit5 = (top == labels[:, None]).any(1)
    per_class = [float(hit1[labels == c].float().mean()) for c in range(logits.shape[1])]
    return {
        "top1": float(hit1.float().mean()),
        "top5": float(hit5.float().mean()),
        "top1_per_class": per_class,
    }


def features(model: EvaluationNet, images: torch.Tensor) -> torch.Tensor:
    return _apply(model.eval().features, images).double()


def knn_distance(query: torch.Tensor, query_labels: torch.Tensor, private: torch.Tensor,
                 private_labels: torch.Tensor) -> float:  # fmt: skip
    """Mean over queries of the squared L2 distance to the nearest private feature of the query's
    class (PLG-MI's KNN Dist)."""
    distances = torch.cdist(query, private).square()
    distances[query_labels[:, None] != private_labels[None, :]] = float("inf")
    return float(distances.min(1).values.mean())


def frechet_space(shape, model: EvaluationNet) -> tuple[callable, str]:
    """ccexam's pretrained MNIST CNN for 1x28x28 images (a generic space, as Inception is for FID);
    the evaluation model's features otherwise."""
    if tuple(shape) == (1, 28, 28):
        space = quality.feature_space(shape, torch.empty(0), torch.empty(0), 10, seed=0)
        return space, space.name
    return (lambda images: features(model, images).numpy()), "the evaluation model's 128-d features"


def frechet_distance(space, a: torch.Tensor, b: torch.Tensor) -> float:
    return quality.frechet_distance(np.asarray(space(a)), np.asarray(space(b)))
