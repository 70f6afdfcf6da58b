import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from privaudit.core import bounds
from scipy import special, stats


def formula_p_value(m, r, v, eps, delta):
    """The issue's formula, term by term with scipy.stats.binom."""
    q = math.exp(eps) / (1 + math.exp(eps))
    beta = stats.binom.sf(v - 1, r, q)
    window = np.arange(1, v + 1)
    alpha = (np.cumsum(stats.binom.pmf(v - window, r, q)) / window).max() if v > 0 else 0.0
    return min(1.0, beta + alpha * delta * 2 * m)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 60).flatmap(lambda r: st.tuples(st.just(r), st.integers(0, r))),
    st.floats(0, 6),
    st.sampled_from([0.0, 1e-6, 1e-3]),
)
def test_p_value_matches_the_formula(rv, eps, delta):
    r, v = rv
    m = 2 * r + 3
    got = float(bounds.one_run_p_value(m, r, v, eps, delta))
    assert got == pytest.approx(formula_p_value(m, r, v, eps, delta), rel=1e-9, abs=1e-300)


@pytest.mark.parametrize(
    "m,r,v,delta",
    [
        (1000, 100, 90, 0.0),
        (1000, 100, 90, 1e-5),
        (10**4, 500, 400, 0.0),
        (200, 20, 20, 0.0),
        (10**5, 2000, 1200, 1e-7),
    ],
)
def test_eps_bound_sits_at_the_level(m, r, v, delta):
    alpha = 0.05
    eps = bounds.one_run_eps_lower_bound(m, r, v, delta=delta, alpha=alpha)
    assert eps > 0
    assert formula_p_value(m, r, v, eps - 1e-7, delta) < alpha
    assert formula_p_value(m, r, v, eps + 1e-6, delta) > alpha


def test_known_values_and_edges():
    # All 10 guesses right with delta 0: q^10 = alpha, so eps = logit(alpha^(1/10)).
    q = 0.05 ** (1 / 10)
    assert bounds.one_run_eps_lower_bound(100, 10, 10) == pytest.approx(
        math.log(q / (1 - q)), rel=1e-10
    )
    assert bounds.one_run_eps_lower_bound(100, 0, 0) == 0.0
    assert bounds.one_run_eps_lower_bound(100, 10, 5) == 0.0  # chance accuracy proves nothing
    with pytest.raises(ValueError):
        bounds.one_run_eps_lower_bound(10, 20, 5)


def test_pure_bound_is_the_clopper_pearson_limit_up_to_a_million_guesses():
    # delta = 0: the bound is the logit of scipy's inverse incomplete beta at the level; the fast
    # solver (continued fraction + Newton) must agree from r = 1 to r = 10^6 and levels to 1e-12.
    rng = np.random.default_rng(3)
    r = np.r_[1, 2, 10, rng.integers(1, 10 ** rng.integers(1, 7, 400))].astype(float)
    v = np.floor(r * rng.uniform(0, 1, r.size) ** rng.uniform(0.02, 1, r.size))
    v[:3] = r[:3]  # all guesses right: eps = logit(level^(1/r))
    for level in (0.05, 1e-4, 2.5e-8, 1e-12):
        q = special.betaincinv(np.maximum(v, 1), r - np.maximum(v, 1) + 1, level)
        expected = np.where((v > 0) & (q > 0.5), special.logit(q), 0.0)
        got = bounds.eps_lower_bounds(r, r, v, alpha=level)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-8)


@settings(max_examples=15, deadline=None)
@given(st.integers(5, 120), st.floats(0, 1), st.sampled_from([0.0, 1e-4]))
def test_bound_is_monotone_in_correct_guesses_and_in_delta(r, frac, delta):
    m = 4 * r
    v = np.arange(r + 1)
    eps = bounds.eps_lower_bounds(m, r, v, delta=delta)
    assert np.all(np.diff(eps) >= -1e-9)
    k = int(frac * r)
    assert (
        bounds.one_run_eps_lower_bound(m, r, k, delta=delta)
        <= bounds.one_run_eps_lower_bound(m, r, k) + 1e-9
    )


def test_one_run_audit_finds_a_perfect_attack_and_respects_bonferroni():
    rng = np.random.default_rng(0)
    is_member = rng.integers(0, 2, 1000).astype(bool)
    perfect = is_member + rng.uniform(0, 0.5, 1000)
    result = bounds.one_run_audit(perfect, is_member)
    assert result["v"] == result["r"]  # every guess it makes is right
    level = 0.05 / result["pairs_tested"]
    assert result["eps_lb"] == pytest.approx(
        bounds.one_run_eps_lower_bound(1000, result["r"], result["v"], alpha=level)
    )
    assert result["eps_lb"] > 3
    noise = bounds.one_run_audit(rng.normal(size=1000), is_member)
    assert noise["eps_lb"] < 0.5


def test_panoramia_bounds_follow_the_authors_on_synthetic_scores(authors_bound):
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 3000)
    columns = {
        "baseline_pred": 1 / (1 + np.exp(-rng.normal(labels - 0.5, 1))),
        "mia_x_pred": 1 / (1 + np.exp(-rng.normal(2 * labels - 1, 1))),
    }
    result = bounds.panoramia_bounds(labels, columns, thresholds=100)
    expected = {name: authors_bound(values, labels) for name, values in columns.items()}
    assert result["c_lb"] == pytest.approx(expected["baseline_pred"], abs=1e-7)
    assert result["curves"]["mia_x_pred"].eps_max == pytest.approx(expected["mia_x_pred"], abs=1e-7)
    assert result["eps_tilde"]["mia_x_pred"] == pytest.approx(
        expected["mia_x_pred"] - expected["baseline_pred"], abs=2e-7
    )


def test_theoretical_max_precision_is_the_binomial_quantile():
    got = bounds.theoretical_max_precision(np.array([10, 100, 1000]), 1.0, 0.025)
    q = math.exp(1) / (1 + math.exp(1))
    np.testing.assert_allclose(got, [stats.binom.isf(0.025, n, q) / n for n in (10, 100, 1000)])
    assert np.all(got >= q)


def test_hypothesis_test_bound_uses_clopper_pearson():
    # 0 false positives out of 1000 negatives, 500 false negatives out of 1000 positives.
    alpha = 0.05
    fpr_ub = stats.beta.ppf(1 - alpha / 4, 1, 1000)
    fnr_ub = stats.beta.ppf(1 - alpha / 4, 501, 500)
    expected = max(math.log((1 - fpr_ub) / fnr_ub), math.log((1 - fnr_ub) / fpr_ub))
    got = float(bounds.hypothesis_test_eps_lb(0, 1000, 500, 1000, alpha=alpha))
    assert got == pytest.approx(expected)
    assert float(bounds.hypothesis_test_eps_lb(500, 1000, 500, 1000)) == 0.0
