"""Discriminator rejection sampling: a known density ratio, and the generator's filtered samples."""

import numpy as np
import pandas as pd
import pytest
from privaudit.tabular.data import Table, adult, prepare_table
from privaudit.tabular.generator import SdvGenerator, calibration_samples
from privaudit.tabular.rejection import DensityRatioFilter
from privaudit.tabular.targets import FrameExamples
from scipy.stats import norm


def _gaussian_rows(mean: float, count: int, rng) -> pd.DataFrame:
    return pd.DataFrame(
        {"x": rng.normal(mean, 1.0, count), "y": rng.choice(["a", "b"], count).astype(str)}
    )


def test_rejection_turns_a_shifted_gaussian_into_the_real_one():
    # real x ~ N(0, 1), synthetic x ~ N(1, 1): the ratio is exp(1/2 - x), and rejection with a
    # high quantile M leaves samples distributed almost as the real rows (mean 0, not 1)
    rng = np.random.default_rng(0)
    real = _gaussian_rows(0.0, 6000, rng)
    table = Table(
        frame=real, label="y", sdtypes={"x": "numerical", "y": "categorical"}, source="test"
    )
    filter = DensityRatioFilter(table, quantile=0.99)
    filter.fit(real, _gaussian_rows(1.0, 6000, rng), _gaussian_rows(1.0, 20000, rng), seed=1)
    pool = _gaussian_rows(1.0, 40000, rng)
    kept = filter.kept(pool, np.random.default_rng(2))
    assert abs(kept["x"].mean()) < 0.2 < 0.8 < pool["x"].mean()
    # the fraction kept is the acceptance the pools are sized by; with the exact ratio, M is
    # r(x_q) for x_q the 0.01-quantile of N(1, 1), and acceptance = 0.01 + P_N(0,1)(x > x_q) / M
    assert len(kept) / len(pool) == pytest.approx(filter.acceptance, abs=0.02)
    x_q = norm.ppf(0.01, loc=1.0)
    assert filter.acceptance == pytest.approx(0.01 + norm.sf(x_q) / np.exp(0.5 - x_q), abs=0.04)


@pytest.fixture(scope="module")
def adult_table():
    # few columns: CTGAN's per-column Gaussian mixtures are most of a small fit's time
    columns = ["age", "workclass", "education", "hours-per-week", "income"]
    return prepare_table(adult().iloc[:600][columns], "income", source="test", min_rows=100)


def _fitted(table, quantile):
    generator = SdvGenerator(
        table, synthesizer="ctgan", epochs=2, batch_size=100, rejection_quantile=quantile
    )
    generator.fit(FrameExamples(table.frame, table), checkpoint=None, seed=5)
    return generator


@pytest.mark.parametrize("quantile", [0.0, 0.9])
def test_samples_are_exact_in_count_and_follow_their_seed(adult_table, quantile):
    generator = _fitted(adult_table, quantile)
    first = generator.sample(250, None, seed=7).frame
    assert len(first) == 250 and list(first.columns) == list(adult_table.frame.columns)
    pd.testing.assert_frame_equal(first, generator.sample(250, None, seed=7).frame)
    assert not first.equals(generator.sample(250, None, seed=8).frame)
    assert (generator.filter is None) == (quantile == 0)
    assert generator.key["rejection_quantile"] == quantile  # a new filter is a new cache entry


def test_the_quantile_is_taken_with_about_100_samples_above_it():
    assert calibration_samples(0.99) == 10_000  # the floor
    assert calibration_samples(0.999) == 100_000
    assert calibration_samples(0.9999) == 1_000_000
