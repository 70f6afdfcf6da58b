"""Stage 2 of PLG-MI: for each class, optimise generator latents so that the target classifies
two random views of the generated image as that class (max-margin loss, Adam), from several
random starts."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from privaudit.dp.devices import model_device
from privaudit.dp.randomness import seed_for
from privaudit.image.inversion.networks import ConditionalGenerator, augment, max_margin_loss
from torch import nn
from tqdm.auto import tqdm


@dataclass(frozen=True)
class ReconstructionSettings:
    iterations: int = 300  # the paper: 600
    lr: float = 0.1  # Adam on the latents (the paper: 0.1)
    starts: int = 8  # random starts per class (the paper: 5)


def reconstruct(generator: ConditionalGenerator, target: nn.Module, classes: int, settings: ReconstructionSettings,
                *, seed: int, progress: bool = True) -> tuple[torch.Tensor, torch.Tensor, list[float]]:  # fmt: skip
    """Images [classes x starts, C, S, S] (on the CPU, in [-1, 1]), their classes, the loss per
    iteration. Every class and start is one latent of one batch; the generator's batch norm uses its
    running statistics, so the latents do not interact."""
    device = model_device(generator)
    generator.eval().requires_grad_(False)
    target = target.to(device).eval().requires_grad_(False)
    rng = torch.Generator().manual_seed(seed_for(seed, "inversion-latents"))
    labels = torch.arange(classes).repeat_interleave(settings.starts)
    z = torch.randn(len(labels), generator.z_dim, generator=rng).to(device).requires_grad_(True)
    y = labels.to(device)
    optimiser = torch.optim.Adam([z], lr=settings.lr)
    views = torch.Generator().manual_seed(seed_for(seed, "inversion-views"))
    losses = []
    for _ in tqdm(
        range(settings.iterations), desc="inversion", unit="it", leave=False, disable=not progress
    ):
        fake = generator(z, y)
        loss = max_margin_loss(target(augment(fake, views)), y) + max_margin_loss(
            target(augment(fake, views)), y
        )
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    with torch.no_grad():
        images = generator(z, y).clamp(-1, 1).cpu()
    return images, labels, losses
