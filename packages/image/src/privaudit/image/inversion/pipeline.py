"""The inversion run end to end: data -> evaluation classifier -> per target (trained here, non-private
or DP, or the user's): target -> top-n selection -> cGAN -> latent optimisation -> metrics -> report.
Every stage is cached in the run directory under a key of what decides it; the cGAN checkpoints as
it trains, so an interrupted run resumes where it stopped."""

from __future__ import annotations

import dataclasses
import io
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from privaudit.attacks.checkpoints import load_into, read_state_dict
from privaudit.core.errors import InputError
from privaudit.core.rundir import StageCache, atomic_write_bytes, file_identity, prepare_output_dir
from privaudit.dp.devices import resolve_device
from privaudit.dp.randomness import seed_for
from privaudit.image.inversion import data as inversion_data
from privaudit.image.inversion import evaluation, report
from privaudit.image.inversion.config import InversionConfig
from privaudit.image.inversion.reconstruction import reconstruct
from privaudit.image.inversion.training import train_cgan
from privaudit.image.models import TrainSettings, build_model, train_classifier
from torch import nn


def _say(message: str) -> None:
    print(f"[audit-image invert] {message}", file=sys.stderr, flush=True)


def _identity(path: str | None) -> dict | str | None:
    if path is None or path in inversion_data.EMBEDDED:
        return path
    return {"path": str(Path(path).resolve()), "mtime": Path(path).stat().st_mtime_ns}


def _save(path: Path, payload: dict) -> None:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def _load(path: Path) -> dict | None:
    return torch.load(path, map_location="cpu", weights_only=True) if path.exists() else None


def user_target(config: InversionConfig, data: inversion_data.InversionData) -> nn.Module:
    """The user's checkpoint in `architecture`, checked against the private data's class count."""
    state = read_state_dict(config.model)
    model = build_model(config.architecture, data.shape[0], data.classes, data.shape[-1])
    last = [name for name, p in model.state_dict().items() if p.ndim == 2][
        -1
    ]  # the output layer's weight
    if last in state and state[last].ndim == 2 and state[last].shape[0] != data.classes:
        raise InputError(f"model checkpoint {config.model} has {state[last].shape[0]} outputs but the private data "
                         f"has {data.classes} classes; the target must be trained on exactly the private classes.")  # fmt: skip
    return load_into(model, state, config.model, config.architecture).eval()


def _label(epsilon: float | None, user: bool) -> str:
    return "your model" if user else ("non-private" if epsilon is None else f"DP eps {epsilon:g}")


def _train_target(
    config, data, epsilon, cache, device, progress
) -> tuple[nn.Module, dict | None, float, str]:
    settings = TrainSettings(config.architecture, epochs=config.target_epochs)
    if epsilon is not None:
        settings = TrainSettings(config.architecture, epochs=config.dp_epochs, lr=config.dp_lr,
                                 batch_size=config.dp_batch_size, dp_epsilon=float(epsilon), dp_delta=config.delta)  # fmt: skip
    key = {"data": _data_key(config), "settings": dataclasses.asdict(settings)}
    path = cache.path("target", key, "pt")
    model = build_model(config.architecture, data.shape[0], data.classes, data.shape[-1])
    saved = _load(path)
    if saved is None:
        _say(f"training the {_label(epsilon, False)} target ({config.architecture})")
        started = time.perf_counter()
        seed = seed_for(
            config.seed, "target", 0 if epsilon is None else int(round(float(epsilon) * 1e6))
        )
        trained, record = train_classifier(data.train_images, data.train_labels, data.classes, settings, seed=seed,
                                           desc=f"target {_label(epsilon, False)}", device=device)  # fmt: skip
        trained = getattr(trained, "_module", trained)
        state = {
            k.removeprefix("_module."): v.detach().cpu() for k, v in trained.state_dict().items()
        }
        saved = {
            "state": state,
            "record": json.dumps(record),
            "seconds": time.perf_counter() - started,
        }
        _save(path, saved)
    model.load_state_dict(saved["state"])
    return model.to(device).eval(), json.loads(saved["record"]), float(saved["seconds"]), path.stem


