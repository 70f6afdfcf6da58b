"""Benchmark: `privaudit report` end to end on N scores (default 1,000,000 rows, a baseline and one
attack column, --delta 1e-5), run as a user runs it (a fresh process reading the CSV), against the
computations it replaced, timed in the same run on the same table: the AUC bootstrap that re-sorts
every resample, the hypothesis-test eps at every threshold with scipy's beta quantiles, and the
theoretical maximum precision at every threshold. Each replaced computation is also checked to
give the same numbers as the report. The load average is recorded beside every timing (shared
machines vary run to run). Prints a table, writes JSON.

    uv run python tools/bench/core_report.py [--n 1000000] [--repeats 3] [--out tools/bench/results/core_report.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from privaudit.core import bounds, metrics, plots
from privaudit.core.report import BOOTSTRAP_RESAMPLES
from privaudit.core.rundir import atomic_write_json, provenance
from scipy import special

DELTA = 1e-5


def load_average() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def make_table(n: int, seed: int) -> pd.DataFrame:
    """Exactly half members (delta > 0 needs at most half); continuous scores in (0, 1)."""
    rng = np.random.default_rng(seed)
    member = rng.permutation(np.r_[np.ones(n // 2, np.int64), np.zeros(n - n // 2, np.int64)])
    return pd.DataFrame(
        {
            "member": member,
            "baseline_pred": special.expit(rng.normal(0.2 * member, 1.0)),
            "mia_pred": special.expit(rng.normal(0.5 * member, 1.0)),
        }
    )


def time_report(table_path: Path, out: Path) -> tuple[float, float, dict]:
    """One `privaudit report` in a fresh process (bytecode caching on, as in a normal install):
    wall seconds, CPU seconds (user + system; less disturbed by other load) and report.json."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    command = [sys.executable, "-m", "privaudit.core.cli", "report", str(table_path)]
    command += ["--out", str(out), "--delta", str(DELTA)]
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    return wall, cpu, json.loads((out / "report.json").read_text())


