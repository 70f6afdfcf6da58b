"""The image audit's Generator: the StyleGAN2-ADA-style class-conditional GAN (gan.py), its Fréchet
distance and sample grids."""

from __future__ import annotations

import html
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from privaudit.attacks.panoramia import TensorExamples
from privaudit.core.report import ReportSection
from privaudit.dp.randomness import seed_for
from privaudit.image import gan
from privaudit.image.data import crop, pad_to_power_of_two
from privaudit.image.models import parameter_count
from privaudit.image.quality import (
    DETECTOR_EPOCHS,
    DETECTOR_HELD_OUT,
    detector_auc,
    feature_space,
    frechet_distance,
    image_grid_png,
)


class StyleGanGenerator:
    name = "StyleGAN2-ADA-style"
    conditional = True
    # the detector in quality(): a quality JSON cached without it is not this one
    quality_key = {"detector": {"epochs": DETECTOR_EPOCHS, "held_out": DETECTOR_HELD_OUT}}

    def __init__(
        self,
        settings: gan.GanSettings,
        classes: int,
        device,
        *,
        threads: int,
        gan_threads: int | None,
    ):
        self.settings, self.classes, self.device = settings, classes, device
        self.threads, self.gan_threads = threads, gan_threads
        self.key = {
            k: v for k, v in asdict(settings).items() if k != "fused_ops"
        }  # same samples either way

    def fit(self, members: TensorExamples, checkpoint: Path, seed: int) -> None:
        padded, self.pad = pad_to_power_of_two(members.inputs)
        self.size = members.inputs.shape[-1]
        # the generator's convolutions scale with idle cores (the small models of the rest do not);
        # unless a count is given, timed steps choose it and re-check it as the machine's load moves
        chooser = None
        if self.gan_threads is not None:
            torch.set_num_threads(self.gan_threads)
        elif torch.device(self.device).type == "cpu":
            chooser = gan.ThreadChooser.auto()
        try:
            self.model, self.summary = gan.train_gan(
                padded,
                members.labels,
                self.classes,
                self.settings,
                seed=seed,
                checkpoint=checkpoint,
                checkpoint_every=50,
                device=self.device,
                threads=chooser,
            )
        finally:
            torch.set_num_threads(self.threads)

    def sample(self, count: int, labels: np.ndarray, seed: int) -> TensorExamples:
        labels = torch.as_tensor(labels, dtype=torch.int64)
        images = crop(gan.sample(self.model, labels, seed=seed), self.size, self.pad)
        return TensorExamples(images.contiguous(), labels)

    def quality(
        self,
        members: TensorExamples,
        synthetic: TensorExamples,
        held_out: TensorExamples,
        seed: int,
    ) -> dict:
        features = feature_space(
            members.inputs.shape[1:],
            members.inputs,
            members.labels,
            self.classes,
            seed,
            self.device,
        )
        reference = features(members.inputs)
        return {
            "feature_space": features.name,
            "frechet_distance": frechet_distance(features(synthetic.inputs), reference),
            "frechet_distance_real_vs_real": frechet_distance(
                features(held_out.inputs[: len(synthetic)]), reference
            ),
            "detector_auc": detector_auc(
                members.inputs, synthetic.inputs, seed_for(seed, "detector"), self.device
            ),
            "detector": f"GroupNorm CNN, {DETECTOR_EPOCHS} epochs on images alone",
            "n_synthetic": len(synthetic),
            "n_real": len(members),
            "steps": self.summary["steps"],
            "batch_size": self.settings.batch_size,
            "seconds": self.summary["seconds"],
            "implementation": self.summary["implementation"],
            "device": str(self.device),
            "ada_p": self.summary["ada_p"],
            "parameters": parameter_count(self.model),
            "threads": self.summary.get("threads"),
        }

    def report_section(
        self, q: dict, members: TensorExamples, synthetic: TensorExamples
    ) -> ReportSection:
        body = (
            f"<p>Fréchet distance in the feature space of the {html.escape(q['feature_space'])}: "
            f"<b>{q['frechet_distance']:.3f}</b> between {q['n_synthetic']} synthetic images and {q['n_real']} of "
            f"the generator's real training images; for scale, real vs real (held-out real images vs the same "
            f"training images): {q['frechet_distance_real_vs_real']:.3f}.</p>"
            f"<p>A detector ({html.escape(q['detector'])}) trained to tell these synthetic "
            "images from the generator's real training images, with neither the target nor a "
            f"helper, reaches AUC <b>{q['detector_auc']:.3f}</b> on held-out images (0.5: "
            "indistinguishable).</p>"
            f"<p>Generator: {q['steps']} steps of batch {q['batch_size']} in {q['seconds']:.0f} s "
            f"({html.escape(q['implementation'])} ops, on {html.escape(q.get('device', 'cpu'))}), "
            f"{q['parameters']:,} parameters, final ADA p = {q['ada_p']:.3f}. "
            f"Left: synthetic samples (one row per class); right: real generator-training images.</p>"
        )
        grids = (
            (
                "generator_samples.png",
                image_grid_png(synthetic.inputs, synthetic.labels, self.classes),
            ),
            ("real_samples.png", image_grid_png(members.inputs, members.labels, self.classes)),
        )
        return ReportSection(f"Generator ({self.name}) quality", body, images=grids)
