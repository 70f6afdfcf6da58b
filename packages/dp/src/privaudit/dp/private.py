"""make_private: wrap a model, optimizer and data loader for DP-SGD."""

from __future__ import annotations

from privaudit.dp.accounting import check_privacy_parameters, make_accountant, noise_for_epsilon
from privaudit.dp.engine import PerSampleClipper
from privaudit.dp.errors import DPError
from privaudit.dp.noise import GaussianNoise
from privaudit.dp.optimizer import DPOptimizer
from privaudit.dp.randomness import dp_randomness
from privaudit.dp.sampling import DPDataLoader
from privaudit.dp.validate import validate
from torch import nn
from torch.optim import Optimizer
from torch.utils.data import DataLoader


def make_private(
    module: nn.Module,
    optimizer: Optimizer,
    data_loader: DataLoader,
    *,
    noise_multiplier: float | None = None,
    target_epsilon: float | None = None,
    target_delta: float = 1e-5,
    epochs: int | None = None,
    max_grad_norm: float = 1.0,
    clipping: str = "abadi",
    poisson_sampling: bool = True,
    secure_rng: bool = False,
    accountant: str = "rdp",
    noise_seed: int | None = None,
    mode: str = "bookkeeping",
    per_layer_clipping: bool = False,
    max_physical_batch_size: int | None = None,
    loss_reduction: str = "mean",
    automatic_gamma: float = 0.01,
):
    """Returns (module, optimizer, data_loader, accountant) for the ordinary training loop.

    The module is the same object with hooks attached; the optimizer forms the private gradient in
    step(); the loader yields Poisson-sampled batches (physical chunks of at most
    `max_physical_batch_size`, accumulated into one logical step); `accountant.get_epsilon(delta)` is
    the epsilon spent so far. Give exactly one of `noise_multiplier` and `target_epsilon` (with
    `epochs`). In mode='two_pass' back-propagate with `optimizer.backward(per_sample_losses)`.

    The Poisson masks and the Gaussian noise are seeded from OS entropy (`secure_rng=True` also
    reseeds them from the CSPRNG before every draw). `noise_seed` makes both reproducible, each
    from its own stream derived from it, which voids the guarantee: the run is then recorded as
    not private (`optimizer.dp_randomness`). Never pass a value that seeds anything else.
    """
    if (noise_multiplier is None) == (target_epsilon is None):
        raise DPError("give exactly one of noise_multiplier and target_epsilon.")
    if target_epsilon is not None and (epochs is None or epochs < 1):
        raise DPError("target_epsilon needs epochs (a positive integer) to calibrate the noise.")
    if noise_multiplier is not None and noise_multiplier < 0:
        raise DPError(f"noise_multiplier must be non-negative, got {noise_multiplier}.")
    if not poisson_sampling:
        raise DPError(
            "poisson_sampling=False (shuffled fixed-size batches) is refused: the accountant assumes "
            "Poisson sampling and would understate epsilon for it."
        )
    if noise_seed is not None and secure_rng:
        raise DPError("noise_seed and secure_rng=True contradict each other: give at most one.")
    validate(module)
    accountant_object = make_accountant(accountant)
    if len(data_loader) == 0:
        raise DPError("the data loader yields no batches.")
    private_loader = DPDataLoader(
        data_loader,
        max_physical_batch_size=max_physical_batch_size,
        seed=noise_seed,
        secure=secure_rng,
    )
    sample_rate = private_loader.sample_rate
    check_privacy_parameters(sample_rate, delta=target_delta)
    if target_epsilon is not None:
        noise_multiplier = noise_for_epsilon(
            target_epsilon, sample_rate, epochs * len(private_loader), target_delta, accountant
        )
    clipper = PerSampleClipper(
        module,
        max_grad_norm=max_grad_norm,
        clipping=clipping,
        gamma=automatic_gamma,
        per_layer=per_layer_clipping,
        loss_reduction=loss_reduction,
        mode=mode,
    )
    private_optimizer = DPOptimizer(
        optimizer,
        clipper,
        noise_multiplier=float(noise_multiplier),
        expected_batch_size=private_loader.expected_batch_size,
        accountant=accountant_object,
        sample_rate=sample_rate,
        noise=GaussianNoise(noise_seed, secure_rng),
        data_loader=private_loader,
    )
    private_optimizer.dp_randomness = dp_randomness(noise_seed) | {"secure_rng": secure_rng}
    return module, private_optimizer, private_loader, accountant_object
