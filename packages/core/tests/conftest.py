import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

AUTHORS_TABLE = "panoramia_tabular_mia_baseline.csv"


@pytest.fixture(scope="session")
def authors_table() -> Path:
    """The PANORAMIA authors' tabular results table in ../shared/data beside a checkout (or a worktree's)."""
    for parent in Path(__file__).resolve().parents:
        candidate = parent.parent / "shared" / "data" / AUTHORS_TABLE
        if candidate.is_file():
            return candidate
    pytest.skip(f"{AUTHORS_TABLE} not found in any ../shared/data above the repository")


def authors_eps_audit(m, r, v, p):
    """O1_Steinke_Code/o1_audit.py get_eps_audit, re-derived: 30 bisection steps, p-value = beta only."""

    def p_value(eps):
        return min(stats.binom.sf(v - 1, r, 1 / (1 + math.exp(-eps))), 1)

    lo, hi = 0.0, 1.0
    while p_value(hi) < p:
        hi += 1
    for _ in range(30):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if p_value(mid) < p else (lo, mid)
    return lo


def authors_bound(preds, labels):
    """Plotting/compute_plot_audit_values.py privacy_recall: 100 thresholds, pred > th, alpha 0.05/(2*100)."""
    best = 0.0
    for th in np.linspace(0, 1, 100):
        hard = preds > th
        tp, fp = int(np.sum(hard & (labels == 1))), int(np.sum(hard & (labels == 0)))
        best = max(best, authors_eps_audit(len(preds), tp + fp, tp, 0.05 / (2 * 100)))
    return best


@pytest.fixture(scope="session", name="authors_bound")
def authors_bound_fixture():
    return authors_bound
