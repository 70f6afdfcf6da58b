import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from privaudit.core import bounds, metrics
from privaudit.core.errors import InputError
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
    # The authors' design: each row a member with probability 1/2.
    result = bounds.panoramia_bounds(labels, columns, thresholds=100, member_prior=0.5)
    expected = {name: authors_bound(values, labels) for name, values in columns.items()}
    assert result["c_lb"] == pytest.approx(expected["baseline_pred"], abs=1e-7)
    assert result["curves"]["mia_x_pred"].eps_max == pytest.approx(expected["mia_x_pred"], abs=1e-7)
    assert result["eps_tilde"]["mia_x_pred"] == pytest.approx(
        expected["mia_x_pred"] - expected["baseline_pred"], abs=2e-7
    )
    # By default the prior is the member fraction: the same bound less logit(fraction), where
    # the fraction is above 1/2 (then the authors' floor at 0 commutes with the shift).
    fraction = labels.mean()
    assert fraction > 0.5
    default = bounds.panoramia_bounds(labels, columns, thresholds=100)
    shift = math.log(fraction / (1 - fraction))
    assert default["c_lb"] == pytest.approx(max(expected["baseline_pred"] - shift, 0), abs=1e-7)


def reference_prior_bound(r, v, level, prior):
    """logit of scipy's Clopper-Pearson lower limit less logit(prior), floored at 0."""
    if v == 0:
        return 0.0
    q = stats.beta.ppf(level, v, r - v + 1)
    return max(math.log(q / (1 - q)) - math.log(prior / (1 - prior)), 0.0)


@settings(max_examples=80, deadline=None)
@given(
    st.integers(1, 3000).flatmap(lambda r: st.tuples(st.just(r), st.integers(0, r))),
    st.sampled_from([0.05, 1e-4, 1e-9]),
    st.floats(0.02, 0.98),
)
def test_prior_adjusted_bound_is_the_clopper_pearson_limit_less_the_prior_logit(rv, level, prior):
    r, v = rv
    got = float(bounds.eps_lower_bounds(r, r, v, alpha=level, member_prior=prior))
    assert got == pytest.approx(reference_prior_bound(r, v, level, prior), abs=1e-7)
    if got > 0:  # at the bound, a member guess is right with q = expit(eps + logit(prior)), and
        q = 1 / (1 + math.exp(-(got + math.log(prior / (1 - prior)))))
        # v right out of r is exactly at the level (scipy's exact binomial test).
        p = stats.binomtest(v, r, q, alternative="greater").pvalue
        assert p == pytest.approx(level, rel=1e-5)


def randomized_response_table(n, prior, eps, seed):
    """Each row a member with probability `prior`; its score is its membership bit flipped with
    probability 1 / (1 + e^eps): an eps-DP release of each bit, and the best guesser sees it."""
    rng = np.random.default_rng(seed)
    member = rng.random(n) < prior
    flipped = rng.random(n) < 1 / (1 + math.exp(eps))
    return member.astype(np.int64), (member ^ flipped).astype(np.float64)


@pytest.mark.parametrize("prior", [0.2, 0.5, 0.8])
def test_bound_stays_below_a_known_eps_at_any_member_fraction(prior):
    """Randomized response at eps = 1: the bound may exceed 1 in at most ~alpha of the runs (it did
    in every run at member fraction 0.8 when the bound assumed a prior of 1/2), and is close to it."""
    eps, runs = 1.0, 200
    got = []
    for seed in range(runs):
        member, score = randomized_response_table(1000, prior, eps, seed)
        curve = bounds.panoramia_bounds(member, {"rr": score}, baseline=None)["curves"]["rr"]
        got.append(curve.eps_max)
    got = np.array(got)
    assert np.mean(got > eps) <= 0.05
    assert np.median(got) > 0.5


