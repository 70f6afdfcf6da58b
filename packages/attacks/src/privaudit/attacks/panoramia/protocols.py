"""The four pieces a modality supplies to the PANORAMIA driver: examples, a model family (the
target's architecture, which also trains the helper), a generator and a learned attack."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from privaudit.attacks.signals import Signals
from privaudit.core.report import ReportSection
from torch import nn


class Examples(Protocol):
    """Labelled examples of one modality (tensors, table rows, texts), in a fixed order."""

    inputs: Any  # what a Target reads: a tensor, the feature columns of a table, texts
    labels: Any  # one label per example; integer class indices where the generator is conditional

    def __len__(self) -> int: ...

    def take(self, indices: np.ndarray) -> Examples:
        """The examples at `indices`, in that order."""

    def concat(self, other: Examples) -> Examples:
        """These examples followed by `other`'s."""

    def save(self, path: Path) -> None: ...

    def load(self, path: Path) -> Examples:
        """Examples of the same kind read from `path` (written by `save`)."""


class Target(Protocol):
    """The model under audit, answering per-example signals and nothing else."""

    def signals(self, inputs, labels) -> Signals: ...


class ModelFamily(Protocol):
    """An architecture and how to train it: the target when it is trained here, and the helper
    (the same architecture trained on synthetic examples only)."""

    name: str
    key: dict  # the settings that decide a trained model (part of its cache key)

    def train(self, examples: Examples, seed: int) -> tuple[nn.Module, dict | None]:
        """A model trained on `examples`, and its DP record (privaudit.dp.training) or None."""

    def build(self) -> nn.Module:
        """A fresh model of the architecture, to load a cached state dict into."""

    def target(self, model: nn.Module) -> Target: ...


class Generator(Protocol):
    """Trained on members of the generator split; its samples are the audit's non-members."""

    name: str
    key: dict  # the settings that decide its samples (part of their cache key)
    quality_key: dict  # what decides quality() beyond the samples (part of its cache key)
    conditional: bool  # samples given labels (True) or labels come with the samples (False)

    def fit(self, members: Examples, checkpoint: Path, seed: int) -> None:
        """Train on `members`; resumes from `checkpoint` when it can."""

    def sample(self, count: int, labels: np.ndarray | None, seed: int) -> Examples: ...

    def quality(
        self, members: Examples, synthetic: Examples, held_out: Examples, seed: int
    ) -> dict:
        """How close the samples are to the members (a JSON-able dict)."""

    def report_section(
        self, quality: dict, members: Examples, synthetic: Examples
    ) -> ReportSection: ...


class LearnedAttack(Protocol):
    """A classifier telling real members (1) from other examples (0) from the examples and one
    model's signals on them: PANORAMIA's baseline (helper signals) and MIA (target signals).

    `reference`, when given, is the helper's signals on the same examples: the MIA of a modality
    with `PanoramiaInputs.mia_reference` sees them too, so it reads the target's loss against the
    helper's (difficulty calibration) and everything the baseline sees."""

    def fit(
        self,
        examples: Examples,
        signals: Signals,
        is_member: np.ndarray,
        reference: Signals | None = None,
    ) -> None: ...

    def score(
        self, examples: Examples, signals: Signals, reference: Signals | None = None
    ) -> np.ndarray:
        """Membership scores in [0, 1] (higher: more likely a real member)."""


class TensorExamples:
    """Examples held as a tensor of inputs [N, ...] and integer labels [N] (images, token blocks)."""

    def __init__(self, inputs: torch.Tensor, labels: torch.Tensor):
        if len(inputs) != len(labels):
            raise ValueError(f"{len(inputs)} inputs but {len(labels)} labels")
        self.inputs, self.labels = inputs, labels

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, indices) -> TensorExamples:
        index = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        return TensorExamples(self.inputs[index], self.labels[index])

    def concat(self, other: TensorExamples) -> TensorExamples:
        return TensorExamples(
            torch.cat([self.inputs, other.inputs]), torch.cat([self.labels, other.labels])
        )

    def save(self, path: Path) -> None:
        import io

        from privaudit.core.rundir import atomic_write_bytes

        buffer = io.BytesIO()
        torch.save({"inputs": self.inputs.contiguous(), "labels": self.labels.contiguous()}, buffer)
        atomic_write_bytes(path, buffer.getvalue())

    def load(self, path: Path) -> TensorExamples:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        return TensorExamples(saved["inputs"], saved["labels"])
