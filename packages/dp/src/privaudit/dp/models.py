"""DP-friendly image classifiers (GroupNorm instead of BatchNorm) for dp-train."""

from __future__ import annotations

from privaudit.dp.errors import DPError
from torch import nn


def _group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(32, channels) if channels % min(32, channels) == 0 else 1, channels)


def small_cnn(in_channels: int, classes: int) -> nn.Module:
    """Two conv blocks and a linear head: the quick default."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 16, 3, padding=1), nn.GroupNorm(4, 16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.GroupNorm(8, 32), nn.ReLU(), nn.AdaptiveAvgPool2d(4),
        nn.Flatten(), nn.Linear(32 * 16, classes),
    )


def resnet18(in_channels: int, classes: int) -> nn.Module:
    """torchvision's ResNet-18 with GroupNorm, a 3x3 stem and no max-pool (for 28x28 / 32x32 inputs)."""
    try:
        from torchvision.models import resnet18 as torchvision_resnet18
    except ImportError as exc:
        raise DPError("the resnet18 model needs torchvision: pip install 'privaudit-dp[vision]'.") from exc
    model = torchvision_resnet18(num_classes=classes, norm_layer=_group_norm)
    model.conv1 = nn.Conv2d(in_channels, 64, 3, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


class _WideBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.norm1, self.conv1 = _group_norm(c_in), nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.norm2, self.conv2 = _group_norm(c_out), nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.shortcut = None if c_in == c_out and stride == 1 else nn.Conv2d(c_in, c_out, 1, stride, bias=False)

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
            layers.append(_WideBlock(widths[stage] if b == 0 else widths[stage + 1], widths[stage + 1], 1 if stage == 0 or b else 2))
    layers += [_group_norm(widths[3]), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(widths[3], classes)]
    return nn.Sequential(*layers)


MODELS = {"cnn": small_cnn, "resnet18": resnet18, "wrn16-4": wide_resnet}
