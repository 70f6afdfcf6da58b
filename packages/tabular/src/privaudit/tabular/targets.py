"""Table rows as PANORAMIA examples, and the models under audit: the MLPs trained here (over the
encoded features) and a user's torch checkpoint or scikit-learn estimator."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from privaudit.attacks.checkpoints import load_checkpoint
from privaudit.attacks.label_noise import flip_labels
from privaudit.attacks.signals import Signals
from privaudit.attacks.targets import ClassifierTarget, SklearnTarget
from privaudit.core.errors import InputError
from privaudit.dp.randomness import seed_for
from privaudit.tabular.config import SKLEARN_SUFFIXES, SKOPS_SUFFIXES, TORCH_SUFFIXES
from privaudit.tabular.data import Table
from privaudit.tabular.models import FeatureEncoder, TabularMLP, TrainSettings, train_mlp
from torch import nn

# one forward pass over a whole table: the MLPs are small, and batching would change nothing
WHOLE_TABLE = 1 << 30


class FrameExamples:
    """Rows of a table: `inputs` the feature columns, `labels` the label column's values."""

    def __init__(self, frame: pd.DataFrame, table: Table):
        self.frame, self.table = frame.reset_index(drop=True), table

    @property
    def inputs(self) -> pd.DataFrame:
        return self.frame[self.table.features]

    @property
    def labels(self) -> np.ndarray:
        return self.frame[self.table.label].to_numpy()

    def __len__(self) -> int:
        return len(self.frame)

    def take(self, indices) -> FrameExamples:
        return FrameExamples(self.frame.iloc[np.asarray(indices, dtype=np.int64)], self.table)

    def concat(self, other: FrameExamples) -> FrameExamples:
        return FrameExamples(pd.concat([self.frame, other.frame], ignore_index=True), self.table)

    def save(self, path: Path) -> None:
        import io

        from privaudit.core.rundir import atomic_write_bytes

        buffer = io.BytesIO()
        self.frame.to_parquet(buffer, index=False)
        atomic_write_bytes(path, buffer.getvalue())

    def load(self, path: Path) -> FrameExamples:
        return FrameExamples(pd.read_parquet(path), self.table)


class EncodedTarget:
    """A torch classifier over the one-hot / standardised features (privaudit's own MLPs)."""

    def __init__(self, model: nn.Module, encoder: FeatureEncoder):
        self.model, self.encoder = model, encoder

    def signals(self, inputs: pd.DataFrame, labels) -> Signals:
        x = torch.tensor(self.encoder.features(inputs))
        y = torch.tensor(self.encoder.label_indices(labels))
        return ClassifierTarget(self.model, batch_size=WHOLE_TABLE).signals(x, y)


class RawTorchTarget:
    """A user's torch MLP over the table's feature columns as float32, in file order."""

    def __init__(self, model: nn.Module, table: Table):
        self.model, self.table = model, table

    def signals(self, inputs: pd.DataFrame, labels) -> Signals:
        index = {c: i for i, c in enumerate(self.table.classes)}
        x = torch.tensor(inputs[self.table.features].to_numpy(dtype=np.float32))
        y = torch.tensor(pd.Series(labels).map(index).to_numpy(dtype=np.int64))
        return ClassifierTarget(self.model, batch_size=WHOLE_TABLE).signals(x, y)


class MLPFamily:
    """The MLP trained with `settings` over the features an encoder fitted on the target's
    training rows gives (the target trained here, and the helper)."""

    def __init__(
        self, settings: TrainSettings, table: Table, name: str, *, label_noise: float = 0.0
    ):
        self.settings, self.table, self.name, self.label_noise = settings, table, name, label_noise
        self.key = {"settings": asdict(settings)}
        if label_noise > 0:
            self.key["label_noise"] = label_noise
        self.encoder: FeatureEncoder | None = None

    def fit_encoder(self, examples: FrameExamples) -> None:
        self.encoder = FeatureEncoder(self.table, examples.frame)

    def train(self, examples: FrameExamples, seed: int):
        x, y = self.encoder.features(examples.frame), self.encoder.labels(examples.frame)
        if self.label_noise > 0:  # trained on partly wrong labels; audited on the true ones
            y = flip_labels(
                y, len(self.table.classes), self.label_noise, seed_for(seed, "label-noise")
            )
        return train_mlp(x, y, len(self.table.classes), self.settings, seed=seed, desc=self.name)

    def build(self) -> nn.Module:
        width = len(self.encoder.features(self.table.frame.iloc[:1])[0])
        return TabularMLP(width, self.settings.hidden, len(self.table.classes))

    def target(self, model: nn.Module) -> EncodedTarget:
        return EncodedTarget(model.eval(), self.encoder)


def load_user_target(model_path: str, spec_path: str | None, table: Table):
    """The user's model: a torch state dict + architecture spec, or a scikit-learn estimator."""
    path = Path(model_path)
    if not path.is_file():
        raise InputError(f"model file {path} does not exist.")
    suffix = path.suffix.lower()
    if suffix in SKLEARN_SUFFIXES:
        return _sklearn_target(path, table)
    if suffix in TORCH_SUFFIXES:
        return _torch_target(path, spec_path, table)
    raise InputError(
        f"model file {path} must end in {', '.join(TORCH_SUFFIXES + SKLEARN_SUFFIXES)}."
    )


def _read_estimator(path: Path):
    """A skops file is read as data (only the types skops trusts by default); a joblib/pickle file
    is unpickled, which runs code from it: the CLI help and README say so."""
    if path.suffix.lower() in SKOPS_SUFFIXES:
        import skops.io

        try:
            untrusted = skops.io.get_untrusted_types(file=path)
            if untrusted:
                raise InputError(
                    f"model file {path} holds types skops does not trust ({', '.join(untrusted[:3])}); "
                    "save a plain scikit-learn estimator."
                )
            return skops.io.load(path)
        except InputError:
            raise
        except Exception as exc:
            raise InputError(
                f"model file {path} is not a readable skops file ({type(exc).__name__})."
            ) from exc
    import joblib

    try:
        return joblib.load(path)
    except Exception as exc:
        raise InputError(
            f"model file {path} is not a joblib-saved estimator ({type(exc).__name__})."
        ) from exc


def _sklearn_target(path: Path, table: Table) -> SklearnTarget:
    estimator = _read_estimator(path)
    if not hasattr(estimator, "predict_proba") or not hasattr(estimator, "classes_"):
        raise InputError(f"model file {path} holds no fitted classifier with predict_proba.")
    unknown = set(table.classes) - {str(c) for c in estimator.classes_}
    if unknown:
        raise InputError(
            f"label value {sorted(unknown)[0]!r} is not among the classes of model {path}."
        )
    return SklearnTarget(estimator, f"the scikit-learn model {path}")


def _torch_target(path: Path, spec_path: str | None, table: Table) -> RawTorchTarget:
    if spec_path is None:
        raise InputError(
            f"torch checkpoint {path} needs --model-spec, a YAML file like 'hidden: [64, 64]'."
        )
    try:
        spec = yaml.safe_load(Path(spec_path).read_text())
        hidden = [int(h) for h in spec["hidden"]]
    except Exception as exc:
        raise InputError(
            f"model spec {spec_path} must be YAML with a list of hidden widths under 'hidden'."
        ) from exc
    if table.categorical:
        raise InputError(
            f"torch checkpoint {path} reads the feature columns as numbers, but column {table.categorical[0]!r} is categorical."
        )
    model = TabularMLP(len(table.features), hidden, len(table.classes))
    return RawTorchTarget(load_checkpoint(model, path, f"MLP of {spec_path}").eval(), table)
