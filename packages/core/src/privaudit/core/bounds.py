"""Epsilon lower bounds: the one-run audit test (Steinke, Nasr, Jagielski, NeurIPS 2023),
PANORAMIA's c_lb / {c+eps}_lb (lower bounds, for any member fraction) and eps_tilde (their
difference, not a lower bound), the theoretical maximum precision at a bound, and the DP
hypothesis-test eps with Clopper-Pearson intervals (a heuristic here: one training run gives no
independent trials). Everything takes arrays and works on all thresholds at once."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from privaudit.core.errors import InputError, plain
from privaudit.core.metrics import ThresholdCounts, counts_at_thresholds, threshold_counts
from scipy import special, stats

# Bisection stops when the eps bracket is this narrow.
EPS_TOLERANCE = 1e-9


def _check_counts(m, r, v) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    m, r, v = (np.asarray(x, dtype=np.float64) for x in (m, r, v))
    if np.any(v < 0) or np.any(v > r) or np.any(r > m):
        raise ValueError("need 0 <= v <= r <= m")
    return np.broadcast_arrays(m, r, v)


def _check_level(delta: float, alpha: float) -> None:
    if not 0 <= delta <= 1:
        raise ValueError(f"delta must be in [0, 1], got {plain(delta)}")
    if not 0 < alpha < 1:
        raise ValueError(f"the significance level must be in (0, 1), got {plain(alpha)}")


def _upper_tail(r, k, q):
    """P[Binomial(r, q) >= k], elementwise; 1 for k <= 0 and 0 for k > r."""
    k_safe = np.clip(k, 1, np.maximum(r, 1))
    tail = special.betainc(k_safe, np.maximum(r - k_safe + 1, 1), q)
    return np.where(k <= 0, 1.0, np.where(k > r, 0.0, tail))


def _lower_tail(r, k, q):
    """P[Binomial(r, q) <= k], elementwise; 0 for k < 0 and 1 for k >= r."""
    k_safe = np.clip(k, 0, np.maximum(r - 1, 0))
    tail = special.betaincc(k_safe + 1, np.maximum(r - k_safe, 1), q)
    return np.where(k < 0, 0.0, np.where(k >= r, 1.0, tail))


def _mass_between(r, lo, hi, q):
    """P[lo <= Binomial(r, q) <= hi], from whichever tails are small (no cancellation of ~1s)."""
    above_mean = hi >= r * q
    from_upper = _upper_tail(r, lo, q) - _upper_tail(r, hi + 1, q)
    from_lower = _lower_tail(r, hi, q) - _lower_tail(r, lo - 1, q)
    return np.maximum(np.where(above_mean, from_upper, from_lower), 0.0)


def _pmf(r, k, q):
    """P[Binomial(r, q) = k], elementwise, via log-gamma (0 outside 0..r)."""
    inside = (k >= 0) & (k <= r)
    k_safe = np.clip(k, 0, r)
    log_pmf = (
        special.gammaln(r + 1)
        - special.gammaln(k_safe + 1)
        - special.gammaln(r - k_safe + 1)
        + special.xlogy(k_safe, q)
        + special.xlog1py(r - k_safe, -q)
    )
    return np.where(inside, np.exp(log_pmf), 0.0)


def _max_window_mean(r, v, q):
    """max over i = 1..v of (1/i) * sum_{j=1..i} P[Binomial(r, q) = v - j]  (0 where v = 0).

    The pmf read from v-1 downwards is unimodal, so the running mean rises until the next
    term falls to or below it and never rises again: binary-search that first i."""
    lo = np.ones_like(v)
    hi = np.maximum(v, 1)

    def window_mean(i):  # P[v - i <= X <= v - 1] / i
        return _mass_between(r, v - i, v - 1, q) / i

    while np.any(lo < hi):
        mid = np.floor((lo + hi) / 2)
        stops = (mid >= v) | (_pmf(r, v - 1 - mid, q) <= window_mean(mid))
        hi = np.where(stops, mid, hi)
        lo = np.where(stops, lo, mid + 1)
    return np.where(v > 0, window_mean(lo), 0.0)


def one_run_p_value(m, r, v, eps, delta: float = 0.0):
    """p-value of observing >= v correct guesses out of r under (eps, delta)-DP with m
    canaries: min(1, beta + alpha * delta * 2m) with q = e^eps / (1 + e^eps),
    beta = P[Binomial(r, q) >= v], alpha = max_i (1/i) sum_{j<=i} P[Binomial(r, q) = v - j]."""
    m, r, v = _check_counts(m, r, v)
    q = special.expit(np.asarray(eps, dtype=np.float64))
    p = _upper_tail(r, v, q)
    if delta > 0:
        p = p + _max_window_mean(r, v, q) * delta * 2 * m
    return np.minimum(p, 1.0)


# The delta = 0 solver works on slices this long, so its temporaries stay in cache.
_CHUNK = 16_384
# The continued fraction stops when a further term changes it by less than this (relative).
_CF_TOLERANCE = 1e-12
# A Newton step this small leaves an error of order step^2 * sqrt(r) / 10, below 1e-9.
_NEWTON_ACCEPT = 1e-6


def _tail_ratio(r, v, x, max_terms: int = 400):
    """h with P[Binomial(r, x) >= v] = (1 - x) * P[Binomial(r, x) = v] * h, for 1 <= v <= r: the
    continued fraction of the regularized incomplete beta I_x(v, r - v + 1), by modified Lentz.
    It converges in ~10-50 terms where the tail is below ~0.1, the only region the solver visits;
    NaN marks the entries that did not converge."""
    b = r - v + 1
    c = np.ones_like(x)
    d = 1 / (1 - (r + 1) * x / (v + 1))
    h = d.copy()
    for k in range(1, max_terms):
        a_even = k * (b - k) * x / ((v + 2 * k - 1) * (v + 2 * k))
        d = 1 / (1 + a_even * d)
        c = 1 + a_even / c
        h *= d * c
        a_odd = -(v + k) * (r + 1 + k) * x / ((v + 2 * k) * (v + 2 * k + 1))
        d = 1 / (1 + a_odd * d)
        c = 1 + a_odd / c
        step = d * c
        h *= step
        if not np.any(np.abs(step - 1) >= _CF_TOLERANCE):  # NaN entries must not hold the rest up
            break
    return np.where(np.abs(step - 1) < _CF_TOLERANCE, h, np.nan)


def _saddlepoint_root(r, v, log_level, z, steps: int = 6):
    """A close start for the exact solver: the root in t of the Lugannani-Rice approximation of
    log P[Binomial(r, expit(t)) >= v], with Daniels' continuity correction (x = v - 1/2),
    started from the Wilson score bound. Its relative error is O(1/r), so for large r the
    first exact Newton step is already below the acceptance size."""
    p = (v - 0.5) / r
    q = (p + z * z / (2 * r) - z * np.sqrt(p * (1 - p) / r + z * z / (4 * r * r))) / (1 + z * z / r)
    q = np.clip(q, 1e-300, 1 - 1e-16)
    t = np.log(q) - np.log1p(-q)
    logit_p = np.log(p) - np.log1p(-p)
    for _ in range(steps):
        q = special.expit(t)
        s = logit_p - t  # the saddlepoint
        kl = special.rel_entr(p, q) + special.rel_entr(1 - p, 1 - q)
        w = np.sqrt(np.maximum(2 * r * kl, 1e-300))
        u = 2 * np.sinh(s / 2) * np.sqrt(r * p * (1 - p))
        log_tail = special.log_ndtr(-w)
        # Phi(-w) + phi(w) (1/u - 1/w), kept in logs; only trusted in the tail (s > 0.05).
        ratio = np.exp(-0.5 * w * w - 0.5 * np.log(2 * np.pi) - log_tail) * (1 / u - 1 / w)
        log_tail = np.where(s > 0.05, log_tail + np.log1p(np.maximum(ratio, -0.5)), log_tail)
        slope = np.maximum(r * (p - q), 1e-3)  # d(-w^2 / 2) / dt
        t = t - (log_tail - log_level) / slope
    return t


def _solve_pure_chunk(r, v, log_level, z):
    """logit of the q with P[Binomial(r, q) >= v] = level, for 1 <= v <= r, by Newton's method in
    t = logit(q). log P is concave in t (the binomial is log-concave, so truncation lowers the
    variance), hence every Newton iterate after the first lies at or below the root: the bound
    stays valid while it converges. Derivative: d log P / dt = v / h, with h from _tail_ratio."""
    log_choose = special.gammaln(r + 1) - special.gammaln(v + 1) - special.gammaln(r - v + 1)
    t = _saddlepoint_root(r, v, log_level, z)
    active = np.arange(r.size)
    for _ in range(60):
        ra, va, ta = r[active], v[active], t[active]
        h = _tail_ratio(ra, va, special.expit(ta))
        log_tail = (
            log_choose[active]
            + va * special.log_expit(ta)
            + (ra - va + 1) * special.log_expit(-ta)
            + np.log(h)
        )
        step = (log_tail - log_level) * h / va
        t[active] = ta - step  # NaN where the fraction failed: scipy takes those over
        active = active[np.abs(step) >= _NEWTON_ACCEPT]
        if active.size == 0:
            return t
    t[active] = np.nan
    return t


def logit_clopper_pearson_lower(r, v, level):
    """logit of the one-sided Clopper-Pearson lower limit of v / r at `level`: the q where
    P[Binomial(r, q) >= v] = I_q(v, r - v + 1) = level (that tail is increasing in q), elementwise;
    -inf where v = 0. Newton's method from below (see _solve_pure_chunk), scipy's inverse
    incomplete beta where it does not settle."""
    r, v = np.broadcast_arrays(np.asarray(r, dtype=np.float64), np.asarray(v, dtype=np.float64))
    shape = r.shape
    r, v = r.ravel(), v.ravel()
    t = np.full(r.size, -np.inf)
    todo = np.flatnonzero(v > 0)
    z = -special.ndtri(level)
    with np.errstate(all="ignore"):  # entries that overflow come out NaN and go to scipy below
        for start in range(0, todo.size, _CHUNK):
            idx = todo[start : start + _CHUNK]
            t[idx] = _solve_pure_chunk(r[idx], v[idx], np.log(level), z)
    # Anything the iteration could not settle goes to scipy's inverse incomplete beta.
    failed = todo[~np.isfinite(t[todo])]
    if failed.size:
        q = special.betaincinv(v[failed], r[failed] - v[failed] + 1, level)
        with np.errstate(divide="ignore"):
            t[failed] = np.log(q) - np.log1p(-q)
    return t.reshape(shape)


def _eps_lower_bounds_pure(r, v, level, member_prior: float = 0.5):
    """delta = 0: logit(q_CP) - logit(member_prior), floored at 0 (see eps_lower_bounds)."""
    eps = logit_clopper_pearson_lower(r, v, level) - special.logit(member_prior)
    return np.maximum(np.nan_to_num(eps, nan=0.0, neginf=0.0), 0.0)


def _check_prior(member_prior: float, delta: float) -> None:
    if not 0 < member_prior < 1:
        raise ValueError(f"the member prior must be in (0, 1), got {plain(member_prior)}")
    if delta > 0 and member_prior > 0.5:
        raise ValueError(
            f"with delta > 0 the bound needs a member prior <= 0.5, got {plain(member_prior)}"
        )


def eps_lower_bounds(
    m, r, v, *, delta: float = 0.0, alpha: float = 0.05, member_prior: float = 0.5
) -> np.ndarray:
    """The largest eps whose one-run p-value stays below `alpha`, elementwise over (m, r, v):
    r guesses, v of them correct, out of m rows.

    `member_prior` pi is the probability with which each row was made a member, independently of
    the others (the one-run canaries: 1/2). At pi = 1/2 the guesses may be IN or OUT (Steinke,
    Nasr, Jagielski 2023); at any other pi they must all be "member" guesses (PANORAMIA's sweep).

    delta = 0, any pi (exact). Order the r guessed rows; for the k-th row j, with A the rows before
    it, P[S_j = 1 | Y, S_A] = pi L / (pi L + 1 - pi), where Y is the training output and
    L = p(Y | S_j = 1, S_A) / p(Y | S_j = 0, S_A) <= e^eps: the rows outside A and j are independent
    of S_j, so L is a mixture, with the same weights, of ratios that eps-DP bounds by e^eps. Each
    member guess is therefore right with conditional probability at most
    q = pi e^eps / (pi e^eps + 1 - pi), i.e. logit(q) = eps + logit(pi), and the number right is
    dominated by Binomial(r, q) -- Steinke et al.'s per-guess argument with q in place of
    e^eps / (1 + e^eps). The p-value P[Binomial(r, q) >= v] increases with q, so every eps with
    q below the one-sided Clopper-Pearson lower limit q_CP of v / r at `alpha` is rejected:
    eps_lb = logit(q_CP) - logit(pi), floored at 0. (At pi = 1/2: Steinke et al.'s bound.)

    delta > 0 needs pi <= 1/2 and then uses Steinke et al.'s p-value at 1/2 with m canaries. Why it
    holds: a prior-pi design has the law of S_i = S'_i F_i with S' uniform on {0, 1}^m and
    F_i ~ Bernoulli(2 pi) independent of everything; training on S is (eps, delta)-DP in each S'_i
    (flipping S'_i changes at most S_i), and a member guess right for S is right for S', so v is
    dominated by the correct count of a prior-1/2 audit, whose p-value is their Theorem's. For
    pi > 1/2 no such coupling exists and their delta term has no proof here: refused."""
    _check_level(delta, alpha)
    _check_prior(member_prior, delta)
    m, r, v = _check_counts(m, r, v)
    upper = _eps_lower_bounds_pure(r, v, alpha, member_prior if delta == 0 else 0.5)
    if delta == 0:
        return upper
    # The delta term only raises the p-value, so the delta = 0 bound brackets the root from above.
    # The window i = v gives p >= beta + 2m*delta*(1 - beta)/v >= min(1, 2m*delta/v): such counts never reject.
    shape = upper.shape
    m, r, v, upper = (np.ravel(x) for x in (m, r, v, upper))
    eps = np.zeros_like(upper)
    todo = np.flatnonzero((upper > 0) & (2 * m * delta / np.maximum(v, 1) < alpha))
    m, r, v = m[todo], r[todo], v[todo]
    lo, hi = np.zeros(todo.size), upper[todo]
    hi = np.where(one_run_p_value(m, r, v, lo, delta) < alpha, hi, 0.0)
    while np.any(hi - lo > EPS_TOLERANCE):
        mid = (lo + hi) / 2
        below = one_run_p_value(m, r, v, mid, delta) < alpha
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    eps[todo] = lo
    return eps.reshape(shape)


def one_run_eps_lower_bound(
    m: int, r: int, v: int, *, delta: float = 0.0, alpha: float = 0.05
) -> float:
    """Steinke-Nasr-Jagielski eps lower bound from m canaries, r guesses and v correct ones."""
    return float(eps_lower_bounds(m, r, v, delta=delta, alpha=alpha))


def _guess_sizes(n: int, count: int = 24) -> np.ndarray:
    return np.unique(np.r_[0, np.round(np.geomspace(1, n, count)).astype(np.int64)])


def _check_scores(scores, is_member) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64)
    is_member = np.asarray(is_member).astype(bool)
    if scores.shape != is_member.shape or scores.ndim != 1 or scores.size == 0:
        raise ValueError("scores and is_member must be non-empty 1-d arrays of equal length")
    return scores, is_member


def guess_pairs(m: int, steps: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """The one-run audit's (k_plus, k_minus) grid for m rows: every pair of geometric guess counts
    (`steps` of them from 1 to m) with 0 < k_plus + k_minus <= m."""
    sizes = _guess_sizes(m, steps)
    k_plus, k_minus = (g.ravel() for g in np.meshgrid(sizes, sizes, indexing="ij"))
    keep = (k_plus + k_minus > 0) & (k_plus + k_minus <= m)
    return k_plus[keep], k_minus[keep]


def two_sided_counts(scores, is_member, k_plus, k_minus) -> tuple[np.ndarray, np.ndarray]:
    """Guesses r and correct ones v when the k_plus highest scores are guessed IN and the k_minus
    lowest OUT (elementwise over the pairs; ties in stable score order)."""
    scores, is_member = _check_scores(scores, is_member)
    order = np.argsort(-scores, kind="stable")
    members_in_top = np.r_[0, np.cumsum(is_member[order])]
    nonmembers_in_bottom = np.r_[0, np.cumsum(~is_member[order[::-1]])]
    return k_plus + k_minus, members_in_top[k_plus] + nonmembers_in_bottom[k_minus]


def one_run_audit(
    scores, is_member, *, delta: float = 0.0, alpha: float = 0.05, steps: int = 24
) -> dict:
    """One-run audit from canary scores: guess IN for the k_plus highest scores, OUT for the
    k_minus lowest, abstain on the rest; the best (k_plus, k_minus) over a geometric grid of
    `steps` counts a side, each pair tested at alpha / (number of pairs) (Bonferroni)."""
    scores, is_member = _check_scores(scores, is_member)
    m = scores.size
    k_plus, k_minus = guess_pairs(m, steps)
    r, v = two_sided_counts(scores, is_member, k_plus, k_minus)
    level = alpha / k_plus.size
    eps = eps_lower_bounds(m, r, v, delta=delta, alpha=level)
    best = int(np.argmax(eps))
    return {
        "eps_lb": float(eps[best]),
        "k_plus": int(k_plus[best]),
        "k_minus": int(k_minus[best]),
        "r": int(r[best]),
        "v": int(v[best]),
        "m": m,
        "alpha": alpha,
        "delta": delta,
        "pairs_tested": int(k_plus.size),
    }


def resolve_member_prior(
    members: int, n: int, *, delta: float, member_prior: float | None = None
) -> float:
    """The member prior the PANORAMIA bounds use: `member_prior` where the audit's design fixes it
    (each row a member with that probability, independently: PANORAMIA's test mix is 1/2), else
    the table's member fraction members / n. InputError where delta > 0 and it is above 1/2
    (see eps_lower_bounds: no sound delta term there)."""
    prior = members / n if member_prior is None else float(member_prior)
    if delta > 0 and prior > 0.5:
        if member_prior is None:
            raise InputError(
                f"with --delta {plain(delta)} the eps lower bounds need a member fraction of at most "
                f"0.5 (no more members than non-members), but {members} of {n} rows are members "
                f"({members / n:.3f}): use --delta 0, or a balanced table."
            )
        raise InputError(
            f"with delta {plain(delta)} the eps lower bounds need a member prior of at most 0.5, "
            f"got {plain(member_prior)}."
        )
    if not 0 < prior < 1:
        raise InputError(f"the member prior must be in (0, 1), got {plain(prior)}.")
    return prior


def check_threshold_range(name: str, scores) -> None:
    """--thresholds N sweeps [0, 1]: a column outside it would silently get a different bound."""
    scores = np.asarray(scores, dtype=np.float64)
    lo, hi = float(scores.min()), float(scores.max())
    if lo < 0 or hi > 1:
        raise InputError(
            f"score column '{name}' ranges over [{lo:.6g}, {hi:.6g}], but --thresholds needs scores "
            "in [0, 1]; omit --thresholds to use every distinct score as a threshold."
        )


@dataclass(frozen=True)
class EpsCurve:
    """The eps lower bound at each threshold of one score column (PANORAMIA's privacy-recall curve).

    `r` predicted members, `v` correct among them, out of `n` points; each threshold tested at
    `level`, with each row a member with probability `member_prior` (see eps_lower_bounds)."""

    thresholds: np.ndarray
    r: np.ndarray
    v: np.ndarray
    recall: np.ndarray
    eps_lb: np.ndarray
    n: int
    level: float
    member_prior: float = 0.5

    @property
    def eps_max(self) -> float:
        return float(self.eps_lb.max())


# the geometric steps of the guess-count grid an audit at delta > 0 reads its bounds at by default
DELTA_GUESS_GRID = 24


def default_guess_grid(delta: float, thresholds: int | None, guess_grid: int | None) -> int | None:
    """The sweep an audit uses when it names none: at delta > 0 the grid (the delta term 2 m delta
    / v outweighs a Bonferroni over every distinct score, which could never show a bound above 0)."""
    if guess_grid is None and thresholds is None and delta > 0:
        return DELTA_GUESS_GRID
    return guess_grid


def guess_grid_size(n: int, guess_grid: int) -> int:
    """How many guess counts a grid of `guess_grid` geometric steps over n rows holds (the
    Bonferroni divisor: fixed by n before any score is seen)."""
    return _guess_sizes(n, guess_grid).size - 1


def sweep_counts(
    labels, scores, thresholds: int | None = None, guess_grid: int | None = None
) -> ThresholdCounts:
    """Counts at N evenly spaced thresholds on [0, 1] ("member" if score > t, as the PANORAMIA
    authors do), or at every distinct score when `thresholds` is None (nobody-predicted dropped).
    `guess_grid` G instead: the distinct-score thresholds where the member guesses first reach
    each count of the one-run audit's geometric grid of G steps from 1 to n (ties enter together),
    for scores on any scale."""
    if thresholds is not None and guess_grid is not None:
        raise ValueError("pass thresholds or guess_grid, not both")
    if thresholds is None:
        counts = threshold_counts(labels, scores)
        keep = np.arange(1, counts.thresholds.size)
        if guess_grid is not None:
            predicted = counts.tp + counts.fp  # non-decreasing as the threshold falls
            grid = _guess_sizes(counts.positives + counts.negatives, guess_grid)[1:]
            keep = np.unique(np.searchsorted(predicted, grid, side="left"))
        return ThresholdCounts(
            counts.thresholds[keep], counts.tp[keep], counts.fp[keep], counts.positives,
            counts.negatives,
        )  # fmt: skip
    if thresholds < 1:
        raise ValueError(f"thresholds must be >= 1, got {plain(thresholds)}")
    return counts_at_thresholds(labels, scores, np.linspace(0, 1, thresholds))


def eps_lb_curve(
    labels,
    scores,
    *,
    thresholds: int | None = None,
    guess_grid: int | None = None,
    level: float,
    delta: float = 0.0,
    member_prior: float | None = None,
) -> EpsCurve:
    """The one-run bound at every threshold with m = n points, r = predicted members, v = true
    positives, each at significance `level` (already Bonferroni-corrected by the caller), for a
    design with member prior `member_prior` (None: the member fraction; see resolve_member_prior)."""
    counts = sweep_counts(labels, scores, thresholds, guess_grid)
    n = counts.positives + counts.negatives
    prior = resolve_member_prior(counts.positives, n, delta=delta, member_prior=member_prior)
    r = counts.predicted
    eps = eps_lower_bounds(n, r, counts.tp, delta=delta, alpha=level, member_prior=prior)
    return EpsCurve(
        counts.thresholds, r, counts.tp, counts.tp / counts.positives, eps, n, level, prior
    )


def panoramia_level(alpha: float, n_thresholds: int, *, with_baseline: bool = True) -> float:
    """PANORAMIA's per-threshold level: alpha split between c_lb and {c+eps}_lb, then
    Bonferroni over the thresholds (the authors: 0.05 / (2 * 100))."""
    return alpha / ((2 if with_baseline else 1) * n_thresholds)


def panoramia_bounds(
    labels,
    columns: dict,
    *,
    baseline: str | None = "baseline_pred",
    thresholds: int | None = None,
    guess_grid: int | None = None,
    alpha: float = 0.05,
    delta: float = 0.0,
    member_prior: float | None = None,
) -> dict:
    """c_lb (baseline column), {c+eps}_lb (each other column) and eps_tilde = {c+eps}_lb - c_lb.
    c_lb and {c+eps}_lb are lower bounds; eps_tilde, a difference of two of them, is not.

    Matches the authors' Plotting/compute_plot_audit_values.py (ubc-systopia/
    panoramia-privacy-measurement) on a balanced table: thresholds np.linspace(0, 1, 100),
    "member" where pred > threshold, m = number of points, r = tp + fp, v = tp, level
    0.05 / (2 * 100), delta 0, bound = max over thresholds. Their bound assumes membership is
    Bernoulli(1/2); here the member prior is the design's `member_prior`, or the table's member
    fraction (see eps_lower_bounds), so an unbalanced table gets no bound from its imbalance.
    `guess_grid` reads the bounds at a fixed grid of guess counts instead (see sweep_counts), so
    the Bonferroni divides alpha by about `guess_grid`, not by the number of distinct scores: at
    delta > 0 the one-run bound's delta term, 2 m delta / v, exceeds an alpha / 2n level
    wherever v < m, and no threshold of the every-score sweep could show a bound above 0.
    Returns {"curves": {column: EpsCurve}, "c_lb", "eps_tilde"}."""
    if thresholds is not None:
        for name, scores in columns.items():
            check_threshold_range(name, scores)
    with_baseline = baseline is not None
    curves = {}
    for name, scores in columns.items():
        if guess_grid is not None:
            n_thresholds = guess_grid_size(np.asarray(scores).size, guess_grid)
        elif thresholds is not None:
            n_thresholds = thresholds
        else:
            n_thresholds = np.unique(np.asarray(scores)).size
        level = panoramia_level(alpha, n_thresholds, with_baseline=with_baseline)
        curves[name] = eps_lb_curve(
            labels,
            scores,
            thresholds=thresholds,
            guess_grid=guess_grid,
            level=level,
            delta=delta,
            member_prior=member_prior,
        )
    c_lb = curves[baseline].eps_max if with_baseline else None
    eps_tilde = (
        {name: curve.eps_max - c_lb for name, curve in curves.items() if name != baseline}
        if with_baseline
        else {}
    )
    return {"curves": curves, "c_lb": c_lb, "eps_tilde": eps_tilde}


# above this many rows the report skips the spread: 100 resamples of the every-score sweep then
# take more than about 10 s a column, and the spread is small anyway
SPREAD_MAX_ROWS = 100_000


def panoramia_sampling_spread(
    labels,
    columns: dict,
    *,
    baseline: str = "baseline_pred",
    n_resamples: int = 100,
    seed: int = 0,
    **sweep,
) -> dict:
    """How far c_lb and each eps_tilde move when the test points are redrawn: their standard
    deviations over `n_resamples` bootstrap resamples of the rows (members and non-members
    resampled separately, so each keeps the design's mix), read with panoramia_bounds and the same
    `sweep` settings (thresholds, guess_grid, alpha, delta, member_prior). An estimate of the
    spread from sampling the test set alone, not a bound: retraining the generator or the attacks
    moves both numbers further. Returns {"resamples", "c_lb_sd", "eps_tilde_sd": {column: sd}}."""
    labels = np.asarray(labels)
    members, nonmembers = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    rng = np.random.default_rng(seed)
    c_lb, eps_tilde = [], []
    for _ in range(n_resamples):
        rows = np.r_[
            members[rng.integers(0, members.size, members.size)],
            nonmembers[rng.integers(0, nonmembers.size, nonmembers.size)],
        ]
        audit = panoramia_bounds(
            labels[rows], {k: np.asarray(v)[rows] for k, v in columns.items()}, baseline=baseline,
            **sweep,
        )  # fmt: skip
        c_lb.append(audit["c_lb"])
        eps_tilde.append(audit["eps_tilde"])
    return {
        "resamples": n_resamples,
        "c_lb_sd": float(np.std(c_lb, ddof=1)),
        "eps_tilde_sd": {
            name: float(np.std([e[name] for e in eps_tilde], ddof=1)) for name in eps_tilde[0]
        },
    }


# the two-sided PANORAMIA bounds' grid: 24 counts a side at delta = 0 (524 pairs at 2,000 rows);
# at delta > 0 the delta term 2 m delta / v must stay below the per-pair level, so 5 a side
# (26 pairs, about the member-guess sweep's DELTA_GUESS_GRID)
TWO_SIDED_STEPS = 24
TWO_SIDED_DELTA_STEPS = 5


def two_sided_steps(delta: float) -> int:
    return TWO_SIDED_STEPS if delta == 0 else TWO_SIDED_DELTA_STEPS


def two_sided_bounds(
    labels,
    columns: dict,
    *,
    baseline: str | None = "baseline_pred",
    alpha: float = 0.05,
    delta: float = 0.0,
) -> dict:
    """c_lb, {c+eps}_lb and eps_tilde from member AND non-member guesses, for a design that made
    each row a member with probability 1/2 (PANORAMIA's test mix): each column's one-run audit
    (one_run_audit: IN for its k_plus highest scores, OUT for its k_minus lowest, the best pair on
    the geometric grid of two_sided_steps(delta) counts a side, Bonferroni over the pairs), alpha
    split between the baseline and the attacks as in panoramia_bounds. An OUT guess is right
    with probability at most e^eps / (1 + e^eps) as an IN guess is, since eps-DP and PANORAMIA's
    c-closeness bound the likelihood ratio both ways; a target that tells confidently which rows it never saw (a
    synthetic row it gets badly wrong) shows here, where the member-guess sweep cannot see it.
    Returns {"c_lb", "eps_tilde", "columns": {column: {"eps_lb", "k_plus", "k_minus", "r", "v"}}}."""
    with_baseline = baseline is not None
    level = alpha / (2 if with_baseline else 1)
    found = {
        name: one_run_audit(scores, labels, delta=delta, alpha=level, steps=two_sided_steps(delta))
        for name, scores in columns.items()
    }
    c_lb = found[baseline]["eps_lb"] if with_baseline else None
    return {
        "c_lb": c_lb,
        "eps_tilde": (
            {name: f["eps_lb"] - c_lb for name, f in found.items() if name != baseline}
            if with_baseline
            else {}
        ),
        "columns": {
            name: {key: f[key] for key in ("eps_lb", "k_plus", "k_minus", "r", "v")}
            for name, f in found.items()
        },
    }


def theoretical_max_precision(r, eps: float, level: float = 0.025, member_prior: float = 0.5):
    """The highest precision an eps-DP-bounded guesser can show on r member guesses at confidence
    1 - level: the (1 - level) quantile of Binomial(r, q) over r, q = expit(eps + logit(prior))
    (see eps_lower_bounds; at prior 1/2 the authors' binom.isf(0.05 / 2, r, q) / r)."""
    r = np.asarray(r, dtype=np.float64)
    q = special.expit(eps + special.logit(member_prior))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(r > 0, stats.binom.isf(level, r, q) / np.maximum(r, 1), np.nan)


def clopper_pearson_upper(k, n, alpha: float):
    """Upper end of the two-sided (1 - alpha) Clopper-Pearson interval for a binomial rate."""
    k, n = np.asarray(k, dtype=np.float64), np.asarray(n, dtype=np.float64)
    return np.where(k >= n, 1.0, stats.beta.ppf(1 - alpha / 2, k + 1, np.maximum(n - k, 1)))


def hypothesis_test_eps_heuristic(
    fp, negatives, fn, positives, *, delta: float = 0.0, alpha: float = 0.05
):
    """The DP hypothesis-test eps at each threshold -- a heuristic, not a lower bound here: its
    Clopper-Pearson intervals treat the rows as independent trials, but all of them come from one
    training run. With upper bounds on FPR and FNR (alpha split between the two),
    eps = max(log((1 - delta - FPR_ub) / FNR_ub), log((1 - delta - FNR_ub) / FPR_ub)), floored at 0."""
    _check_level(delta, alpha)
    fpr_ub = clopper_pearson_upper(fp, negatives, alpha / 2)
    fnr_ub = clopper_pearson_upper(fn, positives, alpha / 2)
    return _hypothesis_eps(fpr_ub, fnr_ub, delta)


def _hypothesis_eps(fpr_ub, fnr_ub, delta: float):
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.log(np.maximum(1 - delta - fpr_ub, 0) / fnr_ub)
        b = np.log(np.maximum(1 - delta - fnr_ub, 0) / fpr_ub)
    return np.maximum(np.nan_to_num(np.maximum(a, b), nan=0.0, neginf=0.0), 0.0)


# Where the maximum can be is found from the Clopper-Pearson limits on a grid of counts k: every
# k and every n - k up to this one, then k and n - k this far apart in ratio (the eps is as
# sensitive to the limit near n as near 0).
_GRID_EXACT_UP_TO, _GRID_RATIO = 1024, 1.001


def _clopper_pearson_upper_below(k, n: int, alpha: float):
    """A lower bound of clopper_pearson_upper(k, n, alpha), elementwise: the limit rises with k
    and lies above k / n, so max(k / n, its value at the largest grid count <= k) is one."""
    k = np.asarray(k, dtype=np.float64)
    steps = int(np.ceil(np.log(max(n, 2) / _GRID_EXACT_UP_TO) / np.log(_GRID_RATIO))) + 2
    near_zero = np.r_[
        np.arange(_GRID_EXACT_UP_TO + 1),
        np.floor(np.geomspace(_GRID_EXACT_UP_TO, max(n, _GRID_EXACT_UP_TO), max(steps, 2))),
    ]
    grid = np.unique(np.clip(np.r_[near_zero, n - near_zero], 0, n))
    at_grid = clopper_pearson_upper(grid, n, alpha)
    return np.maximum(k / n, at_grid[np.searchsorted(grid, k, side="right") - 1])


def max_hypothesis_test_eps_heuristic(
    fp, negatives, fn, positives, *, delta: float = 0.0, alpha: float = 0.05
) -> float:
    """max over thresholds of hypothesis_test_eps_heuristic, with scipy's Clopper-Pearson quantiles
    evaluated only where the maximum can be. eps rises as either upper limit falls, so lower
    bounds of the limits (from a grid of counts) give an upper bound of each threshold's eps;
    thresholds are evaluated exactly in decreasing order of that bound until it is below the best
    exact value: the same maximum as evaluating every threshold."""
    _check_level(delta, alpha)
    fp, fn = np.asarray(fp, dtype=np.float64), np.asarray(fn, dtype=np.float64)
    rate_alpha = alpha / 2  # per rate, as hypothesis_test_eps_heuristic splits it
    upper = _hypothesis_eps(
        _clopper_pearson_upper_below(fp, negatives, rate_alpha),
        _clopper_pearson_upper_below(fn, positives, rate_alpha),
        delta,
    )
    order = np.argsort(-upper, kind="stable")
    best, start, size = 0.0, 0, 256
    while start < order.size and upper[order[start]] > best:
        idx = order[start : start + size]
        exact = hypothesis_test_eps_heuristic(
            fp[idx], negatives, fn[idx], positives, delta=delta, alpha=alpha
        )
        best = max(best, float(exact.max()))
        start, size = start + size, 2 * size
    return best
