"""The reconstructor network: standardised head weights (plus a one-hot class when conditional) ->
an image, through a transposed convolution and up-sampling residual blocks, tanh out. Trained on
shadow heads with (MSE + MAE) / 2, soft-minimised over the class's images when a class holds more
than one, and checkpointed so an interrupted training resumes at its last checkpoint."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from privaudit.attacks.reconstruction.store import HeadStore, WeightStats
from privaudit.core.rundir import atomic_write_bytes
from privaudit.dp.randomness import seed_for
from torch import Tensor, nn
from tqdm.auto import tqdm

INIT_ROLE, BATCH_ROLE = "reconstructor-init", "reconstructor-batches"


@dataclass(frozen=True)
class ReconstructorConfig:
    """The paper's MNIST run: width (GEN_SIZE) 256, batch 32, Adam lr 2e-4, ~1M steps; the default
    is sized for minutes on a CPU."""

    width: int = 16
    steps: int = 1500
    batch_size: int = 32
    lr: float = 2e-4
    softmin_alpha: float = 100.0
    checkpoint_every: int = 250
    # linear heads: also feed the conditioned class's own weight row and bias (our addition; the
    # paper's input, weights + one-hot only, with False)
    class_row: bool = True

    def __post_init__(self):
        if min(self.width, self.steps, self.batch_size, self.checkpoint_every) < 1:
            raise ValueError(
                "reconstructor width, steps, batch_size and checkpoint_every must be >= 1"
            )
        if self.lr <= 0 or self.softmin_alpha <= 0:
            raise ValueError("reconstructor lr and softmin_alpha must be positive")


class UpBlock(nn.Module):
    """BN-ReLU-upsample-conv-BN-ReLU-conv, plus an up-sampled (1x1-projected) bypass."""

    def __init__(self, channels_in: int, channels_out: int):
        super().__init__()
        conv1, conv2 = (
            nn.Conv2d(channels_in, channels_out, 3, padding=1),
            nn.Conv2d(channels_out, channels_out, 3, padding=1),
        )
        for conv in (conv1, conv2):
            nn.init.kaiming_uniform_(conv.weight, mode="fan_in", nonlinearity="relu")
        self.body = nn.Sequential(
            nn.BatchNorm2d(channels_in), nn.ReLU(), nn.Upsample(scale_factor=2), conv1,
            nn.BatchNorm2d(channels_out), nn.ReLU(), conv2,
        )  # fmt: skip
        bypass = [nn.Upsample(scale_factor=2)]
        if channels_in != channels_out:
            projection = nn.Conv2d(channels_in, channels_out, 1)
            nn.init.kaiming_uniform_(projection.weight, mode="fan_in", nonlinearity="relu")
            bypass.append(projection)
        self.bypass = nn.Sequential(*bypass)

    def forward(self, x):
        return self.body(x) + self.bypass(x)


class Reconstructor(nn.Module):
    """inputs -> (4 width) x 4 x 4 by a transposed convolution, then log2(resolution / 4) up-blocks
    halving the channels down to at least `width` (32 x 32: 4w -> 2w -> w -> w, the paper's),
    BN-ReLU, a 3x3 convolution to `channels`, tanh."""

    def __init__(self, inputs: int, width: int, channels: int, resolution: int):
        super().__init__()
        blocks = int(math.log2(resolution / 4)) if resolution >= 8 else 0
        if resolution < 8 or 4 * 2**blocks != resolution:
            raise ValueError(
                f"the reconstructor needs a power-of-two resolution >= 8, got {resolution}"
            )
        self.inputs = inputs
        self.project = nn.ConvTranspose2d(inputs, 4 * width, 4)
        nn.init.kaiming_uniform_(self.project.weight, mode="fan_in", nonlinearity="linear")
        sizes = [max(width, 4 * width // 2**i) for i in range(blocks + 1)]
        final = nn.Conv2d(sizes[-1], channels, 3, padding=1)
        nn.init.xavier_uniform_(final.weight, nn.init.calculate_gain("tanh"))
        self.body = nn.Sequential(
            *[UpBlock(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True)],
            nn.BatchNorm2d(sizes[-1]), nn.ReLU(), final, nn.Tanh(),
        )  # fmt: skip

    def forward(self, z):
        return self.body(self.project(z.view(len(z), self.inputs, 1, 1)))


def reconstruction_loss(outputs: Tensor, targets: Tensor, softmin_alpha: float = 100.0) -> Tensor:
    """(MSE + MAE) / 2 of outputs [B, C, H, W] against targets [B, K, C, H, W]; for K > 1 the
    errors to the K images are averaged with softmin(-alpha x error) weights (a smooth minimum)."""
    difference = outputs.unsqueeze(1) - targets
    error = (difference.square().mean((-3, -2, -1)) + difference.abs().mean((-3, -2, -1))) / 2
    if error.shape[1] == 1:
        return error.mean()
    return (error * torch.softmax(-softmin_alpha * error, 1)).sum(1).mean()


class HeadBatches:
    """Random (input, targets) batches from a HeadStore: standardised weights (plus the one-hot of
    a random class when conditional, and that class's weight row and bias when `row_width` is
    the features' width of linear heads) and that class's images in the head's training set (the
    positive class's, for one-vs-rest heads)."""

    def __init__(self, store: HeadStore, stats: WeightStats, images: Tensor, classes: int,
                 class_size: int, conditional: bool, row_width: int | None = None):  # fmt: skip
        self.stats, self.images, self.classes, self.class_size = stats, images, classes, class_size
        self.conditional, self.row_width = conditional, row_width if conditional else None
        self.chunks = [store.load(c) for c in range(len(store.layout.chunks()))]
        self.starts = np.cumsum([0] + [len(c[0]) for c in self.chunks])

    @property
    def inputs(self) -> int:
        extra = (
            (self.classes + (self.row_width + 1 if self.row_width else 0))
            if self.conditional
            else 0
        )
        return self.stats.dimension + extra

    def __len__(self) -> int:
        return int(self.starts[-1])

    def rows(self, heads: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(weights, sets, positive) of the given head numbers, in their order."""
        chunk_of = np.searchsorted(self.starts, heads, side="right") - 1
        weights = np.empty((len(heads), self.chunks[0][0].shape[1]), dtype=np.float32)
        sets = np.empty((len(heads), self.chunks[0][1].shape[1]), dtype=np.int64)
        positive = np.empty(len(heads), dtype=np.int64)
        for chunk in np.unique(chunk_of):
            at = np.flatnonzero(chunk_of == chunk)
            local = heads[at] - self.starts[chunk]
            w, s, p = self.chunks[chunk]
            weights[at], sets[at], positive[at] = w[local], s[local], p[local]
        return weights, sets, positive

    def targets(self, sets: np.ndarray, groups: np.ndarray) -> Tensor:
        """Images [B, class_size, C, H, W] of class groups[b] in set b."""
        columns = groups[:, None] * self.class_size + np.arange(self.class_size)
        return self.images[torch.as_tensor(np.take_along_axis(sets, columns, 1))]

    def condition(self, standardised: np.ndarray, groups: np.ndarray) -> Tensor:
        """Reconstructor inputs from full-layout standardised weights [B, P] and groups [B]."""
        parts = [torch.from_numpy(standardised[:, self.stats.keep])]
        if self.conditional:
            parts.append(F.one_hot(torch.as_tensor(groups), self.classes).float())
        if self.row_width:  # the flat layout of a linear head: W [classes, D] row-major, then b
            columns = groups[:, None] * self.row_width + np.arange(self.row_width)
            bias = self.classes * self.row_width + groups[:, None]
            parts.append(
                torch.from_numpy(np.take_along_axis(standardised, np.c_[columns, bias], 1))
            )
        return torch.cat(parts, 1)

    def sample(self, rng: np.random.Generator, size: int) -> tuple[Tensor, Tensor]:
        weights, sets, positive = self.rows(rng.integers(len(self), size=size))
        groups = rng.integers(self.classes, size=size) if self.conditional else positive
        return self.condition(self.stats.standardise(weights), groups), self.targets(sets, groups)


def _save_checkpoint(path: Path, model, optimizer, step: int, losses: list[float]) -> None:
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                "losses": torch.tensor(losses, dtype=torch.float64)}, buffer)  # fmt: skip
    atomic_write_bytes(path, buffer.getvalue())


def train_reconstructor(
    batches: HeadBatches, config: ReconstructorConfig, *, seed: int, checkpoint: Path,
    device: torch.device | str = "cpu", progress: bool = True,
) -> tuple[Reconstructor, list[float]]:  # fmt: skip
    """Train (or resume from `checkpoint`) a reconstructor for the store behind `batches`; returns
    the model in eval mode and the loss of every step. Batch b is drawn from its own stream of
    (seed, b), so a resumed run sees the batches an uninterrupted one would."""
    channels, resolution = batches.images.shape[1], batches.images.shape[-1]
    torch.manual_seed(seed_for(seed, INIT_ROLE))
    model = Reconstructor(batches.inputs, config.width, channels, resolution).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    start, losses = 0, []
    if checkpoint.exists():
        state = torch.load(checkpoint, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start, losses = int(state["step"]), state["losses"].tolist()
    model.train()
    for step in tqdm(range(start, config.steps), initial=start, total=config.steps, desc="reconstructor",
                     unit="step", disable=not progress):  # fmt: skip
        inputs, targets = batches.sample(
            np.random.default_rng(seed_for(seed, BATCH_ROLE, step)), config.batch_size
        )
        loss = reconstruction_loss(
            model(inputs.to(device)), targets.to(device), config.softmin_alpha
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if (step + 1) % config.checkpoint_every == 0 or step + 1 == config.steps:
            _save_checkpoint(checkpoint, model, optimizer, step + 1, losses)
    return model.eval(), losses


@torch.no_grad()
def reconstruct(model: Reconstructor, inputs: Tensor, batch_size: int = 256) -> Tensor:
    """Images [M, C, H, W] (CPU) from inputs [M, inputs], in eval mode, in batches on the model's device."""
    device = next(model.parameters()).device
    model.eval()
    return torch.cat(
        [
            model(inputs[s : s + batch_size].to(device)).cpu()
            for s in range(0, len(inputs), batch_size)
        ]
    )
