"""The one training loop of privaudit: a model trained on a dataset, privately (DP-SGD through
make_private) or not, for every package (dp-train, the audits' targets and helpers, the one-run
audit)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass

import torch
from privaudit.dp.optimizer import DPOptimizer
from privaudit.dp.private import make_private
from privaudit.dp.randomness import seed_for
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

try:  # progress bars where tqdm is installed; the engine itself does not need it
    from tqdm.auto import tqdm
except ImportError:  # pragma: no cover
    tqdm = None

LossFn = Callable[[nn.Module, Sequence[Tensor]], Tensor]


@dataclass(frozen=True)
class PrivacySettings:
    """DP-SGD at a target epsilon: Poisson sampling, per-sample clipping, Gaussian noise.

    `reproducible_noise` derives the Poisson masks and the noise from the run seed: the same
    model every time, and no DP guarantee (recorded as "not private" in the result).
    """

    target_epsilon: float
    delta: float = 1e-5
    max_grad_norm: float = 1.0
    clipping: str = "abadi"
    accountant: str = "rdp"
    reproducible_noise: bool = False


@dataclass
class TrainResult:
    model: nn.Module
    epochs: int
    privacy: dict | None = (
        None  # the DP record: settings, epsilon spent, noise, sampling, randomness
    )


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: Iterable,
    loss_fn: LossFn,
    epochs: int,
    *,
    desc: str | None = None,
    progress: bool = True,
) -> None:
    """`epochs` passes over `loader`; loss_fn(model, batch) is the mean loss of one batch.

    An empty Poisson batch still takes its (noise-only) private step: skipping it would reveal
    that nobody was sampled, which the privacy analysis does not allow for.
    """
    model.train()
    passes = range(epochs)
    if tqdm is not None and progress:
        passes = tqdm(passes, desc=desc, unit="epoch", leave=False)
    for _ in passes:
        for batch in loader:
            if len(batch[0]) > 0:
                loss_fn(model, batch).backward()
            elif not isinstance(optimizer, DPOptimizer):
                continue
            optimizer.step()
            optimizer.zero_grad()
    model.eval()


def train(
    model: nn.Module,
    dataset: Dataset,
    loss_fn: LossFn,
    *,
    optimizer: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer],
    epochs: int,
    batch_size: int,
    seed: int,
    privacy: PrivacySettings | None = None,
    desc: str | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train `model` in place: shuffled mini-batches from the seed's "shuffle" stream, or DP-SGD
    with `privacy` (Poisson batches of expected size `batch_size`, noise from OS entropy unless
    `privacy.reproducible_noise`). A DPError (noise that cannot reach the epsilon, a layer the
    engine cannot clip) reaches the CLIs as one line."""
    loader = DataLoader(
        dataset,
        batch_size=min(batch_size, len(dataset)),
        shuffle=True,
        generator=torch.Generator().manual_seed(seed_for(seed, "shuffle")),
    )
    opt = optimizer(model.parameters())
    record = None
    if privacy is not None:
        noise_seed = seed_for(seed, "dp-randomness") if privacy.reproducible_noise else None
        model, opt, loader, accountant = make_private(
            model,
            opt,
            loader,
            target_epsilon=privacy.target_epsilon,
            target_delta=privacy.delta,
            epochs=epochs,
            max_grad_norm=privacy.max_grad_norm,
            clipping=privacy.clipping,
            accountant=privacy.accountant,
            noise_seed=noise_seed,
        )
    fit(model, opt, loader, loss_fn, epochs, desc=desc, progress=progress)
    if privacy is not None:
        record = {
            **asdict(privacy),
            "epsilon_spent": float(accountant.get_epsilon(privacy.delta)),
            "noise_multiplier": opt.noise_multiplier,
            "sample_rate": loader.sample_rate,
            "steps": len(loader) * epochs,
            "randomness": opt.dp_randomness,
        }
    return TrainResult(model, epochs, record)
