"""The reconstruction attack end to end: backbone -> features -> shadow heads -> reconstructor ->
attacked heads -> min-MSE under H0 and H1 -> report. Every stage is cached in the run directory
under a key of the settings that decide it, so a rerun reuses it and an interrupted run resumes
(shadow heads chunk by chunk, the reconstructor from its last checkpoint)."""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from privaudit.attacks.reconstruction import evaluation
from privaudit.attacks.reconstruction.heads import DPSchedule, head_accuracy
from privaudit.attacks.reconstruction.reconstructor import (
    HeadBatches,
    reconstruct,
    train_reconstructor,
)
from privaudit.attacks.reconstruction.shadow import ShadowJob, train_shadow_heads
from privaudit.attacks.reconstruction.store import HeadStore, StoreLayout
from privaudit.core.errors import InputError
from privaudit.core.rundir import StageCache, atomic_write_json, prepare_output_dir, stable_key
from privaudit.dp.devices import resolve_device
from privaudit.dp.randomness import seed_for
from privaudit.image import data as image_data
from privaudit.image.models import ccexam_mnist
from privaudit.image.reconstruction import backbone as backbones
from privaudit.image.reconstruction.config import ReconstructionConfig
from privaudit.image.reconstruction.report import write_reconstruction_report

SPLIT_ROLE, H1_ROLE, BACKBONE_ROLE = "pools", "h1-weights", "backbone"
SHADOW, ATTACKED = 0, 1  # head populations: their random streams differ under one run seed


def _say(message: str) -> None:
    print(f"[audit-image reconstruct] {message}", file=sys.stderr, flush=True)


def _identity(data: str) -> dict:
    """What cache keys record about a dataset: its name, or a user path's size and mtime."""
    if data in ("mnist", "digits"):
        return {"data": data}
    path = Path(data)
    return {"path": str(path.resolve()), "mtime": path.stat().st_mtime_ns}


def _load(data: str) -> image_data.ImageData:
    images = image_data.load_images(data)
    if images.images.shape[1] != 1:
        raise InputError(
            f"data {data} has {images.images.shape[1]} channels; the backbones read grayscale images."
        )
    return images


def split_pools(
    labels: np.ndarray, attacked: int, backbone: int, seed: int, class_size: int
) -> dict[str, np.ndarray]:
    """Disjoint index sets: attacked, backbone (may be empty) and shadow (the rest); the attacked
    and shadow pools must hold class_size images of every class."""
    if attacked + backbone >= len(labels):
        raise InputError(f"the data has {len(labels)} images, not more than the {attacked + backbone} "
                         f"that attacked_images + backbone_images hold back from the shadow pool.")  # fmt: skip
    order = np.random.default_rng(seed_for(seed, SPLIT_ROLE)).permutation(len(labels))
    pools = {"attacked": np.sort(order[:attacked]), "backbone": np.sort(order[attacked : attacked + backbone]),
             "shadow": np.sort(order[attacked + backbone :])}  # fmt: skip
    classes = int(labels.max()) + 1
    for name in ("attacked", "shadow"):
        counts = np.bincount(labels[pools[name]], minlength=classes)
        if counts.min() < class_size:
            raise InputError(f"the {name} pool holds {counts.min()} images of class {counts.argmin()}, fewer "
                             f"than class_size {class_size}; give more images or a smaller class_size.")  # fmt: skip
    return pools


def _backbone(config: ReconstructionConfig, data, pools, cache: StageCache, device, progress):
    """(model, key fields, description, accuracy on the attacked pool)."""
    if config.backbone == "ccexam-mnist":
        model = ccexam_mnist()
        key = {"backbone": "ccexam-mnist"}
        seen = "ccexam's pretrained MNIST CNN: trained on all of MNIST train, which holds the attacked images"
    else:
        source = _load(config.backbone_data) if config.backbone_data else data
        rows = np.arange(len(source.labels)) if config.backbone_data else pools["backbone"]
        key = {"backbone": "pretrained", "source": _identity(config.backbone_data or config.data),
               "rows": stable_key(rows.tolist()), "epochs": config.backbone_epochs, "seed": config.seed}  # fmt: skip
        model = backbones.cached_pretrain(
            cache.path("backbone", key, "pt"), source.images[rows], source.labels[rows], source.classes,
            epochs=config.backbone_epochs, seed=seed_for(config.seed, BACKBONE_ROLE), device=device,
            progress=progress,
        )  # fmt: skip
        where = (
            f"{config.backbone_data}"
            if config.backbone_data
            else f"{len(rows)} held-out images of {config.data}"
        )
        seen = f"ccexam's CNN architecture pre-trained here on {where}, never on an attacked image"
    same_classes = config.backbone == "ccexam-mnist" or not config.backbone_data
    attacked = pools["attacked"]
    acc = (backbones.accuracy(model, data.images[attacked], data.labels[attacked], device)
           if same_classes else None)  # fmt: skip
    return model, key, seen, acc


