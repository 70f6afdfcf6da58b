"""The image audit's configuration: one frozen dataclass with working defaults, loadable from YAML."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from privaudit.attacks.panoramia.cli import check_mia_reference
from privaudit.core import config as cfg
from privaudit.core.config import Config, setting
from privaudit.dp.devices import is_device_name, resolve_device

TRAINED_TARGETS = ("cnn", "wrn16-4", "wrn28-10", "resnet18", "vit")
TARGET_KINDS = (*TRAINED_TARGETS, "ccexam-mnist")


LABEL_NOISE = cfg.Check(
    lambda v: isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v < 1,
    "must be in [0, 1)",
)


# the generator's default steps: about 11 minutes of the 15-minute default on 2 idle CPU cores
# (0.11 s a step), and as long again on a GPU (about 60 ms a step on an H200); more steps were
# still making the generator harder to detect at 9,000 (packages/image/README.md, Measured)
CPU_GAN_STEPS = 6000
GPU_GAN_STEPS = 12000


@dataclass(frozen=True)
class ImageAuditConfig(Config):
    """Everything that decides an audit's result; the defaults audit a CNN on the MNIST subset."""

    seed: int = 0
    out_dir: str = "runs/image-mnist"
    cache_dir: str | None = None  # default <out_dir>/cache
    # torch intra-op threads for the small models; 1 is fastest on a small shared CPU
    threads: int = setting(1, check=cfg.POSITIVE_INT)
    # threads while the generator trains (None: timed steps choose among 1, the idle cores and all
    # cores, re-checked as the load moves; a fixed count keeps reruns bit-identical)
    gan_threads: int | None = setting(None, check=cfg.optional(cfg.POSITIVE_INT))
    device: str = setting(
        "auto", check=cfg.Check(is_device_name, "must be 'auto', 'cpu', 'cuda' or 'cuda:N'")
    )
    # data: "mnist" (embedded subset), "digits" (sklearn), an image folder or a torchvision root
    data: str = "mnist"
    image_size: int = setting(
        28, check=cfg.POSITIVE_INT
    )  # image folders / torchvision roots are resized to this
    grayscale: bool = True
    generator_images: int = setting(
        2000, check=cfg.POSITIVE_INT
    )  # members the generator trains on (never audited)
    audit_members: int = setting(
        1500, check=cfg.Check(lambda v: isinstance(v, int) and v >= 20, "must be at least 20")
    )
    non_members: int = setting(
        1500, check=cfg.NON_NEGATIVE_INT
    )  # real non-members held out of training (ground truth)
    # target: trained here, ccexam-mnist, or the user's checkpoint (`model` + `architecture`)
    target: str = setting("cnn", check=cfg.one_of(*TARGET_KINDS))
    model: str | None = None
    architecture: str | None = setting(None, check=cfg.optional(cfg.one_of(*TRAINED_TARGETS)))
    non_members_data: str | None = None  # real non-members for a user model
    epochs: int = setting(30, check=cfg.POSITIVE_INT)
    lr: float = setting(1e-3, check=cfg.POSITIVE)
    batch_size: int = setting(64, check=cfg.POSITIVE_INT)
    # the target trained here: Adam's weight decay, and the fraction of its training labels replaced
    # by another class (a memorisation stress test; the audit and ground truth read the true labels)
    weight_decay: float = setting(0.0, check=cfg.NON_NEGATIVE)
    label_noise: float = setting(0.0, check=LABEL_NOISE)
    epsilon: float | None = setting(
        None, check=cfg.optional(cfg.POSITIVE)
    )  # set: the target trains with DP-SGD
    delta: float = setting(1e-5, check=cfg.OPEN_UNIT)
    max_grad_norm: float = setting(1.0, check=cfg.POSITIVE)
    dp_epochs: int = setting(15, check=cfg.POSITIVE_INT)
    dp_batch_size: int = setting(256, check=cfg.POSITIVE_INT)
    dp_lr: float = setting(2e-3, check=cfg.POSITIVE)
    reproducible_noise: bool = (
        False  # DP noise from the seed: reproducible, NOT private (tests only)
    )
    # generator (StyleGAN2-ADA-style)
    # None: CPU_GAN_STEPS on the CPU, GPU_GAN_STEPS on a GPU (see generator_steps)
    gan_steps: int | None = setting(None, check=cfg.optional(cfg.POSITIVE_INT))
    gan_batch_size: int = setting(32, check=cfg.POSITIVE_INT)
    gan_channel_base: int = setting(512, check=cfg.POSITIVE_INT)
    gan_channel_max: int = setting(32, check=cfg.POSITIVE_INT)
    gan_z_dim: int = setting(32, check=cfg.POSITIVE_INT)
    gan_lr: float = setting(0.0025, check=cfg.POSITIVE)
    r1_gamma: float = setting(0.1, check=cfg.NON_NEGATIVE)
    fused_ops: bool = (
        False  # build the C++ bias+activation / upfirdn2d kernels (PyTorch when it fails)
    )
    # helper (trained on synthetic images) and the attack networks
    helper_images: int = setting(2000, check=cfg.POSITIVE_INT)
    helper_architecture: str | None = setting(
        None, check=cfg.optional(cfg.one_of(*TRAINED_TARGETS))
    )
    helper_epochs: int = setting(15, check=cfg.POSITIVE_INT)
    # the baseline's helper: trained on "synthetic" examples, or on the "generator-split" members
    # with the target's recipe (see privaudit.attacks.panoramia.driver.PanoramiaSettings)
    helper_data: str = setting("synthetic", check=cfg.one_of("synthetic", "generator-split"))
    attack_epochs: int = setting(20, check=cfg.POSITIVE_INT)
    # networks per attack (baseline and MIA alike), logits averaged: one network's c_lb and ε̃
    # move with its seed about as much as with the target (tools/bench/image_attack_seeds.py)
    attack_ensemble: int = setting(4, check=cfg.POSITIVE_INT)
    # what the MIA sees besides the image and the target's signals: also the helper's signals and
    # the log-loss difference ("helper": a reference model's calibration, so it needs helper_data
    # "generator-split"), or nothing ("none", the PANORAMIA paper's MIA)
    mia_reference: str = setting("none", check=cfg.one_of("helper", "none"))
    test_fraction: float = setting(0.5, check=cfg.OPEN_UNIT)
    alpha: float = setting(0.05, check=cfg.OPEN_UNIT)

    def __post_init__(self):
        super().__post_init__()

        check_mia_reference(self)
        self.require(
            self.model is None or self.architecture is not None,
            "architecture",
            f"is required with a model checkpoint: pass --architecture ({', '.join(TRAINED_TARGETS)})",
        )
        self.require(
            self.non_members_data is None or self.model is not None,
            "non_members_data",
            "needs `model` too",
        )
        self.require(
            self.target != "ccexam-mnist" or self.data == "mnist",
            "data",
            "must be 'mnist' for the ccexam-mnist target, whose training set is MNIST",
        )
        self.require(
            self.target != "ccexam-mnist" or self.epsilon is None,
            "epsilon",
            "cannot apply to the pretrained ccexam-mnist target",
        )
        trained_here = self.model is None and self.target in TRAINED_TARGETS
        self.require(
            trained_here or self.label_noise == 0,
            "label_noise",
            "applies only to a target trained here",
        )

    @property
    def target_name(self) -> str:
        if self.model is not None:
            return "model"
        if self.target in TRAINED_TARGETS and self.epsilon is not None:
            return f"{self.target}-dp-eps{self.epsilon:g}"
        return self.target

    def generator_steps(self, device) -> int:
        """The generator's training steps on `device`: `gan_steps`, or the device's default."""
        if self.gan_steps is not None:
            return self.gan_steps
        return GPU_GAN_STEPS if torch.device(device).type == "cuda" else CPU_GAN_STEPS

    def torch_device(self):
        """The torch device the audit runs on; asking for CUDA where there is none is a user error."""
        return resolve_device(self.device)
