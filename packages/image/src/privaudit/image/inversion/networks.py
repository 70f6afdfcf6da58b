"""PLG-MI's networks and losses: a ResNet-style conditional generator (class-conditional batch
norm), a spectral-norm projection discriminator, the hinge loss, the max-margin inversion loss and
the differentiable augmentations the inversion loss is taken over."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


class ConditionalBatchNorm(nn.Module):
    """Batch norm without its own affine part; a per-class scale and shift instead."""

    def __init__(self, channels: int, classes: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.scale = nn.Embedding(classes, channels)
        self.shift = nn.Embedding(classes, channels)
        nn.init.ones_(self.scale.weight)
        nn.init.zeros_(self.shift.weight)

    def forward(self, x, y):
        return self.norm(x) * self.scale(y)[:, :, None, None] + self.shift(y)[:, :, None, None]


class GeneratorBlock(nn.Module):
    """BN-ReLU-upsample-conv, BN-ReLU-conv, plus an upsampled 1x1 shortcut."""

    def __init__(self, c_in: int, c_out: int, classes: int):
        super().__init__()
        self.norm1, self.conv1 = (
            ConditionalBatchNorm(c_in, classes),
            nn.Conv2d(c_in, c_out, 3, padding=1),
        )
        self.norm2, self.conv2 = (
            ConditionalBatchNorm(c_out, classes),
            nn.Conv2d(c_out, c_out, 3, padding=1),
        )
        self.shortcut = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x, y):
        h = F.interpolate(F.relu(self.norm1(x, y)), scale_factor=2, mode="nearest")
        h = self.conv2(F.relu(self.norm2(self.conv1(h), y)))
        return h + self.shortcut(F.interpolate(x, scale_factor=2, mode="nearest"))


class ConditionalGenerator(nn.Module):
    """z [B, z_dim] and class y [B] -> images [B, C, S, S] in [-1, 1]: a linear layer to a
    (4w, S/4, S/4) map, two upsampling residual blocks, BN-ReLU-conv-tanh (SNGAN's ResNet generator,
    as PLG-MI uses it, sized for small images)."""

    def __init__(self, z_dim: int, classes: int, channels: int, size: int, width: int):
        super().__init__()
        if size % 4:
            raise ValueError(f"the generator needs an image size divisible by 4, got {size}")
        self.z_dim, self.classes, self.channels, self.size = z_dim, classes, channels, size
        self.bottom = size // 4
        self.linear = nn.Linear(z_dim, 4 * width * self.bottom**2)
        self.block1 = GeneratorBlock(4 * width, 2 * width, classes)
        self.block2 = GeneratorBlock(2 * width, width, classes)
        self.norm = nn.BatchNorm2d(width)
        self.out = nn.Conv2d(width, channels, 3, padding=1)

    def forward(self, z, y):
        h = self.linear(z).view(len(z), -1, self.bottom, self.bottom)
        h = self.block2(self.block1(h, y), y)
        return torch.tanh(self.out(F.relu(self.norm(h))))


class DiscriminatorBlock(nn.Module):
    """Spectral-norm residual block, average-pooled by 2 when `down`; the first block skips its
    leading ReLU (SNGAN's optimised block)."""

    def __init__(self, c_in: int, c_out: int, down: bool, first: bool):
        super().__init__()
        self.down, self.first = down, first
        self.conv1 = spectral_norm(nn.Conv2d(c_in, c_out, 3, padding=1))
        self.conv2 = spectral_norm(nn.Conv2d(c_out, c_out, 3, padding=1))
        self.shortcut = spectral_norm(nn.Conv2d(c_in, c_out, 1))

    def forward(self, x):
        h = self.conv2(F.relu(self.conv1(x if self.first else F.relu(x))))
        if self.down:
            h = F.avg_pool2d(h, 2)
        if self.first:
            return h + self.shortcut(F.avg_pool2d(x, 2) if self.down else x)
        s = self.shortcut(x)
        return h + (F.avg_pool2d(s, 2) if self.down else s)


class ProjectionDiscriminator(nn.Module):
    """D(x, y) = w . phi(x) + embed(y) . phi(x) (Miyato & Koyama's projection), phi a spectral-norm
    ResNet with global sum pooling."""

    def __init__(self, classes: int, channels: int, width: int):
        super().__init__()
        self.blocks = nn.ModuleList([
            DiscriminatorBlock(channels, width, down=True, first=True),
            DiscriminatorBlock(width, 2 * width, down=True, first=False),
            DiscriminatorBlock(2 * width, 4 * width, down=False, first=False),
        ])  # fmt: skip
        self.linear = spectral_norm(nn.Linear(4 * width, 1))
        self.embed = spectral_norm(nn.Embedding(classes, 4 * width))

    def forward(self, x, y):
        h = x
        for block in self.blocks:
            h = block(h)
        h = F.relu(h).sum(dim=(2, 3))
        return self.linear(h).squeeze(1) + (self.embed(y) * h).sum(1)


def hinge_discriminator_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    return F.relu(1 - real_scores).mean() + F.relu(1 + fake_scores).mean()


def hinge_generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    return -fake_scores.mean()


def max_margin_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """mean over the batch of max_{j != y} z_j - z_y: PLG-MI's inversion loss on the target's logits
    (it keeps pushing the wanted class above the runner-up, where cross-entropy saturates)."""
    true = logits.gather(1, labels[:, None]).squeeze(1)
    others = logits.masked_fill(F.one_hot(labels, logits.shape[1]).bool(), float("-inf")).amax(1)
    return (others - true).mean()


def augment(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Differentiable random views, as PLG-MI takes the inversion loss over: a resized crop (80-100%
    of the area, square), a rotation within 5 degrees, brightness and contrast jitter of 0.2. No
    horizontal flip: it changes what a digit is. Randomness from `generator` (the global one if None)."""
    b, device = len(images), images.device

    def uniform(low: float, high: float) -> torch.Tensor:
        return (torch.rand(b, generator=generator) * (high - low) + low).to(device)

    side = uniform(0.8, 1.0).sqrt()
    angle = uniform(-5.0, 5.0) * math.pi / 180
    shift_x, shift_y = uniform(-1, 1) * (1 - side), uniform(-1, 1) * (1 - side)
    cos, sin = torch.cos(angle) * side, torch.sin(angle) * side
    theta = torch.stack(
        [torch.stack([cos, -sin, shift_x], 1), torch.stack([sin, cos, shift_y], 1)], 1
    )
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    views = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    brightness = (
        uniform(-0.2, 0.2)[:, None, None, None] * 2
    )  # images span [-1, 1]: 0.2 of the range
    contrast = uniform(0.8, 1.2)[:, None, None, None]
    mean = views.mean(dim=(1, 2, 3), keepdim=True)
    return ((views - mean) * contrast + mean + brightness).clamp(-1, 1)