def _heads(store_dir: Path, features, labels, job: ShadowJob, count: int, chunk: int, parameters: int,
           ray_address, progress, desc) -> tuple[HeadStore, dict]:  # fmt: skip
    """The store of `count` heads, trained where missing; (store, {heads, seconds} of training,
    summed over every run that trained some of them)."""
    layout = StoreLayout(count, chunk, parameters, job.classes * job.class_size)
    store = HeadStore(store_dir, layout)
    record = store_dir / "training-time.json"
    spent = json.loads(record.read_text()) if record.exists() else {"heads": 0, "seconds": 0.0}
    started = time.perf_counter()
    trained = train_shadow_heads(store, torch.from_numpy(features), labels, job, ray_address=ray_address,
                                 progress=progress, desc=desc)  # fmt: skip
    if trained:
        spent = {"heads": spent["heads"] + sum(layout.chunks()[c][1] for c in trained),
                 "seconds": spent["seconds"] + time.perf_counter() - started}  # fmt: skip
        atomic_write_json(record, spent)
    return store, spent


def _inputs_and_targets(batches: HeadBatches, standardised: np.ndarray, sets: np.ndarray, positive: np.ndarray,
                        classes: int) -> tuple[torch.Tensor, torch.Tensor, int]:  # fmt: skip
    """Reconstructor inputs [H x G, .] for every head and group (every class when conditional,
    the positive class otherwise) and the targets [H, G, K, C, h, w]; returns G too."""
    heads = len(standardised)
    if batches.conditional:
        groups = np.tile(np.arange(classes), heads)
        rows = np.repeat(np.arange(heads), classes)
    else:
        groups, rows = positive, np.arange(heads)
    per_head = len(groups) // heads
    inputs = batches.condition(standardised[rows], groups)
    targets = batches.targets(sets[rows], groups)
    return inputs, targets.view(heads, per_head, *targets.shape[1:]), per_head


