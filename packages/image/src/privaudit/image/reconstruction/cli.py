"""`audit-image reconstruct`: can an attacker who sees a classifier head's weights rebuild its
training images? With no arguments: MNIST, N = 10 (one image per class), linear heads over a
backbone pre-trained here on held-out digits; report in runs/image-reconstruct/."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from privaudit.core.errors import CliParser, InputError, run_cli


def build_parser() -> argparse.ArgumentParser:
    from privaudit.dp.devices import DEVICE_HELP
    from privaudit.image.reconstruction.config import PACKAGED_CONFIGS

    parser = CliParser(prog="audit-image reconstruct", description=__doc__)
    parser.add_argument(
        "--config",
        help=f"YAML file of config fields, or a packaged one: {', '.join(PACKAGED_CONFIGS)}",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a config field, e.g. shadow_heads=4096 or reconstructor.steps=500 (repeatable)",
    )
    parser.add_argument("--data", help="'mnist' (default, embedded), 'digits', a grayscale image folder "
                        "(one sub-folder per class) or a torchvision root")  # fmt: skip
    parser.add_argument("--heads", choices=("linear", "mlp"), help="linear multi-class heads (default) or "
                        "features -> 4 -> ReLU -> 1 one-vs-rest heads")  # fmt: skip
    parser.add_argument(
        "--epsilon", type=float, help="train every head with DP-SGD at this epsilon"
    )
    parser.add_argument(
        "--backbone",
        choices=("pretrained", "ccexam-mnist"),
        help="pretrained (default: pre-trained here on held-out images) or ccexam-mnist",
    )
    parser.add_argument("--device", help=DEVICE_HELP)
    parser.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="train head chunks as tasks on this Ray cluster ('local' starts one)",
    )
    parser.add_argument(
        "--threads", type=int, help="torch CPU threads (default 1; 0 keeps torch's default)"
    )
    parser.add_argument(
        "--out", help="run directory (default runs/image-reconstruct[-mlp][-dp-epsE])"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def _overrides(args) -> list[str]:
    flags = {"data": "data", "heads": "heads.kind", "epsilon": "dp.epsilon", "backbone": "backbone",
             "device": "device", "threads": "threads"}  # fmt: skip
    # a path given as a flag must stay a string, whatever YAML would read it as
    quoted = {"data", "device"}
    return list(args.set) + [
        f"{field}={repr(str(getattr(args, name))) if name in quoted else getattr(args, name)}"
        for name, field in flags.items()
        if getattr(args, name) is not None
    ]


def _default_out(args) -> str:
    parts = ["runs/image-reconstruct"]
    if args.heads == "mlp":
        parts.append("mlp")
    if args.epsilon is not None:
        parts.append(f"dp-eps{args.epsilon:g}")
    if args.data not in (None, "mnist"):
        parts.append(Path(args.data).name or "data")
    return "-".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)

    def body() -> int:
        args = build_parser().parse_args(argv)
        from privaudit.image.reconstruction.config import load

        config = load(args.config, _overrides(args))
        if args.ray is not None and not args.ray:
            raise InputError("--ray needs an address, or 'local'.")
        out = args.out or _default_out(args)
        from privaudit.image.reconstruction.pipeline import (
            run_reconstruction,  # heavy imports once the input is valid
        )

        report = run_reconstruction(config, out, ray_address=args.ray, progress=not args.quiet,
                                    argv=["audit-image", "reconstruct", *argv])  # fmt: skip
        results, run = report["results"], report["run"]
        print(f"shadow heads {run['shadow_heads']:,}, attacked heads {run['attacked_heads']:,}, "
              f"reconstructor steps {run['reconstructor_steps']:,} (the paper: 2.56M heads, ~1M steps)")  # fmt: skip
        print(f"reconstruction TPR at FPR {config.fpr:g}: {results['tpr_at_fpr'][str(config.fpr)]:.4f}; "
              f"at MSE threshold {config.mse_threshold:g}: TPR {results['tpr_at_threshold']:.4f}, "
              f"FPR {results['fpr_at_threshold']:.4f}; AUC {results['auc']:.4f}")  # fmt: skip
        if run["dp"]:
            print(f"DP heads: noise multiplier {run['dp']['noise_multiplier']:.4f}, eps {run['dp']['epsilon']:.3f}, "
                  f"delta {run['dp']['delta']:.4g}; head accuracy {run['attacked_head_accuracy_mean']:.3f}")  # fmt: skip
        print(f"report (sensitive: shows training images): {Path(out) / 'report.html'}")
        return 0

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
