"""Benchmark: does a density-ratio filter on CTGAN's samples hide the real rows that PANORAMIA's
baseline finds at low FPR? (A measured idea for the tabular ladder, not yet part of the audit.)

CTGAN is fitted on 3,000 Adult rows (100 epochs, as the audit, unless --epochs). A discriminator (gradient boosting) is then trained on those
same 3,000 rows against 3,000 fresh samples; each further sample x is kept with probability
min(1, r(x)/M), r = p/(1-p) its estimated density ratio real/synthetic and M the ratio's q-quantile
(discriminator rejection sampling). A separate detector (5-fold cross-validation) then tells 3,000
held-out real rows, which neither model saw, from 3,000 kept samples: AUC and TPR at 1 % FPR, for
the raw samples and each q. Prints a line per setting, writes JSON.

    uv run python tools/bench/tabular_rejection.py [--seed 0] [--epochs 100]
        [--out tools/bench/results/tabular_rejection.json]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd
import torch
from privaudit.core.metrics import auc, tpr_at_fpr
from privaudit.core.rundir import atomic_write_json, provenance
from privaudit.dp.randomness import seed_for
from privaudit.tabular.data import ADULT_LABEL, adult, prepare_table
from privaudit.tabular.generator import discrete_columns, synthesizer_metadata
from privaudit.tabular.rejection import DensityRatioFilter, encoded
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import cross_val_predict

ROWS = 3000
POOL = 60000
QUANTILES = (0.5, 0.8, 0.95, 0.99)


def detection(table, real: pd.DataFrame, synthetic: pd.DataFrame, seed: int) -> dict:
    """Cross-validated real-vs-synthetic detector: AUC and TPR at 1 % FPR."""
    is_real = np.r_[np.ones(len(real)), np.zeros(len(synthetic))]
    detector = HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=seed)
    scores = cross_val_predict(
        detector, encoded(table, [real, synthetic]), is_real, cv=5, method="predict_proba"
    )[:, 1]
    # the project's own metrics, as the audit reports them
    return {
        "detector_auc": auc(is_real, scores),
        "tpr_at_1pct_fpr": tpr_at_fpr(is_real, scores, (0.01,))[0.01],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=100, help="CTGAN's training epochs")
    parser.add_argument("--out", default="tools/bench/results/tabular_rejection.json")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    from sdv.single_table import CTGANSynthesizer

    table = prepare_table(adult(), ADULT_LABEL, source="UCI Adult", min_rows=300)
    rows = table.frame.sample(frac=1, random_state=seed_for(args.seed, "split") % 2**32)
    train, real = rows.iloc[:ROWS], rows.iloc[ROWS : 2 * ROWS]
    discrete = discrete_columns(table, train)
    start = time.perf_counter()
    torch.manual_seed(seed_for(args.seed, "fit"))
    synthesizer = CTGANSynthesizer(
        synthesizer_metadata(table, discrete), epochs=args.epochs, enable_gpu=False
    )
    synthesizer.fit(train.astype({c: str for c in discrete}))
    fit_seconds = time.perf_counter() - start
    torch.manual_seed(seed_for(args.seed, "sample"))
    pool = synthesizer.sample(num_rows=POOL).astype({c: np.float64 for c in discrete})
    pool = pool[list(train.columns)]
    raw = {"kept": ROWS, **detection(table, real, pool.iloc[:ROWS], args.seed)}
    print(f"raw samples: {raw}", flush=True)
    fit_samples, candidates = pool.iloc[ROWS : 2 * ROWS], pool.iloc[2 * ROWS :]
    # the audit's own filter: its discriminator's ratios, each quantile's M taken over the candidates
    discriminator = DensityRatioFilter(table, QUANTILES[0])
    discriminator.fit(train, fit_samples, candidates, seed_for(args.seed, "discriminator"))
    ratio = discriminator.ratio(candidates)
    coins = np.random.default_rng(seed_for(args.seed, "rejection")).random(len(ratio))
    filtered = []
    for q in QUANTILES:
        kept = candidates[coins < np.minimum(1.0, ratio / np.quantile(ratio, q))]
        shown = kept.iloc[:ROWS]
        result = {"quantile": q, "kept": len(kept), "detected_on": len(shown)}
        result.update(detection(table, real, shown, args.seed))
        filtered.append(result)
        print(f"filtered at q={q}: {result}", flush=True)
    atomic_write_json(
        args.out,
        {
            "rows": ROWS,
            "pool": POOL,
            "synthesizer": f"CTGAN, {args.epochs} epochs",
            "discriminator": "HistGradientBoostingClassifier on the generator's rows vs samples",
            "detector": "HistGradientBoostingClassifier, 5-fold CV, held-out real vs kept samples",
            "fit_seconds": round(fit_seconds, 1),
            "raw": raw,
            "filtered": filtered,
            "provenance": provenance(seed=args.seed),
        },
    )


if __name__ == "__main__":
    main()
