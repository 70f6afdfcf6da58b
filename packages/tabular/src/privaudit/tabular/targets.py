"""Models under audit: each answers one loss per labelled row (the membership signal)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import yaml
from privaudit.attacks.checkpoints import load_checkpoint
from privaudit.core.errors import InputError
from privaudit.tabular.config import SKLEARN_SUFFIXES, SKOPS_SUFFIXES, TORCH_SUFFIXES
from privaudit.tabular.data import Table
from privaudit.tabular.models import FeatureEncoder, TabularMLP, per_example_loss
from torch import nn


class Target(Protocol):
    def loss(self, frame: pd.DataFrame) -> np.ndarray: ...


@dataclass
class EncodedTorchTarget:
    """A torch classifier over the one-hot/standardised features (privaudit's own MLP targets)."""

    model: nn.Module
    encoder: FeatureEncoder

    def loss(self, frame: pd.DataFrame) -> np.ndarray:
        return per_example_loss(self.model, self.encoder.features(frame), self.encoder.labels(frame))


@dataclass
class RawTorchTarget:
    """A user's torch MLP over the table's feature columns as float32, in file order."""

    model: nn.Module
    table: Table

    def loss(self, frame: pd.DataFrame) -> np.ndarray:
        index = {c: i for i, c in enumerate(self.table.classes)}
        x = frame[self.table.features].to_numpy(dtype=np.float32)
        return per_example_loss(self.model, x, frame[self.table.label].map(index).to_numpy(dtype=np.int64))


@dataclass
class SklearnTarget:
    """A user's scikit-learn estimator (a pipeline taking the raw feature columns) with predict_proba."""

    estimator: Any
    table: Table

    def loss(self, frame: pd.DataFrame) -> np.ndarray:
        try:
            proba = np.asarray(self.estimator.predict_proba(frame[self.table.features]), dtype=np.float64)
        except Exception as exc:  # the user's estimator: any failure means it does not fit this table
            raise InputError(f"the scikit-learn model cannot score the rows of {self.table.source} "
                             f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no message'}).") from exc
        column = {str(c): i for i, c in enumerate(self.estimator.classes_)}
        picked = proba[np.arange(len(frame)), frame[self.table.label].astype(str).map(column).to_numpy()]
        return -np.log(np.clip(picked, 1e-12, 1.0))


def load_user_target(model_path: str, spec_path: str | None, table: Table) -> Target:
    """The user's model: a torch state dict + architecture spec, or a joblib scikit-learn estimator (trusted files only)."""
    path = Path(model_path)
    if not path.is_file():
        raise InputError(f"model file {path} does not exist.")
    suffix = path.suffix.lower()
    if suffix in SKLEARN_SUFFIXES:
        return _sklearn_target(path, table)
    if suffix in TORCH_SUFFIXES:
        return _torch_target(path, spec_path, table)
    raise InputError(f"model file {path} must end in {', '.join(TORCH_SUFFIXES + SKLEARN_SUFFIXES)}.")


def _read_estimator(path: Path):
    """A skops file is read as data (only the types skops trusts by default); a joblib/pickle file
    is unpickled, which runs code from it: the CLI help and README say so."""
    if path.suffix.lower() in SKOPS_SUFFIXES:
        import skops.io

        try:
            untrusted = skops.io.get_untrusted_types(file=path)
            if untrusted:
                raise InputError(f"model file {path} holds types skops does not trust ({', '.join(untrusted[:3])}); "
                                 "save a plain scikit-learn estimator.")
            return skops.io.load(path)
        except InputError:
            raise
        except Exception as exc:
            raise InputError(f"model file {path} is not a readable skops file ({type(exc).__name__}).") from exc
    import joblib

    try:
        return joblib.load(path)
    except Exception as exc:
        raise InputError(f"model file {path} is not a joblib-saved estimator ({type(exc).__name__}).") from exc


def _sklearn_target(path: Path, table: Table) -> SklearnTarget:
    estimator = _read_estimator(path)
    if not hasattr(estimator, "predict_proba") or not hasattr(estimator, "classes_"):
        raise InputError(f"model file {path} holds no fitted classifier with predict_proba.")
    unknown = set(table.classes) - {str(c) for c in estimator.classes_}
    if unknown:
        raise InputError(f"label value {sorted(unknown)[0]!r} is not among the classes of model {path}.")
    return SklearnTarget(estimator, table)


def _torch_target(path: Path, spec_path: str | None, table: Table) -> RawTorchTarget:
    if spec_path is None:
        raise InputError(f"torch checkpoint {path} needs --model-spec, a YAML file like 'hidden: [64, 64]'.")
    try:
        spec = yaml.safe_load(Path(spec_path).read_text())
        hidden = [int(h) for h in spec["hidden"]]
    except Exception as exc:
        raise InputError(f"model spec {spec_path} must be YAML with a list of hidden widths under 'hidden'.") from exc
    if table.categorical:
        raise InputError(
            f"torch checkpoint {path} reads the feature columns as numbers, but column {table.categorical[0]!r} is categorical."
        )
    model = TabularMLP(len(table.features), hidden, len(table.classes))
    return RawTorchTarget(load_checkpoint(model, path, f"MLP of {spec_path}").eval(), table)
