"""The image classifier with the helper's signals as reference: a known answer where the target's
loss alone cannot tell members apart from hard images and its difference to the helper's can."""

import numpy as np
import torch
from privaudit.attacks.panoramia import TensorExamples
from privaudit.attacks.signals import Signals
from privaudit.core.metrics import auc
from privaudit.image.attack import ImageAttack


def test_the_reference_signals_calibrate_each_images_difficulty():
    rng = np.random.default_rng(0)
    n = 2000
    generator = torch.Generator().manual_seed(0)
    examples = TensorExamples(torch.rand(n, 1, 8, 8, generator=generator), torch.zeros(n).long())
    is_member = rng.random(n) < 0.5
    # difficulties span orders of magnitude, and training cut a member's loss to a third: on its own
    # the target's loss ranks members at AUC at most Phi(ln 3 / 2.83) = 0.65
    difficulty = np.exp(rng.normal(0.0, 2.0, n))
    helper = Signals.from_probabilities(np.exp(-difficulty))
    target = Signals.from_probabilities(np.exp(-difficulty * np.where(is_member, 1 / 3, 1.0)))
    train, test = np.arange(n // 2), np.arange(n // 2, n)

    def held_out_auc(reference: bool) -> float:
        attack = ImageAttack(epochs=15, seed=0, desc="attack", device="cpu")
        kept = {"reference": helper.take(train)} if reference else {}
        attack.fit(examples.take(train), target.take(train), is_member[train], **kept)
        kept = {"reference": helper.take(test)} if reference else {}
        return auc(is_member[test], attack.score(examples.take(test), target.take(test), **kept))

    assert held_out_auc(reference=False) < 0.7
    assert held_out_auc(reference=True) > 0.95


def test_an_ensemble_averages_the_logits_of_independently_seeded_networks():
    rng = np.random.default_rng(1)
    n = 200
    generator = torch.Generator().manual_seed(1)
    examples = TensorExamples(torch.rand(n, 1, 8, 8, generator=generator), torch.zeros(n).long())
    signals = Signals.from_probabilities(rng.random(n))
    is_member = rng.random(n) < 0.5

    def fitted(ensemble: int) -> ImageAttack:
        attack = ImageAttack(epochs=2, seed=3, desc="attack", device="cpu", ensemble=ensemble)
        attack.fit(examples, signals, is_member)
        return attack

    one, three = fitted(1), fitted(3)
    first = dict(three.models[0].named_parameters())
    for name, value in one.models[0].named_parameters():
        torch.testing.assert_close(first[name], value)  # the first network is the attack's own
    assert not torch.equal(three.models[1].head.weight, three.models[0].head.weight)
    with torch.no_grad():
        features = three._standard(signals, None)
        logits = torch.stack([m(examples.inputs, features) for m in three.models]).mean(0)
    np.testing.assert_allclose(
        three.score(examples, signals), torch.sigmoid(logits).numpy(), rtol=1e-6
    )
