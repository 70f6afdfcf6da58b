"""Reference models: the balanced in/out design, training (batched, one by one, or over Ray),
and a run-directory cache of finished models so an interrupted run resumes."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from privaudit.attacks.checkpoints import load_checkpoint
from privaudit.attacks.fanout import ray_map
from privaudit.attacks.models import ModelSpec, build_model
from privaudit.attacks.training import TrainConfig, train_model, train_models_batched
from privaudit.core.errors import InputError
from privaudit.core.rundir import atomic_write_bytes
from privaudit.dp.randomness import seed_for
from torch import nn
from tqdm.auto import tqdm

REFERENCE_ROLE = 1


def in_out_design(num_points: int, num_models: int, seed: int) -> np.ndarray:
    """Membership [R, N]: models come in complementary pairs (a random half of the points and the
    other half), so every point is in exactly R/2 models and every model holds N/2 points."""
    if num_models < 2 or num_models % 2 or num_points < 2 or num_points % 2:
        raise InputError(
            f"the in/out design needs an even number (>= 2) of models and points, got {num_models} and {num_points}"
        )
    rng = np.random.default_rng(seed)
    membership = np.zeros((num_models, num_points), dtype=bool)
    for pair in range(num_models // 2):
        half = rng.permutation(num_points)[: num_points // 2]
        membership[2 * pair, half] = True
        membership[2 * pair + 1] = ~membership[2 * pair]
    return membership


class ReferenceStore:
    """A directory of reference checkpoints `model_XXXX.pt` (state dicts) plus `membership.npy`."""

    def __init__(self, directory: str | Path, spec: ModelSpec, membership: np.ndarray):
        self.directory = Path(directory)
        self.spec = spec
        self.membership = np.asarray(membership, dtype=bool)

    @classmethod
    def create(
        cls, directory: str | Path, spec: ModelSpec, membership: np.ndarray
    ) -> ReferenceStore:
        """A store for a new design, or the existing one in `directory` (which must match)."""
        store = cls(directory, spec, membership)
        path = store.directory / "membership.npy"
        if path.exists():
            if not np.array_equal(np.load(path, allow_pickle=False), store.membership):
                raise InputError(
                    f"{path} holds a different in/out design; use a fresh run directory"
                )
        else:
            buffer = io.BytesIO()
            np.save(buffer, store.membership)
            atomic_write_bytes(path, buffer.getvalue())
        return store

    @classmethod
    def from_checkpoints(
        cls, directory: str | Path, membership_path: str | Path, spec: ModelSpec
    ) -> ReferenceStore:
        """Models trained elsewhere: every `*.pt` state dict in `directory` (sorted by name) and a
        0/1 membership matrix [R, N] in a .npy or .csv file, row r for the r-th checkpoint."""
        directory, membership_path = Path(directory), Path(membership_path)
        checkpoints = sorted(directory.glob("*.pt"))
        if not checkpoints:
            raise InputError(f"the checkpoint directory {directory} holds no *.pt files")
        try:
            if membership_path.suffix == ".npy":
                membership = np.load(membership_path, allow_pickle=False)
            else:
                membership = np.loadtxt(membership_path, delimiter=",", ndmin=2)
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read the membership matrix {membership_path}: {exc}") from exc
        if (
            membership.ndim != 2
            or len(membership) != len(checkpoints)
            or not np.isin(membership, (0, 1)).all()
        ):
            raise InputError(
                f"the membership matrix {membership_path} must be 0/1 with one row per checkpoint "
                f"({len(checkpoints)}), got shape {membership.shape}"
            )
        store = cls(directory, spec, membership.astype(bool))
        store.paths = checkpoints
        return store

    def path(self, index: int) -> Path:
        paths = getattr(self, "paths", None)
        return paths[index] if paths is not None else self.directory / f"model_{index:04d}.pt"

    def finished(self) -> list[int]:
        return [i for i in range(len(self.membership)) if self.path(i).exists()]

    def save(self, index: int, state: dict[str, torch.Tensor]) -> None:
        buffer = io.BytesIO()
        torch.save({name: tensor.contiguous() for name, tensor in state.items()}, buffer)
        atomic_write_bytes(self.path(index), buffer.getvalue())

    def load(self, index: int) -> nn.Module:
        return load_checkpoint(build_model(self.spec, 0), self.path(index), self.spec.kind)


def _train_group(
    spec, inputs, labels, index_sets, config, seeds, batched, device="cpu"
) -> list[dict[str, torch.Tensor]]:
    """Train one group of models on `device`; runs locally or as a Ray task. States come back on
    the CPU."""
    inputs, labels = inputs.to(device), labels.to(device)
    models = [build_model(spec, s).to(device) for s in seeds]
    if batched:
        states, _ = train_models_batched(models, inputs, labels, index_sets, config, seeds)
    else:
        states = []
        for model, indices, seed in zip(models, index_sets, seeds, strict=True):
            train_model(model, inputs, labels, indices, config, seed)
            states.append(model.state_dict())
    return [{name: tensor.cpu() for name, tensor in state.items()} for state in states]


def train_reference_models(
    store: ReferenceStore, inputs: torch.Tensor, labels: torch.Tensor, config: TrainConfig, seed: int,
    *, batched: bool = True, models_per_group: int = 16, ray_address: str | None = None,
    on_saved: Callable[[int], None] | None = None, progress: bool = True, device="cpu",
) -> list[int]:  # fmt: skip
    """Train every reference model not yet in the store, in groups (batched with vmap, or one by
    one), locally or as Ray tasks, on `device`; each model is saved as soon as its group ends.
    Returns the indices trained now. inputs/labels are the audit points the membership matrix
    indexes."""
    todo = [i for i in range(len(store.membership)) if not store.path(i).exists()]
    group_size = models_per_group if batched else 1
    groups = [todo[i : i + group_size] for i in range(0, len(todo), group_size)]

    def arguments(group):
        index_sets = np.stack([np.flatnonzero(store.membership[i]) for i in group])
        return (
            store.spec,
            inputs,
            labels,
            index_sets,
            config,
            [seed_for(seed, REFERENCE_ROLE, i) for i in group],
            batched,
            str(device),
        )

    if ray_address is not None:
        gpus = 1 if torch.device(device).type == "cuda" else 0
        results = ray_map(
            ray_address, _train_group, [arguments(group) for group in groups], gpus=gpus
        )
    else:
        results = (_train_group(*arguments(group)) for group in groups)
    with tqdm(
        total=len(store.membership),
        initial=len(store.membership) - len(todo),
        desc="reference models",
        disable=not progress,
    ) as bar:
        for group, states in zip(groups, results, strict=True):
            for index, state in zip(group, states, strict=True):
                store.save(index, state)
                bar.update()
                if on_saved is not None:
                    on_saved(index)
    return todo
