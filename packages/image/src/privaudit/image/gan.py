"""Training of the StyleGAN2-ADA-style generator: adaptive discriminator augmentation, the
non-saturating logistic loss, lazy R1 regularisation, an EMA copy of the generator, and
checkpoints that let an interrupted training resume."""

from __future__ import annotations

import copy
import io
import math
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from privaudit.core.rundir import atomic_write_bytes
from privaudit.dp.devices import model_device
from privaudit.dp.randomness import seed_for
from privaudit.image import ops
from privaudit.image.networks import Discriminator, Generator
from tqdm.auto import tqdm


@dataclass(frozen=True)
class GanSettings:
    """What decides a trained generator (besides its data and seed)."""

    steps: int = 1500
    batch_size: int = 32
    z_dim: int = 64
    w_dim: int = 64
    channel_base: int = 1024
    channel_max: int = 64
    mapping_layers: int = 2
    mapping_lr_multiplier: float = 0.01
    lr: float = 0.0025
    r1_gamma: float = 0.1
    r1_interval: int = 16
    ema_kimg: float = 2.5  # half-life of the generator EMA, in thousands of images
    ada_target: float = 0.6  # wanted E[sign(D(real))]
    ada_interval: int = 4
    ada_kimg: float = 20.0  # how fast p may travel from 0 to 1, in thousands of images
    fused_ops: bool = False


class AdaptiveAugment(torch.nn.Module):
    """ADA's differentiable augmentations, each applied per image with probability p: integer
    translation, isotropic scaling, small rotation (one affine warp), brightness, contrast, cutout.
    p is tuned during training so the discriminator's sign on reals stays near the target."""

    def __init__(self):
        super().__init__()
        self.register_buffer("p", torch.zeros([]))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        p = float(self.p)
        if p <= 0:
            return images
        n, _, h, w = images.shape
        device = images.device

        def chosen(shape=(n,)):
            return (torch.rand(shape, device=device) < p).float()

        tx = torch.round((torch.rand(n, device=device) * 2 - 1) * 0.125 * w) / w * 2 * chosen()
        ty = torch.round((torch.rand(n, device=device) * 2 - 1) * 0.125 * h) / h * 2 * chosen()
        scale = torch.exp2(torch.randn(n, device=device) * 0.2 * chosen())
        angle = (torch.rand(n, device=device) * 2 - 1) * (math.pi / 12) * chosen()
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        # Background is -1 (black) for digits: warp the [0, 2]-shifted image so padding is black.
        x = ops.grid_sample(images + 1, grid) - 1
        x = x + (torch.randn(n, 1, 1, 1, device=device) * 0.2 * chosen().reshape(n, 1, 1, 1))
        mean = x.mean(dim=[1, 2, 3], keepdim=True)
        contrast = torch.exp2(
            torch.randn(n, 1, 1, 1, device=device) * 0.5 * chosen().reshape(n, 1, 1, 1)
        )
        x = (x - mean) * contrast + mean
        # cutout: a square of half the image side, zeroed with probability p
        cy, cx = torch.rand(n, 1, 1, device=device), torch.rand(n, 1, 1, device=device)
        ys = (torch.arange(h, device=device).reshape(1, h, 1) + 0.5) / h
        xs = (torch.arange(w, device=device).reshape(1, 1, w) + 0.5) / w
        inside = ((ys - cy).abs() < 0.25) & ((xs - cx).abs() < 0.25)
        mask = 1 - inside.float().unsqueeze(1) * chosen().reshape(n, 1, 1, 1)
        return x * mask + (-1) * (1 - mask)


