"""Closed-form membership inference for causal LMs (no training): higher score = more likely a
member. The score columns of the text audit, each checked against real non-members.

- LOSS (Yeom et al. 2018): minus the mean next-token NLL.
- zlib ratio (Carlini et al. 2021): minus the NLL (log-perplexity, nats) over the text's zlib
  entropy, the length in bytes of zlib.compress(text as UTF-8).
- min-k% prob (Shi et al. 2024): the mean of the k% lowest token log-probabilities.
- min-k%++ (Zhang et al. 2025): per token z_t = (log p(x_t) - mu_t) / sigma_t, mu_t and sigma_t the
  mean and standard deviation of log p(v) over the vocabulary under p; the mean of the k% lowest z_t.
- reference-model ratio (Carlini et al. 2021, Mireshghallah et al. 2022): the reference LM's
  NLL minus the target's, the log of the perplexity ratio ppl_ref / ppl_target.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
from privaudit.text.examples import TextSignals

MIN_K_FRACTION = 0.2

COLUMNS = {
    "loss_pred": "LOSS: -mean token NLL",
    "zlib_pred": "zlib ratio: -NLL / zlib bytes",
    "min_k_pred": f"min-k% prob (k = {MIN_K_FRACTION:.0%})",
    "min_k_plus_pred": f"min-k%++ (k = {MIN_K_FRACTION:.0%})",
    "reference_pred": "reference ratio: NLL_ref - NLL_target",
}


def zlib_entropy(text: str) -> int:
    return len(zlib.compress(text.encode("utf-8")))


def lowest_fraction_mean(values: np.ndarray, fraction: float) -> float:
    """The mean of the ceil(fraction * n) smallest of the non-NaN `values`."""
    present = np.sort(values[~np.isnan(values)])
    count = max(1, math.ceil(fraction * len(present)))
    return float(present[:count].mean())


def loss_score(signals: TextSignals) -> np.ndarray:
    return -signals.loss[:, 0]


def zlib_score(signals: TextSignals, texts: list[str]) -> np.ndarray:
    return -signals.loss[:, 0] / np.array(
        [max(1, zlib_entropy(t)) for t in texts], dtype=np.float64
    )


def min_k_score(signals: TextSignals, fraction: float = MIN_K_FRACTION) -> np.ndarray:
    return np.array([lowest_fraction_mean(row, fraction) for row in signals.token_logprob])


def min_k_plus_score(signals: TextSignals, fraction: float = MIN_K_FRACTION) -> np.ndarray:
    z = (signals.token_logprob - signals.token_mean) / np.maximum(signals.token_std, 1e-12)
    return np.array([lowest_fraction_mean(row, fraction) for row in z])


def reference_score(target: TextSignals, reference: TextSignals) -> np.ndarray:
    return reference.loss[:, 0] - target.loss[:, 0]


def closed_form_scores(
    texts: list[str], target: TextSignals, reference: TextSignals
) -> dict[str, np.ndarray]:
    """Every closed-form column of the text audit for `texts`."""
    return {
        "loss_pred": loss_score(target),
        "zlib_pred": zlib_score(target, texts),
        "min_k_pred": min_k_score(target),
        "min_k_plus_pred": min_k_plus_score(target),
        "reference_pred": reference_score(target, reference),
    }
