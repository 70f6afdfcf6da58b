"""The FC kernels against independent references: the arc-cosine closed form computed pair by
pair, two-dimensional Gauss-Hermite quadrature, and Monte-Carlo over finite-width networks."""

import math

import numpy as np
import pytest
import torch
from privaudit.attacks.lood import fc_kernel
from privaudit.attacks.models import FCSpec, build_model
from privaudit.core.errors import InputError
from scipy.special import erf
from scipy.stats import norm
from torch.func import functional_call, jacrev


def _inputs(n: int, d: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d))


def _arc_cosine_pair(x, y, depth, w_std, b_std) -> float:
    """Cho and Saul's degree-1 arc-cosine recursion for one pair, in plain floats."""
    kxx = w_std**2 * float(x @ x) / len(x) + b_std**2
    kyy = w_std**2 * float(y @ y) / len(x) + b_std**2
    kxy = w_std**2 * float(x @ y) / len(x) + b_std**2
    for _ in range(depth):
        theta = math.acos(max(-1.0, min(1.0, kxy / math.sqrt(kxx * kyy))))
        j = math.sin(theta) + (math.pi - theta) * math.cos(theta)
        kxy = w_std**2 * math.sqrt(kxx * kyy) * j / (2 * math.pi) + b_std**2
        kxx = w_std**2 * kxx / 2 + b_std**2
        kyy = w_std**2 * kyy / 2 + b_std**2
    return kxy


@pytest.mark.parametrize(
    ("depth", "w_std", "b_std"), [(1, math.sqrt(2), 0.0), (3, 1.3, 0.2), (5, math.sqrt(2), 0.1)]
)
def test_relu_nngp_matches_the_arc_cosine_closed_form(depth, w_std, b_std):
    x, y = _inputs(5, 7, 0), _inputs(4, 7, 1)
    kernel = fc_kernel(x, y, depth=depth, w_std=w_std, b_std=b_std)
    expected = np.array([[_arc_cosine_pair(a, b, depth, w_std, b_std) for b in y] for a in x])
    assert kernel.dtype == np.float64 and kernel.shape == (5, 4)
    np.testing.assert_allclose(kernel, expected, rtol=1e-10, atol=1e-12)


def _quadrature_expectation(f, g, a, b, c, points=100) -> float:
    """E[f(u) g(v)] for (u, v) ~ N(0, [[a, c], [c, b]]) by Gauss-Hermite quadrature."""
    z, w = np.polynomial.hermite_e.hermegauss(points)
    w = w / math.sqrt(2 * math.pi)
    chol = np.linalg.cholesky(np.array([[a, c], [c, b]]))
    z1, z2 = np.meshgrid(z, z, indexing="ij")
    u, v = chol[0, 0] * z1, chol[1, 0] * z1 + chol[1, 1] * z2
    return float((np.outer(w, w) * f(u) * g(v)).sum())


SMOOTH = {
    "erf": (erf, lambda x: 2 / math.sqrt(math.pi) * np.exp(-(x**2))),
    "gelu": (lambda x: x * norm.cdf(x), lambda x: norm.cdf(x) + x * norm.pdf(x)),
}


@pytest.mark.parametrize("activation", sorted(SMOOTH))
def test_gelu_and_erf_closed_forms_match_quadrature(activation):
    phi, dphi = SMOOTH[activation]
    w_std, b_std = 1.2, 0.3
    x = _inputs(4, 6, 2) * np.array([[0.5], [1.0], [1.5], [2.0]])
    nngp = fc_kernel(x, x, depth=1, w_std=w_std, b_std=b_std, activation=activation)
    ntk = fc_kernel(x, x, depth=1, w_std=w_std, b_std=b_std, activation=activation, kind="ntk")
    k0 = w_std**2 * x @ x.T / x.shape[1] + b_std**2
    for i in range(4):
        for j in range(4):
            a, b, c = k0[i, i], k0[j, j], k0[i, j]
            if i == j:  # a singular covariance: quadrature over one variable
                c = c * (1 - 1e-12)
            e_phi = _quadrature_expectation(phi, phi, a, b, c)
            e_dphi = _quadrature_expectation(dphi, dphi, a, b, c)
            assert nngp[i, j] == pytest.approx(w_std**2 * e_phi + b_std**2, rel=1e-8, abs=1e-10)
            expected_ntk = w_std**2 * e_phi + b_std**2 + w_std**2 * e_dphi * k0[i, j]
            assert ntk[i, j] == pytest.approx(expected_ntk, rel=1e-8, abs=1e-10)