def usable_cores() -> int:
    """Cores this process may run on (the affinity mask where the OS has one, as on Linux)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def idle_cores() -> int:
    """Usable cores not already kept busy by other processes (1-minute load average), at least 1."""
    cores = usable_cores()
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return cores
    return max(1, min(cores, cores - math.floor(load)))


class ThreadChooser:
    """Picks torch's CPU thread count while the generator trains, by timing real steps.

    OpenMP threads that share cores with busy processes stall at every barrier: a step that takes
    0.15 s on two idle cores takes 0.7-9 s beside one or two busy processes, where one thread
    takes about 0.25 s. So each candidate (1, the idle cores, all usable cores) runs `trial_steps`
    steps, the fastest by median step time is kept, and the trial is repeated every
    `recheck_every` steps, or at once when the kept count's recent steps run `slowdown` times
    slower than its trial did (the machine got busier). A candidate whose trial step takes
    `abort` times the median of a candidate already tried is dropped from that trial at once: on
    a busy machine a stalling count costs one step per recheck, not `trial_steps` (measured beside
    the test suite: 5.3 s a step at 2 threads against 0.16 s at 1).

    The thread count never changes which batches, latents or augmentations a step draws, but it
    does change oneDNN's floating-point reduction order, so two runs that chose different counts
    differ in the last bits (and, training being chaotic, later more); `history` records the
    choice so a report can say it, and a fixed count (`--gan-threads`) keeps runs bit-identical."""

    def __init__(
        self,
        candidates: list[int],
        *,
        trial_steps: int = 5,
        recheck_every: int = 250,
        slowdown: float = 2.0,
        abort: float = 3.0,
    ):
        self.candidates = sorted(set(max(1, int(c)) for c in candidates))
        self.trial_steps, self.recheck_every, self.slowdown = trial_steps, recheck_every, slowdown
        self.abort = abort
        self.history: list[
            dict
        ] = []  # {"from_step", "threads", "trial": {threads: median seconds}}
        self._trial: dict[int, list[float]] = {}
        self._queue: list[int] = []
        self._chosen: int | None = None
        self._since = 0  # steps run at the chosen count since the last trial
        self._recent: list[float] = []

    @classmethod
    def auto(cls, **kwargs) -> ThreadChooser:
        return cls([1, idle_cores(), usable_cores()], **kwargs)

    def _start_trial(self) -> None:
        self._trial = {}
        self._queue = [c for c in self.candidates for _ in range(self.trial_steps)]

    def threads(self) -> int:
        """The thread count for the next step."""
        if len(self.candidates) == 1:
            return self.candidates[0]
        if self._chosen is None and not self._queue:
            self._start_trial()
        return self._queue[0] if self._queue else self._chosen

    def record(self, step: int, seconds: float) -> None:
        """After a step: it took `seconds` at the count `threads()` gave."""
        if len(self.candidates) == 1:
            if not self.history:
                self.history.append({"from_step": step, "threads": self.candidates[0]})
            return
        if self._queue:
            threads = self._queue.pop(0)
            self._trial.setdefault(threads, []).append(seconds)
            tried = [statistics.median(v) for t, v in self._trial.items() if t not in self._queue]
            if threads in self._queue and tried and seconds > self.abort * min(tried):
                self._queue = [t for t in self._queue if t != threads]  # it stalls: stop trying it
            if not self._queue:
                medians = {t: statistics.median(v) for t, v in self._trial.items()}
                best = min(medians, key=lambda t: (medians[t], t))
                if best != self._chosen or not self.history:
                    self.history.append(
                        {
                            "from_step": step + 1,
                            "threads": best,
                            "trial": {str(t): round(m, 4) for t, m in medians.items()},
                        }
                    )
                self._chosen, self._since, self._recent = best, 0, []
            return
        self._since += 1
        self._recent = (self._recent + [seconds])[-self.trial_steps :]
        trial_median = statistics.median(self._trial[self._chosen])
        slowed = (
            len(self._recent) == self.trial_steps
            and statistics.median(self._recent) > self.slowdown * trial_median
        )
        if self._since >= self.recheck_every or slowed:
            self._start_trial()


@dataclass
class GanState:
    generator: Generator
    discriminator: Discriminator
    generator_ema: Generator
    augment: AdaptiveAugment
    g_optimizer: torch.optim.Optimizer
    d_optimizer: torch.optim.Optimizer
    step: int = 0
    seconds: float = 0.0
    log: list | None = None
    ada_sign_sum: float = 0.0  # ADA's running statistics since its last adjustment
    ada_count: int = 0


def build_networks(settings: GanSettings, resolution: int, channels: int, classes: int, seed: int):
    torch.manual_seed(seed_for(seed, "gan-init"))
    kwargs = dict(
        resolution=resolution,
        channels=channels,
        channel_base=settings.channel_base,
        channel_max=settings.channel_max,
    )
    generator = Generator(
        z_dim=settings.z_dim,
        c_dim=classes,
        w_dim=settings.w_dim,
        mapping_layers=settings.mapping_layers,
        mapping_lr_multiplier=settings.mapping_lr_multiplier,
        **kwargs,
    )
    discriminator = Discriminator(c_dim=classes, **kwargs)
    return generator, discriminator


def _new_state(
    settings: GanSettings,
    resolution: int,
    channels: int,
    classes: int,
    seed: int,
    device: torch.device,
) -> GanState:
    generator, discriminator = build_networks(settings, resolution, channels, classes, seed)
    generator, discriminator = generator.to(device), discriminator.to(device)
    # Lazy R1: scale Adam's hyper-parameters by the regularisation interval, as in StyleGAN2.
    ratio = settings.r1_interval / (settings.r1_interval + 1)
    return GanState(
        generator=generator,
        discriminator=discriminator,
        generator_ema=copy.deepcopy(generator).eval(),
        augment=AdaptiveAugment().to(device),
        g_optimizer=torch.optim.Adam(
            generator.parameters(), lr=settings.lr, betas=(0.0, 0.99), eps=1e-8
        ),
        d_optimizer=torch.optim.Adam(
            discriminator.parameters(), lr=settings.lr * ratio, betas=(0.0, 0.99**ratio), eps=1e-8
        ),
        log=[],
    )


def _state_bytes(state: GanState, settings: GanSettings) -> bytes:
    buffer = io.BytesIO()
    torch.save(
        {
            "settings": asdict(settings),
            "step": state.step,
            "seconds": state.seconds,
            "log": state.log,
            "ada": [state.ada_sign_sum, state.ada_count],
            "generator": state.generator.state_dict(),
            "discriminator": state.discriminator.state_dict(),
            "generator_ema": state.generator_ema.state_dict(),
            "augment": state.augment.state_dict(),
            "g_optimizer": state.g_optimizer.state_dict(),
            "d_optimizer": state.d_optimizer.state_dict(),
        },
        buffer,
    )
    return buffer.getvalue()


def _load_state(path: Path, state: GanState) -> None:
    saved = torch.load(path, map_location="cpu", weights_only=True)
    for name in (
        "generator",
        "discriminator",
        "generator_ema",
        "augment",
        "g_optimizer",
        "d_optimizer",
    ):
        getattr(state, name).load_state_dict(saved[name])
    state.step, state.seconds, state.log = (
        int(saved["step"]),
        float(saved["seconds"]),
        list(saved["log"]),
    )
    state.ada_sign_sum, state.ada_count = float(saved["ada"][0]), int(saved["ada"][1])


def train_gan(
    images: torch.Tensor,
    labels: torch.Tensor,
    classes: int,
    settings: GanSettings,
    *,
    seed: int,
    checkpoint: Path | None = None,
    checkpoint_every: int = 100,
    on_step: Callable[[int], None] | None = None,
    device: torch.device | str = "cpu",
    threads: ThreadChooser | None = None,
) -> tuple[Generator, dict]:
    """Train on images in [-1, 1] of shape [N, C, R, R] (R a power of two) with integer labels.

    Returns the EMA generator (on `device`) and a summary (steps, seconds, final ADA p, losses). With
    `checkpoint` the full training state is saved there every `checkpoint_every` steps and a rerun
    resumes from it, on any device. Batches, latents and labels are drawn on the CPU, so a run draws
    the same ones on every device. With `threads` the CPU thread count is set before each step
    as it chooses (and left at its last choice); its choices are in the summary.
    """
    ops.use_compiled(settings.fused_ops)
    device = torch.device(device)
    n, channels, resolution, _ = images.shape
    images, labels = images.to(device), labels.to(device)
    state = _new_state(settings, resolution, channels, classes, seed, device)
    if checkpoint is not None and checkpoint.exists():
        _load_state(checkpoint, state)
    G, D, G_ema, augment = state.generator, state.discriminator, state.generator_ema, state.augment
    rng = torch.Generator()
    eye = torch.eye(classes, device=device)
    batch = min(settings.batch_size, n)
    ema_beta = 0.5 ** (batch / max(settings.ema_kimg * 1000, 1e-8))
    progress = tqdm(
        total=settings.steps, initial=state.step, desc="generator", unit="step", leave=False
    )
    started = time.perf_counter() - state.seconds
    while state.step < settings.steps:
        if threads is not None and torch.get_num_threads() != (wanted := threads.threads()):
            torch.set_num_threads(wanted)
        step_started = time.perf_counter()
        # each step's batches, latents and labels (rng) and noise inputs and augmentations (global)
        # from streams of their own, so a resumed run draws what an uninterrupted one would
        rng.manual_seed(seed_for(seed, "gan-batches", state.step))
        torch.manual_seed(seed_for(seed, "gan-noise", state.step))
        real_idx = torch.randint(0, n, (batch,), generator=rng).to(device)
        real, real_c = images[real_idx], eye[labels[real_idx]]
        z = torch.randn(batch, settings.z_dim, generator=rng).to(device)
        gen_c = eye[torch.randint(0, classes, (batch,), generator=rng).to(device)]

        # One generator forward serves both phases: the discriminator steps on its detached
        # images, then the generator steps through the updated discriminator.
        fake = G(z, gen_c, update_w_avg=True)

        # Discriminator: logistic loss on reals and fakes, lazy R1 penalty on reals.
        D.requires_grad_(True)
        real_logits = D(augment(real), real_c)
        d_loss = (
            F.softplus(D(augment(fake.detach()), gen_c)).mean() + F.softplus(-real_logits).mean()
        )
        state.ada_sign_sum += float(real_logits.detach().sign().sum())
        state.ada_count += batch
        state.d_optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        r1 = None
        if settings.r1_gamma > 0 and state.step % settings.r1_interval == 0:
            with ops.double_backward():
                real_in = real.detach().requires_grad_(True)
                logits = D(augment(real_in), real_c)
                (grad,) = torch.autograd.grad(logits.sum(), real_in, create_graph=True)
                r1 = grad.square().sum(dim=[1, 2, 3]).mean()
                (r1 * (settings.r1_gamma / 2) * settings.r1_interval).backward()
        state.d_optimizer.step()

        # Generator: non-saturating logistic loss through the augmented discriminator.
        D.requires_grad_(False)
        g_loss = F.softplus(-D(augment(fake), gen_c)).mean()
        state.g_optimizer.zero_grad(set_to_none=True)
        g_loss.backward()
        state.g_optimizer.step()

        # EMA of the generator's weights (buffers copied).
        with torch.no_grad():
            for p_ema, p in zip(G_ema.parameters(), G.parameters(), strict=True):
                p_ema.copy_(p.lerp(p_ema, ema_beta))
            for b_ema, b in zip(G_ema.buffers(), G.buffers(), strict=True):
                b_ema.copy_(b)

        # ADA: move p toward keeping E[sign(D(real))] at the target.
        if (state.step + 1) % settings.ada_interval == 0:
            r_t = state.ada_sign_sum / max(state.ada_count, 1)
            adjust = (
                np.sign(r_t - settings.ada_target) * state.ada_count / (settings.ada_kimg * 1000)
            )
            augment.p.copy_((augment.p + adjust).clamp(0, 1))
            state.ada_sign_sum, state.ada_count = 0.0, 0

        if threads is not None:
            threads.record(state.step, time.perf_counter() - step_started)
        state.step += 1
        state.seconds = time.perf_counter() - started
        if state.step % 50 == 0 or state.step == settings.steps:
            state.log.append(
                {
                    "step": state.step,
                    "g_loss": g_loss.item(),
                    "d_loss": d_loss.item(),
                    "ada_p": float(augment.p),
                    "r1": None if r1 is None else r1.item(),
                }
            )
            progress.set_postfix(
                g=f"{g_loss.item():.2f}", d=f"{d_loss.item():.2f}", p=f"{float(augment.p):.2f}"
            )
        progress.update(1)
        if checkpoint is not None and (
            state.step % checkpoint_every == 0 or state.step == settings.steps
        ):
            atomic_write_bytes(checkpoint, _state_bytes(state, settings))
        if on_step is not None:
            on_step(state.step)
    progress.close()
    summary = {
        "steps": state.step,
        "seconds": round(state.seconds, 1),
        "ada_p": float(augment.p),
        "implementation": ops.implementation(),
        "log": state.log,
        "threads": threads.history if threads is not None else torch.get_num_threads(),
    }
    return G_ema.eval(), summary


@torch.no_grad()
def sample(
    generator: Generator,
    labels: torch.Tensor,
    *,
    seed: int,
    batch_size: int = 256,
    truncation_psi: float = 1.0,
) -> torch.Tensor:
    """Images of the given classes from the generator (on any device), clamped to [-1, 1], on the CPU."""
    generator.eval()
    device = model_device(generator)
    rng = torch.Generator().manual_seed(seed)
    eye = torch.eye(generator.c_dim)
    out = []
    for start in range(0, len(labels), batch_size):
        c = eye[labels[start : start + batch_size]]
        z = torch.randn(len(c), generator.z_dim, generator=rng)
        image = generator(
            z.to(device), c.to(device), truncation_psi=truncation_psi, noise_mode="const"
        )
        out.append(image.clamp(-1, 1).cpu())
    return (
        torch.cat(out)
        if out
        else torch.empty(0, generator.channels, generator.resolution, generator.resolution)
    )


def generator_from_state(
    path: Path, settings: GanSettings, resolution: int, channels: int, classes: int
) -> Generator:
    """The EMA generator kept in a training checkpoint (loaded with weights_only=True)."""
    generator, _ = build_networks(settings, resolution, channels, classes, seed=0)
    saved = torch.load(path, map_location="cpu", weights_only=True)
    generator.load_state_dict(saved["generator_ema"])
    return generator.eval()
