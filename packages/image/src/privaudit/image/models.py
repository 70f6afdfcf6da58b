"""Image classifiers: targets (CNN, WRN, ResNet-GN, ViT), the ccexam MNIST CNN, user checkpoints,
their training (optionally DP-SGD through privaudit.dp), and the stacked attack network."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from privaudit.attacks.checkpoints import load_into, read_state_dict
from privaudit.attacks.label_noise import flip_labels
from privaudit.attacks.targets import ClassifierTarget
from privaudit.core.errors import InputError
from privaudit.dp.randomness import seed_for
from privaudit.dp.training import PrivacySettings, train
from privaudit.dp.validate import fix
from torch import nn
from torch.utils.data import TensorDataset

ARCHITECTURES = ("cnn", "wrn16-4", "wrn28-10", "resnet18", "vit", "ccexam-mnist")
CCEXAM_MEAN, CCEXAM_STD = 0.1307, 0.3081


class ScaledInput(nn.Module):
    """Maps the package's [-1, 1] images to what a model expects, (x01 - mean) / std."""

    def __init__(self, model: nn.Module, mean: float = 0.5, std: float = 0.5):
        super().__init__()
        self.model, self.mean, self.std = model, mean, std

    def forward(self, x):
        return self.model(((x + 1) / 2 - self.mean) / self.std)


class CcexamMNISTNet(nn.Module):
    """The architecture of ccexam's MNISTNet (2 conv + max-pool blocks, 128-unit head), rebuilt here so
    its shipped weights load as a plain state dict without importing ccexam."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))

    def embed(self, x):
        """The 128-d penultimate features (after the hidden ReLU)."""
        return self.classifier[1](self.classifier[0](self.features(x).flatten(1)))

    def forward(self, x):
        return self.classifier[2](self.embed(x))


def ccexam_mnist() -> nn.Module:
    """ccexam's pretrained MNIST CNN (trained on the MNIST training split), weights loaded safely."""
    from privaudit.attacks.data import packaged_file

    path = packaged_file("ccexam", "ccexam/weights/mnist.pth")
    model = CcexamMNISTNet()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return ScaledInput(model, CCEXAM_MEAN, CCEXAM_STD).eval()


def _group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(32, channels) if channels % min(32, channels) == 0 else 1, channels)


def small_cnn(in_channels: int, classes: int) -> nn.Module:
    """Two conv blocks and a linear head: the quick default."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 16, 3, padding=1),
        nn.GroupNorm(4, 16),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.GroupNorm(8, 32),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(4),
        nn.Flatten(),
        nn.Linear(32 * 16, classes),
    )


def resnet18(in_channels: int, classes: int) -> nn.Module:
    """torchvision's ResNet-18 with GroupNorm, a 3x3 stem and no max-pool (for 28x28 / 32x32 inputs)."""
    from torchvision.models import resnet18 as torchvision_resnet18

    model = torchvision_resnet18(num_classes=classes, norm_layer=_group_norm)
    model.conv1 = nn.Conv2d(in_channels, 64, 3, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


class _WideBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.norm1, self.conv1 = _group_norm(c_in), nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.norm2, self.conv2 = _group_norm(c_out), nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.shortcut = (
            None if c_in == c_out and stride == 1 else nn.Conv2d(c_in, c_out, 1, stride, bias=False)
        )

    def forward(self, x):
        h = nn.functional.relu(self.norm1(x))
        out = self.conv2(nn.functional.relu(self.norm2(self.conv1(h))))
        return out + (x if self.shortcut is None else self.shortcut(h))


def wide_resnet(in_channels: int, classes: int, depth: int = 16, widen: int = 4) -> nn.Module:
    """WRN-depth-widen (Zagoruyko & Komodakis) with GroupNorm."""
    blocks = (depth - 4) // 6
    widths = [16, 16 * widen, 32 * widen, 64 * widen]
    layers: list[nn.Module] = [nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False)]
    for stage in range(3):
        for b in range(blocks):
            layers.append(
                _WideBlock(
                    widths[stage] if b == 0 else widths[stage + 1],
                    widths[stage + 1],
                    1 if stage == 0 or b else 2,
                )
            )
    layers += [
        _group_norm(widths[3]),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(widths[3], classes),
    ]
    return nn.Sequential(*layers)


def vit(channels: int, classes: int, image_size: int) -> nn.Module:
    """A small torchvision VisionTransformer (4 layers, 4 heads, width 64) for small images."""
    from torchvision.models import VisionTransformer

    patch = 4 if image_size % 4 == 0 and image_size >= 16 else 2
    model = VisionTransformer(
        image_size=image_size,
        patch_size=patch,
        num_layers=4,
        num_heads=4,
        hidden_dim=64,
        mlp_dim=128,
        num_classes=classes,
    )
    if (
        channels != 3
    ):  # torchvision's ViT embeds 3-channel patches; take the image's channels instead
        model.conv_proj = nn.Conv2d(channels, 64, kernel_size=patch, stride=patch)
    return model


