"""A whole membership-inference run: data, target, reference models, signals, attacks, report."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from privaudit.attacks.attacks import AttackInputs, build_attack
from privaudit.attacks.augment import image_queries
from privaudit.attacks.config import MiaConfig
from privaudit.attacks.data import load_images, split_indices
from privaudit.attacks.references import ReferenceStore, in_out_design, train_reference_models
from privaudit.attacks.signals import Signals
from privaudit.attacks.targets import ClassifierTarget
from privaudit.core.errors import InputError
from privaudit.core.report import write_report
from privaudit.core.rundir import atomic_write_text, prepare_output_dir, stable_key
from privaudit.dp.randomness import seed_for

TARGET_ROLE, DESIGN_ROLE = 2, 3


def model_signals(
    store: ReferenceStore, queries, audit, population, device="cpu"
) -> tuple[Signals, Signals]:
    """Signals [R, N, Q] of the audit points and [R, Z, Q] of the population under every model,
    each model run on `device`."""
    per_model = [
        ClassifierTarget(store.load(i).to(device), queries) for i in range(len(store.membership))
    ]
    return (
        Signals.stack([target.signals(*audit) for target in per_model]),
        Signals.stack([target.signals(*population) for target in per_model]),
    )


def run_mia(
    config: MiaConfig, out_dir: str | Path, *, ray_address: str | None = None, progress: bool = True,
    device="cpu",
) -> dict:  # fmt: skip
    """Train (or reuse from out_dir/cache) the target and reference models on `device`, run every
    configured attack and write the scores table and report into out_dir. Returns the report dict."""
    out_dir = prepare_output_dir(out_dir)
    images, labels = load_images(config.data.dataset)
    audit_idx, population_idx = split_indices(
        len(images), (config.data.audit_size, config.data.population_size), config.seed
    )
    audit, population = (
        (images[audit_idx], labels[audit_idx]),
        (images[population_idx], labels[population_idx]),
    )
    spec = dataclasses.replace(
        config.model, input_shape=tuple(images.shape[1:]), num_classes=int(labels.max()) + 1
    )
    data_key = {
        "data": dataclasses.asdict(config.data),
        "model": dataclasses.asdict(spec),
        "seed": config.seed,
    }
    training_key = {**data_key, "training": dataclasses.asdict(config.training)}

    # The target holds one side of a 2-model design: exactly half the audit points.
    target_in = in_out_design(config.data.audit_size, 2, seed_for(config.seed, DESIGN_ROLE, 0))[:1]
    target_store = ReferenceStore.create(
        out_dir / "cache" / f"target-{stable_key(training_key)}", spec, target_in
    )
    train_reference_models(
        target_store,
        *audit,
        config.training,
        seed_for(config.seed, TARGET_ROLE),
        batched=False,
        progress=False,
        device=device,
    )

    refs = config.references
    if refs.checkpoint_dir is not None:
        store = ReferenceStore.from_checkpoints(refs.checkpoint_dir, refs.membership, spec)
        if store.membership.shape[1] != config.data.audit_size:
            raise InputError(
                f"the membership matrix {refs.membership} has {store.membership.shape[1]} columns, but data.audit_size is {config.data.audit_size}"
            )
    else:
        membership = in_out_design(
            config.data.audit_size, refs.count, seed_for(config.seed, DESIGN_ROLE, 1)
        )
        store = ReferenceStore.create(
            out_dir / "cache" / f"references-{stable_key({**training_key, 'count': refs.count})}",
            spec,
            membership,
        )
        train_reference_models(
            store, *audit, config.training, config.seed, batched=refs.batched,
            models_per_group=refs.models_per_group, ray_address=ray_address, progress=progress,
            device=device,
        )  # fmt: skip

    queries = image_queries(mirror=config.data.mirror, shift=config.data.shift)
    with torch.no_grad():
        target_audit, target_population = model_signals(
            target_store, queries, audit, population, device
        )
        reference_audit, reference_population = model_signals(
            store, queries, audit, population, device
        )
    inputs = AttackInputs(
        target=Signals(*(a[0] for a in dataclasses.astuple(target_audit))),
        references=reference_audit,
        reference_in=store.membership,
        population=Signals(*(a[0] for a in dataclasses.astuple(target_population))),
        reference_population=reference_population,
    )
    scores = pd.DataFrame({"member": target_in[0].astype(np.int64)})
    for attack_spec in config.attacks:
        scores[attack_spec.column] = build_attack(attack_spec.name, **attack_spec.params).score(
            inputs
        )
    atomic_write_text(out_dir / "scores.csv", scores.to_csv(index=False))
    return write_report(
        scores, out_dir, baseline=None, member_prior=0.5,  # half the audit points train the target
        title="privaudit attacks: membership inference with reference models", kind="mia",
        config=dataclasses.asdict(config),
        extra={"reference_models": len(store.membership)},
    )  # fmt: skip
