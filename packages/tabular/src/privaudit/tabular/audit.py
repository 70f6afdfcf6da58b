"""The PANORAMIA audit of a tabular model: the tabular pieces for privaudit.attacks.panoramia."""

from __future__ import annotations

import torch
from privaudit.attacks.panoramia import (
    GivenTarget,
    PanoramiaInputs,
    PanoramiaSettings,
    TrainedTarget,
    run_panoramia,
)
from privaudit.core.errors import InputError
from privaudit.core.rundir import file_identity
from privaudit.tabular import data as tabular_data
from privaudit.tabular.attack import ATTACK_INPUTS, TabularAttack
from privaudit.tabular.config import TabularAuditConfig
from privaudit.tabular.generator import SdvGenerator
from privaudit.tabular.models import TrainSettings
from privaudit.tabular.targets import FrameExamples, MLPFamily, load_user_target


def load_table(config: TabularAuditConfig) -> tabular_data.Table:
    if config.data is None:
        return tabular_data.prepare_table(
            tabular_data.adult(), config.label, source="UCI Adult", min_rows=config.min_rows
        )
    frame = tabular_data.read_table(config.data)
    return tabular_data.prepare_table(
        frame, config.label, source=f"data file {config.data}", min_rows=config.min_rows
    )


def _user_non_members(
    config: TabularAuditConfig, table: tabular_data.Table
) -> FrameExamples | None:
    if config.non_members_data is None:
        return None
    frame = tabular_data.read_table(config.non_members_data)
    missing = [c for c in table.frame.columns if c not in frame.columns]
    if missing:
        raise InputError(f"non-member file {config.non_members_data} lacks column {missing[0]!r}.")
    frame = frame[list(table.frame.columns)].dropna(subset=[table.label]).reset_index(drop=True)
    for column in table.categorical + [table.label]:
        frame[column] = frame[column].astype(str)
    return FrameExamples(frame, table)


def target_settings(config: TabularAuditConfig) -> TrainSettings:
    decay = config.weight_decay
    if config.target == "overfit":
        return TrainSettings(
            config.overfit_hidden,
            config.overfit_epochs,
            config.lr,
            config.batch_size,
            weight_decay=decay,
        )
    if config.target == "dp":
        return TrainSettings(
            config.hidden,
            config.epochs,
            config.dp_lr,
            config.dp_batch_size,
            weight_decay=decay,
            dp_epsilon=config.epsilon,
            dp_delta=config.delta,
            max_grad_norm=config.max_grad_norm,
            reproducible_noise=config.reproducible_noise,
        )
    return TrainSettings(
        config.hidden, config.epochs, config.lr, config.batch_size, weight_decay=decay
    )


def run_audit(config: TabularAuditConfig) -> dict:
    """Run the whole audit; returns the main report's dict (its `extra` holds target, generator, ground truth)."""
    torch.set_num_threads(config.torch_threads)
    table = load_table(config)
    helper = MLPFamily(
        TrainSettings(config.hidden, config.helper_epochs, config.lr, config.batch_size),
        table,
        "helper",
    )
    families = [helper]
    if config.model is not None:
        target = GivenTarget(
            load_user_target(config.model, config.model_spec, table),
            {"kind": "user", "model": config.model},
            {"model": file_identity(config.model), "spec": config.model_spec},
        )
        target_name = "model"
    else:
        settings = target_settings(config)
        family = MLPFamily(settings, table, "target", label_noise=config.label_noise)
        families.append(family)
        info = {"kind": config.target, "hidden": list(settings.hidden), "epochs": settings.epochs}
        if config.weight_decay:
            info["weight_decay"] = config.weight_decay
        if config.label_noise:
            info["label_noise"] = config.label_noise
        target = TrainedTarget(family, info)
        target_name = config.target

    def fit_encoders(trained_on: FrameExamples) -> None:
        # one encoding, fitted on the target's training rows, for the target, the helper and the attacks
        helper.fit_encoder(trained_on)
        for family in families[1:]:
            family.encoder = helper.encoder

    data_key = {
        "data": "uci-adult" if config.data is None else file_identity(config.data),
        "label": config.label,
    }
    if config.non_members_data is not None:
        data_key["non_members_data"] = file_identity(config.non_members_data)
    inputs = PanoramiaInputs(
        modality="tabular",
        source=table.source,
        data=FrameExamples(table.frame, table),
        data_key=data_key,
        target=target,
        target_name=target_name,
        generator=SdvGenerator(
            table,
            synthesizer=config.synthesizer,
            epochs=config.ctgan_epochs if config.synthesizer == "ctgan" else config.tvae_epochs,
            batch_size=config.synthesizer_batch_size,
            rejection_quantile=config.rejection_quantile,
        ),
        helper=helper,
        attack=lambda seed, desc: TabularAttack(
            helper.encoder, iterations=config.classifier_iterations, seed=seed
        ),
        attack_key={"inputs": ATTACK_INPUTS, "iterations": config.classifier_iterations},
        non_members=_user_non_members(config, table),
        prepare=fit_encoders,
        mia_reference=config.mia_reference == "helper",
    )
    settings = PanoramiaSettings.from_config(
        config, generator_examples=config.generator_rows, helper_examples=None, min_examples=50
    )
    return run_panoramia(inputs, settings)
