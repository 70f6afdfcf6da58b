"""Image datasets for audits, all shipped inside installed packages (never downloaded)."""

from __future__ import annotations

import numpy as np
import torch
from privaudit.core.errors import InputError

DATASETS = ("mnist", "digits")


def load_images(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images float32 [N, 1, H, W] in [0, 1] and labels int64 [N]: `mnist` (the embedded
    5,000-image subset) or `digits` (scikit-learn's 1,797 8x8 digits)."""
    if name == "mnist":
        from privaudit.dp.datasets import mnist_subset

        images, labels = mnist_subset()
        return torch.tensor(images, dtype=torch.float32).unsqueeze(1) / 255.0, torch.tensor(labels)
    if name == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
        return images, torch.tensor(digits.target, dtype=torch.int64)
    raise InputError(f"data.dataset must be one of {', '.join(DATASETS)}, got {name!r}")


def split_indices(total: int, sizes: tuple[int, ...], seed: int) -> list[np.ndarray]:
    """Disjoint random index sets of the given sizes drawn from range(total)."""
    if sum(sizes) > total:
        raise InputError(f"the data splits need {sum(sizes)} examples but the dataset has {total}")
    permutation = np.random.default_rng(seed).permutation(total)
    bounds = np.cumsum((0, *sizes))
    return [permutation[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
