"""`audit-image`: the PANORAMIA audit of an image classifier, on the embedded MNIST subset by default."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from privaudit.core.errors import CliParser, run_cli

# `audit-image NAME ...` runs another image attack; each module has its own `main(argv) -> int`.
SUBCOMMANDS: dict[str, str] = {"reconstruct": "privaudit.image.reconstruction.cli"}


def build_parser() -> argparse.ArgumentParser:
    from privaudit.attacks.devices import DEVICE_HELP
    from privaudit.image.config import TARGET_KINDS, TRAINED_TARGETS

    parser = CliParser(
        prog="audit-image",
        description="PANORAMIA privacy audit of an image classifier: StyleGAN2-ADA-style synthetic "
        "non-members, baseline and membership-inference attack networks, eps_tilde = {c+eps}_lb - c_lb. "
        "With no arguments it audits a CNN trained on the embedded 5,000-image MNIST subset.",
    )
    parser.add_argument("--config", help="YAML file of config fields (flags below override it)")
    parser.add_argument("--data", help="'mnist' (default, embedded), 'digits' (sklearn 8x8), an image folder "
                        "(one sub-folder per class) or a torchvision dataset root (MNIST, FashionMNIST, CIFAR10)")
    parser.add_argument("--target", choices=TARGET_KINDS, help="the target to train (or ccexam-mnist, pretrained)")
    parser.add_argument("--epsilon", type=float, help="train the target with DP-SGD at this epsilon")
    parser.add_argument("--model", help="your trained model: a torch state dict loaded with weights_only=True "
                        "into --architecture; every image of --data is taken as its training member")
    parser.add_argument("--architecture", choices=TRAINED_TARGETS, help="architecture of --model")
    parser.add_argument("--non-members", dest="non_members_data",
                        help="images your model never saw (same layout as --data), for the ground truth")
    parser.add_argument("--gan-steps", type=int, help="generator training steps")
    parser.add_argument("--epochs", type=int, help="target training epochs (non-DP)")
    parser.add_argument("--fused-ops", action="store_const", const=True, default=None,
                        help="build and use the C++ fused ops (falls back to PyTorch when the build fails)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default 1)")
    parser.add_argument("--gan-threads", type=int, help="torch CPU threads while the generator trains (default: all cores)")
    parser.add_argument("--device", help=DEVICE_HELP)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--out", dest="out_dir", help="run directory (default runs/image-mnist)")
    return parser


def _default_out(args) -> str | None:
    if args.out_dir is not None or args.config:
        return None
    parts = []
    if args.data not in (None, "mnist"):
        parts.append(Path(args.data).name or "data")
    else:
        parts.append("mnist")
    if args.target not in (None, "cnn"):
        parts.append(args.target)
    if args.epsilon is not None:
        parts.append(f"dp-eps{args.epsilon:g}")
    if args.model is not None:
        parts.append(Path(args.model).stem)
    return None if parts == ["mnist"] else "runs/image-" + "-".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        import importlib

        return importlib.import_module(SUBCOMMANDS[argv[0]]).main(argv[1:])

    def body() -> int:
        from privaudit.image.config import ImageAuditConfig, load_config

        args = build_parser().parse_args(argv)
        base = load_config(args.config) if args.config else ImageAuditConfig()
        overrides = {k: v for k, v in vars(args).items() if k != "config"}
        overrides["out_dir"] = args.out_dir or _default_out(args)
        config = base.replace(**overrides)
        from privaudit.image.audit import run_audit  # heavy imports only once the input is valid

        report = run_audit(config, argv=argv)
        _print_summary(report, config)
        return 0

    return run_cli(body)


def _print_summary(report: dict, config) -> None:
    # core.report (pandas, matplotlib) is loaded with the audit, once the input is checked
    from privaudit.core.report import summary_lines

    print("\n".join(summary_lines(report)))
    quality = report.get("extra", {}).get("generator_quality")
    if quality:
        print(f"generator: Frechet distance {quality['frechet_distance']:.2f} (real vs real "
              f"{quality['frechet_distance_real_vs_real']:.2f}) in {quality['feature_space']}")
    print(f"report: {Path(config.out_dir) / 'report.html'}")


if __name__ == "__main__":
    sys.exit(main())
