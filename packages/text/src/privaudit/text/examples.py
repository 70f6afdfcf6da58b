"""Texts as PANORAMIA examples, and what a causal LM answers about each: per-token
log-likelihoods, loss, perplexity and the last hidden state."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from privaudit.attacks.signals import Signals
from privaudit.core.rundir import atomic_write_bytes


class TextExamples:
    """Texts in a fixed order; `inputs` the texts, `labels` zeros (text audits are unconditional)."""

    def __init__(self, texts: list[str]):
        self.texts = list(texts)

    @property
    def inputs(self) -> list[str]:
        return self.texts

    @property
    def labels(self) -> np.ndarray:
        return np.zeros(len(self.texts), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.texts)

    def take(self, indices) -> TextExamples:
        return TextExamples([self.texts[int(i)] for i in np.asarray(indices, dtype=np.int64)])

    def concat(self, other: TextExamples) -> TextExamples:
        return TextExamples(self.texts + other.texts)

    def save(self, path: Path) -> None:
        atomic_write_bytes(path, json.dumps(self.texts, ensure_ascii=False).encode("utf-8"))

    def load(self, path: Path) -> TextExamples:
        return TextExamples(json.loads(Path(path).read_text(encoding="utf-8")))


def _pad_columns(a: np.ndarray, width: int) -> np.ndarray:
    if a.shape[1] == width:
        return a
    return np.concatenate([a, np.full((a.shape[0], width - a.shape[1]), np.nan)], axis=1)


@dataclass(frozen=True)
class TextSignals(Signals):
    """Signals of texts under one LM. Besides the per-text loss (mean next-token NLL, nats),
    probability (exp(-loss), the inverse perplexity) and confidence (-loss), per predicted token t
    (NaN past a text's end): `token_logprob` log p(x_t | x_<t), `token_mean` and `token_std` the
    mean and standard deviation of log p(v | x_<t) over the vocabulary under p itself (min-k%++'s
    calibration); `hidden` the last layer's hidden state averaged over the text's tokens."""

    token_logprob: np.ndarray | None = None  # [N, T]
    token_mean: np.ndarray | None = None  # [N, T]
    token_std: np.ndarray | None = None  # [N, T]
    hidden: np.ndarray | None = None  # [N, H]

    @property
    def perplexity(self) -> np.ndarray:
        return np.exp(self.loss[:, 0])

    @property
    def token_counts(self) -> np.ndarray:
        return np.sum(~np.isnan(self.token_logprob), axis=1)

    def take(self, indices) -> TextSignals:
        index = np.asarray(indices, dtype=np.int64)
        return TextSignals(
            self.loss[index],
            self.probability[index],
            self.confidence[index],
            None,
            self.token_logprob[index],
            self.token_mean[index],
            self.token_std[index],
            self.hidden[index],
        )

    def concat(self, other: TextSignals) -> TextSignals:
        width = max(self.token_logprob.shape[1], other.token_logprob.shape[1])
        per_token = [
            np.concatenate([_pad_columns(a, width), _pad_columns(b, width)])
            for a, b in (
                (self.token_logprob, other.token_logprob),
                (self.token_mean, other.token_mean),
                (self.token_std, other.token_std),
            )
        ]
        return TextSignals(
            np.concatenate([self.loss, other.loss]),
            np.concatenate([self.probability, other.probability]),
            np.concatenate([self.confidence, other.confidence]),
            None,
            *per_token,
            np.concatenate([self.hidden, other.hidden]),
        )
