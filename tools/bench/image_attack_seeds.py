"""How much the image audit's numbers move with the attack networks' seeds alone: one generator,
one set of synthetic images, one target and helper (a finished run's), and the baseline and MIA
classifiers retrained from R disjoint seed sets per training setting (epochs, ensemble size).
The spread it reports is the part of c_lb's and ε̃'s run-to-run spread that no generator can fix.

    uv run audit-image                                         # a finished run in runs/image-mnist
    uv run python tools/bench/image_attack_seeds.py [--run runs/image-mnist]
        [--settings 20x1,20x4,60x1] [--replicates 8]

The run's config.json gives the settings, so every stage but the scores comes from its cache. Each
setting EPOCHSxENSEMBLE retrains both classifiers (PANORAMIA and ground truth) in a copy of that
cache whose scores are removed, with the attacks' seeds shifted per replicate (a subclass of
ImageAttack: the audit itself derives them from --seed, which also fixes the splits). Writes
tools/bench/results/image_attack_seeds.json: per setting, each replicate's c_lb, ε̃ (member
guesses, and member and non-member guesses), AUCs, and their mean, sd, min and max.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import time
from pathlib import Path

import numpy as np
import privaudit.image.audit as image_audit
from privaudit.core.rundir import atomic_write_json, provenance
from privaudit.image.attack import ImageAttack
from privaudit.image.config import ImageAuditConfig

RESULTS = Path(__file__).parent / "results"
SEED_SHIFT = 7919  # replicate r adds r * SEED_SHIFT to every attack seed


def shifted_attack(shift: int) -> type[ImageAttack]:
    class ShiftedAttack(ImageAttack):
        def __init__(self, *, seed: int, **kwargs):
            super().__init__(seed=seed + shift, **kwargs)

    return ShiftedAttack


def replicate(config: ImageAuditConfig, cache: Path, shift: int) -> dict:
    for stale in cache.glob("scores-*.parquet"):
        stale.unlink()
    image_audit.ImageAttack = shifted_attack(shift)
    try:
        report = image_audit.run_audit(config)
    finally:
        image_audit.ImageAttack = ImageAttack
    mia = next(c for c in report["columns"] if c != "baseline_pred")
    both = report["two_sided"]
    return {
        "c_lb": report["c_lb"],
        "eps_tilde": report["eps_tilde"][mia],
        "c_lb_two_sided": both["c_lb"],
        "eps_tilde_two_sided": both["eps_tilde"][mia],
        "auc_baseline": report["columns"]["baseline_pred"]["auc"],
        "auc_mia": report["columns"][mia]["auc"],
        "ground_truth_auc_mia": report["extra"]["ground_truth"]["columns"][mia]["auc"],
        "n_test": report["n"],
    }


def summary(rows: list[dict]) -> dict:
    keys = [k for k in rows[0] if k != "n_test"]
    values = {k: np.array([r[k] for r in rows], dtype=float) for k in keys}
    return {
        k: {"mean": v.mean(), "sd": v.std(ddof=1), "min": v.min(), "max": v.max()}
        for k, v in values.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="runs/image-mnist", help="a finished audit-image run")
    parser.add_argument("--settings", default="20x1,20x4,60x1", help="EPOCHSxENSEMBLE, ...")
    parser.add_argument("--replicates", type=int, default=8)
    parser.add_argument("--runs", default="runs/bench-attack-seeds")
    parser.add_argument("--out", default="image_attack_seeds")
    args = parser.parse_args()
    run = Path(args.run)
    if not (run / "report.json").exists():
        parser.error(f"{run} holds no finished audit-image run (no report.json)")
    fields = json.loads((run / "config.json").read_text())
    fields.pop("audit")
    source = Path(fields["cache_dir"] or run / "cache")
    results = {}
    for setting in args.settings.split(","):
        epochs, ensemble = (int(x) for x in setting.split("x"))
        cache = Path(args.runs) / setting / "cache"
        shutil.rmtree(cache, ignore_errors=True)
        shutil.copytree(source, cache)
        config = ImageAuditConfig(
            **{
                **fields,
                "out_dir": str(Path(args.runs) / setting / "run"),
                "cache_dir": str(cache),
                "attack_epochs": epochs,
                "attack_ensemble": ensemble,
            }
        )
        rows, started = [], time.perf_counter()
        for r in range(args.replicates):
            rows.append(replicate(config, cache, SEED_SHIFT * r))
            print(setting, r, {k: round(v, 3) for k, v in rows[-1].items()}, flush=True)
        results[setting] = {
            "attack_epochs": epochs,
            "attack_ensemble": ensemble,
            "seconds_per_replicate": round((time.perf_counter() - started) / args.replicates, 1),
            "replicates": rows,
            "summary": summary(rows),
        }
        stats = results[setting]["summary"]
        print(
            f"{setting}: c_lb {stats['c_lb']['mean']:.3f} sd {stats['c_lb']['sd']:.3f}, "
            f"ε̃ {stats['eps_tilde']['mean']:.3f} sd {stats['eps_tilde']['sd']:.3f}, baseline AUC "
            f"{stats['auc_baseline']['mean']:.3f} sd {stats['auc_baseline']['sd']:.3f}",
            flush=True,
        )
    atomic_write_json(
        RESULTS / f"{args.out}.json",
        {
            "run": str(run),
            "machine": platform.processor() or platform.machine(),
            "settings": results,
            "provenance": provenance(),
        },
    )


if __name__ == "__main__":
    main()
