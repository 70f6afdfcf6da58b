"""Label noise for memorisation stress-test targets."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from privaudit.attacks.label_noise import flip_labels


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(0, 300),
    classes=st.integers(2, 10),
    fraction=st.floats(0, 0.99),
    seed=st.integers(0, 2**16),
)
def test_flip_labels_moves_exactly_the_fraction_to_other_classes(n, classes, fraction, seed):
    labels = np.random.default_rng(seed).integers(0, classes, n)
    flipped = flip_labels(labels, classes, fraction, seed)
    changed = flipped != labels
    assert changed.sum() == int(round(fraction * n))
    assert flipped.min(initial=0) >= 0 and flipped.max(initial=0) < classes
    np.testing.assert_array_equal(flipped, flip_labels(labels, classes, fraction, seed))
    assert labels.dtype == flipped.dtype and not np.shares_memory(labels, flipped)


def test_no_noise_and_a_single_class_leave_the_labels_alone():
    labels = np.array([0, 1, 1, 0])
    np.testing.assert_array_equal(flip_labels(labels, 2, 0.0, 1), labels)
    np.testing.assert_array_equal(flip_labels(np.zeros(5, dtype=int), 1, 0.5, 1), np.zeros(5))
