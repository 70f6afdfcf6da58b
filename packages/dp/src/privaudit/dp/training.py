"""The training loop for a plain optimizer or one wrapped by make_private."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from privaudit.dp.optimizer import DPOptimizer
from torch import Tensor, nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm


def fit(model: nn.Module, optimizer: torch.optim.Optimizer, loader: DataLoader,
        loss_fn: Callable[[nn.Module, Sequence[Tensor]], Tensor], epochs: int, *,
        desc: str | None = None, progress: bool = True) -> None:
    """`epochs` passes over `loader`; loss_fn(model, batch) is the mean loss of one batch.

    An empty Poisson batch still takes its (noise-only) private step: skipping it would reveal
    that nobody was sampled, which the privacy analysis does not allow for.
    """
    model.train()
    for _ in tqdm(range(epochs), desc=desc, unit="epoch", leave=False, disable=not progress):
        for batch in loader:
            if len(batch[0]) > 0:
                loss_fn(model, batch).backward()
            elif not isinstance(optimizer, DPOptimizer):
                continue
            optimizer.step()
            optimizer.zero_grad()
    model.eval()
