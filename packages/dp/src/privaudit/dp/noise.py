"""Gaussian noise for the private gradient: seedable, or reseeded from the OS CSPRNG every draw."""

import secrets

import torch
from torch import Tensor


class GaussianNoise:
    """N(0, std^2) draws from a torch generator.

    With `secure=True` the generator is reseeded from `secrets` (the OS CSPRNG) before every draw, so
    no seed is ever known to anyone; torch's generator itself is not a CSPRNG.
    """

    def __init__(self, seed: int | None = None, secure: bool = False):
        self.secure = secure
        self._generators: dict[torch.device, torch.Generator] = {}
        self._seed = secrets.randbits(63) if seed is None or secure else int(seed)

    def _generator(self, device: torch.device) -> torch.Generator:
        if device not in self._generators:
            generator = torch.Generator(device=device)
            # one seed per device keeps CPU runs reproducible and GPU runs independent of CPU draws
            generator.manual_seed(self._seed + len(self._generators))
            self._generators[device] = generator
        generator = self._generators[device]
        if self.secure:
            generator.manual_seed(secrets.randbits(63))
        return generator

    def sample_like(self, reference: Tensor, std: float) -> Tensor:
        return torch.normal(
            0.0, std, reference.shape, generator=self._generator(reference.device),
            device=reference.device, dtype=reference.dtype,
        )
