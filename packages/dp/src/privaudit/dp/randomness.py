"""Independent random streams, one per role, and the OS-entropy seeds that DP randomness uses.

A run has one `seed`; every role (data split, model init, augmentation, ...) derives its own
stream from it with `numpy.random.SeedSequence`, so no two roles ever share a value. The two
roles the DP guarantee rests on, the Poisson mask and the Gaussian noise, are different: by
default they are seeded from the OS CSPRNG and nobody, the run seed's owner included, can
recompute them. Reproducing them is an explicit opt-in that marks the run as not private.
"""

from __future__ import annotations

import secrets
import zlib

import numpy as np

# What the report and provenance say about a run whose DP randomness came from a known seed.
REPRODUCIBLE_WARNING = "not private: noise reproducible from the seed"


def _role_key(role: str | int) -> int:
    # a stable 32-bit key for a role name: the same name gives the same stream in every process
    return role if isinstance(role, int) else zlib.crc32(role.encode())


def seed_for(seed: int, role: str | int, *index: int) -> int:
    """A 63-bit seed for (run seed, role, index...), independent of every other role's."""
    sequence = np.random.SeedSequence([int(seed), _role_key(role), *map(int, index)])
    return int(sequence.generate_state(1, np.uint64)[0] >> 1)


def entropy_seed() -> int:
    """A fresh 63-bit seed from the OS CSPRNG."""
    return secrets.randbits(63)


def dp_randomness(reproducible_seed: int | None) -> dict:
    """The provenance record of a DP run's sampling and noise randomness."""
    if reproducible_seed is None:
        return {"source": "os-entropy", "private": True}
    return {
        "source": "seed",
        "seed": int(reproducible_seed),
        "private": False,
        "warning": REPRODUCIBLE_WARNING,
    }
