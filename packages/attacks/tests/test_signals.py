import numpy as np
import torch
from privaudit.attacks.augment import image_queries
from privaudit.attacks.signals import Signals, example_loss, logit_scaled_confidence
from privaudit.attacks.targets import CausalLMTarget, ClassifierTarget
from torch import nn


def test_logit_scaled_confidence_matches_log_odds_and_stays_finite():
    logits = torch.randn(50, 7, dtype=torch.float64)
    labels = torch.randint(0, 7, (50,))
    p = torch.softmax(logits, dim=1)[torch.arange(50), labels]
    assert torch.allclose(logit_scaled_confidence(logits, labels), torch.log(p / (1 - p)))
    # p rounds to 1 in float64, yet the log-odds are 100 - log 2 exactly
    extreme = logit_scaled_confidence(
        torch.tensor([[100.0, 0.0, 0.0]], dtype=torch.float64), torch.tensor([0])
    )
    assert torch.allclose(extreme, torch.tensor([100.0 - np.log(2)], dtype=torch.float64))


def test_example_loss_keeps_resolution_for_memorised_examples():
    logits = torch.randn(40, 5, dtype=torch.float64)
    labels = torch.randint(0, 5, (40,))
    expected = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    torch.testing.assert_close(example_loss(logits, labels), expected, rtol=1e-12, atol=1e-14)
    # margins 40 and 60: logsumexp - z_y is 0 in float64 for both; -log p_y = log(1 + 2 e^-margin)
    margins = torch.tensor([[40.0, 0.0, 0.0], [60.0, 0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(
        example_loss(margins, torch.tensor([0, 0])),
        torch.tensor([2 * np.exp(-40.0), 2 * np.exp(-60.0)], dtype=torch.float64),
    )


def test_shift_and_mirror_queries_move_pixels():
    image = torch.zeros(1, 1, 5, 5)
    image[0, 0, 2, 1] = 1.0
    views = image_queries(mirror=True, shift=1)(image)
    assert len(views) == 10
    positions = [tuple(torch.nonzero(v[0, 0])[0].tolist()) for v in views]
    assert positions[:5] == [(2, 1), (3, 1), (1, 1), (2, 2), (2, 0)]
    assert positions[5] == (2, 3)  # mirrored identity


def test_classifier_target_signals_per_query():
    model = nn.Sequential(nn.Flatten(), nn.Linear(25, 3))
    x, y = torch.randn(6, 1, 5, 5), torch.randint(0, 3, (6,))
    signals = ClassifierTarget(model, image_queries(shift=1), batch_size=4).signals(x, y)
    assert signals.loss.shape == (6, 5)
    expected = torch.nn.functional.cross_entropy(model(x), y, reduction="none").detach().numpy()
    np.testing.assert_allclose(signals.loss[:, 0], expected, rtol=1e-5)
    np.testing.assert_allclose(signals.probability, np.exp(-signals.loss))


class TinyLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed, self.head = nn.Embedding(11, 8), nn.Linear(8, 11)

    def forward(self, ids, attention_mask=None):
        return self.head(torch.cumsum(self.embed(ids), dim=1))


def test_causal_lm_token_log_likelihoods_against_direct_computation():
    torch.manual_seed(0)
    model, ids = TinyLM(), torch.randint(0, 11, (3, 6))
    mask = torch.ones(3, 6, dtype=torch.long)
    mask[2, 4:] = 0  # padding at the end of the last sequence
    log_likelihoods, _, token_mask = CausalLMTarget(model, batch_size=2).token_log_likelihoods(
        ids, mask
    )
    with torch.no_grad():
        log_probs = torch.log_softmax(model(ids).double(), dim=-1)
    for n in range(3):
        for t in range(5):
            assert torch.isclose(log_likelihoods[n, t], log_probs[n, t, ids[n, t + 1]])
    signals = CausalLMTarget(model).signals(ids, mask)
    expected = -log_likelihoods[2, :3].mean()
    assert np.isclose(signals.loss[2, 0], expected.item())
    assert isinstance(signals, Signals) and signals.confidence.shape == (3, 1)
