"""The paper's evaluation: the min-MSE between a reconstruction and the images of its class in the
head's training set, under H0 (the reconstruction comes from a real head) and H1 (from weights
drawn from N(0, Sigma_w), the standardised shadow weights' correlation); reconstruction TPR =
P(min-MSE <= tau | H0), FPR = P(min-MSE <= tau | H1), and the ROC over every tau."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from privaudit.core import metrics
from torch import Tensor

JITTER = 1e-5  # added to Sigma_w's diagonal before sampling, as the authors do


def min_mse(reconstructions: Tensor, targets: Tensor) -> np.ndarray:
    """reconstructions [H, G, C, h, w] against targets [H, G, K, C, h, w] (the K images of group g
    in head h's set) -> [H, G]: the smallest per-pixel mean squared error over the K images."""
    errors = (reconstructions.unsqueeze(2) - targets).square().mean((-3, -2, -1))
    return errors.min(2).values.double().numpy()


def h1_weights(correlation: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """[count, P] float32 draws from N(0, correlation + jitter I): what standardised weights look
    like when they carry no information about any training image."""
    covariance = correlation + JITTER * np.eye(len(correlation))
    try:
        factor = np.linalg.cholesky(covariance)
    except np.linalg.LinAlgError:  # numerically indefinite: square root from clipped eigenvalues
        values, vectors = np.linalg.eigh(covariance)
        factor = vectors * np.sqrt(np.clip(values, 0, None))
    return (rng.standard_normal((count, len(covariance))) @ factor.T).astype(np.float32)


def reconstruction_rates(
    h0: np.ndarray, h1: np.ndarray, threshold: float, fprs: Sequence[float] = (0.1, 0.01, 0.001)
) -> dict:
    """TPR and FPR at the MSE threshold, the ROC of "min-MSE <= tau" over every tau (H0 positive),
    its AUC and the best TPR at each FPR in `fprs`."""
    h0, h1 = np.ravel(h0), np.ravel(h1)
    labels = np.r_[np.ones(h0.size, dtype=np.int64), np.zeros(h1.size, dtype=np.int64)]
    scores = -np.r_[h0, h1]  # smaller min-MSE = more confident the image was rebuilt
    fpr, tpr, thresholds = metrics.roc_curve(labels, scores)
    return {
        "mse_threshold": float(threshold),
        "tpr_at_threshold": float(np.mean(h0 <= threshold)),
        "fpr_at_threshold": float(np.mean(h1 <= threshold)),
        "auc": metrics.auc(labels, scores),
        "tpr_at_fpr": {str(f): t for f, t in metrics.tpr_at_fpr(labels, scores, fprs).items()},
        "roc": {"fpr": fpr, "tpr": tpr, "mse_threshold": -thresholds},
        "h0_count": int(h0.size),
        "h1_count": int(h1.size),
        "h0_median": float(np.median(h0)),
        "h1_median": float(np.median(h1)),
    }
