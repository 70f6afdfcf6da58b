"""The report's plots as PNG bytes (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

# Plotting a million-point curve adds nothing over a few thousand evenly spaced points.
MAX_PLOTTED_POINTS = 4000


def thin(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """Every array subsampled at the same evenly spaced indices (ends kept)."""
    size = len(arrays[0])
    if size <= MAX_PLOTTED_POINTS:
        return arrays
    keep = np.unique(np.linspace(0, size - 1, MAX_PLOTTED_POINTS).round().astype(np.int64))
    return tuple(a[keep] for a in arrays)


def figure_png(fig, dpi: int = 110) -> bytes:
    """A matplotlib figure as PNG bytes (no timestamp or software tag, so equal plots give equal
    bytes); the figure is closed."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def pixels_png(array: np.ndarray, scale: int = 1) -> bytes:
    """A uint8 image ([H, W] grey or [H, W, 3]) as PNG bytes, each pixel a `scale` x `scale` block."""
    from PIL import Image

    image = Image.fromarray(array)
    image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def roc_png(rocs: dict[str, tuple[np.ndarray, np.ndarray]], *, log_scale: bool) -> bytes:
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for name, (fpr, tpr) in rocs.items():
        fpr, tpr = thin(fpr, tpr)
        if log_scale:
            positive = (fpr > 0) & (tpr > 0)
            fpr, tpr = fpr[positive], tpr[positive]
        ax.plot(fpr, tpr, label=name, linewidth=1.5)
    if log_scale:
        ax.set_xscale("log")
        ax.set_yscale("log")
        smallest = min((f[f > 0].min() for f, _ in rocs.values() if (f > 0).any()), default=1e-4)
        ax.plot([smallest, 1], [smallest, 1], "k:", linewidth=1, label="chance")
        ax.set_title("ROC (log-log: the low-FPR regime)")
    else:
        ax.plot([0, 1], [0, 1], "k:", linewidth=1, label="chance")
        ax.set_title("ROC")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.legend(fontsize=8, loc="lower right")
    return figure_png(fig)


def eps_recall_png(curves: dict[str, tuple[np.ndarray, np.ndarray, float]]) -> bytes:
    """eps lower bound vs recall per column, each column's maximum as a dashed line."""
    fig, ax = plt.subplots(figsize=(6, 5))
    for name, (recall, eps, eps_max) in curves.items():
        recall, eps = thin(recall, eps)
        (line,) = ax.plot(recall, eps, label=name, linewidth=1.5)
        ax.axhline(eps_max, color=line.get_color(), linestyle="--", linewidth=1)
    ax.set_xlabel("recall")
    ax.set_ylabel("eps lower bound (c_lb for the baseline, {c+eps}_lb for an MIA)")
    ax.set_title("eps lower bound vs recall (dashed: maximum)")
    ax.legend(fontsize=8, loc="upper right")
    return figure_png(fig)


def precision_recall_png(curves: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]) -> bytes:
    """precision vs recall per column, with the theoretical maximum precision at its bound (dashed)."""
    fig, ax = plt.subplots(figsize=(6, 5))
    for name, (recall, precision, max_precision) in curves.items():
        recall, precision, max_precision = thin(recall, precision, max_precision)
        (line,) = ax.plot(recall, precision, label=name, linewidth=1.5)
        ax.plot(recall, max_precision, color=line.get_color(), linestyle="--", linewidth=1)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title("precision vs recall (dashed: theoretical maximum at the column's bound)")
    ax.legend(fontsize=8, loc="lower left")
    return figure_png(fig)


def ladder_png(points: list[dict]) -> bytes:
    """An audit against the ground truth: eps_tilde (y) against the ground-truth MIA AUC (x), one
    marker per run; `points` hold target, auc, eps_tilde (runs of one target share a colour)."""
    fig, ax = plt.subplots(figsize=(6.5, 5))
    targets = list(dict.fromkeys(p["target"] for p in points))
    colours = plt.get_cmap("tab10")
    for i, target in enumerate(targets):
        mine = [p for p in points if p["target"] == target]
        ax.scatter(
            [p["auc"] for p in mine],
            [p["eps_tilde"] for p in mine],
            color=colours(i % 10),
            marker="osD^v"[i // 10 % 5],  # past ten targets the colours repeat: the shape does not
            label=target,
            s=36,
            alpha=0.85,
        )
    ax.axhline(0, color="k", linewidth=0.8, linestyle=":")
    ax.set_xlabel("ground truth: MIA AUC against real non-members")
    ax.set_ylabel("PANORAMIA eps_tilde (not a lower bound)")
    ax.set_title("Leakage ladder: the audit against the ground truth")
    ax.legend(fontsize=8, loc="best")
    return figure_png(fig)
