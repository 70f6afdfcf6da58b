"""Benchmark: the PANORAMIA tabular audit on UCI Adult for three targets — a normally trained
MLP, an overfit MLP and a DP MLP (epsilon 1) — with the ground-truth attacks (real non-members)
beside each, and privaudit's report of the authors' published scores table for comparison.
The three runs share one cache directory, so CTGAN and the helper are trained once (and reused
from `audit-tabular`'s default run when its cache is there). Prints a table, writes JSON.

    uv run python tools/bench/tabular_adult.py [--seeds 0,1,2] [--cache-dir runs/tabular-adult/cache]
        [--authors /work/shared/data/panoramia_tabular_mia_baseline.csv]
        [--out tools/bench/results/tabular_adult.json]
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import pandas as pd
from privaudit.core.report import write_report
from privaudit.core.rundir import atomic_write_json, provenance
from privaudit.tabular.audit import run_audit
from privaudit.tabular.config import TabularAuditConfig

TARGETS = (("mlp", {}), ("overfit", {}), ("dp", {"epsilon": 1.0}))


def summarise(report: dict, column: str) -> dict:
    ground_truth = report["extra"]["ground_truth"]
    target = report["extra"]["target"]
    return {
        "c_lb": report["c_lb"],
        "c_plus_eps_lb": report["columns"][column]["eps_lb"],
        "eps_tilde": report["eps_tilde"][column],
        "baseline_auc": report["columns"]["baseline_pred"]["auc"],
        "mia_auc": report["columns"][column]["auc"],
        "test_points": report["n"],
        "ground_truth": {
            "c_lb": ground_truth["c_lb"],
            "eps_lb": ground_truth["columns"][column]["eps_lb"],
            "eps_tilde": ground_truth["eps_tilde"][column],
            "auc": ground_truth["columns"][column]["auc"],
            "baseline_auc": ground_truth["columns"]["baseline_pred"]["auc"],
            "test_points": ground_truth["n"],
        },
        "target_info": target,
        "generator_quality": report["extra"]["generator_quality"]["score"],
        "stage_seconds": report["extra"]["stage_seconds"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", default="runs/tabular-adult/cache")
    parser.add_argument("--runs", default="runs/bench-tabular-adult")
    parser.add_argument(
        "--seeds",
        default="0,1,2",
        help="comma-separated seeds: each cuts new splits and trains anew",
    )
    parser.add_argument("--authors", default="/work/shared/data/panoramia_tabular_mia_baseline.csv")
    parser.add_argument("--out", default="tools/bench/results/tabular_adult.json")
    args = parser.parse_args()

    seeds = [int(seed) for seed in args.seeds.split(",")]
    results = {"machine": platform.machine(), "seeds": seeds, "runs": []}
    for seed in seeds:
        for target, changes in TARGETS:
            config = TabularAuditConfig(
                target=target,
                seed=seed,
                out_dir=f"{args.runs}/seed{seed}/{target}",
                cache_dir=args.cache_dir,
                **changes,
            )
            start = time.perf_counter()
            report = run_audit(config)
            results["runs"].append(
                {
                    "seed": seed,
                    "target": target,
                    **summarise(report, f"mia_{target}_pred"),
                    "seconds": round(time.perf_counter() - start, 1),
                }
            )
    results["config"] = TabularAuditConfig().as_dict()

    if Path(args.authors).exists():
        authors = write_report(
            pd.read_csv(args.authors),
            f"{args.runs}/authors",
            thresholds=100,
            title="authors' PANORAMIA tabular scores",
        )
        results["authors"] = {
            "file": args.authors,
            "thresholds": 100,
            "test_points": authors["n"],
            "c_lb": authors["c_lb"],
            "columns": {
                k: {
                    "eps_lb": v["eps_lb"],
                    "auc": v["auc"],
                    "eps_tilde": authors["eps_tilde"].get(k),
                }
                for k, v in authors["columns"].items()
            },
        }
    results["provenance"] = provenance(seed=seeds[0])
    atomic_write_json(args.out, results)

    print(
        f"{'seed':<5}{'target':<9}{'c_lb':>7}{'{c+eps}_lb':>12}{'eps_tilde':>11}{'MIA AUC':>9}"
        f"{'| GT eps_lb':>12}{'GT AUC':>8}{'spent eps':>11}{'s':>7}"
    )
    for r in results["runs"]:
        spent = r["target_info"].get("spent_epsilon")
        print(
            f"{r['seed']:<5}{r['target']:<9}{r['c_lb']:>7.3f}{r['c_plus_eps_lb']:>12.3f}{r['eps_tilde']:>11.3f}"
            f"{r['mia_auc']:>9.3f}{r['ground_truth']['eps_lb']:>12.3f}{r['ground_truth']['auc']:>8.3f}"
            f"{'-' if spent is None else f'{spent:.3f}':>11}{r['seconds']:>7.1f}"
        )
    if "authors" in results:
        a = results["authors"]
        for name, c in a["columns"].items():
            tilde = "-" if c["eps_tilde"] is None else f"{c['eps_tilde']:.3f}"
            print(
                f"authors {name}: eps_lb {c['eps_lb']:.3f}, eps_tilde {tilde}, AUC {c['auc']:.3f} (c_lb {a['c_lb']:.3f})"
            )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
