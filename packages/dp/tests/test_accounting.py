"""Our accounting equals Opacus' own analysis for the same (sigma, q, steps, delta)."""

import pytest
from opacus.accountants import PRVAccountant
from opacus.accountants.analysis import rdp as rdp_analysis
from opacus.accountants.rdp import RDPAccountant
from privaudit.dp import DPError
from privaudit.dp.accounting import epsilon_spent, noise_for_epsilon


@pytest.mark.parametrize(
    "sigma, q, steps, delta",
    [(1.0, 0.01, 1000, 1e-5), (0.8, 0.05, 300, 1e-6), (2.5, 0.2, 50, 1e-5)],
)
def test_rdp_epsilon_equals_opacus_analysis(sigma, q, steps, delta):
    orders = RDPAccountant.DEFAULT_ALPHAS
    rdp = rdp_analysis.compute_rdp(q=q, noise_multiplier=sigma, steps=steps, orders=orders)
    want, _ = rdp_analysis.get_privacy_spent(orders=orders, rdp=rdp, delta=delta)
    assert epsilon_spent(sigma, q, steps, delta, "rdp") == pytest.approx(want, rel=1e-12)


def test_prv_epsilon_equals_opacus_stepping():
    accountant = PRVAccountant()
    for _ in range(200):
        accountant.step(noise_multiplier=1.1, sample_rate=0.02)
    assert epsilon_spent(1.1, 0.02, 200, 1e-5, "prv") == pytest.approx(
        accountant.get_epsilon(1e-5), rel=1e-9
    )


@pytest.mark.parametrize("accountant", ["rdp", "prv"])
def test_noise_for_epsilon_reaches_the_target(accountant):
    sigma = noise_for_epsilon(2.0, 0.02, 500, 1e-5, accountant)
    epsilon = epsilon_spent(sigma, 0.02, 500, 1e-5, accountant)
    assert 1.95 <= epsilon <= 2.0
    assert epsilon_spent(sigma * 0.97, 0.02, 500, 1e-5, accountant) > epsilon


def test_bad_privacy_parameters_raise():
    with pytest.raises(DPError, match="sampling rate"):
        epsilon_spent(1.0, 1.5, 10, 1e-5)
    with pytest.raises(DPError, match="delta"):
        noise_for_epsilon(1.0, 0.1, 10, 0.0)
