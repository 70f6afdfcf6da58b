"""Privacy accounting with Opacus' accountants (RDP, PRV)."""

import warnings

from privaudit.dp.errors import DPError

ACCOUNTANTS = ("rdp", "prv")


def make_accountant(kind: str):
    """A fresh Opacus accountant; `accountant.get_epsilon(delta)` gives the epsilon spent so far."""
    if kind not in ACCOUNTANTS:
        raise DPError(f"accountant must be one of {', '.join(ACCOUNTANTS)}, got {kind!r}.")
    # opacus imports slowly and only training needs it
    from opacus.accountants import PRVAccountant, RDPAccountant

    return {"rdp": RDPAccountant, "prv": PRVAccountant}[kind]()


def check_privacy_parameters(
    sample_rate: float, steps: int | None = None, delta: float | None = None
) -> None:
    if not 0 < sample_rate <= 1:
        raise DPError(f"the sampling rate must be in (0, 1], got {sample_rate}.")
    if steps is not None and steps < 1:
        raise DPError(f"the number of steps must be at least 1, got {steps}.")
    if delta is not None and not 0 < delta < 1:
        raise DPError(f"delta must be in (0, 1), got {delta}.")


def epsilon_spent(
    noise_multiplier: float, sample_rate: float, steps: int, delta: float, accountant: str = "rdp"
) -> float:
    """Epsilon of `steps` Poisson-subsampled Gaussian steps at (noise_multiplier, sample_rate)."""
    check_privacy_parameters(sample_rate, steps, delta)
    if not noise_multiplier > 0:
        raise DPError(f"noise_multiplier must be positive, got {noise_multiplier}.")
    acc = make_accountant(accountant)
    acc.history = [(noise_multiplier, sample_rate, steps)]
    return float(acc.get_epsilon(delta))


def noise_for_epsilon(
    target_epsilon: float, sample_rate: float, steps: int, delta: float, accountant: str = "rdp"
) -> float:
    """The smallest noise multiplier (to Opacus' search tolerance) that keeps epsilon <= target."""
    check_privacy_parameters(sample_rate, steps, delta)
    if not target_epsilon > 0:
        raise DPError(f"target_epsilon must be positive, got {target_epsilon}.")
    make_accountant(accountant)
    from opacus.accountants.utils import get_noise_multiplier

    try:
        with warnings.catch_warnings():
            # the search passes through tiny noise levels whose best RDP order is the largest one
            warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
            return float(
                get_noise_multiplier(
                    target_epsilon=target_epsilon,
                    target_delta=delta,
                    sample_rate=sample_rate,
                    steps=steps,
                    accountant=accountant,
                )
            )
    except ValueError as exc:
        raise DPError(
            f"no noise level reaches epsilon {target_epsilon} at delta {delta} in {steps} steps ({exc})."
        ) from exc
