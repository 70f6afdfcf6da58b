"""Poisson-sampled batches (each example in each step independently with probability q),
optionally split into physical batches that the optimizer accumulates into one logical step."""

from __future__ import annotations

from collections import deque

import torch
from privaudit.dp.errors import DPError
from privaudit.dp.randomness import entropy_seed, seed_for
from torch.utils.data import DataLoader, Dataset, default_collate

SAMPLING_ROLE = "poisson-sampling"


class PrivateBatchSampler:
    """`steps` Poisson logical batches per epoch; yields index lists split into chunks of at most
    `max_physical` indices and records after each chunk whether it ends its logical batch.

    The masks come from OS entropy unless `seed` is given: the accountant's amplification by
    subsampling assumes nobody knows who was sampled, so a known seed voids the guarantee.
    """

    def __init__(
        self,
        num_samples: int,
        sample_rate: float,
        steps: int,
        *,
        max_physical: int | None = None,
        seed: int | None = None,
        secure: bool = False,
    ):
        self.num_samples = num_samples
        self.sample_rate = sample_rate
        self.steps = steps
        self.max_physical = max_physical
        self.secure = secure
        self.reproducible = seed is not None and not secure
        self.generator = torch.Generator()
        self.generator.manual_seed(
            seed_for(seed, SAMPLING_ROLE) if self.reproducible else entropy_seed()
        )
        self.ends: deque[bool] = deque()

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        for _ in range(self.steps):
            if self.secure:
                self.generator.manual_seed(entropy_seed())
            mask = torch.rand(self.num_samples, generator=self.generator) < self.sample_rate
            indices = mask.nonzero().flatten().tolist()
            size = self.max_physical or max(len(indices), 1)
            chunks = [indices[i : i + size] for i in range(0, len(indices), size)] or [[]]
            for k, chunk in enumerate(chunks):
                self.ends.append(k == len(chunks) - 1)
                yield chunk


class _EmptyAwareCollate:
    """Collates as before, but an empty batch becomes tensors with zero rows and the right shapes."""

    def __init__(self, dataset: Dataset, collate_fn):
        self.dataset = dataset
        self.collate_fn = collate_fn or default_collate

    def __call__(self, batch):
        if batch:
            return self.collate_fn(batch)
        return _zero_rows(self.collate_fn([self.dataset[0]]))


def _zero_rows(batch):
    if isinstance(batch, torch.Tensor):
        return batch[:0]
    if isinstance(batch, dict):
        return {k: _zero_rows(v) for k, v in batch.items()}
    if isinstance(batch, list | tuple):
        return type(batch)(_zero_rows(v) for v in batch)
    return batch


class DPDataLoader:
    """Iterates Poisson-sampled physical batches; `len()` is the number of logical steps per epoch.

    `end_of_logical_batch` tells the optimizer whether the batch just yielded closes a logical step.
    """

    def __init__(
        self,
        loader: DataLoader,
        *,
        max_physical_batch_size: int | None = None,
        seed: int | None = None,
        secure: bool = False,
    ):
        dataset = loader.dataset
        if not hasattr(dataset, "__len__") or len(dataset) == 0:
            raise DPError(
                "the data loader's dataset must be a non-empty map-style dataset for Poisson sampling."
            )
        if max_physical_batch_size is not None and max_physical_batch_size < 1:
            raise DPError(
                f"max_physical_batch_size must be at least 1, got {max_physical_batch_size}."
            )
        self.dataset = dataset
        self.steps = len(loader)
        self.sample_rate = 1 / self.steps
        self.expected_batch_size = self.sample_rate * len(dataset)
        self.batch_sampler = PrivateBatchSampler(
            len(dataset),
            self.sample_rate,
            self.steps,
            max_physical=max_physical_batch_size,
            seed=seed,
            secure=secure,
        )
        self.loader = DataLoader(
            dataset,
            batch_sampler=self.batch_sampler,
            collate_fn=_EmptyAwareCollate(dataset, loader.collate_fn),
            num_workers=loader.num_workers,
            pin_memory=loader.pin_memory,
        )
        self.end_of_logical_batch = True

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        self.batch_sampler.ends.clear()
        for batch in self.loader:
            self.end_of_logical_batch = self.batch_sampler.ends.popleft()
            yield batch
        self.end_of_logical_batch = True
