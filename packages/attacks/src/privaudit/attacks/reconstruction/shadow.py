"""Shadow heads: balanced training sets drawn from a pool of image features, trained a chunk at a
time (thousands of heads per batched call), locally or as Ray tasks, into a HeadStore."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from privaudit.attacks.fanout import ray_map
from privaudit.attacks.reconstruction.heads import (
    DPSchedule,
    HeadConfig,
    initial_heads,
    train_heads,
)
from privaudit.attacks.reconstruction.store import HeadStore
from privaudit.core.errors import InputError
from privaudit.dp.randomness import entropy_seed, seed_for
from tqdm.auto import tqdm

# one random stream per role and chunk from the run seed; the DP Poisson masks and noise have none:
# they come from OS entropy, so nobody holding the seed can recompute them
SETS_ROLE, INIT_ROLE = "head-sets", "head-init"


def balanced_sets(labels: np.ndarray, classes: int, class_size: int, count: int, rng) -> np.ndarray:
    """[count, classes x class_size] pool indices: class_size distinct images of every class per
    set, class-major. Sets come from successive permutations of each class's images, as the
    paper's balanced sets, continued past one permutation when more heads are asked for."""
    per_class = []
    for c in range(classes):
        members = np.flatnonzero(labels == c)
        per_round = len(members) // class_size
        if per_round == 0:
            raise InputError(
                f"class {c} has {len(members)} images in the pool, fewer than the class size {class_size}"
            )
        rounds = -(-count // per_round)
        blocks = [
            rng.permutation(members)[: per_round * class_size].reshape(per_round, class_size)
            for _ in range(rounds)
        ]
        per_class.append(np.concatenate(blocks)[:count])
    return np.stack(per_class, 1).reshape(count, classes * class_size)


@dataclass(frozen=True)
class ShadowJob:
    """What every chunk of one population of heads shares. `population` keeps the random streams
    of different head populations (shadow, attacked) apart under one run seed."""

    config: HeadConfig
    classes: int
    class_size: int
    seed: int
    population: int
    dp: DPSchedule | None = None
    device: str = "cpu"

    @property
    def epochs(self) -> int:
        return self.config.epochs_for(self.class_size)


def train_chunk(
    features: torch.Tensor, labels: np.ndarray, job: ShadowJob, chunk: int, size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train one chunk of `size` heads on sets drawn from the pool (features [n, D] on any device,
    labels [n]); returns (weights [size, P] float32, sets [size, N], positive classes [size])."""
    device = torch.device(job.device)
    rng = np.random.default_rng(seed_for(job.seed, SETS_ROLE, job.population, chunk))
    sets = balanced_sets(labels, job.classes, job.class_size, size, rng)
    one_vs_rest = job.config.kind == "mlp"
    positive = rng.integers(job.classes, size=size) if one_vs_rest else np.full(size, -1)
    features = features.to(device)
    x = features[torch.as_tensor(sets, device=device)]
    set_labels = (
        torch.arange(job.classes, device=device).repeat_interleave(job.class_size).expand(size, -1)
    )
    init = torch.Generator(device=device).manual_seed(
        seed_for(job.seed, INIT_ROLE, job.population, chunk)
    )
    initial = initial_heads(size, features.shape[1], job.classes, job.config, init)
    sampling = None
    if job.dp is not None:
        sampling = torch.Generator(device=device)
        sampling.manual_seed(entropy_seed())
    weights = train_heads(
        initial, x, set_labels, job.classes, job.config, epochs=job.epochs,
        positive=torch.as_tensor(positive, device=device) if one_vs_rest else None,
        dp=job.dp, sampling=sampling,
    )  # fmt: skip
    return weights.cpu().numpy(), sets, positive


def train_shadow_heads(
    store: HeadStore, features: torch.Tensor, labels: np.ndarray, job: ShadowJob, *,
    ray_address: str | None = None, progress: bool = True, desc: str = "shadow heads",
) -> list[int]:  # fmt: skip
    """Train every chunk the store is missing, in order, and save each as soon as it is done;
    returns the chunks trained now. With `ray_address` ('local' starts a cluster) every chunk is
    a Ray task (one GPU each when job.device is CUDA)."""
    todo = store.missing()
    chunks = store.layout.chunks()
    if ray_address is not None:
        gpus = 1 if torch.device(job.device).type == "cuda" else 0
        results = ray_map(
            ray_address,
            train_chunk,
            [(job, c, chunks[c][1]) for c in todo],
            gpus=gpus,
            shared=(features.cpu(), labels),
        )
    else:
        features = features.to(job.device)
        results = (train_chunk(features, labels, job, c, chunks[c][1]) for c in todo)
    done = store.layout.count - sum(chunks[c][1] for c in todo)
    with tqdm(
        total=store.layout.count, initial=done, desc=desc, unit="head", disable=not progress
    ) as bar:
        for chunk, (weights, sets, positive) in zip(todo, results, strict=True):
            store.save(chunk, weights, sets, positive)
            bar.update(chunks[chunk][1])
    return todo
