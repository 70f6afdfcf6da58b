"""The `privaudit` command: report, bound one-run, demo."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from privaudit.core.bounds import DELTA_GUESS_GRID, default_guess_grid
from privaudit.core.errors import CliParser, InputError, run_cli

DEFAULT_DEMO_DIR = Path("runs/demo")
DEFAULT_BASELINE = "baseline_pred"


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
        help="sweep N evenly spaced thresholds on [0, 1] (PANORAMIA used 100; needs scores in "
        "[0, 1]); default: every distinct score",
    )
    report.add_argument(
        "--guess-grid",
        type=_positive_int,
        default=None,
        help="read the bounds where the member guesses first reach each count of a geometric grid "
        f"of N steps from 1 to the table's rows (any score scale; default {DELTA_GUESS_GRID} when "
        "--delta > 0 and no --thresholds, where a sweep over every distinct score cannot show a "
        "bound above 0)",
    )
    report.add_argument(
        "--alpha", type=_probability, default=0.05, help="significance level (default 0.05)"
    )
    report.add_argument(
        "--delta",
        type=_probability,
        default=0.0,
        help="delta of (eps, delta)-DP (default 0; above 0 the table needs members <= non-members)",
    )
    report.add_argument(
        "--baseline",
        default=None,
        help=f"baseline column for c_lb (default {DEFAULT_BASELINE} when the table has one, else "
        "none; 'none': every column is an attack)",
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


def _resolve_baseline(requested: str | None, columns: list[str]) -> tuple[str | None, list[str]]:
    """The baseline column and the notes that explain the choice: the named one, none for
    'none', else baseline_pred where the table has it and no baseline where it does not."""
    if requested is not None:
        return (None if requested.lower() == "none" else requested), []
    if DEFAULT_BASELINE in columns:
        return DEFAULT_BASELINE, []
    return None, [
        f"the table has no '{DEFAULT_BASELINE}' column, so there is no baseline: every score column "
        "is audited as an attack (no c_lb, no eps_tilde); name one with --baseline COLUMN."
    ]


def _report(args, argv) -> int:
    from privaudit.core.report import check_report_inputs, write_report
    from privaudit.core.rundir import prepare_output_dir
    from privaudit.core.scores import load_scores_table, score_columns

    scores = load_scores_table(args.scores)
    baseline, notes = _resolve_baseline(args.baseline, score_columns(scores))
    guess_grid = default_guess_grid(args.delta, args.thresholds, args.guess_grid)
    if guess_grid != args.guess_grid:
        notes.append(
            f"At delta > 0 the bounds are read at a grid of member-guess counts "
            f"(--guess-grid {DELTA_GUESS_GRID}): the delta term 2 m delta / v would keep every "
            "bound of a sweep over all distinct scores at 0."
        )
    options = {
        "baseline": baseline,
        "thresholds": args.thresholds,
        "guess_grid": guess_grid,
        "alpha": args.alpha,
        "delta": args.delta,
    }
    check_report_inputs(scores, args.out, **options)
    prepare_output_dir(args.out)
    for note in notes:
        print(f"note: {note}")
    report = write_report(
        scores, args.out, notes=notes, config={"scores": str(args.scores), "argv": argv}, **options
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
    print(
        f"eps lower bounds at member prior {report['member_prior']:.4g} "
        f"({report['members']} of {report['n']} rows are members)"
        + (
            "; eps_tilde = {c+eps}_lb - c_lb is not itself a lower bound"
            if report["eps_tilde"]
            else ""
        )
    )
    print(f"report: {out / 'report.html'}")


def _bound_one_run(args) -> int:
    from privaudit.core.bounds import one_run_eps_lower_bound

    if not 0 <= args.v <= args.r <= args.m:
        raise InputError(f"need 0 <= v <= r <= m, got m={args.m}, r={args.r}, v={args.v}.")
    if args.alpha == 0:
        raise InputError("--alpha must be greater than 0.")
    eps = one_run_eps_lower_bound(args.m, args.r, args.v, delta=args.delta, alpha=args.alpha)
    print(
        f"eps lower bound {eps:.6f} (one-run audit, Steinke et al. 2023: m = {args.m} canaries, "
        f"r = {args.r} guesses, v = {args.v} correct; delta = {args.delta:g}, alpha = {args.alpha:g})"
    )
    return 0


def _demo(args, argv) -> int:
    from privaudit.core.demo import synthetic_scores
    from privaudit.core.report import write_report
    from privaudit.core.rundir import atomic_write_text, prepare_output_dir

    prepare_output_dir(args.out)
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