def test_delta_bound_needs_at_most_half_members():
    member, score = randomized_response_table(1000, 0.3, 3.0, seed=0)
    with_delta = bounds.panoramia_bounds(member, {"rr": score}, baseline=None, delta=1e-5)
    curve = with_delta["curves"]["rr"]
    # At a prior of 0.3 with delta > 0, the bound is Steinke et al.'s at 1/2 (a coupling argument).
    assert curve.member_prior == pytest.approx(member.mean())
    assert 0 < curve.eps_max <= 3.0
    np.testing.assert_allclose(
        curve.eps_lb,
        bounds.eps_lower_bounds(curve.n, curve.r, curve.v, delta=1e-5, alpha=curve.level),
    )
    member, score = randomized_response_table(1000, 0.7, 1.0, seed=0)
    with pytest.raises(
        InputError, match=r"at most 0.5 .* of 1000 rows are members \(0\.\d+\): use --delta 0"
    ):
        bounds.panoramia_bounds(member, {"rr": score}, baseline=None, delta=1e-5)
    with pytest.raises(ValueError, match="member prior <= 0.5"):
        bounds.eps_lower_bounds(100, 10, 9, delta=1e-5, member_prior=0.6)


def test_guess_grid_reads_the_first_threshold_reaching_each_count():
    rng = np.random.default_rng(0)
    member = (rng.random(500) < 0.5).astype(np.int64)
    scores = np.round(rng.normal(member, 1.0), 1)  # rounded: ties enter together
    counts = bounds.sweep_counts(member, scores, guess_grid=10)
    order = np.argsort(-scores)
    for k in np.unique(np.round(np.geomspace(1, 500, 10)).astype(int)):
        threshold = scores[order][k - 1]  # the k-th highest score, its ties included
        at = int(np.flatnonzero(counts.thresholds == threshold)[0])
        assert counts.predicted[at] == np.sum(scores >= threshold) >= k
        assert counts.tp[at] == np.sum(member[scores >= threshold])
    assert counts.thresholds.size <= bounds.guess_grid_size(500, 10)
    curve = bounds.panoramia_bounds(member, {"a": scores}, baseline=None, guess_grid=10)
    assert curve["curves"]["a"].level == pytest.approx(0.05 / bounds.guess_grid_size(500, 10))
    with pytest.raises(ValueError, match="not both"):
        bounds.sweep_counts(member, scores, thresholds=10, guess_grid=10)


def test_guess_grid_shows_a_delta_bound_where_every_score_cannot():
    """At delta = 1e-5 and 2,000 rows the delta term 2 m delta / v (>= 4e-5) exceeds the level of a
    Bonferroni over every distinct score (alpha / 2,000): that sweep can show nothing; the grid can."""
    rng = np.random.default_rng(1)
    member = (rng.random(2000) < 0.5).astype(np.int64)
    scores = rng.normal(3.0 * member, 1.0)
    design = dict(baseline=None, delta=1e-5, member_prior=0.5)  # PANORAMIA's mix: 1/2 by design
    every = bounds.panoramia_bounds(member, {"a": scores}, **design)
    grid = bounds.panoramia_bounds(member, {"a": scores}, **design, guess_grid=24)
    assert every["curves"]["a"].eps_max == 0.0
    assert grid["curves"]["a"].eps_max > 1.0


def test_guess_grid_bound_stays_below_a_known_eps():
    """Randomized response at eps = 1, its ties broken by noise independent of membership."""
    eps, got = 1.0, []
    for seed in range(150):
        member, score = randomized_response_table(1000, 0.5, eps, seed)
        score = score + np.random.default_rng(10_000 + seed).random(score.size) / 2
        curves = bounds.panoramia_bounds(member, {"rr": score}, baseline=None, guess_grid=24)
        got.append(curves["curves"]["rr"].eps_max)
    assert np.mean(np.array(got) > eps) <= 0.05
    assert np.median(got) > 0.5


def test_thresholds_need_scores_in_the_unit_interval():
    labels = np.array([0, 1, 0, 1])
    with pytest.raises(InputError, match=r"'wide' ranges over \[-2, 3\].*omit --thresholds"):
        bounds.panoramia_bounds(
            labels, {"ok": np.array([0, 0.5, 1, 1.0]), "wide": np.array([-2, 0, 1, 3.0])},
            baseline=None, thresholds=10,
        )  # fmt: skip
    # Every distinct score as a threshold takes any real scores.
    bounds.panoramia_bounds(labels, {"wide": np.array([-2, 0, 1, 3.0])}, baseline=None)


