"""audit-attacks: membership inference with reference models, the one-run DP audit, and LOOD."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from privaudit.attacks.lood.command import add_lood_parser, run_lood_command
from privaudit.core.errors import CliParser, InputError, run_cli
from privaudit.dp.devices import DEVICE_HELP

# vmapped small convolutions back-propagate up to 15x slower on two contended threads than on one
THREADS_HELP = "torch CPU threads (default 1; 0 keeps torch's default)"


def _parser() -> argparse.ArgumentParser:
    parser = CliParser(prog="audit-attacks", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=CliParser)
    mia = commands.add_parser(
        "mia", help="LOSS, population, LiRA and RMIA attacks with reference models"
    )
    mia.add_argument(
        "--config", help="YAML run config (defaults: small CNN on the embedded MNIST subset)"
    )
    mia.add_argument("--out", default="runs/attacks-mia", help="run directory (reused to resume)")
    mia.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a config field, e.g. references.count=4 (repeatable)",
    )
    mia.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="train reference models on this Ray cluster ('local' starts one)",
    )
    mia.add_argument("--quiet", action="store_true", help="no progress bars")
    mia.add_argument("--threads", type=int, default=1, help=THREADS_HELP)
    mia.add_argument("--device", default="auto", help=DEVICE_HELP)
    one_run = commands.add_parser("one-run", help="one-run DP audit with canaries")
    one_run.add_argument("--config", help="YAML run config")
    one_run.add_argument("--out", default="runs/attacks-one-run", help="run directory")
    one_run.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a config field, e.g. canaries.count=200 (repeatable)",
    )
    one_run.add_argument("--dp", action="store_true", help="train with DP-SGD at dp.target_epsilon")
    one_run.add_argument("--quiet", action="store_true", help="no progress bars")
    one_run.add_argument("--threads", type=int, default=1, help=THREADS_HELP)
    add_lood_parser(commands, THREADS_HELP, DEVICE_HELP)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    def body() -> int:
        args = _parser().parse_args(argv)
        import dataclasses

        import torch

        if args.threads < 0:
            raise InputError(f"--threads must be >= 0, got {args.threads}")
        if args.threads:
            torch.set_num_threads(args.threads)

        from privaudit.attacks.config import MiaConfig, OneRunConfig
        from privaudit.core.config import load_config

        if args.command == "mia":
            from privaudit.attacks.mia import run_mia
            from privaudit.dp.devices import resolve_device

            device = resolve_device(args.device)
            report = run_mia(
                load_config(MiaConfig, args.config, args.set),
                args.out,
                ray_address=args.ray,
                progress=not args.quiet,
                device=device,
            )
            for column, stats in report["columns"].items():
                print(
                    f"{column:28s} AUC {stats['auc']:.3f}  TPR@1%FPR {stats['tpr_at_fpr']['0.01']:.3f}  TPR@0.1%FPR {stats['tpr_at_fpr']['0.001']:.3f}"
                )
        elif args.command == "lood":
            from privaudit.dp.devices import resolve_device

            run_lood_command(args, resolve_device(args.device))
        else:
            from privaudit.attacks.one_run import run_one_run

            config = load_config(OneRunConfig, args.config, args.set)
            if args.dp:
                config = dataclasses.replace(
                    config, dp=dataclasses.replace(config.dp, enabled=True)
                )
            report = run_one_run(config, args.out, progress=not args.quiet)
            extra = report["extra"]
            spent = extra["dp_epsilon_spent"]
            print(
                f"eps lower bound {extra['eps_lower_bound']:.3f}"
                + (
                    f" (DP training spent eps {spent:.3f})"
                    if spent is not None
                    else " (non-private training)"
                )
            )
        if args.command != "lood":
            from privaudit.core.report import verdict_lines

            print("\n".join(verdict_lines(report)))
        print(f"report: {args.out}/report.html")
        return 0

    return run_cli(body)
