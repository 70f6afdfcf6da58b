"""Membership-inference metrics over all thresholds at once: ROC, AUC, TPR at fixed FPR,
precision/recall and bootstrap confidence intervals. Ties in scores are handled exactly:
examples with equal scores are always on the same side of a threshold."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from privaudit.core.errors import plain

DEFAULT_FPRS = (0.1, 0.01, 0.001, 0.0001, 0.0)


@dataclass(frozen=True)
class ThresholdCounts:
    """Confusion counts when predicting "member" for score >= threshold, one entry per threshold.

    `thresholds` is decreasing and starts at +inf (nobody predicted member). The curves below
    come from these counts, so one sort serves all of them."""

    thresholds: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    positives: int
    negatives: int

    @property
    def predicted(self) -> np.ndarray:
        return self.tp + self.fp

    def roc(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(fpr, tpr, thresholds), from (0, 0) at +inf to (1, 1)."""
        if self.positives == 0 or self.negatives == 0:
            raise ValueError("labels must contain both members (1) and non-members (0)")
        return self.fp / self.negatives, self.tp / self.positives, self.thresholds

    def auc(self) -> float:
        """Area under the ROC curve (trapezoids: a member/non-member tie counts 1/2)."""
        fpr, tpr, _ = self.roc()
        return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))

    def tpr_at_fpr(self, fprs: Sequence[float] = DEFAULT_FPRS) -> dict[float, float]:
        """The highest TPR among thresholds whose FPR is at most each target FPR."""
        fpr, tpr, _ = self.roc()
        # fpr is non-decreasing, so the best TPR under a cap is the last point within it.
        last_within = np.searchsorted(fpr, np.asarray(fprs, dtype=np.float64), side="right") - 1
        return {float(f): float(tpr[i]) for f, i in zip(fprs, last_within, strict=True)}

    def precision_recall(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(precision, recall, thresholds) at every threshold that predicts someone member."""
        predicted = self.predicted[1:]
        return self.tp[1:] / predicted, self.tp[1:] / self.positives, self.thresholds[1:]


def _as_arrays(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels)
    scores = np.asarray(scores, dtype=np.float64)
    if labels.shape != scores.shape or labels.ndim != 1:
        raise ValueError(
            f"labels and scores must be 1-d of equal length, got {labels.shape} and {scores.shape}"
        )
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    if np.isnan(scores).any():
        raise ValueError("scores must not be NaN")
    return labels.astype(bool), scores


def threshold_counts(labels, scores) -> ThresholdCounts:
    """TP and FP at every distinct score used as a threshold (one sort, cumulative sums)."""
    is_member, scores = _as_arrays(labels, scores)
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    tp_running = np.cumsum(is_member[order])
    # The last position of each run of equal scores: ties enter together.
    last_of_run = np.flatnonzero(np.r_[sorted_scores[1:] != sorted_scores[:-1], True])
    tp = np.r_[0, tp_running[last_of_run]]
    fp = np.r_[0, last_of_run + 1 - tp_running[last_of_run]]
    thresholds = np.r_[np.inf, sorted_scores[last_of_run]]
    return ThresholdCounts(
        thresholds,
        tp.astype(np.int64),
        fp.astype(np.int64),
        int(is_member.sum()),
        int((~is_member).sum()),
    )


def counts_at_thresholds(labels, scores, thresholds) -> ThresholdCounts:
    """TP and FP when predicting "member" for score > threshold, at the given thresholds
    (strictly greater, as the PANORAMIA authors' sweep does)."""
    is_member, scores = _as_arrays(labels, scores)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    member_scores = np.sort(scores[is_member])
    nonmember_scores = np.sort(scores[~is_member])
    tp = member_scores.size - np.searchsorted(member_scores, thresholds, side="right")
    fp = nonmember_scores.size - np.searchsorted(nonmember_scores, thresholds, side="right")
    return ThresholdCounts(
        thresholds,
        tp.astype(np.int64),
        fp.astype(np.int64),
        int(member_scores.size),
        int(nonmember_scores.size),
    )


def roc_curve(labels, scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds) at every distinct threshold, from (0, 0) at +inf to (1, 1)."""
    return threshold_counts(labels, scores).roc()


def auc(labels, scores) -> float:
    """Area under the ROC curve (trapezoids: a tie between a member and a non-member counts 1/2)."""
    return threshold_counts(labels, scores).auc()


def tpr_at_fpr(labels, scores, fprs: Sequence[float] = DEFAULT_FPRS) -> dict[float, float]:
    """The highest TPR among thresholds whose FPR is at most each target FPR."""
    return threshold_counts(labels, scores).tpr_at_fpr(fprs)


def precision_recall_curve(labels, scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(precision, recall, thresholds) at every distinct threshold that predicts someone member."""
    return threshold_counts(labels, scores).precision_recall()


def _check_ci_level(level: float) -> None:
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {plain(level)}")


def bootstrap_ci(
    labels,
    scores,
    statistic: Callable[[np.ndarray, np.ndarray], float],
    *,
    n_resamples: int = 200,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of `statistic(labels, scores)`, resampling members and
    non-members separately so every resample holds both classes."""
    _check_ci_level(level)
    is_member, scores = _as_arrays(labels, scores)
    members, nonmembers = np.flatnonzero(is_member), np.flatnonzero(~is_member)
    rng = np.random.default_rng(seed)
    values = np.empty(n_resamples)
    for b in range(n_resamples):
        idx = np.r_[rng.choice(members, members.size), rng.choice(nonmembers, nonmembers.size)]
        values[b] = statistic(is_member[idx].astype(np.int64), scores[idx])
    lo, hi = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def bootstrap_auc_ci(
    labels, scores, *, n_resamples: int = 200, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """bootstrap_ci(labels, scores, auc, ...) from one sort: the same resamples (the same generator
    calls), each AUC computed from counts instead of a fresh sort. A resample is a multiset of
    members and of non-members; with W1[g], W0[g] the number of its members and non-members at the
    g-th distinct score and C0[g] the non-members below it, its AUC (Mann-Whitney, ties 1/2) is
    sum_g W1[g] (C0[g] + W0[g] / 2) / (n1 n0), summed here in exact integers."""
    _check_ci_level(level)
    is_member, scores = _as_arrays(labels, scores)
    members, nonmembers = np.flatnonzero(is_member), np.flatnonzero(~is_member)
    if members.size == 0 or nonmembers.size == 0:
        raise ValueError("labels must contain both members (1) and non-members (0)")
    distinct, rank = np.unique(scores, return_inverse=True)
    member_rank, nonmember_rank = rank[members], rank[nonmembers]
    n1, n0 = members.size, nonmembers.size
    rng = np.random.default_rng(seed)
    values = np.empty(n_resamples)
    for b in range(n_resamples):
        # rng.choice(a, size) with replacement draws rng.integers(0, len(a), size): same stream.
        w1 = np.bincount(member_rank[rng.integers(0, n1, n1)], minlength=distinct.size)
        w0 = np.bincount(nonmember_rank[rng.integers(0, n0, n0)], minlength=distinct.size)
        twice_below_or_tied = 2 * np.cumsum(w0) - w0
        values[b] = np.dot(w1, twice_below_or_tied) / (2 * n1 * n0)
    lo, hi = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)
