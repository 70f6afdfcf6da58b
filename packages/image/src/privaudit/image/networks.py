"""A StyleGAN2-ADA-style conditional generator and discriminator, sized for small gray images on CPU.

Mapping network (z, class) -> w with an equalised learning rate; synthesis from a learned 4x4
constant through modulated/demodulated 3x3 convolutions with per-pixel noise inputs, FIR
up-sampling and a skip architecture of to-image layers; a residual discriminator with FIR
down-sampling, minibatch standard deviation and a class-projection output (Karras et al. 2020).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from privaudit.image import ops
from torch import nn


class FullyConnected(nn.Module):
    """Linear layer with an equalised learning rate and a fused bias + activation."""

    def __init__(
        self, in_features, out_features, activation="linear", lr_multiplier=1.0, bias_init=0.0
    ):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init)))
        self.activation = activation
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x):
        w = self.weight * self.weight_gain
        b = self.bias * self.bias_gain
        if self.activation == "linear":
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return ops.bias_act(x.matmul(w.t()), b, act=self.activation)


class Conv2dLayer(nn.Module):
    """3x3 (or 1x1) convolution with an equalised learning rate, optional FIR down-sampling after it."""

    def __init__(
        self, c_in, c_out, kernel_size, bias=True, activation="linear", down=1, clamp=None
    ):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(c_out)) if bias else None
        self.weight_gain = 1 / math.sqrt(c_in * kernel_size**2)
        self.activation, self.down, self.clamp, self.padding = (
            activation,
            down,
            clamp,
            kernel_size // 2,
        )
        self.register_buffer("fir", ops.setup_filter())

    def forward(self, x, gain=1.0):
        x = nn.functional.conv2d(x, self.weight * self.weight_gain, padding=self.padding)
        if self.down > 1:
            x = ops.downsample2d(x, self.fir, self.down)
        clamp = None if self.clamp is None else self.clamp * gain
        act_gain = ops.ACTIVATIONS[self.activation][1] * gain
        return ops.bias_act(x, self.bias, act=self.activation, gain=act_gain, clamp=clamp)


class MappingNetwork(nn.Module):
    """z (and a class embedding) -> w, through a few FC layers at a 100x lower learning rate."""

    def __init__(self, z_dim, c_dim, w_dim, num_ws, layers=4, lr_multiplier=0.01, w_avg_beta=0.995):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws, self.w_avg_beta = (
            z_dim,
            c_dim,
            w_dim,
            num_ws,
            w_avg_beta,
        )
        self.embed = FullyConnected(c_dim, w_dim) if c_dim else None
        widths = [z_dim + (w_dim if c_dim else 0)] + [w_dim] * layers
        self.layers = nn.ModuleList(
            FullyConnected(a, b, activation="lrelu", lr_multiplier=lr_multiplier)
            for a, b in zip(widths[:-1], widths[1:], strict=True)
        )
        self.register_buffer("w_avg", torch.zeros(w_dim))

    @staticmethod
    def _normalize(x, eps=1e-8):
        return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()

    def forward(self, z, c, truncation_psi=1.0, update_w_avg=False):
        x = self._normalize(z)
        if self.c_dim:
            x = torch.cat([x, self._normalize(self.embed(c))], dim=1)
        for layer in self.layers:
            x = layer(x)
        if update_w_avg:  # tracked for the truncation trick
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        if truncation_psi != 1:
            x = self.w_avg.lerp(x, truncation_psi)
        return x.unsqueeze(1).repeat(1, self.num_ws, 1)


def modulated_conv2d(x, weight, styles, demodulate=True, padding=1):
    """Scale input channels by the style, convolve, and normalise each output filter to unit norm.

    The scaling is applied to activations rather than to per-sample weights (StyleGAN2's
    non-fused path): the same result with one shared convolution, much faster on CPU."""
    n = x.shape[0]
    x = x * styles.reshape(n, -1, 1, 1)
    x = nn.functional.conv2d(x, weight, padding=padding)
    if demodulate:
        w = weight.unsqueeze(0) * styles.reshape(n, 1, -1, 1, 1)  # [N, O, I, k, k]
        x = x * (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt().reshape(n, -1, 1, 1)
    return x


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv (after optional FIR up-sampling), noise input, fused bias + lrelu."""

    def __init__(self, c_in, c_out, w_dim, resolution, up=1, clamp=256.0):
        super().__init__()
        self.affine = FullyConnected(w_dim, c_in, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(c_out, c_in, 3, 3))
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.register_buffer("noise_const", torch.randn(resolution, resolution))
        self.register_buffer("fir", ops.setup_filter())
        self.up, self.resolution, self.clamp = up, resolution, clamp

    def forward(self, x, w, noise_mode="random"):
        styles = self.affine(w)
        if self.up > 1:
            x = ops.upsample2d(x, self.fir, self.up)
        x = modulated_conv2d(x, self.weight, styles)
        if noise_mode == "random":
            noise = torch.randn(x.shape[0], 1, self.resolution, self.resolution, device=x.device)
            x = x + noise * self.noise_strength
        elif noise_mode == "const":
            x = x + self.noise_const * self.noise_strength
        return ops.bias_act(x, self.bias, act="lrelu", clamp=self.clamp)


class ToImage(nn.Module):
    """Modulated 1x1 conv to image channels, without demodulation."""

    def __init__(self, c_in, channels, w_dim):
        super().__init__()
        self.affine = FullyConnected(w_dim, c_in, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(channels, c_in, 1, 1))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.weight_gain = 1 / math.sqrt(c_in)

    def forward(self, x, w):
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, padding=0)
        return ops.bias_act(x, self.bias, act="linear", clamp=256.0)


