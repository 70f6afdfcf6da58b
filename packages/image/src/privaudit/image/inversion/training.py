"""Stage 1 of PLG-MI: the pseudo-label-guided cGAN. The discriminator learns the pseudo-labelled
public images (hinge loss); the generator fools it and, weighted by alpha, makes the target
classify its augmented samples as their class (max-margin loss). Checkpoints let an interrupted
training resume and draw what an uninterrupted one would."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from privaudit.core.rundir import atomic_write_bytes
from privaudit.dp.randomness import seed_for
from privaudit.image.inversion.networks import (
    ConditionalGenerator,
    ProjectionDiscriminator,
    augment,
    hinge_discriminator_loss,
    hinge_generator_loss,
    max_margin_loss,
)
from torch import nn
from tqdm.auto import tqdm


@dataclass(frozen=True)
class CganSettings:
    steps: int = 300  # generator steps
    batch_size: int = 32
    discriminator_steps: int = 2  # per generator step (SNGAN: 5)
    z_dim: int = 64
    width: int = 16  # generator and discriminator base width (channels 4w, 2w, w)
    lr: float = 2e-4
    alpha: float = 0.2  # weight of the inversion loss (the paper: 0.2)


def build_networks(settings: CganSettings, classes: int, channels: int, size: int, seed: int):
    torch.manual_seed(seed_for(seed, "cgan-init"))
    generator = ConditionalGenerator(settings.z_dim, classes, channels, size, settings.width)
    discriminator = ProjectionDiscriminator(classes, channels, settings.width)
    return generator, discriminator


def _optimisers(generator: nn.Module, discriminator: nn.Module, settings: CganSettings):
    return (torch.optim.Adam(generator.parameters(), lr=settings.lr, betas=(0.0, 0.9)),
            torch.optim.Adam(discriminator.parameters(), lr=settings.lr, betas=(0.0, 0.9)))  # fmt: skip


def train_cgan(images: torch.Tensor, labels: torch.Tensor, classes: int, target: nn.Module, settings: CganSettings,
               *, seed: int, checkpoint: Path | None = None, checkpoint_every: int = 50,
               on_step: Callable[[int], None] | None = None, device: torch.device | str = "cpu",
               progress: bool = True) -> tuple[ConditionalGenerator, dict]:  # fmt: skip
    """Train on pseudo-labelled images in [-1, 1] against the frozen `target`; returns the
    generator (eval mode, on `device`) and a summary (steps, seconds, loss log)."""
    device = torch.device(device)
    n, channels, size, _ = images.shape
    generator, discriminator = build_networks(settings, classes, channels, size, seed)
    generator, discriminator = generator.to(device), discriminator.to(device)
    g_opt, d_opt = _optimisers(generator, discriminator, settings)
    step, seconds, log = 0, 0.0, []
    if checkpoint is not None and checkpoint.exists():
        saved = torch.load(checkpoint, map_location=device, weights_only=True)
        for name, part in (
            ("generator", generator),
            ("discriminator", discriminator),
            ("g_opt", g_opt),
            ("d_opt", d_opt),
        ):
            part.load_state_dict(saved[name])
        step, seconds, log = int(saved["step"]), float(saved["seconds"]), list(saved["log"])
    target = target.to(device).eval().requires_grad_(False)
    images, labels = images.to(device), labels.to(device)
    batch = min(settings.batch_size, n)
    bar = tqdm(
        total=settings.steps,
        initial=step,
        desc="cGAN",
        unit="step",
        leave=False,
        disable=not progress,
    )
    started = time.perf_counter() - seconds
    generator.train()
    discriminator.train()
    while step < settings.steps:
        # every step draws from streams of its own, so a resumed run draws what an uninterrupted one would
        rng = torch.Generator().manual_seed(seed_for(seed, "cgan-batches", step))
        for _ in range(settings.discriminator_steps):
            rows = torch.randint(0, n, (batch,), generator=rng).to(device)
            z = torch.randn(batch, settings.z_dim, generator=rng).to(device)
            y = torch.randint(0, classes, (batch,), generator=rng).to(device)
            with torch.no_grad():
                fake = generator(z, y)
            d_loss = hinge_discriminator_loss(
                discriminator(images[rows], labels[rows]), discriminator(fake, y)
            )
            d_opt.zero_grad(set_to_none=True)
            d_loss.backward()
            d_opt.step()
        z = torch.randn(batch, settings.z_dim, generator=rng).to(device)
        y = torch.randint(0, classes, (batch,), generator=rng).to(device)
        fake = generator(z, y)
        discriminator.requires_grad_(False)
        gan_loss = hinge_generator_loss(discriminator(fake, y))
        inversion_loss = max_margin_loss(target(augment(fake, rng)), y)
        g_loss = gan_loss + settings.alpha * inversion_loss
        g_opt.zero_grad(set_to_none=True)
        g_loss.backward()
        g_opt.step()
        discriminator.requires_grad_(True)
        step += 1
        seconds = time.perf_counter() - started
        if step % 25 == 0 or step == settings.steps:
            log.append({"step": step, "d_loss": d_loss.item(), "gan_loss": gan_loss.item(),
                        "inversion_loss": inversion_loss.item()})  # fmt: skip
            bar.set_postfix(
                d=f"{d_loss.item():.2f}",
                g=f"{gan_loss.item():.2f}",
                inv=f"{inversion_loss.item():.2f}",
            )
        bar.update(1)
        if checkpoint is not None and (step % checkpoint_every == 0 or step == settings.steps):
            buffer = io.BytesIO()
            torch.save({"settings": asdict(settings), "step": step, "seconds": seconds, "log": log,
                        "generator": generator.state_dict(), "discriminator": discriminator.state_dict(),
                        "g_opt": g_opt.state_dict(), "d_opt": d_opt.state_dict()}, buffer)  # fmt: skip
            atomic_write_bytes(checkpoint, buffer.getvalue())
        if on_step is not None:
            on_step(step)
    bar.close()
    return generator.eval(), {"steps": step, "seconds": round(seconds, 2), "log": log}
