"""`audit-image invert`'s configuration: working defaults sized for minutes on 2 CPU cores (MNIST
digits 0-4 private, 5-9 public; a non-private target and DP targets at eps 8 and 1)."""

from __future__ import annotations

from dataclasses import dataclass

from privaudit.core import config as cfg
from privaudit.core.config import Config, setting
from privaudit.dp.devices import is_device_name
from privaudit.image.inversion.reconstruction import ReconstructionSettings
from privaudit.image.inversion.training import CganSettings
from privaudit.image.models import ARCHITECTURES

TARGET_ARCHITECTURES = tuple(a for a in ARCHITECTURES if a != "ccexam-mnist")
CLASS_LIST = cfg.Check(lambda v: isinstance(v, tuple) and all(cfg._is_int(k) and k >= 0 for k in v),
                       "must be a list of class numbers")  # fmt: skip
EPSILONS = cfg.Check(lambda v: isinstance(v, tuple) and all(cfg._is_number(e) and e > 0 for e in v),
                     "must be a list of positive epsilons")  # fmt: skip


@dataclass(frozen=True)
class InversionConfig(Config):
    seed: int = setting(
        0, check=cfg.NON_NEGATIVE_INT, doc="run seed; every role draws its own stream from it"
    )
    private: str = setting(
        "mnist", doc="'mnist' or 'digits' (embedded), or an image folder (one sub-folder per class)"
    )
    public: str | None = setting(
        None, doc="folder of public images (default: the other classes of the embedded data)"
    )
    private_classes: tuple[int, ...] = setting((0, 1, 2, 3, 4), check=CLASS_LIST,
                                               doc="classes of the embedded data that are private")  # fmt: skip
    test_fraction: float = setting(
        0.2, check=cfg.OPEN_UNIT, doc="private images held out to measure target accuracy"
    )
    model: str | None = setting(
        None, doc="your target: a state dict of --architecture (default: train targets here)"
    )
    architecture: str = setting(
        "cnn", check=cfg.one_of(*TARGET_ARCHITECTURES), doc="the target's architecture"
    )
    non_private: bool = setting(True, doc="attack a target trained without DP")
    epsilons: tuple[float, ...] = setting(
        (8.0, 1.0), check=EPSILONS, doc="also attack DP targets at these epsilons"
    )
    delta: float = setting(1e-5, check=cfg.OPEN_UNIT, doc="the DP targets' delta")
    target_epochs: int = setting(10, check=cfg.POSITIVE_INT, doc="epochs of the non-private target")
    dp_epochs: int = setting(15, check=cfg.POSITIVE_INT, doc="epochs of the DP targets")
    dp_batch_size: int = setting(
        256, check=cfg.POSITIVE_INT, doc="expected Poisson batch size of the DP targets"
    )
    dp_lr: float = setting(4e-3, check=cfg.POSITIVE, doc="DP targets' Adam learning rate")
    top_n: int = setting(
        200,
        check=cfg.POSITIVE_INT,
        doc="public images kept per class (the paper: 30 of 1000 classes)",
    )
    cgan: CganSettings = CganSettings()
    reconstruction: ReconstructionSettings = ReconstructionSettings()
    evaluation_epochs: int = setting(
        8, check=cfg.POSITIVE_INT, doc="epochs of the evaluation classifier"
    )
    grid_examples: int = setting(
        6, check=cfg.POSITIVE_INT, doc="private examples and reconstructions per class in the grid"
    )
    device: str = setting("auto", doc="auto, cpu, cuda or cuda:N")
    threads: int = setting(
        1, check=cfg.NON_NEGATIVE_INT, doc="torch CPU threads (0 keeps torch's default)"
    )
    out_dir: str = setting("runs/image-invert", doc="run directory (reused to resume)")

    def __post_init__(self):
        super().__post_init__()
        self.require(
            is_device_name(self.device), "device", "must be 'auto', 'cpu', 'cuda' or 'cuda:N'"
        )
        self.require(self.model is not None or self.non_private or bool(self.epsilons), "epsilons",
                     "must name a DP target when non_private is false")  # fmt: skip
        for name in ("steps", "batch_size", "discriminator_steps", "z_dim", "width"):
            self.require(cfg._is_int(getattr(self.cgan, name)) and getattr(self.cgan, name) > 0, "cgan",
                         f"needs a positive integer {name}")  # fmt: skip
        self.require(
            self.cgan.alpha >= 0 and self.cgan.lr > 0, "cgan", "needs alpha >= 0 and lr > 0"
        )
        r = self.reconstruction
        self.require(cfg._is_int(r.iterations) and r.iterations > 0 and cfg._is_int(r.starts) and r.starts > 0
                     and r.lr > 0, "reconstruction", "needs positive iterations, starts and lr")  # fmt: skip

    def targets(self) -> list[float | None]:
        """The targets to attack: None for non-private, else the DP epsilon (one None for a user model)."""
        if self.model is not None:
            return [None]
        return ([None] if self.non_private else []) + list(self.epsilons)