def test_theoretical_max_precision_is_the_binomial_quantile():
    got = bounds.theoretical_max_precision(np.array([10, 100, 1000]), 1.0, 0.025)
    q = math.exp(1) / (1 + math.exp(1))
    np.testing.assert_allclose(got, [stats.binom.isf(0.025, n, q) / n for n in (10, 100, 1000)])
    assert np.all(got >= q)
    # With member prior 0.8 a guess is right with probability 0.8 e / (0.8 e + 0.2).
    got = bounds.theoretical_max_precision(np.array([10, 100]), 1.0, 0.025, member_prior=0.8)
    q = 0.8 * math.e / (0.8 * math.e + 0.2)
    np.testing.assert_allclose(got, [stats.binom.isf(0.025, n, q) / n for n in (10, 100)])


def test_hypothesis_test_heuristic_uses_clopper_pearson():
    # 0 false positives out of 1000 negatives, 500 false negatives out of 1000 positives.
    alpha = 0.05
    fpr_ub = stats.beta.ppf(1 - alpha / 4, 1, 1000)
    fnr_ub = stats.beta.ppf(1 - alpha / 4, 501, 500)
    expected = max(math.log((1 - fpr_ub) / fnr_ub), math.log((1 - fnr_ub) / fpr_ub))
    got = float(bounds.hypothesis_test_eps_heuristic(0, 1000, 500, 1000, alpha=alpha))
    assert got == pytest.approx(expected)
    assert float(bounds.hypothesis_test_eps_heuristic(500, 1000, 500, 1000)) == 0.0


@settings(max_examples=40, deadline=None)
@given(
    st.integers(20, 3000),
    st.floats(0.05, 0.95),
    st.floats(0, 4),
    st.sampled_from([None, 3, 40]),
    st.sampled_from([0.0, 1e-5, 0.01]),
    st.integers(0, 2**32 - 1),
)
def test_max_of_the_heuristic_equals_evaluating_every_threshold(
    n, fraction, shift, levels, delta, seed
):
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < fraction).astype(np.int64)
    labels[:2] = [0, 1]
    scores = rng.normal(shift * labels, 1)
    if levels:  # few distinct scores: ties
        scores = np.round(scores * levels / 4)
    counts = metrics.threshold_counts(labels, scores)
    fp, fn = counts.fp[1:], counts.positives - counts.tp[1:]
    level = 0.05 / fp.size
    every = bounds.hypothesis_test_eps_heuristic(
        fp, counts.negatives, fn, counts.positives, delta=delta, alpha=level
    )
    got = bounds.max_hypothesis_test_eps_heuristic(
        fp, counts.negatives, fn, counts.positives, delta=delta, alpha=level
    )
    assert got == float(every.max())


def test_max_of_the_heuristic_on_many_thresholds():
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 2, 60_000)
    for shift in (0.2, 1.0):
        counts = metrics.threshold_counts(labels, rng.normal(shift * labels, 1))
        args = (counts.fp[1:], counts.negatives, counts.positives - counts.tp[1:], counts.positives)
        level = 0.05 / args[0].size
        every = bounds.hypothesis_test_eps_heuristic(*args, delta=1e-5, alpha=level)
        assert (
            bounds.max_hypothesis_test_eps_heuristic(*args, delta=1e-5, alpha=level) == every.max()
        )


