"""Per-example membership signals computed from logits, numerically stable."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


def logit_scaled_confidence(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """log(p_y / (1 - p_y)) as z_y - logsumexp(z without y), so it never forms 1 - p_y."""
    true_logit = logits.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    others = logits.scatter(-1, labels.unsqueeze(-1), float("-inf"))
    return true_logit - torch.logsumexp(others, dim=-1)


def example_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each example, -log p_y = softplus(-confidence), over the last axis.

    logsumexp(z) - z_y is exactly 0 in float64 once the true-class margin passes ~37 (1 + e^-37
    rounds to 1), which erases the difference between a memorised member and a confidently
    classified non-member; the softplus form keeps its resolution to margins of ~700."""
    return torch.nn.functional.softplus(-logit_scaled_confidence(logits, labels))


@dataclass(frozen=True)
class Signals:
    """Signals of examples under one or more models; every array has the same shape [..., N, Q].

    `correct` (whether the model's top class is the label) is there for classifiers only."""

    loss: np.ndarray
    probability: np.ndarray
    confidence: np.ndarray
    correct: np.ndarray | None = None

    @classmethod
    def from_logits(cls, logits: torch.Tensor, labels: torch.Tensor) -> Signals:
        """Signals from logits [N, Q, C] and labels [N] (Q augmented queries per example)."""
        labels = labels.unsqueeze(-1).expand(logits.shape[:-1])
        confidence = logit_scaled_confidence(logits.double(), labels)
        loss = torch.nn.functional.softplus(-confidence)
        return cls(
            loss=loss.numpy(),
            probability=torch.exp(-loss).numpy(),
            confidence=confidence.numpy(),
            correct=(logits.argmax(-1) == labels).numpy(),
        )

    @classmethod
    def from_probabilities(cls, probability: np.ndarray) -> Signals:
        """Signals from the true-class probability [N] of a model that gives no logits."""
        p = np.clip(np.asarray(probability, dtype=np.float64), 1e-300, 1.0)[:, None]
        return cls(
            loss=-np.log(p),
            probability=p,
            confidence=np.log(p) - np.log1p(-np.minimum(p, 1 - 1e-16)),
        )

    def _map(self, function) -> Signals:
        return Signals(
            *(
                None if a is None else function(a)
                for a in (self.loss, self.probability, self.confidence, self.correct)
            )
        )

    def take(self, indices) -> Signals:
        """The signals of the examples at `indices` (the example axis is the second to last)."""
        return self._map(lambda a: np.take(a, indices, axis=-2))

    def concat(self, other: Signals) -> Signals:
        """These examples followed by `other`'s."""
        pairs = zip(
            (self.loss, self.probability, self.confidence, self.correct),
            (other.loss, other.probability, other.confidence, other.correct),
            strict=True,
        )
        return Signals(
            *(None if a is None or b is None else np.concatenate([a, b], axis=-2) for a, b in pairs)
        )

    @classmethod
    def stack(cls, items: list[Signals]) -> Signals:
        """Signals of several models stacked on a new leading model axis."""
        correct = [s.correct for s in items]
        return cls(
            loss=np.stack([s.loss for s in items]),
            probability=np.stack([s.probability for s in items]),
            confidence=np.stack([s.confidence for s in items]),
            correct=None if any(c is None for c in correct) else np.stack(correct),
        )