def build_model(architecture: str, channels: int, classes: int, image_size: int) -> nn.Module:
    """A freshly initialised classifier over [-1, 1] images."""
    if architecture == "cnn":
        return small_cnn(channels, classes)
    if architecture == "wrn16-4":
        return wide_resnet(channels, classes, depth=16, widen=4)
    if architecture == "wrn28-10":
        return wide_resnet(channels, classes, depth=28, widen=10)
    if architecture == "resnet18":
        return resnet18(channels, classes)
    if architecture == "vit":
        return vit(channels, classes, image_size)
    raise InputError(
        f"unknown architecture {architecture!r}; choose one of {', '.join(ARCHITECTURES)}."
    )


def load_checkpoint(
    path: str, architecture: str, channels: int, classes: int, image_size: int
) -> nn.Module:
    """A user's state dict (loaded with weights_only=True) into one of the package's architectures."""
    state = read_state_dict(path)
    return load_into(
        build_model(architecture, channels, classes, image_size), state, path, architecture
    ).eval()


@dataclass(frozen=True)
class TrainSettings:
    """How a classifier is trained; `dp_epsilon` set means DP-SGD through privaudit.dp."""

    architecture: str = "cnn"
    epochs: int = 20
    lr: float = 1e-3
    batch_size: int = 64
    weight_decay: float = 0.0
    dp_epsilon: float | None = None
    dp_delta: float = 1e-5
    max_grad_norm: float = 1.0
    reproducible_noise: bool = False


def build_for_training(settings: TrainSettings, channels: int, classes: int, image_size: int):
    """build_model's network, with DP-SGD's layer swaps (privaudit.dp.fix: the ViT's packed
    attention as separate linear layers, whose per-sample gradients the engine sees) when it is
    trained privately."""
    model = build_model(settings.architecture, channels, classes, image_size)
    return model if settings.dp_epsilon is None else fix(model)


def train_classifier(
    images: torch.Tensor,
    labels: torch.Tensor,
    classes: int,
    settings: TrainSettings,
    *,
    seed: int,
    desc: str,
    device: torch.device | str = "cpu",
) -> tuple[nn.Module, dict | None]:
    """Train a classifier on `device` with Adam (DP-SGD's private Adam when dp_epsilon is set); returns
    (model, DP record or None). Batches are drawn on the CPU and moved, so every device sees the same ones."""
    torch.manual_seed(seed_for(seed, "init"))
    model = build_for_training(settings, images.shape[1], classes, images.shape[-1]).to(device)
    privacy = None
    if settings.dp_epsilon is not None:
        privacy = PrivacySettings(
            settings.dp_epsilon,
            settings.dp_delta,
            settings.max_grad_norm,
            reproducible_noise=settings.reproducible_noise,
        )
    result = train(
        model,
        TensorDataset(images, labels),
        lambda m, batch: F.cross_entropy(m(batch[0].to(device)), batch[1].to(device)),
        optimizer=lambda params: torch.optim.Adam(
            params, lr=settings.lr, weight_decay=settings.weight_decay
        ),
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        seed=seed,
        privacy=privacy,
        desc=desc,
    )
    return model, result.privacy


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


class ImageClassifierFamily:
    """One of the image architectures trained with `settings` on `device` (the PANORAMIA target
    trained here, and the helper)."""

    def __init__(
        self,
        settings: TrainSettings,
        shape: tuple[int, int, int],
        classes: int,
        device,
        *,
        label_noise: float = 0.0,
    ):
        self.settings, self.shape, self.classes, self.device = (
            settings,
            tuple(shape),
            classes,
            device,
        )
        self.name, self.label_noise = settings.architecture, label_noise
        self.key = {"settings": asdict(settings), "shape": list(self.shape), "classes": classes}
        if label_noise > 0:
            self.key["label_noise"] = label_noise

    def train(self, examples, seed: int):
        labels = examples.labels
        if self.label_noise > 0:  # trained on partly wrong labels; audited on the true ones
            labels = torch.as_tensor(
                flip_labels(labels, self.classes, self.label_noise, seed_for(seed, "label-noise"))
            )
        return train_classifier(
            examples.inputs,
            labels,
            self.classes,
            self.settings,
            seed=seed,
            desc=self.name,
            device=self.device,
        )

    def build(self) -> nn.Module:
        return build_for_training(self.settings, self.shape[0], self.classes, self.shape[-1])

    def target(self, model: nn.Module) -> ClassifierTarget:
        return ClassifierTarget(model.to(self.device), batch_size=512)
