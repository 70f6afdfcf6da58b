"""The LOOD report's figures as PNG bytes (matplotlib, Agg backend)."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from privaudit.core.plots import figure_png  # noqa: E402


def _positive(values: np.ndarray) -> np.ndarray:
    floor = values[values > 0].min() if (values > 0).any() else 1e-12
    return np.maximum(values, floor)


def distribution_png(kl: np.ndarray) -> bytes:
    """Histogram of the records' KL LOOD on log-spaced bins."""
    values = _positive(np.asarray(kl))
    fig, ax = plt.subplots(figsize=(6, 4))
    bins = np.logspace(np.log10(values.min()), np.log10(values.max()) + 1e-9, 40)
    ax.hist(values, bins=bins, color="#4477aa")
    ax.axvline(np.median(values), color="k", linestyle="--", linewidth=1, label="median")
    ax.set_xscale("log")
    ax.set_xlabel("KL LOOD at the record (nats)")
    ax.set_ylabel("records")
    ax.set_title("Distribution of LOOD over the records")
    ax.legend(fontsize=8)
    return figure_png(fig, dpi=100)


def landscape_png(kl: np.ndarray, labels: np.ndarray, class_names, rows: np.ndarray) -> bytes:
    """Left: LOOD against its rank within each class. Right: the records' first two principal
    components coloured by log LOOD (where in input space the exposed records lie)."""
    values = _positive(np.asarray(kl))
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for c, name in enumerate(class_names):
        ranked = np.sort(values[labels == c])[::-1]
        left.plot(np.arange(1, len(ranked) + 1), ranked, label=f"class {name}", linewidth=1.5)
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xlabel("rank within class")
    left.set_ylabel("KL LOOD")
    left.set_title("LOOD landscape: records ranked")
    left.legend(fontsize=8)
    centred = rows - rows.mean(axis=0)
    _, _, components = np.linalg.svd(centred[:: max(1, len(centred) // 4000)], full_matrices=False)
    projected = centred @ components[:2].T
    order = np.argsort(values)  # the most exposed drawn last, on top
    points = right.scatter(
        projected[order, 0], projected[order, 1], c=np.log10(values[order]), s=6, cmap="viridis"
    )
    fig.colorbar(points, ax=right, label="log10 KL LOOD")
    right.set_xlabel("PC 1")
    right.set_ylabel("PC 2")
    right.set_title("LOOD over the input space (PCA)")
    return figure_png(fig, dpi=100)


def image_grid_png(
    images: list[np.ndarray], titles: list[str], title: str, columns: int = 8
) -> bytes:
    """Images in [0, 1] ([H, W] grey or [H, W, 3]) in a grid, each with a caption."""
    rows = max(1, math.ceil(len(images) / columns))
    columns = min(columns, max(1, len(images)))
    fig, axes = plt.subplots(rows, columns, figsize=(1.6 * columns, 1.9 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, caption in zip(axes.flat, images, titles, strict=False):
        ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=1)
        ax.set_title(caption, fontsize=7)
    fig.suptitle(title, fontsize=10)
    return figure_png(fig, dpi=100)


def scatter_png(lood: np.ndarray, auc: np.ndarray, correlation: dict) -> bytes:
    """Ground truth: each target's MIA AUC over the trained networks against its LOOD."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.scatter(_positive(np.asarray(lood)), auc, s=14, color="#aa3377")
    ax.set_xscale("log")
    ax.axhline(0.5, color="k", linestyle=":", linewidth=1)
    ax.set_xlabel("KL LOOD at the record (NNGP)")
    ax.set_ylabel("MIA AUC over the trained networks")

    def fmt(key):
        value = correlation.get(key)
        return "n/a" if value is None else f"{value:.2f}"

    ax.set_title(
        f"LOOD vs MIA AUC: Pearson {fmt('pearson')}, Spearman {fmt('spearman')}", fontsize=10
    )
    return figure_png(fig, dpi=100)
