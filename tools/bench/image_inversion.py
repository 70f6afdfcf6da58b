"""PLG-MI model inversion (`audit-image invert`) with DP as the defence: attack accuracy (top-1 /
top-5), KNN distance and FD against a non-private target and DP targets at eps 8 and 1, over 3
seeds, with the time of every stage; beside them the same measures on the most confident public
images (no GAN: the alternative an attacker has without inversion) and on real held-out private
images, and random guessing.

    nice -n 10 uv run python tools/bench/image_inversion.py            # the default run's sizes, seeds 0 1 2
    uv run python tools/bench/image_inversion.py --small                # fewer cGAN steps and iterations
    uv run python tools/bench/image_inversion.py --device cuda --set cgan.steps=3000   # larger, on a GPU

Prints a table and writes tools/bench/results/image_inversion[_small][_cuda].json.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch
from privaudit.core.config import load_config
from privaudit.core.rundir import atomic_write_json, provenance
from privaudit.image.inversion.config import InversionConfig
from privaudit.image.inversion.pipeline import run_inversion

RESULTS = Path(__file__).parent / "results"
MEASURES = ("target_accuracy", "epsilon_spent", "attack_top1", "attack_top5", "knn_distance", "frechet_distance",
            "public_top1", "public_knn_distance")  # fmt: skip
STAGES = ("target_s", "selection_s", "cgan_s", "reconstruction_s", "evaluation_s")


def _mean_std(values) -> dict:
    values = [v for v in values if v is not None]
    if not values:
        return {"mean": None, "std": None}
    return {"mean": float(np.mean(values)), "std": float(np.std(values)), "values": values}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--small", action="store_true", help="300 cGAN steps, 150 iterations, 4 starts"
    )
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument(
        "--runs", default="runs/bench-invert", help="run directories (reused to resume)"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--set", action="append", default=[], dest="overrides", metavar="FIELD=VALUE"
    )
    args = parser.parse_args()
    overrides = list(args.overrides)
    if args.small:
        overrides = [
            "cgan.steps=300",
            "reconstruction.iterations=150",
            "reconstruction.starts=4",
            *overrides,
        ]
    torch.set_num_threads(args.threads)
    per_seed = []
    for seed in args.seeds:
        config = load_config(InversionConfig, None, overrides, {
            "seed": seed, "device": args.device, "threads": args.threads, "out_dir": f"{args.runs}/seed{seed}"})  # fmt: skip
        started = time.perf_counter()
        report = run_inversion(config, progress=False)
        per_seed.append({"seed": seed, "seconds_incl_cached_stages": round(time.perf_counter() - started, 1),
                         "targets": report["targets"], "reference": report["reference"],
                         "timings_s": report["timings_s"], "config": config.as_dict()})  # fmt: skip
        print(f"seed {seed}: done in {per_seed[-1]['seconds_incl_cached_stages']} s", flush=True)
    names = [row["target"] for row in per_seed[0]["targets"]]
    summary = {}
    for i, name in enumerate(names):
        rows = [run["targets"][i] for run in per_seed]
        summary[name] = {m: _mean_std([r[m] for r in rows]) for m in MEASURES}
        summary[name]["stage_seconds"] = {s: _mean_std([run["timings_s"][name].get(s) for run in per_seed])
                                          for s in STAGES}  # fmt: skip
    reference = {k: _mean_std([run["reference"][k] for run in per_seed])
                 for k in ("random_top1", "random_top5", "evaluation_accuracy", "knn_distance_held_out",
                           "frechet_distance_held_out")}  # fmt: skip
    header = f"{'target':<12} {'target acc':>11} {'eps':>6} {'top-1':>12} {'top-5':>6} {'KNN':>14} {'FD':>16} {'no-GAN top-1':>13} {'no-GAN KNN':>11} {'cGAN s':>7} {'inv s':>6}"
    print(header)
    for name, s in summary.items():
        eps = s["epsilon_spent"]["mean"]
        print(f"{name:<12} {s['target_accuracy']['mean']:>11.3f} {'-' if eps is None else f'{eps:.2f}':>6} "
              f"{s['attack_top1']['mean']:>6.3f}±{s['attack_top1']['std']:<5.3f} {s['attack_top5']['mean']:>6.3f} "
              f"{s['knn_distance']['mean']:>8.2f}±{s['knn_distance']['std']:<5.2f} "
              f"{s['frechet_distance']['mean']:>9.1f}±{s['frechet_distance']['std']:<6.1f} "
              f"{s['public_top1']['mean']:>13.3f} {s['public_knn_distance']['mean']:>11.2f} "
              f"{s['stage_seconds']['cgan_s']['mean']:>7.1f} {s['stage_seconds']['reconstruction_s']['mean']:>6.1f}")  # fmt: skip
    print(f"random guessing top-1 {reference['random_top1']['mean']:.3f}; held-out private images: evaluation "
          f"accuracy {reference['evaluation_accuracy']['mean']:.3f}, KNN {reference['knn_distance_held_out']['mean']:.2f}, "
          f"FD {reference['frechet_distance_held_out']['mean']:.1f}")  # fmt: skip
    suffix = ("_small" if args.small else "") + ("_cuda" if args.device.startswith("cuda") else "")
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"image_inversion{suffix}.json"
    atomic_write_json(path, {
        "benchmark": "image_inversion", "seeds": args.seeds, "overrides": overrides, "threads": args.threads,
        "device": args.device, "machine": platform.platform(), "cpu_count": __import__("os").cpu_count(),
        "summary": summary, "reference": reference, "per_seed": per_seed, "provenance": provenance(),
    })  # fmt: skip
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