def test_two_sided_bounds_see_an_attack_that_only_recognises_non_members():
    # 300 of the ~1,000 non-members get the lowest scores, everything else is noise: member
    # guesses find nothing, non-member guesses find those 300
    rng = np.random.default_rng(0)
    labels = (rng.random(2000) < 0.5).astype(int)
    attack = rng.random(2000)
    attack[np.flatnonzero(labels == 0)[:300]] = -1.0
    columns = {"baseline_pred": rng.random(2000), "mia": attack}
    member_guesses = bounds.panoramia_bounds(labels, columns, member_prior=0.5)
    both = bounds.two_sided_bounds(labels, columns)
    assert member_guesses["curves"]["mia"].eps_max < 0.5
    assert both["c_lb"] == 0.0 and both["eps_tilde"]["mia"] > 3.0
    found = both["columns"]["mia"]
    assert found["k_minus"] > 200 and found["v"] == found["r"]  # every guess right
    # each column is the one-run audit at alpha / 2 (the other half is the baseline's)
    assert found["eps_lb"] == bounds.one_run_audit(attack, labels, alpha=0.025)["eps_lb"]
    # a mirror image (scores negated, membership flipped) has the same two-sided bound
    mirror = bounds.two_sided_bounds(
        1 - labels, {"baseline_pred": -columns["baseline_pred"], "mia": -attack}
    )
    assert mirror["columns"]["mia"]["eps_lb"] == pytest.approx(found["eps_lb"])


def test_two_sided_bounds_at_delta_read_a_coarser_grid():
    # at delta > 0 the one-run bound's delta term 2 m delta / v must stay below the per-pair level:
    # on the 24-count grid (576 pairs) a strong attack on 2,000 rows shows nothing, on 5 counts it does
    rng = np.random.default_rng(0)
    labels = (rng.random(2000) < 0.5).astype(int)
    attack = rng.normal(2.0 * labels)
    columns = {"baseline_pred": rng.normal(labels * 1.0), "mia": attack}
    assert bounds.one_run_audit(attack, labels, delta=1e-5, alpha=0.025)["eps_lb"] == 0.0
    found = bounds.two_sided_bounds(labels, columns, delta=1e-5)["columns"]["mia"]
    coarse = bounds.one_run_audit(attack, labels, delta=1e-5, alpha=0.025, steps=5)
    assert found["eps_lb"] == coarse["eps_lb"] > 1.0 and coarse["pairs_tested"] < 36  # 0 + 5 a side


def test_sampling_spread_tracks_the_spread_over_fresh_test_sets():
    # binormal scores at AUC 0.76: c_lb's sd over 120 independent test sets is about 0.19;
    # the bootstrap of one test set must find it (over 40 sets: 0.71-1.36 times the truth)
    n, shift = 750, np.sqrt(2) * stats.norm.ppf(0.76)
    labels = (np.arange(n) < n // 2).astype(int)
    rng = np.random.default_rng(0)
    fresh = [
        bounds.panoramia_bounds(
            labels, {"baseline_pred": rng.normal(size=n) + shift * labels}, member_prior=0.5
        )["c_lb"]
        for _ in range(120)
    ]
    truth = np.std(fresh, ddof=1)
    assert 0.12 < truth < 0.3
    for seed in range(2):
        scores = rng.normal(size=n) + shift * labels
        spread = bounds.panoramia_sampling_spread(
            labels, {"baseline_pred": scores}, member_prior=0.5, seed=seed
        )
        assert 0.5 * truth < spread["c_lb_sd"] < 2 * truth, (spread, truth)
        assert spread["resamples"] == 100 and spread["eps_tilde_sd"] == {}


def test_sampling_spread_of_an_attack_that_copies_the_baseline_is_zero_and_seeded():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 400)
    base = rng.normal(labels, 1.0)
    columns = {"baseline_pred": base, "mia_copy_pred": base.copy(), "mia_other_pred": -base}
    spread = bounds.panoramia_sampling_spread(labels, columns, member_prior=0.5, n_resamples=30)
    assert spread["eps_tilde_sd"]["mia_copy_pred"] == 0.0  # eps_tilde is 0 in every resample
    assert spread["c_lb_sd"] > 0 and spread["eps_tilde_sd"]["mia_other_pred"] > 0
    again = bounds.panoramia_sampling_spread(labels, columns, member_prior=0.5, n_resamples=30)
    assert again == spread
