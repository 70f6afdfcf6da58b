"""Data reconstruction from transfer-learned heads (Allison & Maciazek, 2025), measured.

1. Shadow heads per second for MNIST N = 10 linear heads over 128-d backbone features: batched
   (privaudit's train_chunk: sets, init and training as batched matrix products) against one by
   one (torch.nn + torch.optim.SGD, the authors' loop), the same heads in the same run; DP heads
   batched against one by one with Opacus (the authors' DP loop). Wall and process-CPU seconds,
   with the load average beside them (the machine may be shared).
2. The noise multiplier our accountant gives for the paper's MNIST N = 10 table (eps 5..80), with
   the authors' actual Opacus sampling (batch N - 1: q = 0.5, 2 steps per epoch) and the stated
   q = 1 - 1/N.
3. Reconstruction TPR at the paper's FPR (1%) and at its MSE threshold, non-private and DP heads,
   through `audit-image reconstruct`'s pipeline at its default (CPU) scale.

Writes tools/bench/results/attacks_reconstruction[_cuda].json.
"""

import argparse
import dataclasses
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np
import torch

PAPER_TABLE = {
    5: 1.82,
    10: 1.23,
    20: 0.85,
    40: 0.60,
    80: 0.435,
}  # MNIST N = 10: eps -> noise multiplier


def _load() -> str:
    return (
        " ".join(open("/proc/loadavg").read().split()[:3])
        if os.path.exists("/proc/loadavg")
        else "n/a"
    )


def _features(device):
    from privaudit.image.data import load_images
    from privaudit.image.models import ccexam_mnist
    from privaudit.image.reconstruction.backbone import penultimate_features

    data = load_images("mnist")
    features = penultimate_features(ccexam_mnist(), data.images, device, "ccexam")
    return torch.from_numpy(features), data.labels.numpy()


