"""The rank-one leave-one-out path against fresh per-record solves, and what LOOD must satisfy."""

import numpy as np
import pytest
import torch
from privaudit.attacks.lood.data import load_lood_data
from privaudit.attacks.lood.kernels import KernelSpec, kernel_matrix
from privaudit.attacks.lood.posterior import (
    centred_one_hot,
    direct_lood,
    factorise,
    gaussian_kl,
    precision_diagonal,
    query_lood,
    self_lood,
)
from privaudit.core.errors import InputError


def _digits(classes, count, seed=0):
    data = load_lood_data("digits", classes)
    keep = np.sort(np.random.default_rng(seed).choice(len(data.labels), count, replace=False))
    return data.rows[keep], data.labels[keep], len(classes)


@pytest.mark.parametrize(("classes", "sigma2", "spec"), [
    ((0, 1), 0.05, KernelSpec()),
    ((3, 5, 8), 0.5, KernelSpec(depth=3, activation="gelu", b_std=0.1)),
    ((1, 7), 0.1, KernelSpec(kind="ntk", activation="erf")),
])  # fmt: skip
def test_rank_one_leave_one_out_equals_the_direct_solve(classes, sigma2, spec):
    rows, labels, num_classes = _digits(classes, 70)
    kernel, y = kernel_matrix(rows, rows, spec), centred_one_hot(labels, num_classes)
    factor = factorise(kernel, y, sigma2)
    records = [0, 5, 33, 69]
    kl, mean = self_lood(factor, records)
    queries = torch.randn(
        3, rows.shape[1], dtype=torch.float64, generator=torch.Generator().manual_seed(1)
    )
    queries = torch.cat([queries, rows[[5, 12]]])
    kernel_qf, kernel_qq = kernel_matrix(queries, rows, spec), kernel_matrix(queries, queries, spec)
    kl_q, mean_q = query_lood(factor, kernel_qf, kernel_qq, records)
    for position, record in enumerate(records):
        at_record = direct_lood(
            kernel,
            kernel[record : record + 1],
            kernel[record : record + 1, record : record + 1],
            y,
            record,
            sigma2,
        )
        at_queries = direct_lood(kernel, kernel_qf, kernel_qq, y, record, sigma2)
        assert float(kl[position]) == pytest.approx(at_record[0], rel=1e-8)
        assert float(mean[position]) == pytest.approx(at_record[1], rel=1e-8)
        assert float(kl_q[position]) == pytest.approx(at_queries[0], rel=1e-8)
        assert float(mean_q[position]) == pytest.approx(at_queries[1], rel=1e-8)


def test_precision_diagonal_is_the_diagonal_of_the_inverse():
    rows, labels, _ = _digits((0, 1), 40)
    kernel = kernel_matrix(rows, rows, KernelSpec())
    factor = factorise(kernel, centred_one_hot(labels, 2), 0.2)
    inverse = torch.linalg.inv(kernel + 0.2 * torch.eye(40, dtype=torch.float64))
    torch.testing.assert_close(
        precision_diagonal(factor, [3, 0, 39]), inverse.diagonal()[[3, 0, 39]], rtol=1e-10, atol=0
    )


def test_a_record_duplicated_in_d_leaks_less_than_a_fresh_one():
    rows, labels, _ = _digits((0, 1), 60)
    spec = KernelSpec()
    for record in (0, 17, 42):
        duplicated_rows = torch.cat([rows, rows[record : record + 1]])
        duplicated_labels = np.append(labels, labels[record])
        fresh = self_lood(
            factorise(kernel_matrix(rows, rows, spec), centred_one_hot(labels, 2), 0.05), [record]
        )
        kernel = kernel_matrix(duplicated_rows, duplicated_rows, spec)
        # leave the copy out: D still holds the record once
        again = self_lood(
            factorise(kernel, centred_one_hot(duplicated_labels, 2), 0.05), [len(rows)]
        )
        assert float(again[0][0]) < float(fresh[0][0])
        assert float(again[1][0]) < float(fresh[1][0])


def test_gaussian_kl_known_answers():
    f64 = {"dtype": torch.float64}
    mean0, mean1 = torch.tensor([[0.0, 1.0]], **f64), torch.tensor([[1.0, -1.0]], **f64)
    cov0, cov1 = torch.tensor([[2.0]], **f64), torch.tensor([[1.0]], **f64)
    # per column: (log(1/2) + 2 - 1 + d^2) / 2, d = 1 and 2
    expected = sum((np.log(0.5) + 2 - 1 + d**2) / 2 for d in (1.0, 2.0))
    assert gaussian_kl(mean0, cov0, mean1, cov1) == pytest.approx(expected, rel=1e-12)
    assert gaussian_kl(mean0, cov0, mean0, cov0) == pytest.approx(0.0, abs=1e-12)


def test_lood_is_non_negative_and_sigma2_must_be_positive():
    rows, labels, _ = _digits((0, 1), 50)
    kernel = kernel_matrix(rows, rows, KernelSpec())
    kl, mean = self_lood(factorise(kernel, centred_one_hot(labels, 2), 0.05), range(50))
    assert (kl >= 0).all() and (mean >= 0).all()
    for bad in (0.0, -1.0):
        with pytest.raises(InputError, match="sigma2 must be > 0"):
            factorise(kernel, centred_one_hot(labels, 2), bad)
