"""Attack strength on the embedded MNIST subset: AUC and TPR at 1% / 0.1% FPR for LOSS,
LiRA online/offline and RMIA online/offline with 1, 2, 4 and 16 reference models per example.
Prints a table and writes JSON to tools/bench/results/."""

import argparse
import json
import time
from pathlib import Path

from privaudit.attacks.config import AttackSpec, DataConfig, MiaConfig, ReferencesConfig
from privaudit.attacks.mia import run_mia
from privaudit.attacks.models import ModelSpec
from privaudit.attacks.training import TrainConfig


def attack_grid(counts: list[int]) -> tuple[AttackSpec, ...]:
    specs = [AttackSpec("loss")]
    for k in counts:
        # with few references per side, LiRA needs the shared (fixed) variance
        specs += [
            AttackSpec(
                "lira_offline", {"references": k, "fixed_variance": True}, f"lira_offline_k{k}"
            ),
            AttackSpec("rmia_offline", {"references": k}, f"rmia_offline_k{k}"),
        ]
        if k >= 2:
            specs += [
                AttackSpec(
                    "lira_online", {"references": k, "fixed_variance": True}, f"lira_online_k{k}"
                ),
                AttackSpec("rmia_online", {"references": k}, f"rmia_online_k{k}"),
            ]
    return tuple(specs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--audit-size", type=int, default=1000)
    parser.add_argument("--population-size", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 2, 4, 16])
    parser.add_argument("--out", default="runs/bench-attacks-strength")
    args = parser.parse_args()
    # offline attacks with k references use k OUT models per example: 2k models in the in/out design
    config = MiaConfig(
        data=DataConfig(audit_size=args.audit_size, population_size=args.population_size),
        model=ModelSpec(kind="cnn", width=8),
        training=TrainConfig(epochs=args.epochs, batch_size=64, lr=0.05),
        references=ReferencesConfig(count=2 * max(args.counts)),
        attacks=attack_grid(args.counts),
    )
    start = time.perf_counter()
    report = run_mia(config, args.out)
    rows = {
        column.removeprefix("mia_").removesuffix("_pred"): {
            "auc": stats["auc"], "tpr_at_1pct_fpr": stats["tpr_at_fpr"]["0.01"], "tpr_at_0.1pct_fpr": stats["tpr_at_fpr"]["0.001"],
        }
        for column, stats in report["columns"].items()
    }  # fmt: skip
    print(f"{'attack':22s} {'AUC':>6s} {'TPR@1%':>7s} {'TPR@0.1%':>9s}")
    for name, row in rows.items():
        print(
            f"{name:22s} {row['auc']:6.3f} {row['tpr_at_1pct_fpr']:7.3f} {row['tpr_at_0.1pct_fpr']:9.3f}"
        )
    result = {
        "config": vars(args),
        "reference_models": config.references.count,
        "seconds": time.perf_counter() - start,
        "attacks": rows,
    }
    out = Path(__file__).parent / "results" / "attacks_strength.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
