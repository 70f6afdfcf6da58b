"""The image task of dp-train: a GroupNorm CNN, ResNet-18 or WRN-16-4 trained with DP-SGD on the
embedded MNIST subset or an .npz (`images` [N,H,W] or [N,C,H,W], `labels` [N]), test accuracy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from privaudit.attacks.data import mnist_subset
from privaudit.core.errors import InputError
from privaudit.dp.randomness import seed_for
from privaudit.dp.train_cli import split_indices
from privaudit.dp.training import train
from privaudit.image.models import build_model
from torch.utils.data import TensorDataset


def load_npz(source: str) -> tuple[np.ndarray, np.ndarray]:
    path = Path(source)
    if not path.is_file() or path.suffix != ".npz":
        raise InputError(f"--data {source}: expected 'mnist' or an existing .npz file.")
    try:
        with np.load(path, allow_pickle=False) as archive:
            if "images" not in archive or "labels" not in archive:
                raise InputError(f"{source} must hold arrays named 'images' and 'labels'.")
            images, labels = archive["images"], archive["labels"]
    except InputError:
        raise
    except Exception as exc:  # not a zip, truncated, pickled objects: numpy raises many types
        raise InputError(
            f"{source} is not a readable .npz archive ({type(exc).__name__})."
        ) from exc
    if images.ndim not in (3, 4) or len(images) != len(labels) or len(images) < 10:
        raise InputError(
            f"{source}: 'images' must be [N,H,W] or [N,C,H,W] with one label each (N >= 10)."
        )
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0:
        raise InputError(f"{source}: 'labels' must be non-negative integers.")
    if not np.isfinite(images.astype(np.float64)).all():
        raise InputError(f"{source}: 'images' holds NaN or infinite values.")
    return images, labels.astype(np.int64)


def as_tensors(images: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.as_tensor(images, dtype=torch.float32)
    x = x.unsqueeze(1) if x.dim() == 3 else x
    x = x / 255.0 if images.dtype == np.uint8 else x
    return (x - x.mean()) / (x.std() + 1e-8), torch.as_tensor(labels)


class ImageClassificationTask:
    models = ("cnn", "resnet18", "wrn16-4")
    options = None

    def run(self, config, options, device) -> dict:
        data = config.data or "mnist"
        x, y = as_tensors(*(mnist_subset() if data == "mnist" else load_npz(data)))
        train_idx, test_idx = split_indices(len(x), config.limit, config.seed)
        torch.manual_seed(seed_for(config.seed, "init"))
        model = build_model(config.model, x.shape[1], int(y.max()) + 1, x.shape[-1]).to(device)
        result = train(
            model,
            TensorDataset(x[train_idx], y[train_idx]),
            lambda m, batch: F.cross_entropy(m(batch[0].to(device)), batch[1].to(device)),
            optimizer=lambda params: torch.optim.SGD(params, lr=config.lr or 2.0, momentum=0.0),
            epochs=config.epochs,
            batch_size=config.batch_size,
            seed=config.seed,
            privacy=config.privacy(),
            desc="dp-train",
        )
        with torch.no_grad():
            predictions = torch.cat(
                [model(b.to(device)).argmax(1).cpu() for b in x[test_idx].split(256)]
            )
        return {
            "model": config.model,
            "data": data,
            "train_examples": len(train_idx),
            "test_examples": len(test_idx),
            "quality": {"test_accuracy": float((predictions == y[test_idx]).float().mean())},
            "privacy": result.privacy,
            "config": config.as_dict(),
        }
