"""The tabular classifier with the helper's loss as reference: a known answer where the target's
loss alone cannot tell members apart from hard examples and the log-ratio to the helper can."""

import numpy as np
from privaudit.attacks.signals import Signals
from privaudit.core.metrics import auc
from privaudit.tabular.attack import TabularAttack
from privaudit.tabular.data import adult, prepare_table
from privaudit.tabular.models import FeatureEncoder
from privaudit.tabular.targets import FrameExamples


def _signals(loss: np.ndarray) -> Signals:
    return Signals.from_probabilities(np.exp(-loss))


def test_the_reference_loss_calibrates_each_examples_difficulty():
    table = prepare_table(adult().iloc[:4000], "income", source="Adult", min_rows=100)
    examples = FrameExamples(table.frame, table)
    encoder = FeatureEncoder(table, table.frame)
    rng = np.random.default_rng(0)
    n = len(examples)
    is_member = rng.random(n) < 0.5
    # each example's difficulty spans four orders of magnitude; training cut a member's loss to a
    # third of it: on its own the target's loss ranks members at AUC at most Phi(ln 3 / 2.83) = 0.65
    difficulty = np.exp(rng.normal(0.0, 2.0, n))
    helper = _signals(difficulty)
    target = _signals(difficulty * np.where(is_member, 1 / 3, 1.0))
    train, test = np.arange(n // 2), np.arange(n // 2, n)

    def held_out_auc(reference: bool) -> float:
        attack = TabularAttack(encoder, iterations=100, seed=0)
        kept = {"reference": helper.take(train)} if reference else {}
        attack.fit(examples.take(train), target.take(train), is_member[train], **kept)
        kept = {"reference": helper.take(test)} if reference else {}
        return auc(is_member[test], attack.score(examples.take(test), target.take(test), **kept))

    assert 0.55 < held_out_auc(reference=False) < 0.75
    assert held_out_auc(reference=True) > 0.99
