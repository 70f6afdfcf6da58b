"""The audit's configuration: one frozen dataclass with working defaults, loadable from YAML."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from privaudit.attacks.panoramia.cli import check_mia_reference
from privaudit.core import config as cfg
from privaudit.core.config import Config, setting

# A user model is a torch state dict (needs an architecture spec), a skops-saved estimator (data,
# not code), or a joblib/pickle-saved estimator (code that runs on load: trusted files only).
TORCH_SUFFIXES = (".pt", ".pth")
SKOPS_SUFFIXES = (".skops",)
SKLEARN_SUFFIXES = SKOPS_SUFFIXES + (".joblib", ".pkl")

TARGET_KINDS = ("mlp", "overfit", "dp")
SYNTHESIZER_KINDS = ("ctgan", "tvae")  # sdv's CTGAN and TVAE (privaudit.tabular.generator)


WIDTHS = cfg.Check(
    lambda v: isinstance(v, tuple) and len(v) > 0 and all(isinstance(h, int) and h > 0 for h in v),
    "must list positive widths such as [128, 128]",
)


UNIT_FROM_ZERO = cfg.Check(
    lambda v: isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v < 1,
    "must be in [0, 1)",
)


@dataclass(frozen=True)
class TabularAuditConfig(Config):
    """Everything that decides an audit's result; the defaults audit an MLP on UCI Adult."""

    seed: int = 0
    out_dir: str = "runs/tabular-adult"
    cache_dir: str | None = None  # where trained stages are kept; default <out_dir>/cache
    # data: None means the embedded UCI Adult table
    data: str | None = None
    label: str = "income"
    non_members_data: str | None = None  # real non-members for a user model (ground truth)
    generator_rows: int = setting(3000, check=cfg.POSITIVE_INT)
    audit_members: int = setting(4000, check=cfg.POSITIVE_INT)
    non_members: int = setting(4000, check=cfg.NON_NEGATIVE_INT)
    min_rows: int = setting(300, check=cfg.POSITIVE_INT)
    # target: trained here (mlp / overfit / dp) unless `model` names the user's checkpoint
    target: str = setting("mlp", check=cfg.one_of(*TARGET_KINDS))
    model: str | None = None
    model_spec: str | None = None
    hidden: tuple[int, ...] = setting((128, 128), check=WIDTHS)
    epochs: int = setting(15, check=cfg.POSITIVE_INT)
    overfit_hidden: tuple[int, ...] = setting((512, 512, 512), check=WIDTHS)
    overfit_epochs: int = setting(150, check=cfg.POSITIVE_INT)
    lr: float = setting(1e-3, check=cfg.POSITIVE)
    batch_size: int = setting(128, check=cfg.POSITIVE_INT)
    # the target trained here: Adam's weight decay, and the fraction of its training labels replaced
    # by another class (a memorisation stress test; the audit and ground truth read the true labels)
    weight_decay: float = setting(0.0, check=cfg.NON_NEGATIVE)
    label_noise: float = setting(0.0, check=UNIT_FROM_ZERO)
    epsilon: float = setting(1.0, check=cfg.POSITIVE)
    delta: float = setting(1e-5, check=cfg.OPEN_UNIT)
    max_grad_norm: float = setting(1.0, check=cfg.POSITIVE)
    # DP-SGD learns from noisy clipped gradients: larger batches and steps than the normal target
    dp_lr: float = setting(5e-3, check=cfg.POSITIVE)
    dp_batch_size: int = setting(512, check=cfg.POSITIVE_INT)
    reproducible_noise: bool = (
        False  # DP noise from the seed: reproducible, NOT private (tests only)
    )
    # generator (an sdv synthesizer) and helper
    synthesizer: str = setting("ctgan", check=cfg.one_of(*SYNTHESIZER_KINDS))
    ctgan_epochs: int = setting(100, check=cfg.POSITIVE_INT)
    tvae_epochs: int = setting(300, check=cfg.POSITIVE_INT)
    synthesizer_batch_size: int = setting(500, check=cfg.POSITIVE_INT)
    # discriminator rejection sampling of the samples (privaudit.tabular.rejection): keep a sample
    # with probability min(1, r / M), M the density ratio's quantile at this level; 0 keeps all
    rejection_quantile: float = setting(0.99, check=UNIT_FROM_ZERO)
    helper_epochs: int = setting(15, check=cfg.POSITIVE_INT)
    # the baseline's helper: trained on "synthetic" examples, or on the "generator-split" members
    # with the target's recipe (see privaudit.attacks.panoramia.driver.PanoramiaSettings)
    helper_data: str = setting("synthetic", check=cfg.one_of("synthetic", "generator-split"))
    # baseline / MIA classifiers (HistGradientBoosting) on a real/synthetic mix
    classifier_iterations: int = setting(200, check=cfg.POSITIVE_INT)
    # what the MIA sees besides the record and the target's loss: also the helper's loss and the
    # log-ratio of the two ("helper": a reference model's calibration, so it needs helper_data
    # "generator-split"), or nothing ("none", the PANORAMIA paper's MIA)
    mia_reference: str = setting("none", check=cfg.one_of("helper", "none"))
    test_fraction: float = setting(0.5, check=cfg.OPEN_UNIT)
    alpha: float = setting(0.05, check=cfg.OPEN_UNIT)
    # tiny MLPs and CTGAN gain little from more threads and lose much when the cores are shared
    torch_threads: int = setting(1, check=cfg.POSITIVE_INT)

    def __post_init__(self):
        super().__post_init__()

        check_mia_reference(self)
        self.require(
            self.model_spec is None or self.model is not None, "model_spec", "needs `model` too"
        )
        torch_model = self.model is not None and Path(self.model).suffix.lower() in TORCH_SUFFIXES
        self.require(
            not torch_model or self.model_spec is not None,
            "model_spec",
            "is required for a torch checkpoint: pass --model-spec, a YAML file like 'hidden: [64, 64]'",
        )
        self.require(
            self.model is None or self.label_noise == 0,
            "label_noise",
            "applies only to a target trained here, not to `model`",
        )
