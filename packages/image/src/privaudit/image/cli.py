"""`audit-image`: the PANORAMIA audit of an image classifier, on the embedded MNIST subset by default."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from privaudit.core.errors import run_cli

# `audit-image NAME ...` runs another image attack; each module has its own `main(argv) -> int`.
SUBCOMMANDS: dict[str, str] = {
    "reconstruct": "privaudit.image.reconstruction.cli",
    "invert": "privaudit.image.inversion.cli",
}


def build_parser() -> argparse.ArgumentParser:
    from privaudit.attacks.panoramia.cli import panoramia_parser
    from privaudit.dp.devices import DEVICE_HELP
    from privaudit.image.config import CPU_GAN_STEPS, GPU_GAN_STEPS, TARGET_KINDS, TRAINED_TARGETS

    parser = panoramia_parser(
        "audit-image",
        "an image classifier (StyleGAN2-ADA-style generator)",
        targets=TARGET_KINDS,
        default="a CNN trained on the embedded 5,000-image MNIST subset",
        example="gan_steps=500",
        data="'mnist' (default, embedded), 'digits' (sklearn 8x8), an image folder (one sub-folder per class) "
        "or a torchvision dataset root (MNIST, FashionMNIST, CIFAR10)",
        model="your trained model: a torch state dict (torch.save(model.state_dict())) loaded with "
        "weights_only=True into --architecture, whose keys it must have; every image of --data is taken as "
        "its training member",
        non_members="images your model never saw (same layout as --data), for the ground truth",
    )
    parser.add_argument("--architecture", choices=TRAINED_TARGETS, help="architecture of --model")
    parser.add_argument(
        "--gan-steps",
        type=int,
        help=f"generator training steps (default {CPU_GAN_STEPS} on the CPU, {GPU_GAN_STEPS} on a GPU)",
    )
    parser.add_argument(
        "--fused-ops",
        action="store_const",
        const=True,
        default=None,
        help="build and use the C++ fused ops (falls back to PyTorch when the build fails)",
    )
    parser.add_argument("--threads", type=int, help="torch CPU threads (default 1)")
    parser.add_argument(
        "--gan-threads",
        type=int,
        help="torch CPU threads while the generator trains (default: chosen by timing steps at 1 thread, "
        "the idle cores and all cores, re-checked as the load changes; a fixed count keeps reruns bit-identical)",
    )
    parser.add_argument("--device", help=DEVICE_HELP)
    return parser


def run_dir(config) -> str:
    """The run directory of a config that names none: one per data, target and epsilon
    (runs/image-mnist for the default CNN, runs/image-mnist-wrn16-4-dp-eps8, ...)."""
    parts = ["mnist" if config.data == "mnist" else (Path(config.data).name or "data")]
    if config.target != "cnn":
        parts.append(config.target)
    if config.epsilon is not None:
        parts.append(f"dp-eps{config.epsilon:g}")
    if config.model is not None:
        parts.append(Path(config.model).stem)
    return "runs/image-" + "-".join(parts)


IMAGE_FIELDS = ("architecture", "gan_steps", "fused_ops", "threads", "gan_threads", "device")


def resolve_config(argv: Sequence[str]):
    """The audit's ImageAuditConfig from the command line (input errors raise InputError)."""
    from privaudit.attacks.panoramia.cli import SHARED_FIELDS, out_given
    from privaudit.core.config import load_config
    from privaudit.image.config import ImageAuditConfig

    args = build_parser().parse_args(argv)
    flags = {name: getattr(args, name) for name in SHARED_FIELDS + IMAGE_FIELDS}
    config = load_config(ImageAuditConfig, args.config, args.overrides, flags)
    if not out_given(args):
        config = config.replace(out_dir=run_dir(config))
    return config


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        import importlib

        return importlib.import_module(SUBCOMMANDS[argv[0]]).main(argv[1:])

    def body() -> int:
        config = resolve_config(argv)
        from privaudit.image.audit import run_audit  # heavy imports only once the input is valid

        report = run_audit(config)
        _print_summary(report, config)
        return 0

    return run_cli(body)


def _print_summary(report: dict, config) -> None:
    # core.report (pandas, matplotlib) is loaded with the audit, once the input is checked
    from privaudit.core.report import summary_lines

    print("\n".join(summary_lines(report)))
    quality = report.get("extra", {}).get("generator_quality")
    if quality:
        print(
            f"generator: Frechet distance {quality['frechet_distance']:.2f} (real vs real "
            f"{quality['frechet_distance_real_vs_real']:.2f}) in {quality['feature_space']}"
            f"; a detector on images alone tells its images from real ones at AUC "
            f"{quality['detector_auc']:.3f}"
        )
    print(f"report: {Path(config.out_dir) / 'report.html'}")


if __name__ == "__main__":
    sys.exit(main())
