"""The image audit's configuration: one frozen dataclass with working defaults, loadable from YAML."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from privaudit.dp.devices import is_device_name, resolve_device
from privaudit.core.config import load_yaml_config
from privaudit.core.errors import InputError

TRAINED_TARGETS = ("cnn", "wrn16-4", "wrn28-10", "resnet18", "vit")
TARGET_KINDS = (*TRAINED_TARGETS, "ccexam-mnist")


@dataclass(frozen=True)
class ImageAuditConfig:
    """Everything that decides an audit's result; the defaults audit a CNN on the MNIST subset."""

    seed: int = 0
    out_dir: str = "runs/image-mnist"
    cache_dir: str | None = None  # default <out_dir>/cache
    threads: int = 1  # torch intra-op threads for the small models; 1 is fastest on a small shared CPU
    gan_threads: int | None = None  # threads while the generator trains (None: all cores; its convolutions scale)
    device: str = "auto"  # where models train and score: "auto" (CUDA when present), "cpu", "cuda" or "cuda:N"
    # data: "mnist" (embedded subset), "digits" (sklearn), an image folder or a torchvision root
    data: str = "mnist"
    image_size: int = 28  # image folders / torchvision roots are resized to this
    grayscale: bool = True
    generator_images: int = 2000  # members the generator trains on (never audited)
    audit_members: int = 1500
    non_members: int = 1500  # real non-members held out of training (ground truth)
    # target: trained here, ccexam-mnist, or the user's checkpoint (`model` + `architecture`)
    target: str = "cnn"
    model: str | None = None
    architecture: str | None = None
    non_members_data: str | None = None  # real non-members for a user model
    epochs: int = 30
    lr: float = 1e-3
    batch_size: int = 64
    epsilon: float | None = None  # set: the target trains with DP-SGD at this epsilon
    delta: float = 1e-5
    max_grad_norm: float = 1.0
    dp_epochs: int = 15
    dp_batch_size: int = 256
    dp_lr: float = 2e-3
    # generator (StyleGAN2-ADA-style)
    gan_steps: int = 3000
    gan_batch_size: int = 32
    gan_channel_base: int = 512
    gan_channel_max: int = 32
    gan_z_dim: int = 32
    gan_lr: float = 0.0025
    r1_gamma: float = 0.1
    fused_ops: bool = False  # build the C++ bias+activation / upfirdn2d kernels (PyTorch when it fails)
    # helper (trained on synthetic images) and the attack networks
    helper_images: int = 2000
    helper_architecture: str | None = None  # default: the target's architecture (cnn for ccexam / checkpoints)
    helper_epochs: int = 15
    attack_epochs: int = 20
    test_fraction: float = 0.5
    alpha: float = 0.05

    def __post_init__(self):
        def need(ok: bool, field: str, what: str):
            if not ok:
                raise InputError(f"config field {field!r} {what} (got {getattr(self, field)!r}).")

        need(self.target in TARGET_KINDS, "target", f"must be one of {', '.join(TARGET_KINDS)}")
        need(self.architecture is None or self.architecture in TRAINED_TARGETS, "architecture",
             f"must be one of {', '.join(TRAINED_TARGETS)}")
        need(self.helper_architecture is None or self.helper_architecture in TRAINED_TARGETS,
             "helper_architecture", f"must be one of {', '.join(TRAINED_TARGETS)}")
        need(self.model is None or self.architecture is not None, "architecture",
             f"is required with a model checkpoint: pass --architecture ({', '.join(TRAINED_TARGETS)})")
        need(self.non_members_data is None or self.model is not None, "non_members_data", "needs `model` too")
        need(self.target != "ccexam-mnist" or self.data == "mnist", "data",
             "must be 'mnist' for the ccexam-mnist target, whose training set is MNIST")
        need(self.target != "ccexam-mnist" or self.epsilon is None, "epsilon", "cannot apply to the pretrained ccexam-mnist target")
        for name in ("generator_images", "audit_members", "epochs", "batch_size", "gan_steps", "gan_batch_size",
                     "gan_channel_base", "gan_channel_max", "gan_z_dim", "helper_images", "helper_epochs",
                     "attack_epochs", "threads", "image_size", "dp_epochs", "dp_batch_size"):
            need(isinstance(getattr(self, name), int) and getattr(self, name) > 0, name, "must be a positive integer")
        need(isinstance(self.non_members, int) and self.non_members >= 0, "non_members", "must be zero or a positive integer")
        need(self.gan_threads is None or (isinstance(self.gan_threads, int) and self.gan_threads > 0), "gan_threads",
             "must be a positive integer or null")
        need(is_device_name(self.device), "device", "must be 'auto', 'cpu', 'cuda' or 'cuda:N'")
        need(self.epsilon is None or self.epsilon > 0, "epsilon", "must be positive")
        need(0 < self.delta < 1, "delta", "must be in (0, 1)")
        need(self.lr > 0 and self.gan_lr > 0 and self.dp_lr > 0, "lr", "and gan_lr, dp_lr must be positive")
        need(self.r1_gamma >= 0, "r1_gamma", "must be zero or positive")
        need(self.max_grad_norm > 0, "max_grad_norm", "must be positive")
        need(0 < self.test_fraction < 1, "test_fraction", "must be in (0, 1)")
        need(0 < self.alpha < 1, "alpha", "must be in (0, 1)")
        need(self.audit_members >= 20, "audit_members", "must be at least 20")

    @property
    def target_name(self) -> str:
        if self.model is not None:
            return "model"
        if self.target in TRAINED_TARGETS and self.epsilon is not None:
            return f"{self.target}-dp-eps{self.epsilon:g}"
        return self.target

    def torch_device(self):
        """The torch device the audit runs on; asking for CUDA where there is none is an InputError."""
        return resolve_device(self.device)

    def replace(self, **changes) -> ImageAuditConfig:
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def load_config(path: str | Path) -> ImageAuditConfig:
    """A config from a YAML mapping of field names; unknown fields are an InputError."""
    return load_yaml_config(ImageAuditConfig, path)

