"""How far c_lb moves from sampling alone: PANORAMIA's c_lb (the best lower bound over every
distinct threshold, as the audits read it) for a baseline of fixed quality, recomputed on
independent test sets of each size. Scores are binormal (members N(d, 1), non-members N(0, 1),
d = sqrt(2) * Phi^-1(AUC)), so the only randomness is which test points were drawn: no generator,
no training. It answers what a run-to-run c_lb goal can ask of a test set of a given size.
`--scores` also bootstraps finished runs' score tables (the report's own bootstrap, members and non-members resampled separately),
giving c_lb's and eps_tilde's sampling spread at that run's own size and ROC.

    uv run python tools/bench/core_clb_sampling.py [--auc 0.764] [--sizes 750,3000,12000]
        [--replicates 100] [--scores runs/image-mnist/cache/scores-panoramia-*.parquet]

Writes tools/bench/results/core_clb_sampling.json: per size, c_lb's mean and sd, the mean
|difference| between two independent test sets and the fraction of such pairs within 0.1.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from privaudit.core.bounds import panoramia_bounds, panoramia_sampling_spread
from privaudit.core.rundir import atomic_write_json, provenance
from scipy.stats import norm

BASELINE = "baseline_pred"


def bounds(labels, columns: dict) -> dict:
    return panoramia_bounds(labels, columns, baseline=BASELINE, member_prior=0.5)


def simulated(auc: float, n: int, replicates: int, rng) -> dict:
    shift = np.sqrt(2) * norm.ppf(auc)
    labels = (np.arange(n) < n // 2).astype(int)
    values, guesses = [], []
    for _ in range(replicates):
        scores = rng.normal(size=n) + shift * labels
        result = bounds(labels, {BASELINE: scores})
        curve = result["curves"][BASELINE]
        values.append(result["c_lb"])
        guesses.append(int(curve.r[np.argmax(curve.eps_lb)]))
    values = np.asarray(values)
    pairs = np.abs(values[0::2] - values[1::2])  # disjoint pairs: two independent test sets each
    return {
        "n": n,
        "c_lb_mean": float(values.mean()),
        "c_lb_sd": float(values.std(ddof=1)),
        "pair_mean_abs_difference": float(pairs.mean()),
        "pairs_within_0.1": float(np.mean(pairs < 0.1)),
        "median_guesses_at_the_best_threshold": float(np.median(guesses)),
    }


def bootstrapped(path: Path, replicates: int, seed: int) -> dict:
    """The report's own sampling spread (bounds.panoramia_sampling_spread) of one score table."""
    table = pd.read_parquet(path)
    labels = table["member"].to_numpy()
    columns = {c: table[c].to_numpy() for c in table.columns if c != "member"}
    full = bounds(labels, columns)
    spread = panoramia_sampling_spread(
        labels, columns, baseline=BASELINE, n_resamples=replicates, seed=seed, member_prior=0.5
    )
    return {
        "scores": str(path),
        "n": int(labels.size),
        "c_lb": {"observed": full["c_lb"], "bootstrap_sd": spread["c_lb_sd"]},
        **{
            f"eps_tilde[{c}]": {"observed": e, "bootstrap_sd": spread["eps_tilde_sd"][c]}
            for c, e in full["eps_tilde"].items()
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--auc", type=float, default=0.764, help="the baseline's AUC (default: the image default's)"
    )
    parser.add_argument(
        "--sizes", default="750,1500,3000,6000,12000", help="test-set sizes, comma-separated"
    )
    parser.add_argument(
        "--replicates", type=int, default=100, help="test sets per size (and bootstrap draws)"
    )
    parser.add_argument(
        "--scores", type=Path, nargs="*", default=[], help="score tables to bootstrap"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", type=Path, default=Path("tools/bench/results/core_clb_sampling.json")
    )
    args = parser.parse_args()
    if not 0.5 < args.auc < 1:
        parser.error(f"--auc must lie strictly between 0.5 and 1, got {args.auc}")

    rng = np.random.default_rng(args.seed)
    sizes = [simulated(args.auc, int(n), args.replicates, rng) for n in args.sizes.split(",")]
    print(f"binormal baseline at AUC {args.auc}, {args.replicates} test sets per size")
    print(f"{'n':>7} {'c_lb mean':>10} {'sd':>6} {'mean |a-b|':>11} {'pairs within 0.1':>17}")
    for s in sizes:
        print(
            f"{s['n']:>7} {s['c_lb_mean']:>10.3f} {s['c_lb_sd']:>6.3f} "
            f"{s['pair_mean_abs_difference']:>11.3f} {s['pairs_within_0.1']:>17.2f}"
        )
    runs = [bootstrapped(path, args.replicates, args.seed) for path in args.scores]
    for run in runs:
        spread = ", ".join(
            f"{k} {v['observed']:.3f} (bootstrap sd {v['bootstrap_sd']:.3f})"
            for k, v in run.items()
            if isinstance(v, dict)
        )
        print(f"{run['scores']} (n={run['n']}): {spread}")
    atomic_write_json(
        args.out,
        {
            "auc": args.auc,
            "replicates": args.replicates,
            "sizes": sizes,
            "runs": runs,
            "provenance": provenance(seed=args.seed),
        },
    )
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
