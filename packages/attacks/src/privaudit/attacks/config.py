"""Run configs: frozen dataclasses with working defaults, validated on construction, from YAML."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from privaudit.attacks.attacks import ATTACKS
from privaudit.attacks.models import ModelSpec
from privaudit.attacks.training import TrainConfig
from privaudit.core.errors import InputError


@dataclass(frozen=True)
class DataConfig:
    """Audit points (in the target with probability 1/2) and population points (in no model)."""

    dataset: str = "mnist"
    audit_size: int = 1000
    population_size: int = 500
    mirror: bool = False  # digits are not mirror-symmetric
    shift: int = 1

    def __post_init__(self):
        if self.audit_size < 2 or self.audit_size % 2:
            raise ValueError(f"data.audit_size must be an even number >= 2, got {self.audit_size}")
        if self.population_size < 1 or self.shift < 0:
            raise ValueError("data.population_size must be >= 1 and data.shift >= 0")


@dataclass(frozen=True)
class ReferencesConfig:
    """Reference models: trained here (count, batched groups) or loaded from checkpoints."""

    count: int = 16
    batched: bool = True
    models_per_group: int = 16
    checkpoint_dir: str | None = None
    membership: str | None = None

    def __post_init__(self):
        if self.count < 2 or self.count % 2 or self.models_per_group < 1:
            raise ValueError(f"references.count must be even and >= 2, got {self.count}")
        if (self.checkpoint_dir is None) != (self.membership is None):
            raise ValueError("references.checkpoint_dir and references.membership go together")


@dataclass(frozen=True)
class AttackSpec:
    """One attack to run: a registered name, its parameters, and the score column's label."""

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)
    label: str | None = None

    def __post_init__(self):
        ATTACKS.get(self.name)

    @property
    def column(self) -> str:
        return f"mia_{self.label or self.name}_pred"

    @classmethod
    def from_value(cls, item, path: str) -> AttackSpec:
        """An attack name, or a mapping with a 'name', an optional 'label' and its parameters."""
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, Mapping) or "name" not in item:
            raise InputError(
                f"config field {path!r} must be an attack name or a mapping with a 'name'."
            )
        params = {k: v for k, v in item.items() if k not in ("name", "label")}
        return cls(item["name"], params, item.get("label"))


ALL_ATTACKS = tuple(
    AttackSpec(name)
    for name in ("loss", "population", "lira_online", "lira_offline", "rmia_online", "rmia_offline")
)


@dataclass(frozen=True)
class MiaConfig:
    seed: int = 0
    data: DataConfig = DataConfig()
    model: ModelSpec = ModelSpec(kind="cnn", width=8)
    training: TrainConfig = TrainConfig(epochs=8, batch_size=64, lr=0.05)
    references: ReferencesConfig = ReferencesConfig()
    attacks: tuple[AttackSpec, ...] = ALL_ATTACKS

    def __post_init__(self):
        columns = [spec.column for spec in self.attacks]
        if not columns or len(set(columns)) != len(columns):
            raise ValueError("attacks must be a non-empty list whose labels are distinct")


@dataclass(frozen=True)
class CanaryConfig:
    """m canaries, each in the training run with probability 1/2."""

    count: int = 500
    kind: str = "mislabelled"

    def __post_init__(self):
        if self.count < 2 or self.kind not in ("natural", "mislabelled"):
            raise ValueError(
                f"canaries need count >= 2 and kind 'natural' or 'mislabelled', got {self.count}, {self.kind!r}"
            )


@dataclass(frozen=True)
class DpConfig:
    """DP-SGD through privaudit-dp at a target epsilon; off means an ordinary training run."""

    enabled: bool = False
    target_epsilon: float = 2.0
    delta: float = 1e-5
    max_grad_norm: float = 1.0
    reproducible_noise: bool = False  # noise and sampling from the seed: reproducible, NOT private

    def __post_init__(self):
        if self.target_epsilon <= 0 or not 0 < self.delta < 1 or self.max_grad_norm <= 0:
            raise ValueError("dp needs target_epsilon > 0, 0 < delta < 1 and max_grad_norm > 0")


@dataclass(frozen=True)
class OneRunConfig:
    seed: int = 0
    dataset: str = "mnist"
    train_size: int = 1000
    canaries: CanaryConfig = CanaryConfig()
    model: ModelSpec = ModelSpec(kind="cnn", width=8)
    training: TrainConfig = TrainConfig(epochs=15, batch_size=64, lr=0.05)
    dp: DpConfig = DpConfig()
    alpha: float = 0.05

    def __post_init__(self):
        if self.train_size < 1 or not 0 < self.alpha < 1:
            raise ValueError("train_size must be >= 1 and alpha in (0, 1)")
