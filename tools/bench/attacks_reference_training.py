"""Reference models per minute on the MNIST CNN: batched (torch.func + vmap) vs one by one,
same models, same data, same run. Prints a table and writes JSON to tools/bench/results/."""

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
    args = parser.parse_args()
    images, labels = load_images("mnist")
    images, labels = images[: args.points], labels[: args.points]
    spec = ModelSpec(kind="cnn", width=args.width)
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
    start = time.perf_counter()
    _, batched_losses = train_models_batched(
        [build_model(spec, s) for s in seeds], images, labels, index_sets, config, seeds
    )
    batched_s = time.perf_counter() - start
    start = time.perf_counter()
    single_losses = [
        train_model(build_model(spec, s), images, labels, index_sets[r], config, s)
        for r, s in enumerate(seeds)
    ]
    single_s = time.perf_counter() - start
    result = {
        "models": args.models, "points_per_model": args.points // 2, "epochs": args.epochs, "batch_size": args.batch_size,
        "cnn_width": args.width, "torch_threads": torch.get_num_threads(),
        "batched_s": batched_s, "one_by_one_s": single_s,
        "batched_models_per_min": 60 * args.models / batched_s, "one_by_one_models_per_min": 60 * args.models / single_s,
        "speedup": single_s / batched_s,
        "max_loss_difference": float(np.abs(batched_losses - np.stack(single_losses)).max()),
    }  # fmt: skip
    print(f"{'training':12s} {'seconds':>9s} {'models/min':>11s}")
    print(f"{'batched':12s} {batched_s:9.1f} {result['batched_models_per_min']:11.1f}")
    print(f"{'one by one':12s} {single_s:9.1f} {result['one_by_one_models_per_min']:11.1f}")
    print(
        f"speedup {result['speedup']:.1f}x, max loss difference {result['max_loss_difference']:.2e}"
    )
    out = Path(__file__).parent / "results" / "attacks_reference_training.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
