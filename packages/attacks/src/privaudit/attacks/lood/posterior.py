"""GP posteriors on D and D' = D plus one record, and their leave-one-out distinguishability.

On a training set F with kernel K, noise sigma^2 and centred one-hot labels Y [n, C], the
posterior at queries Q is N(mu_F, Sigma_F) per class with mu_F = K_QF P Y and
Sigma_F = K_QQ - K_QF P K_FQ, where P = (K_FF + sigma^2 I)^-1. Leaving record i out gives the
block inverse (K_{-i} + sigma^2 I)^-1 = P - p_i p_i^T / P_ii (p_i the i-th column of P, padded
with zeros at i), so with v_i = K_QF p_i and alpha_i = (P Y)_i / P_ii:

    mu_F - mu_{-i} = v_i alpha_i^T,   Sigma_{-i} = Sigma_F + v_i v_i^T / P_ii.

With s_i = v_i^T Sigma_F^-1 v_i the LOOD of record i is then (D = F without i, D' = F)

    KL(post_D || post_D') = (C (s_i / P_ii - log(1 + s_i / P_ii)) + |alpha_i|^2 s_i) / 2
    mean distance         = |mu_D - mu_D'|^2 = |alpha_i|^2 |v_i|^2

(the authors' code logs the mean distance as half the mean over the q x C entries; same ranking).
One Cholesky factor of K_FF + sigma^2 I serves every record: no per-record solve. At the record
itself (Q = {x_i}) v_i = 1 - sigma^2 P_ii and Sigma_F = sigma^2 v_i, so only P_ii and (P Y)_i are
needed. `direct_lood` is the per-record fresh solve the rank-one path replaces (tests, benchmark).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from privaudit.core.errors import InputError


def centred_one_hot(labels, num_classes: int) -> torch.Tensor:
    """One-hot labels minus 1/C (float64 [n, C]), as the authors centre them."""
    labels = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
    return torch.nn.functional.one_hot(labels, num_classes).to(torch.float64) - 1.0 / num_classes


@dataclass(frozen=True)
class Factorisation:
    """The Cholesky factor of K_FF + sigma^2 I and P Y, shared by every record's LOOD."""

    cholesky: torch.Tensor  # lower triangular [n, n]
    sigma2: float
    weights: torch.Tensor  # P Y [n, C]

    @property
    def num_classes(self) -> int:
        return self.weights.shape[1]


def factorise(kernel: torch.Tensor, labels: torch.Tensor, sigma2: float) -> Factorisation:
    """Factor K + sigma^2 I once (float64); labels are centred one-hot [n, C]."""
    if not sigma2 > 0:
        raise InputError(f"sigma2 must be > 0, got {sigma2}")
    regularised = kernel.clone()
    regularised.diagonal().add_(sigma2)
    cholesky, info = torch.linalg.cholesky_ex(regularised)
    del regularised
    if info.item() != 0:
        raise InputError(
            f"the kernel matrix plus sigma2 = {sigma2} is not positive definite; raise --sigma2"
        )
    return Factorisation(cholesky, float(sigma2), torch.cholesky_solve(labels, cholesky))


def precision_diagonal(factor: Factorisation, records) -> torch.Tensor:
    """P_ii for the given records: one triangular solve with their unit columns."""
    records = torch.as_tensor(np.asarray(records), dtype=torch.int64)
    units = torch.zeros(len(factor.cholesky), len(records), dtype=torch.float64)
    units[records, torch.arange(len(records))] = 1.0
    # P_ii = |L^-1 e_i|^2
    half = torch.linalg.solve_triangular(factor.cholesky, units, upper=False)
    return (half * half).sum(dim=0)


def _x_minus_log1p(x: torch.Tensor) -> torch.Tensor:
    """x - log(1 + x) without cancellation for small x (series below 1e-3)."""
    series = x * x * (0.5 - x * (1 / 3 - x * (0.25 - x / 5)))
    return torch.where(x < 1e-3, series, x - torch.log1p(x.clamp_min(1e-3)))


