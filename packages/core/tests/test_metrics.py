import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from privaudit.core import metrics


def pairwise_auc(labels, scores):
    """Mann-Whitney: P[member score > non-member score] + 1/2 P[tie], by brute force."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    diff = pos[:, None] - neg[None, :]
    return (np.sum(diff > 0) + 0.5 * np.sum(diff == 0)) / diff.size


def brute_roc(labels, scores):
    thresholds = np.r_[np.inf, np.unique(scores)[::-1]]
    tpr = np.array([np.mean(scores[labels == 1] >= t) for t in thresholds])
    fpr = np.array([np.mean(scores[labels == 0] >= t) for t in thresholds])
    return fpr, tpr, thresholds


tables = st.integers(2, 60).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 1), min_size=n, max_size=n).filter(lambda x: 0 < sum(x) < len(x)),
        st.lists(st.integers(0, 6), min_size=n, max_size=n),  # few values: many ties
    )
)


@settings(max_examples=60, deadline=None)
@given(tables)
def test_roc_and_auc_match_brute_force_with_ties(table):
    labels, scores = (np.array(x) for x in table)
    scores = scores / 6.0
    fpr, tpr, thresholds = metrics.roc_curve(labels, scores)
    bfpr, btpr, bthr = brute_roc(labels, scores)
    np.testing.assert_allclose(fpr, bfpr)
    np.testing.assert_allclose(tpr, btpr)
    np.testing.assert_array_equal(thresholds, bthr)
    assert metrics.auc(labels, scores) == pytest.approx(pairwise_auc(labels, scores))


@settings(max_examples=40, deadline=None)
@given(tables)
def test_tpr_at_fpr_is_best_tpr_under_the_cap(table):
    labels, scores = (np.array(x) for x in table)
    fpr, tpr, _ = brute_roc(labels, scores)
    got = metrics.tpr_at_fpr(labels, scores)
    for cap, value in got.items():
        assert value == pytest.approx(tpr[fpr <= cap].max())


def test_known_small_example():
    labels = np.array([1, 1, 0, 1, 0, 0])
    scores = np.array([0.9, 0.8, 0.8, 0.3, 0.2, 0.1])
    # 9 member/non-member pairs: 0.9 wins 3; 0.8 ties 0.8 and wins 2; 0.3 loses to 0.8 and wins 2.
    assert metrics.auc(labels, scores) == pytest.approx((3 + 2.5 + 2) / 9)
    assert metrics.tpr_at_fpr(labels, scores, (0.0, 0.34)) == {
        0.0: pytest.approx(1 / 3),
        0.34: pytest.approx(1.0),
    }
    precision, recall, _ = metrics.precision_recall_curve(labels, scores)
    np.testing.assert_allclose(precision, [1, 2 / 3, 3 / 4, 3 / 5, 3 / 6])
    np.testing.assert_allclose(recall, [1 / 3, 2 / 3, 1, 1, 1])


def test_bootstrap_interval_brackets_the_estimate_and_is_seeded():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 400)
    scores = rng.normal(labels * 0.8, 1.0)
    lo, hi = metrics.bootstrap_ci(labels, scores, metrics.auc, n_resamples=100, seed=3)
    assert lo < metrics.auc(labels, scores) < hi
    assert hi - lo < 0.2
    assert (lo, hi) == metrics.bootstrap_ci(labels, scores, metrics.auc, n_resamples=100, seed=3)


@settings(max_examples=30, deadline=None)
@given(tables, st.integers(0, 2**32 - 1))
def test_bootstrap_auc_from_one_sort_equals_resorting_every_resample(table, seed):
    """The same resamples as bootstrap_ci(..., auc), each AUC from counts: the same interval."""
    labels, scores = (np.array(x) for x in table)
    expected = metrics.bootstrap_ci(labels, scores / 6.0, metrics.auc, n_resamples=40, seed=seed)
    got = metrics.bootstrap_auc_ci(labels, scores / 6.0, n_resamples=40, seed=seed)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_bootstrap_auc_on_continuous_scores_matches_too():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, 5000)
    scores = rng.normal(labels * 0.5, 1.0)
    expected = metrics.bootstrap_ci(labels, scores, metrics.auc, n_resamples=30, seed=7)
    np.testing.assert_allclose(
        metrics.bootstrap_auc_ci(labels, scores, n_resamples=30, seed=7), expected, atol=1e-12
    )
