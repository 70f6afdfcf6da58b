"""A small synthetic scores table for the demo: no model, no download, seeded."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import special


def synthetic_scores(n: int = 4000, *, seed: int = 0) -> pd.DataFrame:
    """Synthetic PANORAMIA-style scores: half members; the baseline separates members from
    generated non-members a little (shift 0.5 on the logit scale), the simulated MIA, which
    also sees the target model, a little more (shift 1.0). Scores are probabilities in (0, 1)."""
    rng = np.random.default_rng(seed)
    member = rng.permutation(
        np.r_[np.ones(n // 2, dtype=np.int64), np.zeros(n - n // 2, dtype=np.int64)]
    )
    baseline = special.expit(rng.normal(0.5 * member - 0.25, 1.0))
    mia = special.expit(rng.normal(1.0 * member - 0.5, 1.0))
    return pd.DataFrame({"member": member, "baseline_pred": baseline, "mia_synthetic_pred": mia})