def _lood(s, norms_v2, p, alpha2, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    kl = 0.5 * (num_classes * _x_minus_log1p(s / p) + alpha2 * s)
    return kl, alpha2 * norms_v2


def self_lood(factor: Factorisation, records) -> tuple[torch.Tensor, torch.Tensor]:
    """(KL LOOD, mean-distance LOOD) [m] of each record, queried at the record itself."""
    records = torch.as_tensor(np.asarray(records), dtype=torch.int64)
    p = precision_diagonal(factor, records)
    alpha2 = ((factor.weights[records] / p[:, None]) ** 2).sum(dim=1)
    v = 1 - factor.sigma2 * p
    return _lood(v / factor.sigma2, v * v, p, alpha2, factor.num_classes)


def query_lood(
    factor: Factorisation, kernel_qf: torch.Tensor, kernel_qq: torch.Tensor, records,
    p: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """(KL LOOD, mean-distance LOOD) [m] of each record at the query set Q (kernel_qf [q, n],
    kernel_qq [q, q]); differentiable in both kernels. p: `precision_diagonal` of the records."""
    records = torch.as_tensor(np.asarray(records), dtype=torch.int64)
    p = precision_diagonal(factor, records) if p is None else p
    weights = torch.cholesky_solve(kernel_qf.T, factor.cholesky).T  # K_QF P  [q, n]
    sigma_f = kernel_qq - weights @ kernel_qf.T
    sigma_f = (sigma_f + sigma_f.T) / 2
    v = weights[:, records]  # [q, m]
    s = (v * torch.linalg.solve(sigma_f, v)).sum(dim=0)
    alpha2 = ((factor.weights[records] / p[:, None]) ** 2).sum(dim=1)
    return _lood(s, (v * v).sum(dim=0), p, alpha2, factor.num_classes)


def gp_posterior(kernel_dd, kernel_qd, kernel_qq, labels, sigma2: float):
    """Posterior mean [q, C] and covariance [q, q] on D by a fresh Cholesky solve."""
    regularised = kernel_dd + sigma2 * torch.eye(len(kernel_dd), dtype=kernel_dd.dtype)
    cholesky = torch.linalg.cholesky(regularised)
    mean = kernel_qd @ torch.cholesky_solve(labels, cholesky)
    cov = kernel_qq - kernel_qd @ torch.cholesky_solve(kernel_qd.T, cholesky)
    return mean, (cov + cov.T) / 2


def gaussian_kl(mean0, cov0, mean1, cov1) -> float:
    """KL(N(mean0, cov0) || N(mean1, cov1)) summed over the C independent output columns."""
    num_queries, num_classes = mean0.shape
    diff = mean1 - mean0
    logdet0, logdet1 = torch.linalg.slogdet(cov0)[1], torch.linalg.slogdet(cov1)[1]
    trace = torch.trace(torch.linalg.solve(cov1, cov0))
    quad = (diff * torch.linalg.solve(cov1, diff)).sum()
    return float(0.5 * (num_classes * (logdet1 - logdet0 + trace - num_queries) + quad))


def direct_lood(kernel_ff, kernel_qf, kernel_qq, labels, record: int, sigma2: float):
    """(KL, mean distance) of one record by two fresh solves: on F and on F without the record."""
    keep = torch.ones(len(kernel_ff), dtype=torch.bool)
    keep[record] = False
    mean_in, cov_in = gp_posterior(kernel_ff, kernel_qf, kernel_qq, labels, sigma2)
    mean_out, cov_out = gp_posterior(
        kernel_ff[keep][:, keep], kernel_qf[:, keep], kernel_qq, labels[keep], sigma2
    )
    return gaussian_kl(mean_out, cov_out, mean_in, cov_in), float(((mean_in - mean_out) ** 2).sum())
