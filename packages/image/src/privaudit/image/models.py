"""Image classifiers: targets (CNN, WRN, ResNet-GN, ViT), the ccexam MNIST CNN, user checkpoints,
their training (optionally DP-SGD through privaudit.dp), and the stacked attack network."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from privaudit.attacks.checkpoints import load_into, read_state_dict
from privaudit.attacks.devices import model_device
from privaudit.core.errors import InputError
from privaudit.dp import models as dp_models
from privaudit.dp.randomness import seed_for
from privaudit.dp.training import fit
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm

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
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))

    def embed(self, x):
        """The 128-d penultimate features (after the hidden ReLU)."""
        return self.classifier[1](self.classifier[0](self.features(x).flatten(1)))

    def forward(self, x):
        return self.classifier[2](self.embed(x))


def ccexam_mnist() -> nn.Module:
    """ccexam's pretrained MNIST CNN (trained on the MNIST training split), weights loaded safely."""
    from privaudit.dp.datasets import packaged_file

    try:
        path = packaged_file("ccexam", "ccexam/weights/mnist.pth")
    except FileNotFoundError as exc:
        raise InputError(f"the ccexam-mnist target needs the ccexam package: {exc}.") from exc
    model = CcexamMNISTNet()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return ScaledInput(model, CCEXAM_MEAN, CCEXAM_STD).eval()


def vit(channels: int, classes: int, image_size: int) -> nn.Module:
    """A small torchvision VisionTransformer (4 layers, 4 heads, width 64) for small images."""
    from torchvision.models import VisionTransformer

    patch = 4 if image_size % 4 == 0 and image_size >= 16 else 2
    model = VisionTransformer(image_size=image_size, patch_size=patch, num_layers=4, num_heads=4,
                              hidden_dim=64, mlp_dim=128, num_classes=classes)
    if channels != 3:  # torchvision's ViT embeds 3-channel patches; take the image's channels instead
        model.conv_proj = nn.Conv2d(channels, 64, kernel_size=patch, stride=patch)
    return model


def build_model(architecture: str, channels: int, classes: int, image_size: int) -> nn.Module:
    """A freshly initialised classifier over [-1, 1] images."""
    if architecture == "cnn":
        return dp_models.small_cnn(channels, classes)
    if architecture == "wrn16-4":
        return dp_models.wide_resnet(channels, classes, depth=16, widen=4)
    if architecture == "wrn28-10":
        return dp_models.wide_resnet(channels, classes, depth=28, widen=10)
    if architecture == "resnet18":
        return dp_models.resnet18(channels, classes)
    if architecture == "vit":
        return vit(channels, classes, image_size)
    raise InputError(f"unknown architecture {architecture!r}; choose one of {', '.join(ARCHITECTURES)}.")


def load_checkpoint(path: str, architecture: str, channels: int, classes: int, image_size: int) -> nn.Module:
    """A user's state dict (loaded with weights_only=True) into one of the package's architectures."""
    state = read_state_dict(path)
    return load_into(build_model(architecture, channels, classes, image_size), state, path, architecture).eval()


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


def train_classifier(images: torch.Tensor, labels: torch.Tensor, classes: int, settings: TrainSettings, *,
                     seed: int, desc: str, device: torch.device | str = "cpu") -> tuple[nn.Module, float | None]:
    """Train a classifier on `device` with Adam (DP-SGD's private Adam when dp_epsilon is set); returns
    (model, spent eps). Batches are drawn on the CPU and moved, so every device sees the same ones."""
    torch.manual_seed(seed_for(seed, "init"))
    model = build_model(settings.architecture, images.shape[1], classes, images.shape[-1]).to(device)
    loader = DataLoader(TensorDataset(images, labels), batch_size=settings.batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(seed_for(seed, "shuffle")))
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    accountant = None
    if settings.dp_epsilon is not None:
        from privaudit.dp import DPError, make_private

        try:
            model, optimizer, loader, accountant = make_private(
                model, optimizer, loader, target_epsilon=settings.dp_epsilon, target_delta=settings.dp_delta,
                epochs=settings.epochs, max_grad_norm=settings.max_grad_norm,
            )
        except DPError as exc:
            raise InputError(f"DP training of the {settings.architecture} target is not possible: {exc}") from exc
    def loss(m, batch):
        return F.cross_entropy(m(batch[0].to(device)), batch[1].to(device))

    fit(model, optimizer, loader, loss, settings.epochs, desc=desc)
    spent = None if accountant is None else float(accountant.get_epsilon(settings.dp_delta))
    return model, spent


@torch.no_grad()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 512) -> float:
    model.eval()
    device = model_device(model)
    correct = 0
    for start in range(0, len(images), batch_size):
        predicted = model(images[start:start + batch_size].to(device)).argmax(1).cpu()
        correct += int((predicted == labels[start:start + batch_size]).sum())
    return correct / max(len(images), 1)


class AttackNet(nn.Module):
    """PANORAMIA's classifier: an image branch (a small CNN) and a loss branch (an MLP over the loss
    signals of a model), their embeddings stacked and read by a linear head -> member logit."""

    def __init__(self, channels: int, signal_features: int, width: int = 16):
        super().__init__()
        self.image_branch = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
            nn.Linear(8 * width, 32), nn.ReLU(),
        )
        self.loss_branch = nn.Sequential(nn.Linear(signal_features, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU())
        self.head = nn.Linear(64, 1)

    def forward(self, images, signals):
        return self.head(torch.cat([self.image_branch(images), self.loss_branch(signals)], dim=1)).squeeze(1)


def train_attack(images: torch.Tensor, signals: torch.Tensor, is_real: torch.Tensor, *, epochs: int, seed: int,
                 lr: float = 1e-3, batch_size: int = 128, desc: str = "attack",
                 device: torch.device | str = "cpu") -> AttackNet:
    """Fit the attack network on `device` to tell real members (1) from the other points (0)."""
    torch.manual_seed(seed_for(seed, "init"))
    model = AttackNet(images.shape[1], signals.shape[1]).to(device)
    loader = DataLoader(TensorDataset(images, signals, is_real.float()), batch_size=batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(seed_for(seed, "shuffle")))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-4)
    model.train()
    for _ in tqdm(range(epochs), desc=desc, unit="epoch", leave=False):
        for xb, sb, yb in loader:
            loss = F.binary_cross_entropy_with_logits(model(xb.to(device), sb.to(device)), yb.to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


@torch.no_grad()
def attack_scores(model: AttackNet, images: torch.Tensor, signals: torch.Tensor, batch_size: int = 512) -> np.ndarray:
    device = model_device(model)
    out = [torch.sigmoid(model(images[s:s + batch_size].to(device), signals[s:s + batch_size].to(device))).cpu()
           for s in range(0, len(images), batch_size)]
    return torch.cat(out).double().numpy()


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