def _network(activation: str, width: int, outputs: int, seed: int, depth: int = 2, dim: int = 6):
    spec = FCSpec(input_shape=(dim,), num_classes=outputs, width=width, depth=depth, activation=activation,
                  w_std=1.4, b_std=0.2)  # fmt: skip
    return build_model(spec, seed).double()


@pytest.mark.parametrize("activation", ["relu", "gelu", "erf"])
def test_nngp_matches_monte_carlo_over_random_networks(activation):
    x = torch.from_numpy(_inputs(4, 6, 3))
    # 256 outputs x 16 initialisations of width-512 networks: 4,096 draws of the output GP
    samples = []
    with torch.no_grad():
        for seed in range(16):
            samples.append(_network(activation, 512, 256, seed)(x))  # [4, 256]
    outputs = torch.cat(samples, dim=1).numpy()
    empirical = outputs @ outputs.T / outputs.shape[1]
    analytic = fc_kernel(x.numpy(), x.numpy(), depth=2, w_std=1.4, b_std=0.2, activation=activation)
    # loose: 16 networks leave a few per cent of sampling error; a wrong factor or term is far larger
    assert np.abs(empirical - analytic).max() < 0.1 * np.abs(analytic).max()


@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_ntk_matches_the_empirical_ntk_of_finite_networks(activation):
    x = torch.from_numpy(_inputs(3, 6, 4))
    total = np.zeros((3, 3))
    initialisations = 8
    for seed in range(initialisations):
        model = _network(activation, 1024, 2, seed)
        params = {name: p.detach() for name, p in model.named_parameters()}
        jacobian = jacrev(lambda p, model=model: functional_call(model, p, (x,))[:, 0])(params)
        flat = torch.cat([j.reshape(3, -1) for j in jacobian.values()], dim=1)
        total += (flat @ flat.T).numpy()
    empirical = total / initialisations
    analytic = fc_kernel(
        x.numpy(), x.numpy(), depth=2, w_std=1.4, b_std=0.2, activation=activation, kind="ntk"
    )
    assert np.abs(empirical - analytic).max() < 0.06 * np.abs(analytic).max()


def test_kernel_matrix_is_symmetric_positive_definite_and_blocked_rows_agree():
    x = _inputs(30, 10, 5)
    kernel = fc_kernel(x, x, depth=3, w_std=math.sqrt(2), b_std=0.1, activation="gelu")
    np.testing.assert_allclose(kernel, kernel.T, rtol=1e-12)
    assert np.linalg.eigvalsh(kernel).min() > 0
    np.testing.assert_allclose(fc_kernel(x[7:9], x, depth=3, w_std=math.sqrt(2), b_std=0.1, activation="gelu"),
                               kernel[7:9], rtol=1e-12)  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"depth": 0}, "depth must be an integer >= 1"), ({"activation": "tanh"}, "activation must be one of"),
     ({"kind": "cntk"}, "kind must be 'nngp' or 'ntk'"), ({"w_std": 0.0}, "w_std must be a positive")],
)  # fmt: skip
def test_bad_kernel_settings_are_input_errors(kwargs, message):
    settings = {"depth": 2, "w_std": 1.0, "b_std": 0.0, **kwargs}
    with pytest.raises(InputError, match=message):
        fc_kernel(_inputs(2, 3, 0), _inputs(2, 3, 1), **settings)
    with pytest.raises(InputError, match="finite"):
        fc_kernel(np.full((2, 3), np.nan), _inputs(2, 3, 1), depth=1, w_std=1.0, b_std=0.0)
