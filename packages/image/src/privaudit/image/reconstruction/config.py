"""The reconstruction run's configuration: frozen dataclasses with working defaults (MNIST, N = 10,
linear heads, sized for minutes on 2 CPU cores), loadable from YAML with --set overrides."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from privaudit.attacks.reconstruction.heads import HeadConfig, HeadPrivacy
from privaudit.attacks.reconstruction.reconstructor import ReconstructorConfig
from privaudit.core.config import load_config
from privaudit.dp.devices import is_device_name
from privaudit.image.reconstruction.backbone import BACKBONES

# configs shipped with the package, by name (--config NAME)
PACKAGED_CONFIGS = ("paper-mnist-n10", "paper-mnist-n10-dp-eps10")
# the authors' nearest-neighbour MSE threshold for MNIST at 32 x 32 in [-1, 1]
PAPER_MNIST_MSE_THRESHOLD = 0.0696


@dataclass(frozen=True)
class ReconstructionConfig:
    """Images are split by `seed` into the attacked pool (the attacked heads' training images:
    no backbone, shadow head or reconstructor ever sees them), the backbone's pre-training pool
    (with backbone 'pretrained' and no backbone_data) and the shadow pool (everything else: the
    attacker's knowledge of the data distribution)."""

    seed: int = 0
    data: str = (
        "mnist"  # 'mnist' (embedded subset), 'digits', an image folder or a torchvision root
    )
    backbone: str = (
        "pretrained"  # ccexam's architecture trained here, or 'ccexam-mnist' (its own weights)
    )
    backbone_data: str | None = (
        None  # pre-train on these images instead of a held-out part of `data`
    )
    backbone_images: int = 1000
    backbone_epochs: int = 10
    attacked_images: int = 1000
    image_size: int = 32  # reconstruction resolution: MNIST 28 -> 32, as the paper
    class_size: int = 1  # training images per class and head: N = classes x class_size
    heads: HeadConfig = HeadConfig()
    dp: HeadPrivacy = HeadPrivacy()
    shadow_heads: int = 16384
    attacked_heads: int = 500
    chunk_size: int = 4096  # heads trained per batched call (and per file of the store)
    reconstructor: ReconstructorConfig = ReconstructorConfig()
    mse_threshold: float = PAPER_MNIST_MSE_THRESHOLD
    fpr: float = 0.01  # the FPR the paper reads the reconstruction TPR at
    grid_heads: int = 6
    device: str = "auto"
    threads: int = 1  # torch CPU threads; 0 keeps torch's default

    def __post_init__(self):
        if self.backbone not in BACKBONES:
            raise ValueError(
                f"backbone must be one of {', '.join(BACKBONES)}, got {self.backbone!r}"
            )
        if self.backbone == "ccexam-mnist" and (
            self.data != "mnist" or self.backbone_data is not None
        ):
            raise ValueError(
                "backbone ccexam-mnist reads MNIST: it needs data 'mnist' and no backbone_data"
            )
        for name in ("backbone_images", "backbone_epochs", "attacked_images", "class_size", "shadow_heads",
                     "attacked_heads", "chunk_size", "grid_heads"):  # fmt: skip
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.image_size < 8 or self.image_size & (self.image_size - 1):
            raise ValueError(f"image_size must be a power of two >= 8, got {self.image_size}")
        if not self.mse_threshold > 0 or not 0 < self.fpr < 1:
            raise ValueError("mse_threshold must be positive and fpr in (0, 1)")
        if not is_device_name(self.device):
            raise ValueError(
                f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {self.device!r}"
            )
        if self.threads < 0:
            raise ValueError(f"threads must be >= 0, got {self.threads}")

    @property
    def conditional(self) -> bool:
        """Multi-class heads get a class-conditional reconstructor; one-vs-rest heads rebuild their
        positive class's images, unconditionally."""
        return self.heads.kind == "linear"

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def config_path(name_or_path: str) -> Path:
    """A packaged config by name, or a path."""
    if name_or_path in PACKAGED_CONFIGS:
        return Path(
            str(
                resources.files("privaudit.image.reconstruction")
                / "configs"
                / f"{name_or_path}.yaml"
            )
        )
    return Path(name_or_path)


def load(path: str | None, overrides: Sequence[str] = ()) -> ReconstructionConfig:
    """The config in YAML `path` (a file or a packaged name; defaults when None) with
    'field.sub=value' overrides; bad files, fields or values are an InputError."""
    return load_config(ReconstructionConfig, None if path is None else config_path(path), overrides)
