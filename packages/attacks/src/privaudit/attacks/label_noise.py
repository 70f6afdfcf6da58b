"""Label noise for targets trained as memorisation stress tests: a fraction of the training labels
replaced by another class. The audit and its ground truth still read the true labels."""

from __future__ import annotations

import numpy as np


def flip_labels(labels, classes: int, fraction: float, seed: int) -> np.ndarray:
    """A copy of integer `labels` in which round(fraction * n) of them, chosen at random, are moved
    to a different class drawn uniformly among the other `classes - 1`."""
    labels = np.asarray(labels, dtype=np.int64).copy()
    if fraction <= 0 or classes < 2 or len(labels) == 0:
        return labels
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(labels), size=int(round(fraction * len(labels))), replace=False)
    labels[chosen] = (labels[chosen] + rng.integers(1, classes, size=len(chosen))) % classes
    return labels
