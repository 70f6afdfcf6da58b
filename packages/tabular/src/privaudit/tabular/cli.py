"""`audit-tabular`: the PANORAMIA audit of a tabular classifier, on UCI Adult by default."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from privaudit.core.errors import CliParser, InputError, run_cli
from privaudit.tabular.config import TARGET_KINDS, TabularAuditConfig, load_config


def build_parser() -> argparse.ArgumentParser:
    parser = CliParser(
        prog="audit-tabular",
        description="PANORAMIA privacy audit of a tabular classifier: CTGAN synthetic non-members, "
        "baseline and membership-inference classifiers, eps_tilde = {c+eps}_lb - c_lb. "
        "With no arguments it audits an MLP trained on UCI Adult (shipped offline).",
    )
    parser.add_argument("--config", help="YAML file of config fields (flags below override it)")
    parser.add_argument("--data", help="CSV or Parquet table to audit (default: UCI Adult)")
    parser.add_argument("--label", help="label column of --data (default for Adult: income)")
    parser.add_argument("--model", help="your trained model: a torch state dict (.pt/.pth, loaded with "
                        "weights_only=True, needs --model-spec), a scikit-learn estimator saved with skops (.skops: "
                        "read as data, only scikit-learn/numpy types are accepted), or one saved with joblib/pickle "
                        "(.joblib/.pkl: loading it RUNS CODE from the file, pass only files you trust). The whole "
                        "--data table is taken as the model's training set.")
    parser.add_argument("--model-spec", help="YAML architecture of a torch checkpoint, e.g. 'hidden: [64, 64]'")
    parser.add_argument("--non-members", dest="non_members_data",
                        help="rows your model never saw (same columns), for the ground-truth attack")
    parser.add_argument("--target", choices=TARGET_KINDS, help="how to train the target when no --model is given")
    parser.add_argument("--epsilon", type=float, help="target epsilon of the dp target (default 1)")
    parser.add_argument("--hidden", help="hidden widths of the mlp/dp target, comma-separated (default 128,128)")
    parser.add_argument("--epochs", type=int, help="training epochs of the mlp/dp target")
    parser.add_argument("--ctgan-epochs", type=int, help="CTGAN training epochs")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--out", dest="out_dir", help="run directory (default runs/tabular-adult)")
    parser.add_argument("--cache-dir", help="where trained stages are cached (default <out>/cache); "
                        "runs that share it reuse the generator and helper")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    def body() -> int:
        args = build_parser().parse_args(argv)
        base = load_config(args.config) if args.config else TabularAuditConfig()
        overrides = {k: v for k, v in vars(args).items() if k != "config"}
        if args.data is not None and args.out_dir is None and not args.config:
            overrides["out_dir"] = f"runs/tabular-{Path(args.data).stem}"
        if args.data is not None and args.label is None:
            raise InputError("--data needs --label naming the label column.")
        config = base.replace(**overrides)
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
