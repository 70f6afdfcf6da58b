"""The query that distinguishes D from D' most: maximise the KL LOOD of one record over the query
with Adam, from noise or from another training record. The optimised query tends to resemble
the differing record (the paper's reconstruction result); how much is measured, not assumed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from privaudit.attacks.lood.kernels import KernelSpec, kernel_torch, layer_diagonals
from privaudit.attacks.lood.posterior import (
    Factorisation,
    precision_diagonal,
    query_lood,
    self_lood,
)
from privaudit.core.errors import InputError

INITS = ("noise", "data")


@dataclass(frozen=True)
class QuerySettings:
    """Adam `steps` at learning rate `lr` from each of `restarts` starts; the best query wins."""

    steps: int = 200
    lr: float = 0.05
    init: str = "noise"
    restarts: int = 3

    def __post_init__(self):
        if self.steps < 1 or not self.lr > 0 or self.restarts < 1:
            raise InputError(
                "query optimisation needs steps >= 1, lr > 0 and restarts >= 1, got "
                f"{self.steps}, {self.lr} and {self.restarts}"
            )
        if self.init not in INITS:
            raise InputError(f"query init must be 'noise' or 'data', got {self.init!r}")


@dataclass(frozen=True)
class OptimisedQuery:
    record: int
    query: np.ndarray  # the best query found, a standardised row [d]
    start: np.ndarray  # where the optimisation started
    start_record: int | None  # the training record it started from (init "data")
    lood_at_record: float  # KL LOOD when querying the differing record itself
    lood_at_start: float
    lood_at_query: float
    cosine_to_record: float  # cosine similarity of the optimised query and the record
    cosine_start_to_record: float
    record_rank: int  # 1 when the record is the training record most similar to the query

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Every field as a numpy array (start_record None as -1), for an .npz cache."""
        fields = {
            **self.__dict__,
            "start_record": -1 if self.start_record is None else self.start_record,
        }
        return {name: np.asarray(value) for name, value in fields.items()}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> OptimisedQuery:
        fields = {name: value if value.ndim else value.item() for name, value in arrays.items()}
        fields["start_record"] = (
            None if fields["start_record"] == -1 else int(fields["start_record"])
        )
        return cls(**fields)


def _cosine_to_rows(query: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    return (rows @ query) / (rows.norm(dim=1) * query.norm()).clamp_min(1e-300)


def optimise_query(
    rows: torch.Tensor, factor: Factorisation, record: int, spec: KernelSpec,
    settings: QuerySettings, seed: int,
) -> OptimisedQuery:  # fmt: skip
    """Adam on one query row to maximise the KL LOOD of `record` (rows [n, d] float64, the
    training set `factor` was built on), from `settings.restarts` starts; keeps the best query
    seen. A single start often climbs to a local optimum far from the record."""
    rng = np.random.default_rng(seed)
    diag_rows = layer_diagonals(rows, spec)
    p = precision_diagonal(factor, [record])

    def lood(query: torch.Tensor) -> torch.Tensor:
        q = query[None]
        kl, _ = query_lood(
            factor,
            kernel_torch(q, rows, spec, diag2=diag_rows),
            kernel_torch(q, q, spec),
            [record],
            p,
        )
        return kl[0]

    low, high = rows.min(dim=0).values.numpy(), rows.max(dim=0).values.numpy()
    others = np.delete(np.arange(len(rows)), record)
    best_value, best_query, start, start_record = -np.inf, None, None, None
    for _ in range(settings.restarts):
        if settings.init == "noise":
            this_start, this_record = torch.from_numpy(rng.uniform(low, high)), None
        else:
            this_record = int(rng.choice(others))
            this_start = rows[this_record].clone()
        query = this_start.clone().requires_grad_(True)
        optimiser = torch.optim.Adam([query], lr=settings.lr)
        for _ in range(settings.steps + 1):
            value = lood(query)
            if torch.isfinite(value) and value.item() > best_value:
                best_value, best_query = value.item(), query.detach().clone()
                start, start_record = this_start, this_record
            optimiser.zero_grad()
            (-value).backward()
            optimiser.step()
    with torch.no_grad():
        at_start = float(lood(start))
        at_record = float(self_lood(factor, [record])[0][0])
        similarity = _cosine_to_rows(best_query, rows)
        rank = int((similarity > similarity[record]).sum()) + 1
    return OptimisedQuery(
        record=record, query=best_query.numpy(), start=start.numpy(), start_record=start_record,
        lood_at_record=at_record, lood_at_start=at_start, lood_at_query=best_value,
        cosine_to_record=float(similarity[record]),
        cosine_start_to_record=float(_cosine_to_rows(start, rows[record : record + 1])[0]),
        record_rank=rank,
    )  # fmt: skip
