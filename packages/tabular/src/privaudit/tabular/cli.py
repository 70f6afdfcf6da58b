"""`audit-tabular`: the PANORAMIA audit of a tabular classifier, on UCI Adult by default."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from privaudit.attacks.panoramia.cli import SHARED_FIELDS, out_given, panoramia_parser
from privaudit.core.config import load_config
from privaudit.core.errors import InputError, run_cli
from privaudit.tabular.config import SYNTHESIZER_KINDS, TARGET_KINDS, TabularAuditConfig


def _widths(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of widths such as 128,128"
        ) from None


def build_parser() -> argparse.ArgumentParser:
    parser = panoramia_parser(
        "audit-tabular",
        "a tabular classifier (CTGAN or TVAE generator)",
        targets=TARGET_KINDS,
        default="an MLP trained on UCI Adult (shipped offline)",
        example="ctgan_epochs=20",
        data="CSV or Parquet table to audit (default: UCI Adult)",
        model="your trained model: a torch state dict (.pt/.pth, loaded with weights_only=True, needs "
        "--model-spec), a scikit-learn estimator saved with skops (.skops: read as data, only scikit-learn/numpy "
        "types are accepted), or one saved with joblib/pickle (.joblib/.pkl: loading it RUNS CODE from the file, "
        "pass only files you trust). The whole --data table is taken as the model's training set.",
        non_members="rows your model never saw (same columns), for the ground-truth attack",
    )
    parser.add_argument("--label", help="label column of --data (default for Adult: income)")
    parser.add_argument(
        "--model-spec", help="YAML architecture of a torch checkpoint, e.g. 'hidden: [64, 64]'"
    )
    parser.add_argument(
        "--hidden",
        type=_widths,
        help="hidden widths of the mlp/dp target, comma-separated (default 128,128)",
    )
    parser.add_argument(
        "--synthesizer",
        choices=SYNTHESIZER_KINDS,
        help="the generator of synthetic non-members: sdv's CTGAN (default) or TVAE",
    )
    parser.add_argument("--ctgan-epochs", type=int, help="CTGAN training epochs")
    parser.add_argument(
        "--cache-dir",
        help="where trained stages are cached (default <out>/cache); "
        "runs that share it reuse the generator and helper",
    )
    return parser


TABULAR_FIELDS = ("label", "model_spec", "hidden", "synthesizer", "ctgan_epochs", "cache_dir")


def run_dir(config: TabularAuditConfig) -> str:
    """The run directory of a config that names none: one per data, target and epsilon, so runs of
    different targets never overwrite each other's report (the default MLP on Adult:
    runs/tabular-adult; `--target dp --epsilon 1`: runs/tabular-adult-dp-eps1; `--synthesizer
    tvae`: runs/tabular-adult-tvae)."""
    parts = [Path(config.data).stem if config.data is not None else "adult"]
    if config.model is not None:
        parts.append(Path(config.model).stem)
    elif config.target != "mlp":
        parts.append(config.target)
        if config.target == "dp":
            parts.append(f"eps{config.epsilon:g}")
    if config.synthesizer != "ctgan":
        parts.append(config.synthesizer)
    return "runs/tabular-" + "-".join(parts)


def resolve_config(argv: Sequence[str] | None) -> TabularAuditConfig:
    """The audit's config from the command line (input errors raise InputError)."""
    args = build_parser().parse_args(argv)
    flags = {name: getattr(args, name) for name in SHARED_FIELDS + TABULAR_FIELDS}
    if args.epsilon is not None and args.target is None:
        flags["target"] = "dp"  # an epsilon is the dp target's
    if args.data is not None and args.label is None:
        raise InputError("--data needs --label naming the label column.")
    config = load_config(TabularAuditConfig, args.config, args.overrides, flags)
    if not out_given(args):
        config = config.replace(out_dir=run_dir(config))
    return config


def main(argv: Sequence[str] | None = None) -> int:
    def body() -> int:
        config = resolve_config(argv)
        from privaudit.tabular.audit import (
            run_audit,  # heavy imports (sdv, torch) only once the input is valid
        )

        report = run_audit(config)
        _print_summary(report, config)
        return 0

    return run_cli(body)


def _print_summary(report: dict, config: TabularAuditConfig) -> None:
    # core.report (pandas, matplotlib) is loaded with the audit, once the input is checked
    from privaudit.core.report import summary_lines

    print("\n".join(summary_lines(report)))
    print(f"report: {Path(config.out_dir) / 'report.html'}")


if __name__ == "__main__":
    sys.exit(main())