def _channels(resolution: int, base: int, maximum: int) -> int:
    return int(min(base // resolution, maximum))


class Generator(nn.Module):
    """Mapping + synthesis; `forward(z, c)` returns images in [-1, 1]-ish of shape [N, channels, R, R]."""

    def __init__(
        self,
        z_dim=64,
        c_dim=10,
        w_dim=64,
        resolution=32,
        channels=1,
        channel_base=1024,
        channel_max=64,
        mapping_layers=2,
        mapping_lr_multiplier=0.01,
    ):
        super().__init__()
        log2 = int(np.log2(resolution))
        if 2**log2 != resolution or resolution < 4:
            raise ValueError(f"generator resolution must be a power of two >= 4, got {resolution}")
        self.z_dim, self.c_dim, self.w_dim, self.resolution, self.channels = (
            z_dim,
            c_dim,
            w_dim,
            resolution,
            channels,
        )
        self.resolutions = [2**i for i in range(2, log2 + 1)]
        ch = {r: _channels(r, channel_base, channel_max) for r in self.resolutions}
        self.const = nn.Parameter(torch.randn(ch[4], 4, 4))
        self.blocks = nn.ModuleDict()
        num_ws = 0
        for r in self.resolutions:
            block = nn.ModuleDict()
            if r > 4:
                block["conv0"] = SynthesisLayer(ch[r // 2], ch[r], w_dim, r, up=2)
                num_ws += 1
            block["conv1"] = SynthesisLayer(ch[r], ch[r], w_dim, r)
            block["to_image"] = ToImage(ch[r], channels, w_dim)
            num_ws += 1
            self.blocks[str(r)] = block
        self.num_ws = num_ws + 1  # the last to-image layer reads one more w
        self.mapping = MappingNetwork(
            z_dim,
            c_dim,
            w_dim,
            self.num_ws,
            layers=mapping_layers,
            lr_multiplier=mapping_lr_multiplier,
        )
        self.register_buffer("fir", ops.setup_filter())

    def synthesis(self, ws, noise_mode="random"):
        x = self.const.unsqueeze(0).repeat(ws.shape[0], 1, 1, 1)
        image = None
        i = 0
        for r in self.resolutions:
            block = self.blocks[str(r)]
            if r > 4:
                x = block["conv0"](x, ws[:, i], noise_mode)
                i += 1
            x = block["conv1"](x, ws[:, i], noise_mode)
            y = block["to_image"](x, ws[:, i + 1])
            # Skip architecture: each resolution adds its image to the up-sampled coarser one.
            image = y if image is None else ops.upsample2d(image, self.fir) + y
            i += 1
        return image

    def forward(self, z, c, truncation_psi=1.0, noise_mode="random", update_w_avg=False):
        return self.synthesis(self.mapping(z, c, truncation_psi, update_w_avg), noise_mode)


class DiscriminatorBlock(nn.Module):
    """Two 3x3 convs, the second down-sampling, plus a 1x1 down-sampled residual path."""

    def __init__(self, c_in, c_out):
        super().__init__()
        self.conv0 = Conv2dLayer(c_in, c_in, 3, activation="lrelu", clamp=256.0)
        self.conv1 = Conv2dLayer(c_in, c_out, 3, activation="lrelu", down=2, clamp=256.0)
        self.skip = Conv2dLayer(c_in, c_out, 1, bias=False, down=2)

    def forward(self, x):
        y = self.skip(x, gain=np.sqrt(0.5))
        x = self.conv1(self.conv0(x), gain=np.sqrt(0.5))
        return x + y


class Discriminator(nn.Module):
    """Residual discriminator; conditional through a projection of the class embedding (cmap)."""

    def __init__(
        self,
        c_dim=10,
        resolution=32,
        channels=1,
        channel_base=1024,
        channel_max=64,
        mbstd_group=4,
        cmap_dim=64,
    ):
        super().__init__()
        log2 = int(np.log2(resolution))
        self.resolutions = [2**i for i in range(log2, 2, -1)]
        ch = {r: _channels(r, channel_base, channel_max) for r in [*self.resolutions, 4]}
        self.from_image = Conv2dLayer(channels, ch[resolution], 1, activation="lrelu")
        self.blocks = nn.ModuleList(DiscriminatorBlock(ch[r], ch[r // 2]) for r in self.resolutions)
        self.mbstd_group = mbstd_group
        self.conv = Conv2dLayer(ch[4] + 1, ch[4], 3, activation="lrelu")
        self.fc = FullyConnected(ch[4] * 16, ch[4], activation="lrelu")
        self.c_dim = c_dim
        self.cmap_dim = cmap_dim if c_dim else 1
        self.out = FullyConnected(ch[4], self.cmap_dim)
        self.mapping = FullyConnected(c_dim, self.cmap_dim) if c_dim else None

    def _minibatch_std(self, x):
        n, c, h, w = x.shape
        g = min(self.mbstd_group, n)
        while n % g:
            g -= 1
        y = x.reshape(g, -1, c, h, w)
        y = (y - y.mean(dim=0)).square().mean(dim=0).add(1e-8).sqrt().mean(dim=[1, 2, 3])
        y = y.reshape(-1, 1, 1, 1).repeat(g, 1, h, w)
        return torch.cat([x, y], dim=1)

    def forward(self, image, c):
        x = self.from_image(image)
        for block in self.blocks:
            x = block(x)
        x = self.conv(self._minibatch_std(x))
        x = self.out(self.fc(x.flatten(1)))
        if self.mapping is not None:  # projection discriminator: <out, embed(c)> / sqrt(dim)
            x = (x * self.mapping(c)).sum(dim=1, keepdim=True) / np.sqrt(self.cmap_dim)
        return x
