"""Query optimisation: Adam must raise the LOOD, and from noise it finds the differing record."""

import numpy as np
import pytest
from privaudit.attacks.lood.data import load_lood_data
from privaudit.attacks.lood.kernels import KernelSpec, kernel_matrix
from privaudit.attacks.lood.posterior import centred_one_hot, factorise, self_lood
from privaudit.attacks.lood.queries import OptimisedQuery, QuerySettings, optimise_query
from privaudit.core.errors import InputError


@pytest.fixture(scope="module")
def digits():
    data = load_lood_data("digits", (0, 1))
    spec = KernelSpec()
    factor = factorise(
        kernel_matrix(data.rows, data.rows, spec), centred_one_hot(data.labels, 2), 0.05
    )
    return data, spec, factor


def test_from_noise_the_optimised_query_reconstructs_the_most_exposed_record(digits):
    data, spec, factor = digits
    kl, _ = self_lood(factor, range(len(data.labels)))
    record = int(np.argmax(kl.numpy()))
    result = optimise_query(
        data.rows, factor, record, spec, QuerySettings(steps=60, lr=0.05), seed=3
    )
    assert result.lood_at_query > 100 * result.lood_at_start
    # the record maximises its own LOOD (the paper's reconstruction result): the query lands on it
    assert result.lood_at_query == pytest.approx(result.lood_at_record, rel=1e-2)
    assert result.lood_at_query <= result.lood_at_record * (1 + 1e-9)
    assert result.cosine_to_record > 0.99 and result.record_rank == 1
    restored = OptimisedQuery.from_arrays(result.to_arrays())  # the run's cache round trip
    assert np.array_equal(restored.query, result.query) and restored.start_record is None
    assert (restored.record, restored.lood_at_query) == (result.record, result.lood_at_query)


def test_from_a_training_record_the_lood_never_falls(digits):
    data, spec, factor = digits
    result = optimise_query(
        data.rows, factor, 5, spec, QuerySettings(steps=20, lr=0.05, init="data"), seed=0
    )
    assert result.start_record is not None and result.start_record != 5
    assert result.lood_at_query >= result.lood_at_start


def test_bad_query_settings_are_input_errors():
    with pytest.raises(InputError, match="steps >= 1"):
        QuerySettings(steps=0)
    with pytest.raises(InputError, match="init must be"):
        QuerySettings(init="zeros")
