"""Data-parallel DP-SGD over torch.distributed processes (NCCL across GPUs, or gloo on CPUs).

Every process clips the per-sample gradients of its share of each Poisson batch; once per logical
step the clipped sums are all-reduced, with the noise added once, by rank 0, before the
all-reduce, so every rank steps with sum + N(0, (sigma R)^2). The Poisson mask is drawn over the
whole dataset from one generator state (rank 0's, broadcast) and its sampled indices are split
between the ranks: each example is still in each step independently with probability q, so the
accountant's q is unchanged.

torch's DistributedDataParallel is not used: it all-reduces the raw parameter gradients, which
book-keeping never forms; the module's parameters and buffers are broadcast from rank 0 instead.
"""

from __future__ import annotations

from collections import deque

import torch
import torch.distributed as dist
from privaudit.dp.errors import DPError
from privaudit.dp.optimizer import DPOptimizer
from privaudit.dp.private import make_private
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.utils.data import DataLoader


class ShardedBatchSampler:
    """This rank's share of each logical Poisson batch (indices rank, rank + world, ...), in
    physical chunks of at most `max_physical`. Every rank yields as many chunks per logical batch
    (padding with empty ones), so all of them reach the all-reduce together."""

    def __init__(self, logical, rank: int, world: int, max_physical: int | None):
        self.logical, self.rank, self.world, self.max_physical = logical, rank, world, max_physical
        self.ends: deque[bool] = deque()

    def __len__(self) -> int:
        return len(self.logical)

    def __iter__(self):
        for indices in self.logical:  # one chunk per logical batch: the whole Poisson sample
            self.logical.ends.clear()
            shards = [indices[r :: self.world] for r in range(self.world)]
            size = self.max_physical or max(max(map(len, shards)), 1)
            count = max(1, *(-(-len(s) // size) for s in shards))
            mine = shards[self.rank]
            for k in range(count):
                self.ends.append(k == count - 1)
                yield mine[k * size : (k + 1) * size]


class DistributedDPOptimizer(DPOptimizer):
    """DPOptimizer whose noised sum is all-reduced over the process group; only rank 0 draws noise."""

    def noise_std(self) -> float:
        return super().noise_std() if dist.get_rank() == 0 else 0.0

    def combine_(self, noisy_sums: list[Tensor]) -> None:
        # one all-reduce per dtype: a flat buffer instead of one collective per parameter
        by_dtype: dict[torch.dtype, list[Tensor]] = {}
        for t in noisy_sums:
            by_dtype.setdefault(t.dtype, []).append(t)
        for tensors in by_dtype.values():
            flat = torch.cat([t.reshape(-1) for t in tensors])
            dist.all_reduce(flat)
            for t, reduced in zip(tensors, flat.split([t.numel() for t in tensors]), strict=True):
                t.copy_(reduced.view_as(t))


def make_private_distributed(
    module: nn.Module,
    optimizer: Optimizer,
    data_loader: DataLoader,
    *,
    max_physical_batch_size: int | None = None,
    **kwargs,
):
    """make_private for one process of an initialised torch.distributed group; every rank passes
    the same model, optimizer settings and full data loader, and trains with the loop of make_private.
    Returns (module, optimizer, data_loader, accountant); the loader yields this rank's shares."""
    if not dist.is_available() or not dist.is_initialized():
        raise DPError(
            "make_private_distributed needs torch.distributed.init_process_group to have been called."
        )
    if kwargs.get("secure_rng"):
        raise DPError(
            "secure_rng reseeds the Poisson sampler from each process's own entropy every step, so the "
            "ranks would sample different batches; the default OS-entropy seeding is shared from rank 0."
        )
    if max_physical_batch_size is not None and max_physical_batch_size < 1:
        raise DPError(f"max_physical_batch_size must be at least 1, got {max_physical_batch_size}.")
    module, private, loader, accountant = make_private(module, optimizer, data_loader, **kwargs)
    rank, world = dist.get_rank(), dist.get_world_size()
    device = (
        torch.device("cuda", torch.cuda.current_device())
        if dist.get_backend() == "nccl"
        else torch.device("cpu")
    )
    with torch.no_grad():
        for t in (*module.parameters(), *module.buffers()):
            on_device = t.data.to(device)
            dist.broadcast(on_device, 0)
            t.data.copy_(on_device)
    # one Poisson mask for all ranks: rank 0's sampler state
    state = loader.batch_sampler.generator.get_state().to(device)
    dist.broadcast(state, 0)
    loader.batch_sampler.generator.set_state(state.cpu())
    sharded = ShardedBatchSampler(loader.batch_sampler, rank, world, max_physical_batch_size)
    inner = loader.loader
    loader.batch_sampler = sharded
    loader.loader = DataLoader(
        loader.dataset,
        batch_sampler=sharded,
        collate_fn=inner.collate_fn,
        num_workers=inner.num_workers,
        pin_memory=inner.pin_memory,
    )
    distributed = DistributedDPOptimizer(
        private.original_optimizer,
        private.clipper,
        noise_multiplier=private.noise_multiplier,
        expected_batch_size=private.expected_batch_size,
        accountant=accountant,
        sample_rate=private.sample_rate,
        noise=private.noise,
        data_loader=loader,
    )
    distributed.dp_randomness = private.dp_randomness | {"world_size": world}
    return module, distributed, loader, accountant
