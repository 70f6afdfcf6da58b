"""The PANORAMIA driver's own parts: split sizes and the test mix."""

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from privaudit.attacks.panoramia import TensorExamples
from privaudit.attacks.panoramia.driver import mixed_test, split_sizes


@settings(max_examples=200, deadline=None)
@given(n=st.integers(0, 20_000), wanted=st.lists(st.integers(0, 8000), min_size=3, max_size=3))
def test_split_sizes_shrink_in_proportion_and_lose_no_example(n, wanted):
    sizes = split_sizes(n, wanted)
    assert sum(sizes) == min(n, sum(wanted))
    assert all(0 <= s <= w for s, w in zip(sizes, wanted, strict=True))
    if sum(wanted) > n:  # each within one example of its proportional share
        share = np.array(wanted) * n / sum(wanted)
        assert np.all(np.abs(np.array(sizes) - share) < 1 + 1e-9)


def test_each_test_slot_holds_the_real_example_with_probability_one_half():
    n = 4000
    real = TensorExamples(torch.arange(n).float()[:, None], torch.zeros(n, dtype=torch.long))
    other = TensorExamples(
        -torch.arange(1, n + 1).float()[:, None], torch.ones(n, dtype=torch.long)
    )
    mixed, is_real, index = mixed_test(real, other, seed=5)
    assert len(mixed) == n
    # slot i holds real[i] or other[i], never anything else, as is_real says
    expected = torch.where(torch.from_numpy(is_real)[:, None], real.inputs, other.inputs)
    torch.testing.assert_close(mixed.inputs, expected)
    assert np.array_equal(mixed.labels.numpy(), (~is_real).astype(int))
    assert np.array_equal(index, np.where(is_real, np.arange(n), n + np.arange(n)))
    assert abs(is_real.mean() - 0.5) < 4 * 0.5 / np.sqrt(n)  # a fair coin, within 4 standard errors
    assert np.array_equal(mixed_test(real, other, seed=5)[1], is_real)  # seeded
    assert not np.array_equal(mixed_test(real, other, seed=6)[1], is_real)