def _timed(device, fn, *args):
    """(fn(*args), wall seconds, process CPU seconds)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(*args)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def _opacus_head(initial, x, y, config, schedule):
    """One DP head with Opacus' PrivacyEngine, as the authors' DP loop (batch N - 1, Poisson)."""
    from opacus import PrivacyEngine
    from privaudit.attacks.reconstruction.heads import head_module
    from torch.utils.data import DataLoader, TensorDataset

    head = head_module(config, x.shape[1], 10)
    torch.nn.utils.vector_to_parameters(initial.clone(), head.parameters())
    optimizer = torch.optim.SGD(
        head.parameters(), lr=config.learning_rate, weight_decay=config.decay
    )
    loader = DataLoader(TensorDataset(x, y), batch_size=len(x) - 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        head, optimizer, loader = PrivacyEngine(accountant="prv").make_private(
            module=head, optimizer=optimizer, data_loader=loader,
            noise_multiplier=schedule.noise_multiplier, max_grad_norm=schedule.max_grad_norm,
        )  # fmt: skip
        for _ in range(schedule.steps // len(loader)):
            for xb, yb in loader:
                optimizer.zero_grad()
                torch.nn.functional.cross_entropy(head(xb), yb).backward()
                optimizer.step()


def heads_per_second(args, device) -> dict:
    from privaudit.attacks.reconstruction.heads import (
        HeadConfig,
        HeadPrivacy,
        initial_heads,
        train_head_one,
        train_heads,
    )
    from privaudit.attacks.reconstruction.shadow import ShadowJob, balanced_sets, train_chunk

    features, labels = _features(device)
    config = HeadConfig(kind="linear")
    job = ShadowJob(config, 10, 1, seed=0, population=0, device=str(device))
    # the authors' actual DP sampling (Opacus, batch N - 1); the RDP accountant keeps this part quick
    schedule = HeadPrivacy(
        epsilon=10, sample_rate=0.5, steps_per_epoch=2, accountant="rdp"
    ).schedule(10, 32)
    dp_job = ShadowJob(config, 10, 1, seed=0, population=0, dp=schedule, device=str(device))

    def batched(features, chunks, job):
        return [train_chunk(features, labels, job, c, args.chunk_size) for c in range(chunks)]

    def one_by_one(init, x, y, count):
        return [train_head_one(init[m], x[m], y, 10, config, epochs=32) for m in range(count)]

    def opacus(init, x, y, count):
        return [_opacus_head(init[m], x[m], y, config, schedule) for m in range(count)]

    rows, cpu_device = [], torch.device("cpu")
    for threads in args.threads:
        torch.set_num_threads(threads)
        on_device = features.to(device)
        train_chunk(on_device, labels, job, 0, 64)  # warm-up
        chunks = -(-args.heads // args.chunk_size)
        _, wall, cpu = _timed(device, batched, on_device, chunks, job)
        count = chunks * args.chunk_size
        _, dp_wall, dp_cpu = _timed(device, batched, on_device, 1, dp_job)
        # one by one: sets and initialisation drawn as the batched run draws them
        sets = balanced_sets(labels, 10, 1, args.one_by_one, np.random.default_rng(0))
        x, y = features[torch.as_tensor(sets)], torch.arange(10)
        init = initial_heads(
            args.one_by_one, x.shape[2], 10, config, torch.Generator().manual_seed(0)
        )
        one_by_one(init, x, y, 1)  # warm-up: torch.optim's first step imports a lot
        _, one_wall, one_cpu = _timed(cpu_device, one_by_one, init, x, y, args.one_by_one)
        # the same heads batched agree with them
        agree = (train_heads(init, x, y.expand(len(x), -1), 10, config, epochs=32)
                 - torch.stack(one_by_one(init, x, y, args.one_by_one))).abs().max().item()  # fmt: skip
        opacus(init, x, y, 1)  # warm-up
        dp_count = max(1, args.one_by_one // 4)
        _, op_wall, op_cpu = _timed(cpu_device, opacus, init, x, y, dp_count)
        batched_heads = count
        row = {
            "torch_threads": threads, "load_average": _load(),
            "batched_heads": batched_heads, "batched_wall_s": wall, "batched_cpu_s": cpu,
            "batched_heads_per_s": batched_heads / wall, "batched_heads_per_cpu_s": batched_heads / cpu,
            "max_difference_batched_vs_one_by_one": agree,
            "one_by_one_heads": args.one_by_one, "one_by_one_wall_s": one_wall,
            "one_by_one_heads_per_s": args.one_by_one / one_wall,
            "one_by_one_heads_per_cpu_s": args.one_by_one / one_cpu,
            "speedup_wall": (batched_heads / wall) / (args.one_by_one / one_wall),
            "dp_batched_heads": args.chunk_size, "dp_batched_heads_per_s": args.chunk_size / dp_wall,
            "dp_batched_heads_per_cpu_s": args.chunk_size / dp_cpu,
            "dp_opacus_one_by_one_heads": dp_count, "dp_opacus_heads_per_s": dp_count / op_wall,
            "dp_opacus_heads_per_cpu_s": dp_count / op_cpu,
        }  # fmt: skip
        rows.append(row)
        print(f"threads {threads} (load {row['load_average']}): batched {row['batched_heads_per_s']:,.0f} heads/s "
              f"({row['batched_heads_per_cpu_s']:,.0f} per CPU s), one by one {row['one_by_one_heads_per_s']:,.1f}/s, "
              f"speedup {row['speedup_wall']:.0f}x; DP batched {row['dp_batched_heads_per_s']:,.0f}/s, "
              f"Opacus one by one {row['dp_opacus_heads_per_s']:,.1f}/s")  # fmt: skip
    return {"feature_dimension": int(features.shape[1]), "head_parameters": 1290, "epochs": 32,
            "dp_schedule": dataclasses.asdict(schedule), "rows": rows}  # fmt: skip


def accounting() -> list[dict]:
    from privaudit.dp.accounting import noise_for_epsilon

    rows, delta = [], 10**-1.1
    for eps, paper in PAPER_TABLE.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            actual = noise_for_epsilon(eps, 0.5, 64, delta, "prv")
            stated = noise_for_epsilon(eps, 0.9, 32, delta, "prv")
        rows.append({"epsilon": eps, "paper_noise": paper, "ours_q0.5_64_steps_prv": actual,
                     "ours_q0.9_32_steps_prv": stated, "relative_difference": actual / paper - 1})  # fmt: skip
        print(f"eps {eps:>3}: paper {paper:.3f}; ours (q 0.5, 64 steps, PRV) {actual:.4f} "
              f"({100 * (actual / paper - 1):+.1f}%); with the stated q 0.9, 32 steps: {stated:.4f}")  # fmt: skip
    return rows


def reconstruction(args, device) -> list[dict]:
    from privaudit.image.reconstruction.config import load
    from privaudit.image.reconstruction.pipeline import run_reconstruction

    dp = [
        f"dp.epsilon={args.epsilon}",
        "dp.sample_rate=0.5",
        "dp.steps_per_epoch=2",
        "dp.accountant=prv",
    ]
    runs = {  # name: (run directory, config overrides)
        "non-private": ("non-private", []),
        f"dp eps {args.epsilon:g}": (f"dp-eps{args.epsilon:g}", dp),
        "non-private, the paper's input (no class row)": (
            "non-private-paper-input",
            ["reconstructor.class_row=false"],
        ),
    }
    rows = []
    for name, (directory, overrides) in runs.items():
        config = load(None, [*overrides, f"device={device}", *args.set])
        started = time.perf_counter()
        report = run_reconstruction(config, Path(args.runs) / directory, progress=False)
        r, run = report["results"], report["run"]
        rows.append({"heads": name, "load_average": _load(), "wall_s": time.perf_counter() - started,
                     "tpr_at_fpr_0.01": r["tpr_at_fpr"]["0.01"], "tpr_at_fpr": r["tpr_at_fpr"],
                     "mse_threshold": r["mse_threshold"], "tpr_at_threshold": r["tpr_at_threshold"],
                     "fpr_at_threshold": r["fpr_at_threshold"], "auc": r["auc"],
                     "attacked_head_accuracy": run["attacked_head_accuracy_mean"], "dp": run["dp"],
                     "shadow_heads": run["shadow_heads"], "reconstructor_steps": run["reconstructor_steps"],
                     "timings": report["timings"]})  # fmt: skip
        print(f"{name}: TPR at FPR 1% {r['tpr_at_fpr']['0.01']:.4f}, at MSE {r['mse_threshold']}: "
              f"TPR {r['tpr_at_threshold']:.4f} FPR {r['fpr_at_threshold']:.4f}, AUC {r['auc']:.4f}, "
              f"head accuracy {run['attacked_head_accuracy_mean']:.3f}")  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--heads", type=int, default=16384, help="batched heads to time")
    parser.add_argument("--chunk-size", type=int, default=4096)
    parser.add_argument("--one-by-one", type=int, default=200, help="heads to time one by one")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--epsilon", type=float, default=10.0, help="the DP heads' epsilon in part 3"
    )
    parser.add_argument(
        "--set", action="append", default=[], help="config override for part 3 (repeatable)"
    )
    parser.add_argument(
        "--runs", default="runs/bench-reconstruct", help="run directories of part 3 (cached)"
    )
    parser.add_argument(
        "--skip", nargs="*", default=[], choices=["speed", "accounting", "reconstruction"]
    )
    args = parser.parse_args()
    device = torch.device(args.device)
    suffix = "" if device.type == "cpu" else "_cuda"
    out = Path(__file__).parent / "results" / f"attacks_reconstruction{suffix}.json"
    # parts skipped now keep the figures of an earlier run
    result = json.loads(out.read_text()) if out.exists() and args.skip else {}
    result.update({"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
                   "cpu_count": os.cpu_count(), "load_average_at_start": _load()})  # fmt: skip
    if "speed" not in args.skip:
        result["heads_per_second"] = heads_per_second(args, device)
    if "accounting" not in args.skip:
        result["accounting"] = accounting()
    if "reconstruction" not in args.skip:
        torch.set_num_threads(1)
        result["reconstruction"] = reconstruction(args, device)
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
