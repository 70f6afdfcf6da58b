"""Ground truth for LOOD: train the finite FC networks the kernel describes with and without
each of N target records (the balanced in/out design of the reference models: every target is in
half the models, every other record in all of them), measure each target's membership-inference
AUC across the models, and correlate it with the target's LOOD."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from privaudit.attacks.lood.kernels import KernelSpec
from privaudit.attacks.models import FCSpec
from privaudit.attacks.references import ReferenceStore, in_out_design, train_reference_models
from privaudit.attacks.signals import logit_scaled_confidence
from privaudit.attacks.training import TrainConfig
from privaudit.core import metrics
from privaudit.core.errors import InputError
from privaudit.core.rundir import stable_key
from privaudit.dp.randomness import seed_for
from scipy import stats

DESIGN_ROLE, TRAINING_ROLE = "lood-in-out-design", "lood-networks"


@dataclass(frozen=True)
class GroundTruthConfig:
    """records: how many targets (0: no study); models: in/out networks (each target in half)."""

    records: int = 0
    models: int = 32
    width: int = 512
    epochs: int = 20
    batch_size: int = 64
    lr: float = 0.5
    models_per_group: int = 16

    def __post_init__(self):
        if self.records and (self.records < 4 or self.records % 2):
            raise InputError(f"--ground-truth must be 0 or an even number >= 4, got {self.records}")
        if self.models < 4 or self.models % 2:
            raise InputError(f"--gt-models must be an even number >= 4, got {self.models}")
        if self.width < 1 or self.epochs < 1 or self.batch_size < 1 or self.models_per_group < 1:
            raise InputError("--gt-width, --gt-epochs, batch size and group size must be >= 1")
        if not self.lr > 0:
            raise InputError(f"--gt-lr must be > 0, got {self.lr}")


def choose_targets(lood: np.ndarray, count: int) -> np.ndarray:
    """`count` records at evenly spaced ranks of the LOOD ranking (highest and lowest included),
    so the study covers the whole range rather than mostly the typical records."""
    if count > len(lood):
        raise InputError(
            f"--ground-truth {count} asks for more records than the {len(lood)} scored"
        )
    order = np.argsort(-lood, kind="stable")
    return order[np.unique(np.linspace(0, len(lood) - 1, count).round().astype(np.int64))]


def _correlation(x: np.ndarray, y: np.ndarray) -> dict:
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return {"pearson": None, "pearson_p": None, "spearman": None, "spearman_p": None}
    pearson, spearman = stats.pearsonr(x, y), stats.spearmanr(x, y)
    return {
        "pearson": float(pearson.statistic), "pearson_p": float(pearson.pvalue),
        "spearman": float(spearman.statistic), "spearman_p": float(spearman.pvalue),
    }  # fmt: skip


def run_ground_truth(
    inputs: torch.Tensor, labels: np.ndarray, targets: np.ndarray, lood_kl: np.ndarray,
    lood_mean: np.ndarray, kernel: KernelSpec, config: GroundTruthConfig, seed: int,
    cache_dir: Path, *, progress: bool = True, device="cpu",
) -> dict:  # fmt: skip
    """Train (or reuse from cache_dir) the in/out networks, then per target: MIA AUC of its
    logit-scaled confidence (in vs out models), and the squared distance of the mean logits;
    correlated with the targets' KL and mean-distance LOOD (lood_kl, lood_mean: [len(targets)])."""
    num_classes = int(labels.max()) + 1
    spec = FCSpec(
        input_shape=tuple(inputs.shape[1:]), num_classes=num_classes, width=config.width,
        depth=kernel.depth, activation=kernel.activation, w_std=kernel.w_std, b_std=kernel.b_std,
    )  # fmt: skip
    design = in_out_design(len(targets), config.models, seed_for(seed, DESIGN_ROLE))
    membership = np.ones((config.models, len(inputs)), dtype=bool)
    membership[:, targets] = design
    training = TrainConfig(epochs=config.epochs, batch_size=config.batch_size, lr=config.lr)
    key = {"spec": asdict(spec), "training": asdict(training), "targets": targets, "seed": seed}
    store = ReferenceStore.create(cache_dir / f"groundtruth-{stable_key(key)}", spec, membership)
    labels_t = torch.as_tensor(labels)
    train_reference_models(
        store, inputs, labels_t, training, seed_for(seed, TRAINING_ROLE), batched=True,
        models_per_group=config.models_per_group, progress=progress, device=device,
    )  # fmt: skip

    confidence, logits_all, train_accuracy = [], [], []
    with torch.no_grad():
        for r in range(config.models):
            model = store.load(r).to(device).eval()
            logits = torch.cat(
                [model(batch.to(device)).double().cpu() for batch in inputs.split(1024)]
            )
            train_accuracy.append(
                float((logits.argmax(1) == labels_t)[membership[r]].float().mean())
            )
            logits_all.append(logits[targets])
            confidence.append(logit_scaled_confidence(logits[targets], labels_t[targets]).numpy())
    confidence, target_logits = (
        np.stack(confidence),
        torch.stack(logits_all).numpy(),
    )  # [R, N], [R, N, C]
    auc = np.array(
        [metrics.auc(design[:, t].astype(np.int64), confidence[:, t]) for t in range(len(targets))]
    )
    difference = np.array([
        ((target_logits[design[:, t], t].mean(0) - target_logits[~design[:, t], t].mean(0)) ** 2).sum()
        for t in range(len(targets))
    ])  # fmt: skip
    return {
        "records": len(targets), "models": config.models, "model": asdict(spec),
        "training": asdict(training), "train_accuracy_mean": float(np.mean(train_accuracy)),
        "kl_vs_auc": _correlation(lood_kl, auc),
        "mean_distance_vs_prediction_difference": _correlation(lood_mean, difference),
        "per_record": [
            {"record": int(i), "lood_kl": float(k), "lood_mean_distance": float(m), "mia_auc": float(a),
             "prediction_difference": float(d)}
            for i, k, m, a, d in zip(targets, lood_kl, lood_mean, auc, difference, strict=True)
        ],
    }  # fmt: skip
