"""Membership inference attacks: each turns signals into one score per audit example (higher =
more likely a member). Registered by name in ATTACKS."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar

import numpy as np
from privaudit.attacks.registry import Registry
from privaudit.attacks.signals import Signals
from privaudit.core.errors import InputError
from scipy.special import log_ndtr


@dataclass(frozen=True)
class AttackInputs:
    """Signals of the N audit examples and Z population examples under the target and R references."""

    target: Signals  # [N, Q]
    references: Signals | None = None  # [R, N, Q]
    reference_in: np.ndarray | None = None  # [R, N] bool: audit example n trained reference r
    population: Signals | None = None  # [Z, Q] population examples z under the target
    reference_population: Signals | None = None  # [R, Z, Q]


class Attack:
    """Base: a frozen dataclass of parameters with `score(inputs) -> [N]`."""

    name: ClassVar[str]
    needs_references: ClassVar[bool] = False
    needs_population: ClassVar[bool] = False

    def score(self, inputs: AttackInputs) -> np.ndarray:
        raise NotImplementedError

    def check(self, inputs: AttackInputs) -> None:
        if self.needs_references and (inputs.references is None or inputs.reference_in is None):
            raise InputError(
                f"attack {self.name!r} needs reference models and their membership matrix"
            )
        if self.needs_population and inputs.population is None:
            raise InputError(f"attack {self.name!r} needs population examples")


ATTACKS: Registry[Attack] = Registry("attack")


def build_attack(name: str, **params) -> Attack:
    """The attack registered as `name` with parameters `params`; unknown parameters are input errors."""
    cls = ATTACKS.get(name)
    known = {field.name for field in fields(cls)}
    unknown = sorted(set(params) - known)
    if unknown:
        raise InputError(
            f"attack {name!r} has no parameter {unknown[0]!r}; known: {', '.join(sorted(known)) or 'none'}"
        )
    return cls(**params)


def select_references(
    reference_in: np.ndarray, count: int | None, online: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Masks [R, N] of the references each example uses: offline the first `count` OUT models,
    online the first count/2 IN and count/2 OUT models (all of them when count is None)."""
    reference_in = np.asarray(reference_in, dtype=bool)
    out = ~reference_in
    if count is None:
        return (reference_in if online else np.zeros_like(reference_in)), out
    per_side = count // 2 if online else count
    first = lambda mask: mask & (np.cumsum(mask, axis=0) <= per_side)  # noqa: E731
    return (first(reference_in) if online else np.zeros_like(reference_in)), first(out)


