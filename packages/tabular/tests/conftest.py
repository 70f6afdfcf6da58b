import numpy as np
import pytest
from privaudit.tabular.data import adult


@pytest.fixture(scope="session")
def adult_slice_csv(tmp_path_factory):
    """2,400 rows of UCI Adult as a user's CSV file (fixed rows, so fixed results)."""
    path = tmp_path_factory.mktemp("data") / "adult_slice.csv"
    adult().iloc[:2400].to_csv(path, index=False)
    return path


# Columns CTGAN learns in a few hundred steps, so the baseline is not already perfect.
NOISY_COLUMNS = [
    "age",
    "workclass",
    "education",
    "marital-status",
    "occupation",
    "relationship",
    "race",
    "gender",
    "hours-per-week",
    "income",
]


@pytest.fixture(scope="session")
def noisy_adult_csv(tmp_path_factory):
    """2,400 rows of Adult (fewer columns) with 30% of labels flipped by a fixed draw.

    An overfit target must memorise the flipped labels: a known leak for the audit to find.
    """
    path = tmp_path_factory.mktemp("data") / "adult_noisy.csv"
    frame = adult().iloc[:2400][NOISY_COLUMNS].copy()
    flip = np.random.default_rng(0).random(len(frame)) < 0.3
    frame.loc[flip, "income"] = np.where(frame.loc[flip, "income"] == ">50K", "<=50K", ">50K")
    frame.to_csv(path, index=False)
    return path
