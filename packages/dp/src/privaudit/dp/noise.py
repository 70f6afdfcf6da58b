"""Gaussian noise for the private gradient: from OS entropy by default, reproducible on request.

What this protects: with `seed=None` (the default) each device's generator is seeded from the OS
CSPRNG, so the noise cannot be recomputed from the run seed, the model's initial weights or the
Poisson mask. With `secure=True` the generator is also reseeded from the CSPRNG before every
draw, so even a leaked generator state reveals nothing about later steps. What it does not
protect: torch's generators are not cryptographic and `torch.normal` samples floating-point
numbers, whose discreteness can leak (Mironov 2012; the caveat Opacus gives for its secure
mode). `seed=` reproduces the noise exactly, which voids the DP guarantee: for tests only.
"""

from __future__ import annotations

import torch
from privaudit.dp.randomness import entropy_seed, seed_for
from torch import Tensor

NOISE_ROLE = "gaussian-noise"


class GaussianNoise:
    """N(0, std^2) draws, one torch generator per device."""

    def __init__(self, seed: int | None = None, secure: bool = False):
        self.secure = secure
        self.reproducible = seed is not None and not secure
        self._seed = seed
        self._generators: dict[torch.device, torch.Generator] = {}

    def _device_seed(self, index: int) -> int:
        if not self.reproducible:
            return entropy_seed()
        # each device its own stream, none shared with another role that derives from the same seed
        return seed_for(self._seed, NOISE_ROLE, index)

    def _generator(self, device: torch.device) -> torch.Generator:
        if device not in self._generators:
            generator = torch.Generator(device=device)
            generator.manual_seed(self._device_seed(len(self._generators)))
            self._generators[device] = generator
        generator = self._generators[device]
        if self.secure:
            generator.manual_seed(entropy_seed())
        return generator

    def sample_like(self, reference: Tensor, std: float) -> Tensor:
        return torch.normal(
            0.0,
            std,
            reference.shape,
            generator=self._generator(reference.device),
            device=reference.device,
            dtype=reference.dtype,
        )
