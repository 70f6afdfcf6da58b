"""Reference models per minute on the MNIST CNN (and a small MLP): batched (torch.func + vmap) vs
one by one, same models, same data, same run. Prints a table and writes JSON to
tools/bench/results/. Times are process CPU seconds with --threads torch threads (1 by default:
on a shared 2-core machine wall time and multi-threaded runs swing by 10x from one run to the next)."""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from privaudit.attacks.data import load_images
from privaudit.attacks.models import ModelSpec, build_model
from privaudit.attacks.references import in_out_design
from privaudit.attacks.training import TrainConfig, train_model, train_models_batched


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", type=int, default=16)
    parser.add_argument(
        "--points", type=int, default=512, help="audit points; each model trains on half"
    )
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--kinds", nargs="+", default=["cnn", "mlp"], choices=["cnn", "mlp"])
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (0: torch's default)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    results = [measure(kind, args) for kind in args.kinds]
    print(f"{'model':6s} {'training':12s} {'CPU s':>8s} {'wall s':>8s} {'models/min':>11s}")
    for r in results:
        for name in ("batched", "one_by_one"):
            print(
                f"{r['kind']:6s} {name:12s} {r[name + '_cpu_s']:8.1f} {r[name + '_wall_s']:8.1f} {r[name + '_models_per_min']:11.1f}"
            )
        print(
            f"{r['kind']:6s} speedup {r['speedup']:.2f}x, max loss difference {r['max_loss_difference']:.2e}"
        )
    out = Path(__file__).parent / "results" / "attacks_reference_training.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps({"torch_threads": torch.get_num_threads(), "results": results}, indent=2) + "\n"
    )


def measure(kind: str, args) -> dict:
    images, labels = load_images("mnist")
    images, labels = images[: args.points], labels[: args.points]
    spec = ModelSpec(kind=kind, width=args.width if kind == "cnn" else 64)
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size)
    index_sets = np.stack(
        [np.flatnonzero(row) for row in in_out_design(args.points, args.models, seed=0)]
    )
    seeds = list(range(args.models))
    # warm-up: the first vmap call loads and traces torch.func machinery
    train_models_batched(
        [build_model(spec, 0)] * 2,
        images,
        labels,
        index_sets[:2, : args.batch_size],
        TrainConfig(epochs=1, batch_size=args.batch_size),
        [0, 1],
    )
    start, cpu_start = time.perf_counter(), time.process_time()
    _, batched_losses = train_models_batched(
        [build_model(spec, s) for s in seeds], images, labels, index_sets, config, seeds
    )
    batched_s, batched_cpu = time.perf_counter() - start, time.process_time() - cpu_start
    start, cpu_start = time.perf_counter(), time.process_time()
    single_losses = [
        train_model(build_model(spec, s), images, labels, index_sets[r], config, s)
        for r, s in enumerate(seeds)
    ]
    single_s, single_cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return {
        "kind": kind, "models": args.models, "points_per_model": args.points // 2, "epochs": args.epochs,
        "batch_size": args.batch_size, "width": spec.width,
        "batched_wall_s": batched_s, "one_by_one_wall_s": single_s,
        "batched_cpu_s": batched_cpu, "one_by_one_cpu_s": single_cpu,
        "batched_models_per_min": 60 * args.models / batched_cpu, "one_by_one_models_per_min": 60 * args.models / single_cpu,
        "speedup": single_cpu / batched_cpu,
        "max_loss_difference": float(np.abs(batched_losses - np.stack(single_losses)).max()),
    }  # fmt: skip


if __name__ == "__main__":
    main()
