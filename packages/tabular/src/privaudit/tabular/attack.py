"""PANORAMIA's tabular classifier (baseline and MIA): gradient-boosted trees over the whole
record (features and one-hot label) and one model's loss on it."""

from __future__ import annotations

import numpy as np
from privaudit.attacks.signals import Signals
from privaudit.tabular.models import FeatureEncoder
from sklearn.ensemble import HistGradientBoostingClassifier

# what the classifiers see; part of the scores' cache key, so change it when that changes
ATTACK_INPUTS = "record (features + one-hot label) + float64 cross-entropy"


class TabularAttack:
    def __init__(self, encoder: FeatureEncoder, *, iterations: int, seed: int):
        self.encoder = encoder
        self.classifier = HistGradientBoostingClassifier(
            max_iter=iterations, random_state=seed % 2**32
        )

    def _rows(self, examples, signals: Signals) -> np.ndarray:
        return np.column_stack([self.encoder.records(examples.frame), signals.loss[:, 0]])

    def fit(self, examples, signals: Signals, is_member: np.ndarray) -> None:
        self.classifier.fit(self._rows(examples, signals), is_member)

    def score(self, examples, signals: Signals) -> np.ndarray:
        return self.classifier.predict_proba(self._rows(examples, signals))[:, 1]
