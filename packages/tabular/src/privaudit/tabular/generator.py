"""Synthetic non-members: CTGAN (through sdv) trained on the generator split, and its quality report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from privaudit.tabular.data import Table


def fit_and_sample(table: Table, train: pd.DataFrame, n_samples: int, *, epochs: int, batch_size: int, seed: int) -> pd.DataFrame:
    """Train CTGAN on `train` and draw `n_samples` synthetic rows with the table's columns."""
    from sdv.single_table import CTGANSynthesizer

    # CTGAN packs `pac`=10 rows per critic input, so the batch must be a multiple of 10 and fit the data.
    batch = max(10, min(batch_size, len(train)) // 10 * 10)
    torch.manual_seed(seed)
    np.random.seed(seed)
    synthesizer = CTGANSynthesizer(table.metadata(), epochs=epochs, batch_size=batch, verbose=False, enable_gpu=False)
    synthesizer.fit(train)
    torch.manual_seed(seed + 1)
    np.random.seed(seed + 1)
    sample = synthesizer.sample(num_rows=n_samples)
    for column in table.categorical + [table.label]:
        sample[column] = sample[column].astype(str)
    return sample[list(table.frame.columns)]


def quality(table: Table, real: pd.DataFrame, synthetic: pd.DataFrame) -> dict:
    """sdv's quality report: overall score, property scores and the per-column shape scores."""
    from sdv.evaluation.single_table import evaluate_quality

    report = evaluate_quality(real, synthetic, table.metadata(), verbose=False)
    shapes = report.get_details("Column Shapes")
    return {
        "score": float(report.get_score()),
        "properties": {row["Property"]: float(row["Score"]) for _, row in report.get_properties().iterrows()},
        "column_shapes": [
            {"column": str(row["Column"]), "metric": str(row["Metric"]), "score": float(row["Score"])}
            for _, row in shapes.iterrows()
        ],
    }
