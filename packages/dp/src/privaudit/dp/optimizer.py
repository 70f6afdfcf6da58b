"""An optimizer wrapper whose step() replaces the gradient by the clipped, noised private gradient."""

from __future__ import annotations

from collections import OrderedDict

import torch
from privaudit.dp.engine import PerSampleClipper
from privaudit.dp.errors import DPError
from privaudit.dp.noise import GaussianNoise
from torch import Tensor
from torch.optim import Optimizer


class DPOptimizer(Optimizer):
    """Wraps `optimizer` (sharing its parameter groups and state, so LR schedulers work).

    step(): forms sum_i c_i g_i for the batch just back-propagated; at the end of a logical batch adds
    N(0, (sigma R)^2) per coordinate, divides by the expected batch size (mean loss), runs the wrapped
    optimizer's step and records the step with the accountant. Physical batches in between only
    accumulate their clipped sums.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        clipper: PerSampleClipper,
        *,
        noise_multiplier: float,
        expected_batch_size: float,
        accountant,
        sample_rate: float,
        noise: GaussianNoise,
        data_loader=None,
    ):
        # deliberately no super().__init__: the parameter groups and state are the wrapped optimizer's
        self.original_optimizer = optimizer
        self.param_groups = optimizer.param_groups
        self.state = optimizer.state
        self.defaults = optimizer.defaults
        self._optimizer_step_pre_hooks = OrderedDict()
        self._optimizer_step_post_hooks = OrderedDict()
        self._optimizer_state_dict_pre_hooks = OrderedDict()
        self._optimizer_state_dict_post_hooks = OrderedDict()
        self._optimizer_load_state_dict_pre_hooks = OrderedDict()
        self._optimizer_load_state_dict_post_hooks = OrderedDict()
        self.clipper = clipper
        self.noise_multiplier = noise_multiplier
        self.expected_batch_size = expected_batch_size
        self.accountant = accountant
        self.sample_rate = sample_rate
        self.noise = noise
        self.data_loader = data_loader
        self._summed: dict[torch.nn.Parameter, Tensor] = {}
        self._private: dict[torch.nn.Parameter, Tensor] = {}
        optimized = {id(p) for group in optimizer.param_groups for p in group["params"]}
        outside = [p for p in clipper.params if id(p) not in optimized]
        if outside:
            raise DPError(
                f"{len(outside)} trainable parameter(s) of the model are not in the optimizer; freeze them or add them."
            )

    def noise_std(self) -> float:
        """Standard deviation of the noise this process adds to each coordinate of the clipped sum."""
        return self.noise_multiplier * self.max_grad_norm

    def combine_(self, noisy_sums: list[Tensor]) -> None:
        """Combines the noised clipped sums of the processes taking part, in place (one process here)."""

    @property
    def max_grad_norm(self) -> float:
        return self.clipper.max_grad_norm

    def backward(self, per_sample_losses: Tensor) -> None:
        """Two-pass mode: norms from one backward, then a backward of the reweighted loss."""
        if self.clipper.mode != "two_pass":
            raise DPError(
                "optimizer.backward(per_sample_losses) is for mode='two_pass'; in book-keeping mode call loss.backward()."
            )
        self._add(self.clipper.two_pass_backward(per_sample_losses))

    def _add(self, sums: dict) -> None:
        for p, g in sums.items():
            self._summed[p] = self._summed[p] + g if p in self._summed else g

    def _check_no_stray_gradients(self) -> None:
        """A parameter used outside its own layer's forward would escape clipping: refuse it."""
        for p in self.clipper.params:
            if (
                p.grad is not None
                and p not in self.clipper.exposed
                and p.grad is not self._private.get(p)
            ):
                raise DPError(
                    "a trainable parameter received a gradient outside its layer's forward call "
                    "(e.g. used as module.weight in a parent's forward), which per-sample clipping cannot see."
                )

    def end_of_logical_batch(self) -> bool:
        return self.data_loader is None or self.data_loader.end_of_logical_batch

    @torch.no_grad()
    def step(self, closure=None):
        if closure is not None:
            with torch.enable_grad():
                closure()
        if self.clipper.mode == "bookkeeping":
            self._check_no_stray_gradients()
            if self.clipper.pending():
                with torch.enable_grad():
                    self._add(self.clipper.clipped_sum())
        elif self.clipper.pending():
            raise DPError(
                "in mode='two_pass' call optimizer.backward(per_sample_losses) instead of loss.backward()."
            )
        if not self.end_of_logical_batch():
            return None
        std = self.noise_std()
        scale = 1 / self.expected_batch_size if self.clipper.loss_reduction == "mean" else 1.0
        noisy_sums = []
        for p in self.clipper.params:
            summed = self._summed.get(p)
            if summed is None:
                summed = torch.zeros_like(p)
            # the sum is added into the fresh noise tensor: one allocation per parameter, not two
            noisy_sums.append(
                self.noise.sample_like(p, std).add_(summed.to(p.dtype))
                if std > 0
                else summed.to(p.dtype).clone()
            )
        self.combine_(noisy_sums)
        for p, noisy in zip(self.clipper.params, noisy_sums, strict=True):
            p.grad = noisy.mul_(scale)
        self._private = {p: p.grad for p in self.clipper.params}
        self._summed = {}
        self.accountant.step(noise_multiplier=self.noise_multiplier, sample_rate=self.sample_rate)
        return self.original_optimizer.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.original_optimizer.zero_grad(set_to_none)
        self._private = {}

    def state_dict(self):
        return self.original_optimizer.state_dict()

    def load_state_dict(self, state_dict) -> None:
        self.original_optimizer.load_state_dict(state_dict)

    def __repr__(self) -> str:
        return f"DPOptimizer({self.original_optimizer!r}, noise_multiplier={self.noise_multiplier:.4g}, max_grad_norm={self.max_grad_norm})"
