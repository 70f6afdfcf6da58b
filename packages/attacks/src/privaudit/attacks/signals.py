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
    """Signals of examples under one or more models; every array has the same shape [..., N, Q]."""

    loss: np.ndarray
    probability: np.ndarray
    confidence: np.ndarray

    @classmethod
    def from_logits(cls, logits: torch.Tensor, labels: torch.Tensor) -> Signals:
        """Signals from logits [N, Q, C] and labels [N] (Q augmented queries per example)."""
        labels = labels.unsqueeze(-1).expand(logits.shape[:-1])
        loss = example_loss(logits.double(), labels)
        return cls(
            loss=loss.numpy(),
            probability=torch.exp(-loss).numpy(),
            confidence=logit_scaled_confidence(logits.double(), labels).numpy(),
        )

    @classmethod
    def stack(cls, items: list[Signals]) -> Signals:
        """Signals of several models stacked on a new leading model axis."""
        return cls(
            loss=np.stack([s.loss for s in items]),
            probability=np.stack([s.probability for s in items]),
            confidence=np.stack([s.confidence for s in items]),
        )
