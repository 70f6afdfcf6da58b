"""Head weights in chunked arrays on disk, with their per-coordinate mean, standard deviation and
correlation, so millions of heads stream from disk and an interrupted run keeps every chunk it
finished."""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from privaudit.core.errors import InputError
from privaudit.core.rundir import atomic_write_bytes, atomic_write_json

# a coordinate whose standard deviation is below this is constant across heads: dropped, as the paper does
MIN_STD = 1e-12


@dataclass(frozen=True)
class StoreLayout:
    """How many heads, in chunks of how many, with P parameters and N training images each."""

    count: int
    chunk_size: int
    parameters: int
    set_size: int

    def chunks(self) -> list[tuple[int, int]]:
        """(first head, number of heads) of every chunk."""
        return [
            (s, min(self.chunk_size, self.count - s)) for s in range(0, self.count, self.chunk_size)
        ]


@dataclass(frozen=True)
class WeightStats:
    """Per-coordinate mean and std over the stored heads, the coordinates kept (std > 0), and the
    correlation matrix of the kept standardised coordinates (the H1 weight distribution)."""

    mean: np.ndarray
    std: np.ndarray
    keep: np.ndarray
    correlation: np.ndarray

    def standardise(self, weights: np.ndarray) -> np.ndarray:
        """[M, P] weights -> [M, P] float32 standardised coordinates, 0 where a coordinate is constant."""
        w = np.asarray(weights, dtype=np.float64)
        std = np.where(self.keep, self.std, 1.0)
        return np.where(self.keep, (w - self.mean) / std, 0.0).astype(np.float32)

    def unkept(self, kept: np.ndarray) -> np.ndarray:
        """[M, P_kept] standardised coordinates (an H1 draw) in the full [M, P] layout."""
        full = np.zeros((len(kept), len(self.keep)), dtype=np.float32)
        full[:, self.keep] = kept
        return full

    @property
    def dimension(self) -> int:
        return int(self.keep.sum())


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


class HeadStore:
    """A directory of chunks: `chunk-XXXXXX-weights.npy` (float32 [M, P]), `-sets.npy` (int64
    [M, N], indices into the image pool, class-major) and `-positive.npy` (int64 [M], the positive
    class of one-vs-rest heads, -1 otherwise). A chunk counts as finished once its weights file
    exists; it is written last, each file atomically."""

    def __init__(self, directory: str | Path, layout: StoreLayout):
        self.directory = Path(directory)
        self.layout = layout
        manifest = self.directory / "layout.json"
        if manifest.exists():
            if json.loads(manifest.read_text()) != asdict(layout):
                raise InputError(
                    f"{self.directory} holds heads of another layout; use a fresh run directory"
                )
        else:
            atomic_write_json(manifest, asdict(layout))

    def _path(self, chunk: int, part: str) -> Path:
        return self.directory / f"chunk-{chunk:06d}-{part}.npy"

    def missing(self) -> list[int]:
        return [
            c for c in range(len(self.layout.chunks())) if not self._path(c, "weights").exists()
        ]

    def save(self, chunk: int, weights: np.ndarray, sets: np.ndarray, positive: np.ndarray) -> None:
        start, size = self.layout.chunks()[chunk]
        if weights.shape != (size, self.layout.parameters) or sets.shape != (
            size,
            self.layout.set_size,
        ):
            raise ValueError(
                f"chunk {chunk} must hold {size} heads of {self.layout.parameters} parameters"
            )
        atomic_write_bytes(self._path(chunk, "sets"), _npy_bytes(sets.astype(np.int64)))
        atomic_write_bytes(self._path(chunk, "positive"), _npy_bytes(positive.astype(np.int64)))
        atomic_write_bytes(self._path(chunk, "weights"), _npy_bytes(weights.astype(np.float32)))

    def load(self, chunk: int, *, mmap: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(weights, sets, positive) of one finished chunk; weights memory-mapped by default."""
        mode = "r" if mmap else None
        return (
            np.load(self._path(chunk, "weights"), mmap_mode=mode, allow_pickle=False),
            np.load(self._path(chunk, "sets"), allow_pickle=False),
            np.load(self._path(chunk, "positive"), allow_pickle=False),
        )

    def stats(self, device="cpu") -> WeightStats:
        """Mean / std / correlation over every head, accumulated chunk by chunk in float64 (the
        P x P sums on `device`: a GPU makes millions of heads quick) and cached in `stats.npz`
        (recomputed when that file is missing)."""
        import torch

        path = self.directory / "stats.npz"
        if self.missing():
            raise ValueError("weight statistics need every chunk trained")
        if path.exists():
            with np.load(path, allow_pickle=False) as saved:
                return WeightStats(saved["mean"], saved["std"], saved["keep"], saved["correlation"])
        p = self.layout.parameters
        # sums about the first chunk's mean: E[ww'] - mm' about 0 would cancel away small variances
        shift = torch.from_numpy(np.asarray(self.load(0)[0], dtype=np.float64).mean(0)).to(device)
        total = 0
        sums = torch.zeros(p, dtype=torch.float64, device=device)
        outer = torch.zeros(p, p, dtype=torch.float64, device=device)
        for chunk in range(len(self.layout.chunks())):
            w = torch.from_numpy(np.array(self.load(chunk)[0], dtype=np.float64)).to(device) - shift
            total += len(w)
            sums += w.sum(0)
            outer += w.T @ w
        offset = sums / total
        mean = (shift + offset).cpu().numpy()
        covariance = (outer / total - torch.outer(offset, offset)).cpu().numpy()
        std = np.sqrt(np.clip(np.diag(covariance), 0, None))
        keep = std > MIN_STD
        kept = covariance[np.ix_(keep, keep)] / np.outer(std[keep], std[keep])
        stats = WeightStats(mean, std, keep, kept)
        buffer = io.BytesIO()
        np.savez(buffer, mean=mean, std=std, keep=keep, correlation=kept)
        atomic_write_bytes(path, buffer.getvalue())
        return stats
