"""The `privaudit` command: report, bound one-run, demo."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from privaudit.core.errors import CliParser, InputError, run_cli

DEFAULT_DEMO_DIR = Path("runs/demo")


def _probability(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not in [0, 1)")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def _baseline(text: str) -> str | None:
    return None if text.lower() == "none" else text


def build_parser() -> argparse.ArgumentParser:
    parser = CliParser(
        prog="privaudit",
        description="privaudit: audit how much a model leaks about its training data.",
    )
    commands = parser.add_subparsers(dest="command", parser_class=CliParser)

    report = commands.add_parser(
        "report", help="audit a scores table (CSV/Parquet) and write a report"
    )
    report.add_argument(
        "scores",
        type=Path,
        help="table with a 'member' column (0/1) and one score column per attack",
    )
    report.add_argument(
        "--out", type=Path, default=Path("runs/report"), help="run directory (default runs/report)"
    )
    report.add_argument(
        "--thresholds",
        type=_positive_int,
        default=None,
        help="sweep N evenly spaced thresholds on [0, 1] (PANORAMIA used 100); default: every distinct score",
    )
    report.add_argument(
        "--alpha", type=_probability, default=0.05, help="significance level (default 0.05)"
    )
    report.add_argument(
        "--delta", type=_probability, default=0.0, help="delta of (eps, delta)-DP (default 0)"
    )
    report.add_argument(
        "--baseline",
        type=_baseline,
        default="baseline_pred",
        help="baseline column for c_lb (default baseline_pred; 'none': every column is an attack)",
    )

    bound = commands.add_parser("bound", help="compute an eps lower bound from counts")
    bound_kinds = bound.add_subparsers(dest="bound", parser_class=CliParser, required=True)
    one_run = bound_kinds.add_parser(
        "one-run", help="one-run audit bound (Steinke, Nasr, Jagielski 2023)"
    )
    one_run.add_argument(
        "--m",
        type=int,
        required=True,
        help="number of canaries, each included with probability 1/2",
    )
    one_run.add_argument(
        "--r", type=int, required=True, help="number of guesses (abstentions excluded)"
    )
    one_run.add_argument("--v", type=int, required=True, help="number of correct guesses")
    one_run.add_argument("--delta", type=_probability, default=0.0, help="delta (default 0)")
    one_run.add_argument(
        "--alpha", type=_probability, default=0.05, help="significance level (default 0.05)"
    )

    demo = commands.add_parser(
        "demo", help="report on a small synthetic scores table the project generates itself"
    )
    demo.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_DEMO_DIR,
        help=f"run directory (default {DEFAULT_DEMO_DIR})",
    )
    demo.add_argument("--seed", type=int, default=0, help="seed of the synthetic table (default 0)")
    return parser


def _report(args, argv) -> int:
    from privaudit.core.report import write_report
    from privaudit.core.scores import load_scores_table

    scores = load_scores_table(args.scores)
    report = write_report(
        scores,
        args.out,
        baseline=args.baseline,
        thresholds=args.thresholds,
        alpha=args.alpha,
        delta=args.delta,
        config={"scores": str(args.scores), "argv": argv},
    )
    _print_summary(report, args.out)
    return 0


def _print_summary(report: dict, out: Path) -> None:
    if report["c_lb"] is not None:
        print(f"c_lb ({report['baseline']}): {report['c_lb']:.4f}")
    for name, col in report["columns"].items():
        tilde = report["eps_tilde"].get(name)
        tilde_text = f"  eps_tilde {tilde:.4f}" if tilde is not None else ""
        print(
            f"{name}: eps_lb {col['eps_lb']:.4f}{tilde_text}  AUC {col['auc']:.4f}  "
            f"TPR@0.1%FPR {col['tpr_at_fpr']['0.001']:.4f}"
        )
    print(f"report: {out / 'report.html'}")


def _bound_one_run(args) -> int:
    from privaudit.core.bounds import one_run_eps_lower_bound

    if not 0 <= args.v <= args.r <= args.m:
        raise InputError(f"need 0 <= v <= r <= m, got m={args.m}, r={args.r}, v={args.v}.")
    if args.alpha == 0:
        raise InputError("--alpha must be greater than 0.")
    print(
        f"{one_run_eps_lower_bound(args.m, args.r, args.v, delta=args.delta, alpha=args.alpha):.6f}"
    )
    return 0


def _demo(args, argv) -> int:
    from privaudit.core.demo import synthetic_scores
    from privaudit.core.report import write_report
    from privaudit.core.rundir import atomic_write_text

    scores = synthetic_scores(seed=args.seed)
    table = atomic_write_text(args.out / "scores.csv", scores.to_csv(index=False))
    print(f"synthetic scores table (seed {args.seed}, no model involved): {table}")
    report = write_report(
        scores,
        args.out,
        title="privaudit demo (synthetic scores)",
        config={"scores": str(table), "seed": args.seed, "argv": argv},
    )
    _print_summary(report, args.out)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()

    def body() -> int:
        if not argv:
            parser.print_help()
            return 0
        try:
            args = parser.parse_args(argv)
        except SystemExit as e:  # --help
            return int(e.code or 0)
        if args.command == "report":
            return _report(args, argv)
        if args.command == "bound":
            return _bound_one_run(args)
        return _demo(args, argv)

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
