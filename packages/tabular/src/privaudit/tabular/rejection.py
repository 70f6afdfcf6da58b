"""Discriminator rejection sampling (Azadi et al., 2019) for a tabular generator: a classifier
learns to tell the generator's training rows from its samples, and a sample x is kept with
probability min(1, r(x) / M), r = p / (1 - p) its estimated density ratio real / synthetic and M a
quantile of r over fresh samples. Kept samples follow the real rows more closely, so the PANORAMIA
baseline finds fewer real rows at low FPR (tools/bench/tabular_rejection.py measures it)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from privaudit.tabular.data import Table
from sklearn.ensemble import HistGradientBoostingClassifier


def encoded(table: Table, frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The rows of `frames`, their string columns as categoricals over the table's values."""
    rows = pd.concat(frames, ignore_index=True)[list(table.frame.columns)]
    for column in table.categorical + [table.label]:
        values = sorted(set(table.frame[column].astype(str)))
        rows[column] = pd.Categorical(rows[column].astype(str), categories=values)
    return rows


class DensityRatioFilter:
    """Keeps a sample with probability min(1, r / M): see the module's docstring."""

    def __init__(self, table: Table, quantile: float):
        self.table, self.quantile = table, quantile

    def fit(
        self, real: pd.DataFrame, synthetic: pd.DataFrame, calibration: pd.DataFrame, seed: int
    ) -> None:
        """Train the discriminator on `real` vs `synthetic`; M is the ratio's quantile over the
        fresh `calibration` samples (not seen in training, whose ratios the classifier overrates)."""
        self.classifier = HistGradientBoostingClassifier(
            categorical_features="from_dtype", random_state=seed % 2**31
        )
        is_real = np.r_[np.ones(len(real)), np.zeros(len(synthetic))]
        self.classifier.fit(encoded(self.table, [real, synthetic]), is_real)
        ratio = self.ratio(calibration)
        self.bound = float(np.quantile(ratio, self.quantile))
        # expected fraction of samples kept: sizes the pools SdvGenerator.sample draws
        self.acceptance = float(np.mean(np.minimum(1.0, ratio / self.bound)))

    def ratio(self, rows: pd.DataFrame) -> np.ndarray:
        p_real = self.classifier.predict_proba(encoded(self.table, [rows]))[:, 1]
        p_real = np.clip(p_real, 1e-6, 1 - 1e-6)
        return p_real / (1 - p_real)

    def kept(self, rows: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        keep = rng.random(len(rows)) < np.minimum(1.0, self.ratio(rows) / self.bound)
        return rows[keep]
