"""Benchmark: how well sdv's synthesizers imitate UCI Adult at the audit's size — the question
behind the tabular ladder's ranking. Each synthesizer (CTGAN, TVAE, Gaussian copula) is fitted on
the same 3,000 rows; a gradient-boosted detector (scikit-learn, 5-fold cross-validation) then
tells 3,000 held-out real rows from 3,000 synthetic ones. An AUC near 0.5 would leave room for the
target's signal; near 1, PANORAMIA's baseline already finds the real rows and c_lb sits near its
ceiling. Prints a line per synthesizer, writes JSON.

    uv run python tools/bench/tabular_synthesizers.py [--rows 3000] [--seed 0]
        [--out tools/bench/results/tabular_synthesizers.json]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd
import torch
from privaudit.core.rundir import atomic_write_json, provenance
from privaudit.dp.randomness import seed_for
from privaudit.tabular.data import ADULT_LABEL, adult, prepare_table
from privaudit.tabular.generator import discrete_columns, synthesizer_metadata
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import cross_val_score

SYNTHESIZERS = (("CTGAN", {"epochs": 100}), ("TVAE", {"epochs": 300}), ("GaussianCopula", {}))


def detector_auc(table, real: pd.DataFrame, synthetic: pd.DataFrame, seed: int) -> float:
    """Cross-validated AUC of a gradient-boosted real-vs-synthetic detector."""
    rows = pd.concat([real, synthetic[real.columns]], ignore_index=True)
    for column in table.categorical + [table.label]:
        rows[column] = rows[column].astype(str).astype("category")
    is_real = np.r_[np.ones(len(real)), np.zeros(len(synthetic))]
    detector = HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=seed)
    return float(cross_val_score(detector, rows, is_real, cv=5, scoring="roc_auc").mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="tools/bench/results/tabular_synthesizers.json")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    from sdv import single_table

    table = prepare_table(adult(), ADULT_LABEL, source="UCI Adult", min_rows=300)
    rows = table.frame.sample(frac=1, random_state=seed_for(args.seed, "split") % 2**32)
    train, real = rows.iloc[: args.rows], rows.iloc[args.rows : 2 * args.rows]
    discrete = discrete_columns(table, train)
    metadata = synthesizer_metadata(table, discrete)
    results = []
    for index, (name, options) in enumerate(SYNTHESIZERS):
        start = time.perf_counter()
        torch.manual_seed(seed_for(args.seed, "fit", index))
        synthesizer = getattr(single_table, f"{name}Synthesizer")(metadata, **options)
        synthesizer.fit(train.astype({c: str for c in discrete}))
        synthetic = synthesizer.sample(num_rows=args.rows)
        synthetic = synthetic.astype({c: np.float64 for c in discrete})
        auc = detector_auc(table, real, synthetic, args.seed)
        seconds = time.perf_counter() - start
        results.append({"synthesizer": name, **options, "detector_auc": auc, "seconds": seconds})
        print(f"{name:15s} {options}  detector AUC {auc:.4f}  ({seconds:.0f} s)", flush=True)
    atomic_write_json(
        args.out,
        {
            "rows": args.rows,
            "detector": "HistGradientBoostingClassifier, 5-fold CV AUC, real vs synthetic",
            "results": results,
            "provenance": provenance(seed=args.seed),
        },
    )


if __name__ == "__main__":
    main()
