"""Synthetic non-members: CTGAN (through sdv) trained on the generator split, and its quality report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from privaudit.dp.randomness import seed_for
from privaudit.tabular.data import Table

# Integer columns with at most this many distinct values (age, hours, capital gain on Adult) are
# modelled by CTGAN as categories: as continuous columns it samples values no real row has.
DISCRETE_MAX_VALUES = 128


def discrete_columns(table: Table, train: pd.DataFrame) -> list[str]:
    """Numerical columns of `train` that hold only integers with few distinct values."""
    found = []
    for column in table.numerical:
        values = train[column].to_numpy(dtype=np.float64)
        if np.all(values == np.round(values)) and len(np.unique(values)) <= DISCRETE_MAX_VALUES:
            found.append(column)
    return found


def fit_and_sample(table: Table, train: pd.DataFrame, n_samples: int, *, epochs: int, batch_size: int, seed: int,
                   sample_seed: int) -> pd.DataFrame:
    """Train CTGAN on `train` and draw `n_samples` synthetic rows with the table's columns."""
    from sdv.metadata import Metadata
    from sdv.single_table import CTGANSynthesizer

    discrete = discrete_columns(table, train)
    sdtypes = {c: ("categorical" if c in discrete else t) for c, t in table.sdtypes.items()}
    metadata = Metadata.load_from_dict({"tables": {"table": {"columns": {c: {"sdtype": t} for c, t in sdtypes.items()}}}})
    train = train.astype({c: str for c in discrete})
    # CTGAN packs `pac`=10 rows per critic input, so the batch must be a multiple of 10 and fit the data.
    batch = max(10, min(batch_size, len(train)) // 10 * 10)
    torch.manual_seed(seed_for(seed, "fit"))
    np.random.seed(seed_for(seed, "fit") % 2**32)
    # verbose: ctgan's own tqdm bar over epochs (with the generator and critic losses)
    synthesizer = CTGANSynthesizer(metadata, epochs=epochs, batch_size=batch, verbose=True, enable_gpu=False)
    synthesizer.fit(train)
    torch.manual_seed(sample_seed)
    np.random.seed(sample_seed % 2**32)
    sample = synthesizer.sample(num_rows=n_samples)
    for column in discrete:
        sample[column] = sample[column].astype(np.float64).astype(table.frame[column].dtype)
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
