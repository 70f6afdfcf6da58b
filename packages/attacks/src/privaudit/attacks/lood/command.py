"""`audit-attacks lood`: its options and what it prints."""

from __future__ import annotations

import argparse

from privaudit.attacks.models import FC_ACTIVATIONS

DEFAULT_MNIST_CLASSES = (3, 5)  # a confusable pair: the ranking then has a real tail


def _class_list(text: str) -> tuple[int, ...] | str:
    if text in ("all", "auto"):
        return text
    try:
        classes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be 'all', 'auto' or comma-separated integers, got {text!r}"
        ) from None
    if len(set(classes)) < 2:
        raise argparse.ArgumentTypeError(f"needs at least two distinct labels, got {text!r}")
    return classes


# flag, the LoodConfig field it sets, its type, its help (defaults are LoodConfig's)
FLAGS = (
    (
        "--data",
        "data",
        str,
        "mnist (default), digits, FILE.npz (arrays x, y) or FILE.csv (a 'label' column)",
    ),
    (
        "--classes",
        "classes",
        _class_list,
        "labels to keep, e.g. 3,5 or all (auto: 3,5 for mnist, all otherwise)",
    ),
    ("--records", "records", int, "score this many random records (0, the default: all)"),
    ("--sigma2", "sigma2", float, "GP noise / ridge sigma^2 (> 0; default the authors' 0.05)"),
    ("--depth", "kernel.depth", int, "hidden layers of the FC network (>= 1, default 2)"),
    (
        "--activation",
        "kernel.activation",
        str,
        f"one of {', '.join(FC_ACTIVATIONS)} (default relu)",
    ),
    ("--kind", "kernel.kind", str, "which kernel the GP uses: nngp (default) or ntk"),
    ("--w-std", "kernel.w_std", float, "weight standard deviation (default sqrt 2)"),
    ("--b-std", "kernel.b_std", float, "bias standard deviation (default 0)"),
    ("--top", "top", int, "records in the top-records grid (default 24)"),
    ("--queries", "queries", int, "top records that get an optimised query (default 4)"),
    ("--query-steps", "query.steps", int, "Adam steps per start (default 200)"),
    ("--query-lr", "query.lr", float, "Adam learning rate for the query (default 0.05)"),
    (
        "--query-init",
        "query.init",
        str,
        "start from noise (default) or data (another training record)",
    ),
    (
        "--query-restarts",
        "query.restarts",
        int,
        "starts per query; the best query wins (default 3)",
    ),
    (
        "--ground-truth",
        "ground_truth.records",
        int,
        "train in/out FC networks for N records and correlate LOOD with MIA AUC (0, the default: skip)",
    ),
    (
        "--gt-models",
        "ground_truth.models",
        int,
        "networks in the ground-truth study, each record in half (default 32)",
    ),
    ("--gt-width", "ground_truth.width", int, "hidden width of those networks (default 512)"),
    ("--gt-epochs", "ground_truth.epochs", int, "their SGD epochs (default 20)"),
    (
        "--gt-lr",
        "ground_truth.lr",
        float,
        "their SGD learning rate, NTK parameterisation (default 0.5)",
    ),
    (
        "--seed",
        "seed",
        int,
        "seeds the records scored, the query starts and the networks (default 0)",
    ),
)


def add_lood_parser(commands, threads_help: str, device_help: str) -> None:
    from privaudit.core.config import add_config_arguments

    lood = commands.add_parser(
        "lood",
        help="rank records by leave-one-out distinguishability under the NNGP/NTK (no retraining)",
    )
    add_config_arguments(lood, "kernel.depth=3")
    for flag, field, kind, text in FLAGS:
        lood.add_argument(flag, dest=field, type=kind, default=None, help=text)
    lood.add_argument("--out", default="runs/attacks-lood", help="run directory (reused to resume)")
    lood.add_argument("--quiet", action="store_true", help="no progress bars")
    lood.add_argument("--threads", type=int, default=1, help=threads_help)
    lood.add_argument("--device", default="auto", help=device_help + " (the ground-truth networks)")


def _config(args: argparse.Namespace):
    import dataclasses

    from privaudit.attacks.lood.run import LoodConfig
    from privaudit.core.config import load_config

    flags = {field: getattr(args, field) for _, field, _, _ in FLAGS}
    classes = flags.pop("classes")
    if isinstance(classes, tuple):
        flags["classes"] = list(classes)
    config = load_config(LoodConfig, args.config, args.overrides, flags)
    if classes == "all" or (
        classes in (None, "auto")
        and config.data != "mnist"
        and config.classes == DEFAULT_MNIST_CLASSES
    ):
        config = dataclasses.replace(config, classes=None)  # every label of a user's data
    return config


def run_lood_command(args: argparse.Namespace, device) -> None:
    from privaudit.attacks.lood.run import run_lood

    config = _config(args)
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