def _data_key(config: InversionConfig) -> dict:
    return {"private": _identity(config.private), "public": _identity(config.public), "seed": config.seed,
            "classes": list(config.private_classes), "test_fraction": config.test_fraction}  # fmt: skip


def run_inversion(config: InversionConfig, *, progress: bool = True, argv: list[str] | None = None,
                  on_cgan_step: Callable[[int], None] | None = None) -> dict:  # fmt: skip
    """Run (or resume) the attack on every target of `config`; writes report.json / report.html."""
    started_all = time.perf_counter()
    device = resolve_device(config.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    data = inversion_data.load(
        config.private, config.public, config.private_classes, config.test_fraction, config.seed
    )
    if config.top_n > len(data.public):
        raise InputError(f"top_n {config.top_n} is more than the {len(data.public)} public images; give more public "
                         "images or a smaller top_n.")  # fmt: skip
    user_model = user_target(config, data) if config.model is not None else None
    out_dir = prepare_output_dir(config.out_dir)  # the input is valid: only now is anything written
    cache = StageCache(out_dir / "cache")

    eval_path = cache.path(
        "evaluation-model", {"data": _data_key(config), "epochs": config.evaluation_epochs}, "pt"
    )
    evaluator = evaluation.EvaluationNet(data.shape[0], data.classes, data.shape[-1])
    saved = _load(eval_path)
    if saved is None:
        _say("training the evaluation classifier on the private data")
        started = time.perf_counter()
        trained = evaluation.train_evaluation_model(data.train_images, data.train_labels, data.classes,
                                                    epochs=config.evaluation_epochs, seed=config.seed, device=device,
                                                    progress=progress)  # fmt: skip
        saved = {
            "state": {k: v.cpu() for k, v in trained.state_dict().items()},
            "seconds": time.perf_counter() - started,
        }
        _save(eval_path, saved)
    evaluator.load_state_dict(saved["state"])
    evaluator = evaluator.to(device).eval()
    timings: dict[str, dict] = {"evaluation model": {"train_s": round(float(saved["seconds"]), 2)}}
    private_features = evaluation.features(evaluator, data.train_images)
    space, space_name = evaluation.frechet_space(data.shape, evaluator)
    reconstructions = data.classes * config.reconstruction.starts
    order = np.random.default_rng(seed_for(config.seed, "frechet-reference")).permutation(
        len(data.test_labels)
    )
    held_out = torch.from_numpy(order[:reconstructions])
    reference = {
        "evaluation_accuracy": evaluation.accuracy(evaluator, data.test_images, data.test_labels),
        "evaluation_architecture": evaluation.EVALUATION_ARCHITECTURE,
        "random_top1": 1 / data.classes, "random_top5": min(5, data.classes) / data.classes,
        "knn_distance_held_out": evaluation.knn_distance(evaluation.features(evaluator, data.test_images),
                                                         data.test_labels, private_features, data.train_labels),
        # as many held-out images as there are reconstructions: FD grows as its sample shrinks
        "frechet_distance_held_out": evaluation.frechet_distance(space, data.test_images[held_out], data.train_images),
        "frechet_reference_images": len(held_out),
        "frechet_distance_held_out_all": evaluation.frechet_distance(space, data.test_images, data.train_images),
        "frechet_space": space_name,
    }  # fmt: skip

    rows, runs, grids = [], {}, {}
    for epsilon in config.targets():
        name = _label(epsilon, user_model is not None)
        stage: dict[str, float] = {}
        if user_model is not None:
            target, record, target_key = user_model.to(device), None, {"model": file_identity(config.model),
                                                                       "architecture": config.architecture}  # fmt: skip
        else:
            target, record, stage["target_s"], target_key = _train_target(
                config, data, epsilon, cache, device, progress
            )
        target_accuracy = evaluation.accuracy(target, data.test_images, data.test_labels)

        started = time.perf_counter()
        probs = inversion_data.probabilities(target, data.public)
        chosen, pseudo = inversion_data.top_n_selection(probs, config.top_n)
        stage["selection_s"] = time.perf_counter() - started
        confidence = probs[chosen, pseudo]
        first = (torch.arange(len(chosen)) % config.top_n) < min(
            config.reconstruction.starts, config.top_n
        )
        public_images, public_labels = data.public[chosen[first]], pseudo[first]
        public_accuracy = evaluation.attack_accuracy(evaluator, public_images, public_labels)

        cgan_key = {"target": target_key, "data": _data_key(config), "top_n": config.top_n,
                    "cgan": dataclasses.asdict(config.cgan)}  # fmt: skip
        checkpoint = cache.path("cgan", cgan_key, "pt")
        if checkpoint.exists():
            _say(
                f"{name}: cGAN checkpoint found in the cache (training resumes there if unfinished)"
            )
        else:
            _say(f"{name}: training the cGAN on {len(chosen)} pseudo-labelled public images")
        generator, summary = train_cgan(data.public[chosen], pseudo, data.classes, target, config.cgan,
                                        seed=config.seed, checkpoint=checkpoint, on_step=on_cgan_step, device=device,
                                        progress=progress)  # fmt: skip
        stage["cgan_s"] = summary["seconds"]

        recon_path = cache.path(
            "reconstruction",
            {**cgan_key, "reconstruction": dataclasses.asdict(config.reconstruction)},
            "pt",
        )
        saved = _load(recon_path)
        if saved is None:
            _say(f"{name}: optimising latents ({config.reconstruction.starts} starts per class)")
            started = time.perf_counter()
            images, labels, losses = reconstruct(generator, target, data.classes, config.reconstruction,
                                                 seed=config.seed, progress=progress)  # fmt: skip
            saved = {
                "images": images,
                "labels": labels,
                "losses": losses,
                "seconds": time.perf_counter() - started,
            }
            _save(recon_path, saved)
        images, labels = saved["images"], saved["labels"]
        stage["reconstruction_s"] = float(saved["seconds"])

        started = time.perf_counter()
        accuracy = evaluation.attack_accuracy(evaluator, images, labels)
        row = {
            "target": name, "target_accuracy": target_accuracy,
            "epsilon_spent": None if record is None else record["epsilon_spent"],
            "attack_top1": accuracy["top1"], "attack_top5": accuracy["top5"],
            "attack_top1_per_class": accuracy["top1_per_class"],
            "knn_distance": evaluation.knn_distance(evaluation.features(evaluator, images), labels, private_features,
                                                    data.train_labels),
            "frechet_distance": evaluation.frechet_distance(space, images, data.train_images),
            "target_accepts_reconstructions": evaluation.accuracy(target, images, labels),
            "pseudo_label_confidence_mean": float(confidence.mean()),
            # the attacker's images without the GAN: the `starts` most confident public images per class
            "public_top1": public_accuracy["top1"],
            "public_knn_distance": evaluation.knn_distance(evaluation.features(evaluator, public_images),
                                                           public_labels, private_features, data.train_labels),
            "dp": record,
        }  # fmt: skip
        stage["evaluation_s"] = time.perf_counter() - started
        rows.append(row)
        timings[name] = {k: round(v, 2) for k, v in stage.items()}
        runs[name] = {"cgan_log": summary["log"], "reconstruction_losses": saved["losses"]}
        grids[name.replace(" ", "-")] = report.grid_png(data.train_images, data.train_labels, images, labels,
                                                        data.classes, config.grid_examples)  # fmt: skip

    timings["total"] = {"run_s": round(time.perf_counter() - started_all, 2)}
    result = {
        "title": "Model inversion (PLG-MI) with DP as the defence (sensitive)",
        "contains_training_images": True,
        "sensitive": report.SENSITIVE,
        "targets": rows,
        "reference": reference,
        "run": {"private": data.private_source, "public": data.public_source, "classes": list(data.class_names),
                "private_train_images": len(data.train_labels), "private_test_images": len(data.test_labels),
                "public_images": len(data.public), "top_n": config.top_n, "alpha": config.cgan.alpha,
                "cgan_steps": config.cgan.steps, "reconstruction_iterations": config.reconstruction.iterations,
                "starts_per_class": config.reconstruction.starts, "architecture": config.architecture,
                "device": str(device)},
        "timings_s": timings,
    }  # fmt: skip
    return report.write_report(
        out_dir, result, grids=grids, runs=runs, config=config.as_dict(), seed=config.seed
    )