def replaced_computations(table: pd.DataFrame, report: dict, bootstrap_sample: int) -> dict:
    """The old computations on the report's own inputs: seconds each and the largest difference
    from what the report wrote. The old bootstrap is timed on its first `bootstrap_sample`
    resamples (compared with the new one on the same resamples) and extrapolated."""
    labels = table["member"].to_numpy()
    result = {}
    for seed, name in enumerate(("baseline_pred", "mia_pred")):
        scores = table[name].to_numpy()
        column = report["columns"][name]
        counts = metrics.threshold_counts(labels, scores)

        start = time.perf_counter()
        old_ci = metrics.bootstrap_ci(
            labels, scores, metrics.auc, n_resamples=bootstrap_sample, seed=seed
        )
        old_bootstrap_s = (time.perf_counter() - start) * BOOTSTRAP_RESAMPLES / bootstrap_sample
        start = time.perf_counter()
        new_ci = metrics.bootstrap_auc_ci(labels, scores, n_resamples=bootstrap_sample, seed=seed)
        new_bootstrap_s = (time.perf_counter() - start) * BOOTSTRAP_RESAMPLES / bootstrap_sample

        args = (counts.fp[1:], counts.negatives, counts.positives - counts.tp[1:], counts.positives)
        level = 0.05 / args[0].size
        start = time.perf_counter()
        every = float(bounds.hypothesis_test_eps_heuristic(*args, delta=DELTA, alpha=level).max())
        old_heuristic_s = time.perf_counter() - start
        start = time.perf_counter()
        pruned = bounds.max_hypothesis_test_eps_heuristic(*args, delta=DELTA, alpha=level)
        new_heuristic_s = time.perf_counter() - start

        predicted = counts.predicted[1:]
        start = time.perf_counter()
        old_line = bounds.theoretical_max_precision(
            predicted, column["eps_lb"], 0.025, report["member_prior"]
        )
        old_precision_s = time.perf_counter() - start
        (kept,) = plots.thin(np.arange(predicted.size))
        start = time.perf_counter()
        new_line = bounds.theoretical_max_precision(
            predicted[kept], column["eps_lb"], 0.025, report["member_prior"]
        )
        new_precision_s = time.perf_counter() - start

        result[name] = {
            "bootstrap_resort_every_resample_s": old_bootstrap_s,
            "bootstrap_one_sort_s": new_bootstrap_s,
            "bootstrap_max_abs_difference": float(np.max(np.abs(np.subtract(old_ci, new_ci)))),
            "heuristic_every_threshold_s": old_heuristic_s,
            "heuristic_where_the_max_can_be_s": new_heuristic_s,
            "heuristic_difference_from_report": abs(
                every - column["eps_hypothesis_test_heuristic"]
            ),
            "heuristic_pruned_equals_every": pruned == every,
            "max_precision_every_threshold_s": old_precision_s,
            "max_precision_plotted_points_s": new_precision_s,
            "max_precision_max_abs_difference": float(np.nanmax(np.abs(old_line[kept] - new_line))),
        }
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="rows (default 1,000,000)")
    parser.add_argument("--repeats", type=int, default=3, help="timed reports after a warm-up")
    parser.add_argument(
        "--bootstrap-sample", type=int, default=10, help="old-bootstrap resamples timed"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("tools/bench/results/core_report.json"))
    args = parser.parse_args()

    table = make_table(args.n, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        table_path = Path(tmp) / "scores.csv"
        table.to_csv(table_path, index=False)
        time_report(table_path, Path(tmp) / "warm-up")  # compiles bytecode, warms the file cache
        runs = []
        for i in range(args.repeats):
            before = load_average()
            seconds, cpu, report = time_report(table_path, Path(tmp) / f"run-{i}")
            runs.append(
                {
                    "seconds": seconds,
                    "cpu_seconds": cpu,
                    "loadavg_before": before,
                    "loadavg_after": load_average(),
                }
            )
    replaced = replaced_computations(table, report, args.bootstrap_sample)

    best = min(r["seconds"] for r in runs)
    print(f"privaudit report, {args.n} rows x 2 score columns, --delta {DELTA}:")
    for r in runs:
        print(
            f"  {r['seconds']:6.1f} s wall, {r['cpu_seconds']:5.1f} s CPU; "
            f"load average before {r['loadavg_before']}, after {r['loadavg_after']}"
        )
    print(f"  best {best:.1f} s\n")
    print(f"{'column':>14} {'computation':>14} {'old s':>8} {'new s':>8} {'same result':>12}")
    for name, c in replaced.items():
        rows = (
            ("AUC bootstrap", "bootstrap_resort_every_resample_s", "bootstrap_one_sort_s",
             c["bootstrap_max_abs_difference"] < 1e-12),
            ("heuristic eps", "heuristic_every_threshold_s", "heuristic_where_the_max_can_be_s",
             c["heuristic_pruned_equals_every"] and c["heuristic_difference_from_report"] == 0),
            ("max precision", "max_precision_every_threshold_s", "max_precision_plotted_points_s",
             c["max_precision_max_abs_difference"] == 0),
        )  # fmt: skip
        for label, old, new, same in rows:
            print(f"{name:>14} {label:>14} {c[old]:8.2f} {c[new]:8.2f} {str(same):>12}")
    result = {
        "n_rows": args.n,
        "score_columns": 2,
        "delta": DELTA,
        "runs": runs,
        "best_seconds": best,
        "median_seconds": float(np.median([r["seconds"] for r in runs])),
        "best_cpu_seconds": min(r["cpu_seconds"] for r in runs),
        "cpu_count": os.cpu_count(),
        "replaced_computations": replaced,
        "report_eps": {
            "c_lb": report["c_lb"],
            "columns": {
                k: {key: v[key] for key in ("eps_lb", "auc", "auc_ci95")}
                for k, v in report["columns"].items()
            },
        },
        "provenance": provenance(),
    }
    atomic_write_json(args.out, result)
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
