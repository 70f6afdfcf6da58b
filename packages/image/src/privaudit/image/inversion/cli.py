"""`audit-image invert`: can the classes of a classifier's private training set be rebuilt from
the classifier alone? PLG-MI model inversion (a pseudo-label-guided conditional GAN), against a
non-private target and DP targets (eps 8 and 1) by default: MNIST digits 0-4 are private, 5-9 the
public data. Report (sensitive: shows private images) in runs/image-invert/."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from privaudit.core.errors import CliParser, run_cli

# flag -> config field it sets (None: not given); the rest through --set
FLAGS = {"model": "model", "private": "private", "public": "public", "architecture": "architecture",
         "epsilons": "epsilons", "seed": "seed", "device": "device", "threads": "threads", "out": "out_dir",
         "cgan_steps": "cgan.steps", "iterations": "reconstruction.iterations", "top_n": "top_n"}  # fmt: skip


def _epsilons(text: str) -> list[float]:
    return [float(part) for part in text.split(",") if part.strip()]


def build_parser() -> CliParser:
    from privaudit.core.config import add_config_arguments
    from privaudit.dp.devices import DEVICE_HELP

    parser = CliParser(prog="audit-image invert", description=__doc__)
    add_config_arguments(parser, "cgan.steps=1000 or reconstruction.starts=16")
    parser.add_argument("--model", help="your target: a state dict (torch.save(model.state_dict())) of --architecture, "
                        "trained on the --private classes; loaded with weights_only=True")  # fmt: skip
    parser.add_argument(
        "--architecture",
        help="architecture of --model or of the targets trained here (default cnn)",
    )
    parser.add_argument("--private", help="'mnist' (default: digits 0-4 of the embedded subset), 'digits', or an "
                        "image folder with one sub-folder per class (the target's training data)")  # fmt: skip
    parser.add_argument("--public", help="a folder of public images of another distribution (labels not needed; "
                        "default: the other classes of the embedded data)")  # fmt: skip
    parser.add_argument("--epsilons", type=_epsilons, help="DP targets to attack besides the non-private one "
                        "(comma-separated, default 8,1)")  # fmt: skip
    parser.add_argument("--cgan-steps", type=int, help="cGAN generator steps (default 300)")
    parser.add_argument(
        "--iterations",
        type=int,
        help="latent optimisation iterations (default 300; the paper: 600)",
    )
    parser.add_argument("--top-n", type=int, help="public images kept per class (default 200)")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--device", help=DEVICE_HELP)
    parser.add_argument(
        "--threads", type=int, help="torch CPU threads (default 1; 0 keeps torch's default)"
    )
    parser.add_argument("--out", help="run directory (default runs/image-invert; reused to resume)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)

    def body() -> int:
        from privaudit.core.config import load_config
        from privaudit.image.inversion.config import InversionConfig

        args = build_parser().parse_args(argv)
        flags = {field: getattr(args, name) for name, field in FLAGS.items()}
        if flags["epsilons"] is not None:
            flags["epsilons"] = list(flags["epsilons"])
        if args.model is not None and args.out is None and not args.config:
            flags["out_dir"] = f"runs/image-invert-{Path(args.model).stem}"
        config = load_config(InversionConfig, args.config, args.overrides, flags)
        from privaudit.image.inversion.pipeline import (
            run_inversion,  # heavy imports once the input is valid
        )
        from privaudit.image.inversion.report import table_text

        result = run_inversion(
            config, progress=not args.quiet, argv=["audit-image", "invert", *argv]
        )
        ref = result["reference"]
        print(table_text(result["targets"]))
        print(f"random guessing: top-1 {ref['random_top1']:.3g}, top-5 {ref['random_top5']:.3g}; held-out private "
              f"images: KNN distance {ref['knn_distance_held_out']:.4g}, FD {ref['frechet_distance_held_out']:.4g} ({ref['frechet_reference_images']} held-out images)")  # fmt: skip
        print(
            f"report (sensitive: shows private training images): {Path(config.out_dir) / 'report.html'}"
        )
        return 0

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
