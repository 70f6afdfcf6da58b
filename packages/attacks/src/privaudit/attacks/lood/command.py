"""`audit-attacks lood`: its options and what it prints."""

from __future__ import annotations

import argparse
import math

from privaudit.attacks.models import FC_ACTIVATIONS
from privaudit.core.errors import InputError

DEFAULT_MNIST_CLASSES = (3, 5)  # a confusable pair: the ranking then has a real tail


def add_lood_parser(commands, threads_help: str, device_help: str) -> None:
    lood = commands.add_parser(
        "lood",
        help="rank records by leave-one-out distinguishability under the NNGP/NTK (no retraining)",
    )
    lood.add_argument(
        "--data",
        default="mnist",
        help="mnist (default), digits, FILE.npz (arrays x, y) or FILE.csv (a 'label' column)",
    )
    lood.add_argument(
        "--classes",
        default="auto",
        help="labels to keep, e.g. 3,5 or all (auto: 3,5 for mnist, all otherwise)",
    )
    lood.add_argument(
        "--records", type=int, default=0, help="score this many random records (0: all)"
    )
    lood.add_argument(
        "--sigma2",
        type=float,
        default=0.05,
        help="GP noise / ridge sigma^2 (> 0; the authors' 0.05)",
    )
    lood.add_argument("--depth", type=int, default=2, help="hidden layers of the FC network (>= 1)")
    lood.add_argument("--activation", default="relu", choices=tuple(FC_ACTIVATIONS))
    lood.add_argument(
        "--kind", default="nngp", choices=("nngp", "ntk"), help="which kernel the GP uses"
    )
    lood.add_argument(
        "--w-std",
        type=float,
        default=math.sqrt(2.0),
        help="weight standard deviation (default sqrt 2)",
    )
    lood.add_argument("--b-std", type=float, default=0.0, help="bias standard deviation")
    lood.add_argument("--top", type=int, default=24, help="records in the top-records grid")
    lood.add_argument(
        "--queries", type=int, default=4, help="top records that get an optimised query"
    )
    lood.add_argument("--query-steps", type=int, default=200, help="Adam steps per start")
    lood.add_argument(
        "--query-lr", type=float, default=0.05, help="Adam learning rate for the query"
    )
    lood.add_argument(
        "--query-init",
        default="noise",
        choices=("noise", "data"),
        help="start from noise or from another training record",
    )
    lood.add_argument(
        "--query-restarts", type=int, default=3, help="starts per query; the best query wins"
    )
    lood.add_argument(
        "--ground-truth",
        type=int,
        default=0,
        metavar="N",
        help="train in/out FC networks for N records and correlate LOOD with MIA AUC (0: skip)",
    )
    lood.add_argument(
        "--gt-models",
        type=int,
        default=32,
        help="networks in the ground-truth study (each record in half)",
    )
    lood.add_argument("--gt-width", type=int, default=512, help="hidden width of those networks")
    lood.add_argument("--gt-epochs", type=int, default=20, help="their SGD epochs")
    lood.add_argument(
        "--gt-lr", type=float, default=0.5, help="their SGD learning rate (NTK parameterisation)"
    )
    lood.add_argument("--seed", type=int, default=0)
    lood.add_argument("--out", default="runs/attacks-lood", help="run directory (reused to resume)")
    lood.add_argument("--quiet", action="store_true", help="no progress bars")
    lood.add_argument("--threads", type=int, default=1, help=threads_help)
    lood.add_argument("--device", default="auto", help=device_help + " (the ground-truth networks)")


def _classes(text: str, data: str) -> tuple[int, ...] | None:
    if text == "auto":
        return DEFAULT_MNIST_CLASSES if data == "mnist" else None
    if text == "all":
        return None
    try:
        classes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise InputError(
            f"--classes must be 'all', 'auto' or comma-separated integers, got {text!r}"
        ) from None
    if len(set(classes)) < 2:
        raise InputError(f"--classes needs at least two distinct labels, got {text!r}")
    return classes


def run_lood_command(args: argparse.Namespace, device) -> None:
    from privaudit.attacks.lood.groundtruth import GroundTruthConfig
    from privaudit.attacks.lood.kernels import KernelSpec
    from privaudit.attacks.lood.queries import QuerySettings
    from privaudit.attacks.lood.run import LoodConfig, run_lood

    config = LoodConfig(
        data=args.data, classes=_classes(args.classes, args.data), records=args.records, sigma2=args.sigma2,
        kernel=KernelSpec(depth=args.depth, w_std=args.w_std, b_std=args.b_std, activation=args.activation, kind=args.kind),
        top=args.top, queries=args.queries,
        query=QuerySettings(steps=args.query_steps, lr=args.query_lr, init=args.query_init,
                            restarts=args.query_restarts),
        ground_truth=GroundTruthConfig(records=args.ground_truth, models=args.gt_models, width=args.gt_width,
                                       epochs=args.gt_epochs, lr=args.gt_lr),
        seed=args.seed,
    )  # fmt: skip
    report = run_lood(config, args.out, progress=not args.quiet, device=device)
    top = report["top"][:5]
    print(
        f"LOOD (KL) over {report['scored']} records: max {report['lood_kl']['max']:.4g}, median {report['lood_kl']['median']:.4g}"
    )
    print(
        "most exposed records: "
        + ", ".join(f"#{r['record']} ({r['label']}) {r['lood_kl']:.3g}" for r in top)
    )
    for q in report["queries"]:
        print(
            f"record #{q['record']}: optimised query LOOD {q['lood_at_query']:.4g} (at the record {q['lood_at_record']:.4g}), cosine to the record {q['cosine_to_record']:.3f}"
        )

    def fmt(value) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    truth = report["ground_truth"]
    if truth is not None:
        c = truth["kl_vs_auc"]
        print(
            f"ground truth ({truth['records']} records, {truth['models']} networks): LOOD vs MIA AUC Pearson {fmt(c['pearson'])} (p {fmt(c['pearson_p'])}), Spearman {fmt(c['spearman'])} (p {fmt(c['spearman_p'])})"
        )
