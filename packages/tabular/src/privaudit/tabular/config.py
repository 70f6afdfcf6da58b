"""The audit's configuration: one frozen dataclass with working defaults, loadable from YAML."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from privaudit.core.config import load_yaml_config
from privaudit.core.errors import InputError

# A user model is a torch state dict (needs an architecture spec), a skops-saved estimator (data,
# not code), or a joblib/pickle-saved estimator (code that runs on load: trusted files only).
TORCH_SUFFIXES = (".pt", ".pth")
SKOPS_SUFFIXES = (".skops",)
SKLEARN_SUFFIXES = SKOPS_SUFFIXES + (".joblib", ".pkl")

TARGET_KINDS = ("mlp", "overfit", "dp")


@dataclass(frozen=True)
class TabularAuditConfig:
    """Everything that decides an audit's result; the defaults audit an MLP on UCI Adult."""

    seed: int = 0
    out_dir: str = "runs/tabular-adult"
    cache_dir: str | None = None  # where trained stages are kept; default <out_dir>/cache
    # data: None means the embedded UCI Adult table
    data: str | None = None
    label: str = "income"
    non_members_data: str | None = None  # real non-members for a user model (ground truth)
    generator_rows: int = 3000
    audit_members: int = 4000
    non_members: int = 4000
    min_rows: int = 300
    # target: trained here (mlp / overfit / dp) unless `model` names the user's checkpoint
    target: str = "mlp"
    model: str | None = None
    model_spec: str | None = None
    hidden: tuple[int, ...] = (128, 128)
    epochs: int = 15
    overfit_hidden: tuple[int, ...] = (512, 512, 512)
    overfit_epochs: int = 150
    lr: float = 1e-3
    batch_size: int = 128
    epsilon: float = 1.0
    delta: float = 1e-5
    max_grad_norm: float = 1.0
    # DP-SGD learns from noisy clipped gradients: larger batches and steps than the normal target
    dp_lr: float = 5e-3
    dp_batch_size: int = 512
    # generator (CTGAN) and helper
    ctgan_epochs: int = 100
    ctgan_batch_size: int = 500
    helper_epochs: int = 15
    # baseline / MIA classifiers (HistGradientBoosting) on a real/synthetic mix
    classifier_iterations: int = 200
    test_fraction: float = 0.5
    alpha: float = 0.05
    # tiny MLPs and CTGAN gain little from more threads and lose much when the cores are shared
    torch_threads: int = 1

    def __post_init__(self):
        def need(ok: bool, field: str, what: str):
            if not ok:
                raise InputError(f"config field {field!r} {what} (got {getattr(self, field)!r}).")

        for name in ("hidden", "overfit_hidden"):
            object.__setattr__(self, name, _widths(getattr(self, name), name))
        need(self.target in TARGET_KINDS, "target", f"must be one of {', '.join(TARGET_KINDS)}")
        for name in ("generator_rows", "audit_members", "min_rows", "epochs", "overfit_epochs",
                     "batch_size", "dp_batch_size", "ctgan_epochs", "ctgan_batch_size", "helper_epochs", "classifier_iterations",
                     "torch_threads"):
            need(getattr(self, name) > 0, name, "must be positive")
        need(self.non_members >= 0, "non_members", "must be zero or positive")
        need(all(h > 0 for h in self.hidden) and self.hidden, "hidden", "must list positive widths")
        need(all(h > 0 for h in self.overfit_hidden) and self.overfit_hidden, "overfit_hidden", "must list positive widths")
        need(self.epsilon > 0, "epsilon", "must be positive")
        need(0 < self.delta < 1, "delta", "must be in (0, 1)")
        need(self.lr > 0, "lr", "must be positive")
        need(self.dp_lr > 0, "dp_lr", "must be positive")
        need(self.max_grad_norm > 0, "max_grad_norm", "must be positive")
        need(0 < self.test_fraction < 1, "test_fraction", "must be in (0, 1)")
        need(0 < self.alpha < 1, "alpha", "must be in (0, 1)")
        need(self.model_spec is None or self.model is not None, "model_spec", "needs `model` too")
        torch_model = self.model is not None and Path(self.model).suffix.lower() in TORCH_SUFFIXES
        need(not torch_model or self.model_spec is not None, "model_spec",
             "is required for a torch checkpoint: pass --model-spec, a YAML file like 'hidden: [64, 64]'")

    def replace(self, **changes) -> TabularAuditConfig:
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _widths(value, field: str) -> tuple[int, ...]:
    """Hidden layer widths from a list or a comma-separated string such as "128,128"."""
    items = value.split(",") if isinstance(value, str) else value
    try:
        return tuple(int(h) for h in items)
    except (TypeError, ValueError):
        raise InputError(f"config field {field!r} must list hidden widths such as [128, 128] (got {value!r}).") from None


def load_config(path: str | Path) -> TabularAuditConfig:
    """A config from a YAML mapping of field names; unknown fields are an InputError."""
    return load_yaml_config(TabularAuditConfig, path)