def run_reconstruction(config: ReconstructionConfig, out_dir: str | Path, *, ray_address: str | None = None,
                       progress: bool = True, argv: list[str] | None = None) -> dict:  # fmt: skip
    """Run (or resume) the attack and write report.json / report.html into `out_dir`."""
    device = resolve_device(config.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    out_dir = prepare_output_dir(out_dir)
    cache = StageCache(out_dir / "cache")
    timings: dict[str, float] = {}
    started = time.perf_counter()

    data = _load(config.data)
    labels = data.labels.numpy()
    classes = data.classes
    held_back = (
        config.backbone_images
        if config.backbone == "pretrained" and not config.backbone_data
        else 0
    )
    pools = split_pools(labels, config.attacked_images, held_back, config.seed, config.class_size)
    model, backbone_key, backbone_seen, backbone_acc = _backbone(
        config, data, pools, cache, device, progress
    )
    features = backbones.penultimate_features(model, data.images, device, backbone_seen)
    targets = F.interpolate(data.images, size=(config.image_size,) * 2, mode="bilinear", align_corners=False,
                            antialias=True).clamp(-1, 1)  # fmt: skip
    timings["backbone_and_features_s"] = time.perf_counter() - started

    heads = config.heads
    examples, epochs = classes * config.class_size, heads.epochs_for(config.class_size)
    schedule = None
    if config.dp.epsilon is not None:
        _say(f"finding the noise for eps {config.dp.epsilon:g} ({config.dp.accountant} accountant)")
        dp_key = {"dp": dataclasses.asdict(config.dp), "examples": examples, "epochs": epochs}
        plan = cache.json(cache.path("dp-schedule", dp_key, "json"),
                          lambda: dataclasses.asdict(config.dp.schedule(examples, epochs)))  # fmt: skip
        schedule = DPSchedule(**plan)
    parameters = heads.parameter_count(features.shape[1], classes)
    key = {"backbone": backbone_key, "data": _identity(config.data), "seed": config.seed, "heads": dataclasses.asdict(heads),
           "dp": None if schedule is None else dataclasses.asdict(schedule), "class_size": config.class_size,
           "attacked_images": config.attacked_images, "backbone_images": held_back}  # fmt: skip

    def job(population: int) -> ShadowJob:
        return ShadowJob(
            heads, classes, config.class_size, config.seed, population, schedule, str(device)
        )

    def trained_heads(role: str, population: int, count: int):
        """The `count` heads trained on sets drawn from one pool (shadow or attacked), stored in chunks."""
        pool = pools[role]
        store, spent = _heads(
            cache.root / f"{role}-{stable_key({**key, 'count': count, 'chunk': config.chunk_size})}",
            features[pool], labels[pool], job(population), count, config.chunk_size, parameters,
            ray_address, progress, f"{role} heads",
        )  # fmt: skip
        timings[f"{role}_heads_training_s"] = spent["seconds"]
        timings[f"{role}_heads_per_second"] = spent["heads"] / max(spent["seconds"], 1e-9)
        return pool, store

    shadow, shadow_store = trained_heads("shadow", SHADOW, config.shadow_heads)
    stats = shadow_store.stats(device)

    row_width = (
        features.shape[1] if heads.kind == "linear" and config.reconstructor.class_row else None
    )
    batches = HeadBatches(shadow_store, stats, targets[shadow], classes, config.class_size, config.conditional,
                          row_width)  # fmt: skip
    started_reconstructor = time.perf_counter()
    reconstructor_key = {**key, "count": config.shadow_heads, "chunk": config.chunk_size,
                         "reconstructor": dataclasses.asdict(config.reconstructor), "image_size": config.image_size}  # fmt: skip
    reconstructor, losses = train_reconstructor(
        batches, config.reconstructor, seed=config.seed, device=device, progress=progress,
        checkpoint=cache.path("reconstructor", reconstructor_key, "pt"),
    )  # fmt: skip
    timings["reconstructor_s"] = time.perf_counter() - started_reconstructor

    attacked, attacked_store = trained_heads("attacked", ATTACKED, config.attacked_heads)

    started_eval = time.perf_counter()
    real = HeadBatches(attacked_store, stats, targets[attacked], classes, config.class_size, config.conditional,
                       row_width)  # fmt: skip
    weights, sets, positive = real.rows(np.arange(len(real)))
    inputs, target_images, groups = _inputs_and_targets(
        real, stats.standardise(weights), sets, positive, classes
    )
    h1_rng = np.random.default_rng(seed_for(config.seed, H1_ROLE))
    random_weights = stats.unkept(evaluation.h1_weights(stats.correlation, len(weights), h1_rng))
    inputs_h1, _, _ = _inputs_and_targets(real, random_weights, sets, positive, classes)
    shape = (len(weights), groups, *target_images.shape[-3:])
    rebuilt = reconstruct(reconstructor, inputs).view(shape)
    rebuilt_h1 = reconstruct(reconstructor, inputs_h1).view(shape)
    h0 = evaluation.min_mse(rebuilt, target_images)
    h1 = evaluation.min_mse(rebuilt_h1, target_images)
    rates = evaluation.reconstruction_rates(
        h0, h1, config.mse_threshold, sorted({0.1, 0.01, 0.001, config.fpr})
    )
    # the attacked heads never saw a shadow-pool image: those are their held-out test set
    accuracy = head_accuracy(torch.from_numpy(weights), heads, classes, torch.from_numpy(features[shadow]),
                             torch.from_numpy(labels[shadow]),
                             torch.from_numpy(positive) if heads.kind == "mlp" else None)  # fmt: skip
    timings["evaluation_s"] = time.perf_counter() - started_eval
    timings["total_s"] = time.perf_counter() - started

    facts = {
        "data": data.source, "classes": classes, "class_size": config.class_size, "examples_per_head": examples,
        "pools": {name: int(len(rows)) for name, rows in pools.items()},
        "backbone": backbone_seen, "backbone_accuracy_on_attacked_images": backbone_acc,
        "feature_dimension": int(features.shape[1]), "head_kind": heads.kind, "head_parameters": parameters,
        "head_epochs": epochs, "head_lr": heads.learning_rate, "head_weight_decay": heads.decay,
        "standardised_dimension": stats.dimension,
        "shadow_heads": config.shadow_heads, "attacked_heads": config.attacked_heads,
        "shadow_heads_per_second": timings["shadow_heads_per_second"], "reconstructor_steps": config.reconstructor.steps,
        "reconstructor_batch_size": config.reconstructor.batch_size, "reconstructor_width": config.reconstructor.width,
        "reconstructor_parameters": sum(p.numel() for p in reconstructor.parameters()),
        "conditional": config.conditional, "final_loss": float(np.mean(losses[-50:])),
        "dp": None if schedule is None else {**dataclasses.asdict(schedule), "target_epsilon": config.dp.epsilon,
                                            "accountant": config.dp.accountant},
        "attacked_head_accuracy_mean": float(accuracy.mean()), "device": str(device),
    }  # fmt: skip
    shown = config.grid_heads * (
        1 if config.conditional else classes
    )  # one image per head when unconditional
    return write_reconstruction_report(
        out_dir, config=config, facts=facts, rates=rates, timings=timings, losses=losses, h0=h0, h1=h1,
        grid=(target_images[:shown], rebuilt[:shown], rebuilt_h1[:shown], h0[:shown]), argv=argv,
    )  # fmt: skip
