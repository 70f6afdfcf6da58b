"""Reference models per minute on the MNIST CNN (and a small MLP): batched (torch.func + vmap) vs
one by one, same models, same data, same run. Prints a table and writes JSON to
tools/bench/results/ (attacks_reference_training.json; _cuda.json with --device cuda). On the CPU
the speedup is in process CPU seconds with --threads torch threads (1 by default: on a shared
2-core machine wall time and multi-threaded runs swing by 10x from one run to the next); on CUDA
it is in wall seconds, synchronised."""

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
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
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
    suffix = "" if args.device == "cpu" else "_cuda"
    out = Path(__file__).parent / "results" / f"attacks_reference_training{suffix}.json"
    out.parent.mkdir(exist_ok=True)
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    out.write_text(
        json.dumps(
            {"device": device_name, "torch_threads": torch.get_num_threads(), "results": results},
            indent=2,
        )
        + "\n"
    )


def measure(kind: str, args) -> dict:
    device = torch.device(args.device)
    images, labels = load_images("mnist")
    images, labels = images[: args.points].to(device), labels[: args.points].to(device)
    spec = ModelSpec(kind=kind, width=args.width if kind == "cnn" else 64)
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size)
    index_sets = np.stack(
        [np.flatnonzero(row) for row in in_out_design(args.points, args.models, seed=0)]
    )
    seeds = list(range(args.models))
    # warm-up: the first vmap call loads and traces torch.func machinery
    train_models_batched(
        [build_model(spec, 0).to(device)] * 2,
        images,
        labels,
        index_sets[:2, : args.batch_size],
        TrainConfig(epochs=1, batch_size=args.batch_size),
        [0, 1],
    )
    models = [build_model(spec, s).to(device) for s in seeds]
    start, cpu_start = _clock(device)
    _, batched_losses = train_models_batched(models, images, labels, index_sets, config, seeds)
    batched_s, batched_cpu = _since(device, start, cpu_start)
    models = [build_model(spec, s).to(device) for s in seeds]
    start, cpu_start = _clock(device)
    single_losses = [
        train_model(models[r], images, labels, index_sets[r], config, s)
        for r, s in enumerate(seeds)
    ]
    single_s, single_cpu = _since(device, start, cpu_start)
    # CPU seconds on the CPU (robust to a busy machine); wall seconds on a GPU, where the CPU waits
    cost_batched, cost_single = (
        (batched_cpu, single_cpu) if device.type == "cpu" else (batched_s, single_s)
    )
    return {
        "kind": kind, "models": args.models, "points_per_model": args.points // 2, "epochs": args.epochs,
        "batch_size": args.batch_size, "width": spec.width,
        "batched_wall_s": batched_s, "one_by_one_wall_s": single_s,
        "batched_cpu_s": batched_cpu, "one_by_one_cpu_s": single_cpu,
        "batched_models_per_min": 60 * args.models / cost_batched, "one_by_one_models_per_min": 60 * args.models / cost_single,
        "speedup": cost_single / cost_batched, "speedup_measure": "CPU s" if device.type == "cpu" else "wall s",
        "max_loss_difference": float(np.abs(batched_losses - np.stack(single_losses)).max()),
    }  # fmt: skip


def _clock(device: torch.device) -> tuple[float, float]:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter(), time.process_time()


def _since(device: torch.device, start: float, cpu_start: float) -> tuple[float, float]:
    end, cpu_end = _clock(device)
    return end - start, cpu_end - cpu_start


if __name__ == "__main__":
    main()