def _masked_mean(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean over the reference axis of values [R, N, ...] where mask [R, N] holds."""
    weights = mask.reshape(mask.shape + (1,) * (values.ndim - 2)).astype(float)
    counts = weights.sum(axis=0)
    if np.any(counts == 0):
        raise InputError(
            "some audit examples have no reference model on one side of the in/out split"
        )
    return (values * weights).sum(axis=0) / counts


def _gaussian(
    values: np.ndarray, mask: np.ndarray, fixed_variance: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Per-example (and per-query) mean and std of values [R, N, Q] over the masked references;
    with fixed_variance one std of all masked observations, shared by every example (as in the
    LiRA reference code), which works even with one reference per side."""
    mean = _masked_mean(values, mask)
    weights = np.broadcast_to(mask[..., None], values.shape).astype(float)
    if fixed_variance:
        overall = (values * weights).sum() / weights.sum()
        std = np.full_like(mean, np.sqrt(((values - overall) ** 2 * weights).sum() / weights.sum()))
    else:
        counts = weights.sum(axis=0)
        if np.any(counts < 2):
            raise InputError(
                "per-example variances need two reference models per side; set fixed_variance"
            )
        std = np.sqrt(((values - mean) ** 2 * weights).sum(axis=0) / counts)
    return mean, np.maximum(std, 1e-12)


def _log_normal_pdf(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    return -0.5 * ((x - mean) / std) ** 2 - np.log(std) - 0.5 * np.log(2 * np.pi)


def _fraction_below(values: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """For each threshold t, the fraction of `values` strictly below t."""
    return np.searchsorted(np.sort(values), thresholds, side="left") / len(values)


@ATTACKS.register("loss")
@dataclass(frozen=True)
class LossAttack(Attack):
    """Yeom et al. 2018: a low loss means a member."""

    name: ClassVar[str] = "loss"

    def score(self, inputs: AttackInputs) -> np.ndarray:
        return -inputs.target.loss.mean(axis=-1)


@ATTACKS.register("population")
@dataclass(frozen=True)
class PopulationAttack(Attack):
    """Ye et al. 2022: the fraction of population examples whose target loss is higher, so a
    threshold on the score is a threshold at a chosen population false-positive rate."""

    name: ClassVar[str] = "population"
    needs_population: ClassVar[bool] = True

    def score(self, inputs: AttackInputs) -> np.ndarray:
        self.check(inputs)
        population_loss = inputs.population.loss.mean(axis=-1)
        return 1.0 - _fraction_below(population_loss, inputs.target.loss.mean(axis=-1))


@ATTACKS.register("lira_online")
@dataclass(frozen=True)
class LiraOnline(Attack):
    """Carlini et al. 2022: log N(c; mu_in, s_in) - log N(c; mu_out, s_out) of the logit-scaled
    confidence c, Gaussians fitted per example and query, averaged over queries."""

    name: ClassVar[str] = "lira_online"
    needs_references: ClassVar[bool] = True
    fixed_variance: bool = False
    references: int | None = None

    def score(self, inputs: AttackInputs) -> np.ndarray:
        self.check(inputs)
        mask_in, mask_out = select_references(inputs.reference_in, self.references, online=True)
        values, observed = inputs.references.confidence, inputs.target.confidence
        mean_in, std_in = _gaussian(values, mask_in, self.fixed_variance)
        mean_out, std_out = _gaussian(values, mask_out, self.fixed_variance)
        ratio = _log_normal_pdf(observed, mean_in, std_in) - _log_normal_pdf(
            observed, mean_out, std_out
        )
        return ratio.mean(axis=-1)


@ATTACKS.register("lira_offline")
@dataclass(frozen=True)
class LiraOffline(Attack):
    """Carlini et al. 2022, offline: one-sided test against the OUT Gaussian only,
    log Pr[Z < c] for Z ~ N(mu_out, s_out), averaged over queries."""

    name: ClassVar[str] = "lira_offline"
    needs_references: ClassVar[bool] = True
    fixed_variance: bool = False
    references: int | None = None

    def score(self, inputs: AttackInputs) -> np.ndarray:
        self.check(inputs)
        _, mask_out = select_references(inputs.reference_in, self.references, online=False)
        mean_out, std_out = _gaussian(inputs.references.confidence, mask_out, self.fixed_variance)
        return log_ndtr((inputs.target.confidence - mean_out) / std_out).mean(axis=-1)


@dataclass(frozen=True)
class _Rmia(Attack):
    """Zarifzadeh et al. 2024: the fraction of population examples z whose likelihood ratio
    [p(x|target)/p(x)] / [p(z|target)/p(z)] exceeds gamma; p(.) averages reference models."""

    needs_references: ClassVar[bool] = True
    needs_population: ClassVar[bool] = True
    online: ClassVar[bool]
    gamma: float = 1.0
    references: int | None = None

    def __post_init__(self):
        if self.gamma <= 0:
            raise InputError(f"attack {self.name!r}: gamma must be > 0, got {self.gamma}")
        if self.references is not None and self.references < (2 if self.online else 1):
            raise InputError(
                f"attack {self.name!r}: references must be >= {2 if self.online else 1}"
            )

    def marginal(self, reference_mean: np.ndarray) -> np.ndarray:
        """p(x) from the mean probability over the chosen references."""
        return reference_mean

    def score(self, inputs: AttackInputs) -> np.ndarray:
        self.check(inputs)
        if inputs.reference_population is None:
            raise InputError(
                f"attack {self.name!r} needs the population examples' reference signals"
            )
        mask_in, mask_out = select_references(
            inputs.reference_in, self.references, online=self.online
        )
        reference_x = inputs.references.probability.mean(axis=-1)  # [R, N]
        ratio_x = inputs.target.probability.mean(axis=-1) / self.marginal(
            _masked_mean(reference_x, mask_in | mask_out)
        )
        # Population examples trained no reference model: the first references stand in for p(z).
        reference_z = inputs.reference_population.probability.mean(axis=-1)  # [R, Z]
        used = (
            len(reference_z) if self.references is None else min(self.references, len(reference_z))
        )
        ratio_z = inputs.population.probability.mean(axis=-1) / self.marginal(
            reference_z[:used].mean(axis=0)
        )
        # ratio_x / ratio_z > gamma  <=>  ratio_z < ratio_x / gamma
        return _fraction_below(ratio_z, ratio_x / self.gamma)


@ATTACKS.register("rmia_online")
@dataclass(frozen=True)
class RmiaOnline(_Rmia):
    """RMIA with p(x) the mean over IN and OUT reference models."""

    name: ClassVar[str] = "rmia_online"
    online: ClassVar[bool] = True


@ATTACKS.register("rmia_offline")
@dataclass(frozen=True)
class RmiaOffline(_Rmia):
    """RMIA from OUT models only: p(x) = ((1 + a) p_out(x) + (1 - a)) / 2 approximates the
    IN/OUT average (the interpolation parameter a is tuned per dataset; 0.3 for CIFAR-10)."""

    name: ClassVar[str] = "rmia_offline"
    online: ClassVar[bool] = False
    a: float = 0.3

    def __post_init__(self):
        super().__post_init__()
        if not 0 <= self.a <= 1:
            raise InputError(f"attack 'rmia_offline': a must be in [0, 1], got {self.a}")

    def marginal(self, reference_mean: np.ndarray) -> np.ndarray:
        return ((1 + self.a) * reference_mean + (1 - self.a)) / 2
