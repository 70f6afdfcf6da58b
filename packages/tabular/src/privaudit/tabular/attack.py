"""PANORAMIA's tabular classifier (baseline and MIA): gradient-boosted trees over the whole
record (features and one-hot label) and one model's loss on it; the MIA, when it has the helper's
loss as reference, also reads that loss and the log-ratio of the two (difficulty calibration)."""

from __future__ import annotations

import numpy as np
from privaudit.attacks.signals import Signals
from privaudit.tabular.models import FeatureEncoder
from sklearn.ensemble import HistGradientBoostingClassifier

# what the classifiers see; part of the scores' cache key, so change it when that changes
ATTACK_INPUTS = "record (features + one-hot label) + float64 cross-entropy [+ reference, log ratio]"


def _log_loss(signals: Signals) -> np.ndarray:
    # a memorised example's loss is ~1e-30 and a confident non-member's ~1e-8: the log keeps both apart
    return np.log(np.maximum(signals.loss[:, 0], 1e-300))


class TabularAttack:
    def __init__(self, encoder: FeatureEncoder, *, iterations: int, seed: int):
        self.encoder = encoder
        self.classifier = HistGradientBoostingClassifier(
            max_iter=iterations, random_state=seed % 2**32
        )

    def _rows(self, examples, signals: Signals, reference: Signals | None) -> np.ndarray:
        columns = [self.encoder.records(examples.frame), signals.loss[:, 0]]
        if reference is not None:
            columns += [reference.loss[:, 0], _log_loss(signals) - _log_loss(reference)]
        return np.column_stack(columns)

    def fit(
        self, examples, signals: Signals, is_member: np.ndarray, reference: Signals | None = None
    ) -> None:
        self.classifier.fit(self._rows(examples, signals, reference), is_member)

    def score(self, examples, signals: Signals, reference: Signals | None = None) -> np.ndarray:
        return self.classifier.predict_proba(self._rows(examples, signals, reference))[:, 1]
