"""Benchmark: the eps-lower-bound-vs-recall curve over every distinct threshold of N scores
(privaudit.core.bounds.eps_lb_curve, vectorised over thresholds) against the naive loop users
would write (one bisection per threshold with scipy.stats.binom, as in the authors' code),
timed on a random subsample of thresholds and extrapolated. The vectorised curve is timed
--repeats times; the best and median wall time and the best CPU time are reported (shared
machines vary run to run, and the reference workload records how fast this one was).
Prints a table, writes JSON.

    uv run python tools/bench/core_bounds.py [--n 1000000] [--out tools/bench/results/core_bounds.json]
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from pathlib import Path

import numpy as np
from privaudit.core import bounds
from privaudit.core.rundir import atomic_write_json, provenance
from scipy import stats


def naive_p_value(m, r, v, eps, delta):
    """The one-run p-value written directly: binom.sf for beta, a running window mean for alpha."""
    q = 1 / (1 + math.exp(-eps))
    beta = stats.binom.sf(v - 1, r, q)
    if delta == 0 or v == 0:
        return min(beta, 1.0)
    window = np.arange(1, v + 1)
    alpha = float((np.cumsum(stats.binom.pmf(v - window, r, q)) / window).max())
    return min(beta + alpha * delta * 2 * m, 1.0)


def naive_eps(m, r, v, level, delta):
    lo, hi = 0.0, 1.0
    while naive_p_value(m, r, v, hi, delta) < level:
        hi += 1
    while hi - lo > 1e-9:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if naive_p_value(m, r, v, mid, delta) < level else (lo, mid)
    return lo


def run_case(labels, scores, delta, naive_sample, repeats, rng) -> dict:
    counts = bounds.sweep_counts(labels, scores)
    n_thresholds = counts.thresholds.size
    level = bounds.panoramia_level(0.05, n_thresholds)
    times, cpu_times = [], []
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        # The labels are Bernoulli(1/2) by construction: the design's member prior, as the naive loop.
        curve = bounds.eps_lb_curve(labels, scores, level=level, delta=delta, member_prior=0.5)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    vectorised_s = min(times)

    picks = rng.choice(n_thresholds, size=min(naive_sample, n_thresholds), replace=False)
    start = time.perf_counter()
    naive = np.array(
        [naive_eps(curve.n, int(curve.r[i]), int(curve.v[i]), level, delta) for i in picks]
    )
    naive_sample_s = time.perf_counter() - start
    return {
        "delta": delta,
        "thresholds": int(n_thresholds),
        "level_per_threshold": level,
        "vectorised_seconds": vectorised_s,
        "vectorised_seconds_median": float(np.median(times)),
        "vectorised_cpu_seconds": min(cpu_times),
        "repeats": repeats,
        "naive_sample_thresholds": int(picks.size),
        "naive_sample_seconds": naive_sample_s,
        "naive_extrapolated_seconds": naive_sample_s * n_thresholds / picks.size,
        "max_abs_difference_on_sample": float(np.max(np.abs(naive - curve.eps_lb[picks]))),
        "eps_max": curve.eps_max,
        "nonzero_fraction": float(np.mean(curve.eps_lb > 0)),
    }


def reference_workload_seconds() -> float:
    """A fixed numpy workload (200 passes over 1M doubles), timed best of 3: how fast the machine
    was during this run, to compare figures taken on different machines or days."""
    x = np.linspace(0, 1, 1_000_000)
    best = math.inf
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(100):
            x = np.sqrt(x * x + 1.0) - 1.0
        best = min(best, time.perf_counter() - start)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--n", type=int, default=1_000_000, help="number of scores (default 1,000,000)"
    )
    parser.add_argument("--deltas", type=float, nargs="+", default=[0.0, 1e-5])
    parser.add_argument(
        "--naive-sample",
        type=int,
        default=30,
        help="thresholds timed with the naive loop (a tenth of that when delta > 0: its window is O(v))",
    )
    parser.add_argument("--repeats", type=int, default=5, help="timings of the vectorised curve")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("tools/bench/results/core_bounds.json"))
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    labels = rng.integers(0, 2, args.n)
    scores = rng.normal(0.3 * labels, 1.0)  # continuous: every score is a distinct threshold
    cases = [
        run_case(
            labels,
            scores,
            delta,
            args.naive_sample if delta == 0 else max(1, args.naive_sample // 10),
            args.repeats,
            rng,
        )
        for delta in args.deltas
    ]

    print(
        f"{'delta':>8} {'thresholds':>10} {'best s':>7} {'median s':>9} {'naive s (extrap.)':>18} {'speed-up':>9} "
        f"{'max |diff|':>10} {'eps max':>8} {'eps>0':>6}"
    )
    for c in cases:
        print(
            f"{c['delta']:>8.0e} {c['thresholds']:>10} {c['vectorised_seconds']:>7.2f} "
            f"{c['vectorised_seconds_median']:>9.2f} "
            f"{c['naive_extrapolated_seconds']:>18.0f} {c['naive_extrapolated_seconds'] / c['vectorised_seconds']:>8.0f}x "
            f"{c['max_abs_difference_on_sample']:>10.1e} {c['eps_max']:>8.4f} {c['nonzero_fraction']:>6.2f}"
        )
    result = {
        "n_scores": args.n,
        "seed": args.seed,
        "machine": platform.processor() or platform.machine(),
        "reference_workload_seconds": reference_workload_seconds(),
        "cases": cases,
        "provenance": provenance(),
    }
    atomic_write_json(args.out, result)
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
