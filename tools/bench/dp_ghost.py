"""Step time and peak memory of DP-SGD engines on ResNet-18 (GroupNorm), a VGG-style GroupNorm CNN
and a GPT-2 style model.

Compares, in one run: non-private training, privaudit book-keeping (PyTorch kernels, and Triton's
on CUDA), privaudit two-pass, Opacus per-sample hooks (GradSampleModule) and Opacus ghost clipping;
`--precision bf16` runs every method's forward under bf16 autocast. Each (model, method) runs in its own
subprocess so peak memory is its own: on CUDA torch.cuda.max_memory_allocated; on CPU the process's
peak RSS during training (VmHWM, reset through /proc/self/clear_refs once the model and batch are
built) minus its RSS at that moment -- activations, gradients and the engine's buffers, as the
allocator saw them.

    uv run python tools/bench/dp_ghost.py --small            # quick CPU run
    uv run python tools/bench/dp_ghost.py --models vgg_gn --methods non_private,privaudit_bookkeeping,opacus_ghost
    uv run python tools/bench/dp_ghost.py --device cuda --steps 20 --methods non_private,privaudit_bookkeeping,\
        privaudit_bookkeeping_triton,opacus_hooks,opacus_ghost --precision bf16
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

METHODS = [
    "non_private",
    "privaudit_bookkeeping",
    "privaudit_two_pass",
    "opacus_hooks",
    "opacus_ghost",
]
# privaudit_bookkeeping_triton: book-keeping with kernels="triton" (CUDA only; the default there)
VGG_STAGES = [[64], [128], [256, 256], [512, 512], [512, 512]]


def build(model_name: str, small: bool, device, batch_size: int | None = None):
    import torch
    from torch import nn

    torch.manual_seed(0)
    if model_name == "resnet18_gn":
        from privaudit.image.models import resnet18
        from torchvision.models.resnet import BasicBlock

        batch = batch_size or (8 if small else 64)
        model = resnet18(3, 10)
        # Opacus' full backward hooks refuse in-place ops on hooked outputs (ReLU(inplace), `out +=`):
        # every method gets the same out-of-place model.
        for module in model.modules():
            if isinstance(module, nn.ReLU):
                module.inplace = False
            if isinstance(module, BasicBlock):
                module.forward = types.MethodType(out_of_place_block, module)
        x = torch.randn(batch, 3, 32, 32)
        y = torch.randint(0, 10, (batch,))

        return model.to(device), x.to(device), y.to(device), image_loss
    if model_name == "vgg_gn":
        batch = batch_size or (8 if small else 32)
        x, y = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
        return vgg_gn().to(device), x.to(device), y.to(device), image_loss
    from privaudit.text.models import SmallGPT2, per_sample_lm_loss

    layers, width, tokens, batch = (2, 128, 32, 4) if small else (6, 512, 128, 16)
    batch = batch_size or batch
    vocab = 8192
    model = SmallGPT2(vocab, tokens, layers=layers, width=width, heads=8)

    x = torch.randint(0, vocab, (batch, tokens))

    def loss_fn(out, target, reduction="mean"):
        per_sample = per_sample_lm_loss(out, target)
        return per_sample.mean() if reduction == "mean" else per_sample

    return model.to(device), x.to(device), x.to(device), loss_fn


def image_loss(out, target, reduction="mean"):
    import torch.nn.functional as F

    return F.cross_entropy(out.float(), target, reduction=reduction)


def vgg_gn():
    """VGG-11-style: five conv stages (64-512 channels, 3x3, GroupNorm(32), ReLU, 2x2 max-pool)
    on 32x32 inputs, then a linear classifier."""
    from torch import nn

    layers, channels = [], 3
    for stage in VGG_STAGES:
        for width in stage:
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.GroupNorm(32, width), nn.ReLU()]
            channels = width
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(512, 10))


def Autocast(module):
    """`module` with its forward under bf16 autocast (no parameters of its own)."""
    import torch
    from torch import nn

    class AutocastForward(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            with torch.autocast(x.device.type, dtype=torch.bfloat16):
                return self.inner(x)

    return AutocastForward(module)


def out_of_place_block(self, x):
    """torchvision's BasicBlock.forward with the residual added out of place."""
    identity = x if self.downsample is None else self.downsample(x)
    out = self.relu(self.bn1(self.conv1(x)))
    return self.relu(self.bn2(self.conv2(out)) + identity)


def worker(
    model_name: str,
    method: str,
    steps: int,
    small: bool,
    device_name: str,
    threads: int,
    precision: str = "fp32",
    batch_size: int | None = None,
    sigma: float = 1.0,
) -> dict:
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    device = torch.device(device_name)
    if threads:
        torch.set_num_threads(threads)
    model, x, y, loss_fn = build(model_name, small, device, batch_size)
    model.train()
    if (
        precision == "bf16"
    ):  # the forward under autocast; losses (and privaudit's norms and sums) in float32
        model = Autocast(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    loader = DataLoader(TensorDataset(x.cpu(), y.cpu()), batch_size=len(x))
    step = None
    if method == "non_private":

        def step():
            loss_fn(model(x), y).backward()
            optimizer.step()
            optimizer.zero_grad()
    elif method.startswith("privaudit"):
        from privaudit.dp import make_private

        mode = "two_pass" if method.endswith("two_pass") else "bookkeeping"
        # the plain methods keep PyTorch's kernels on every device, so the Triton row compares with them
        os.environ["PRIVAUDIT_DP_KERNELS"] = "triton" if method.endswith("_triton") else "torch"
        model, optimizer, _, _ = make_private(
            model, optimizer, loader, noise_multiplier=sigma, max_grad_norm=1.0, mode=mode
        )

        def step():
            if mode == "two_pass":
                optimizer.backward(loss_fn(model(x), y, reduction="none"))
            else:
                loss_fn(model(x), y).backward()
            optimizer.step()
            optimizer.zero_grad()
    else:
        from opacus import PrivacyEngine

        engine = PrivacyEngine()
        if method == "opacus_ghost":
            from opacus.utils.fast_gradient_clipping_utils import DPLossFastGradientClipping

            model, optimizer, _, _ = engine.make_private(
                module=model,
                optimizer=optimizer,
                data_loader=loader,
                noise_multiplier=sigma,
                max_grad_norm=1.0,
                criterion=torch.nn.CrossEntropyLoss(),
                grad_sample_mode="ghost",
                poisson_sampling=False,
            )

            class PerSample(
                torch.nn.Module
            ):  # the benchmark's per-sample loss, seen by Opacus' two-pass wrapper
                reduction = "mean"

                def forward(self, out, target):
                    return loss_fn(out, target, reduction="none")

            criterion = DPLossFastGradientClipping(model, optimizer, PerSample(), "mean")

            def step():
                criterion(model(x), y).backward()
                optimizer.step()
                optimizer.zero_grad()
        else:
            model, optimizer, _ = engine.make_private(
                module=model,
                optimizer=optimizer,
                data_loader=loader,
                noise_multiplier=sigma,
                max_grad_norm=1.0,
                grad_sample_mode="hooks",
                poisson_sampling=False,
            )

            def step():
                loss_fn(model(x), y).backward()
                optimizer.step()
                optimizer.zero_grad()

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    else:
        base_rss = reset_peak_rss()
    step()  # warm-up (its memory counts: the first step allocates what later steps reuse)
    sync()
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    sync()
    seconds = (time.perf_counter() - start) / steps
    cpu_seconds = (time.process_time() - cpu_start) / steps
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
        measure = "cuda max_memory_allocated"
    else:
        peak = (status_kib("VmHWM") - base_rss) / 1024
        measure = "peak RSS during training minus RSS before it (VmHWM after clear_refs)"
    return {
        "seconds_per_step": seconds,
        "cpu_seconds_per_step": cpu_seconds,
        "peak_mib": peak,
        "memory_measure": measure,
        "torch_threads": torch.get_num_threads(),
    }


def status_kib(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak_rss() -> int:
    """Reset the process's RSS high-water mark (Linux) and return the RSS now, in KiB."""
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")
    return status_kib("VmRSS")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--steps", type=int, default=5, help="timed steps per run, after one warm-up step"
    )
    parser.add_argument(
        "--rounds", type=int, default=2, help="runs of every method, interleaved; the best counts"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads per run (0: torch's default); with 1, CPU time per step is "
        "a fair measure even on a shared machine",
    )
    parser.add_argument(
        "--small", action="store_true", help="small batch/model for a quick CPU run"
    )
    parser.add_argument(
        "--batch", type=int, help="batch size of every model (default: 64 ResNet, 32 VGG, 16 GPT-2)"
    )
    parser.add_argument(
        "--noise-multiplier",
        type=float,
        default=1.0,
        help="sigma of every private method (0: no noise draw, to time the clipping alone)",
    )
    parser.add_argument(
        "--precision",
        choices=["fp32", "bf16"],
        default="fp32",
        help="bf16: every forward under bf16 autocast",
    )
    parser.add_argument("--models", default="resnet18_gn,vgg_gn,gpt2_6x512")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--out", default="tools/bench/results/dp_ghost.json")
    parser.add_argument("--worker", nargs=2, metavar=("MODEL", "METHOD"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(
            json.dumps(
                worker(
                    *args.worker,
                    args.steps,
                    args.small,
                    args.device,
                    args.threads,
                    args.precision,
                    args.batch,
                    args.noise_multiplier,
                )
            )
        )
        return 0
    models, methods = args.models.split(","), args.methods.split(",")
    runs: dict[tuple[str, str], list[dict]] = {(m, k): [] for m in models for k in methods}
    load_before = os.getloadavg()
    # Rounds interleave the methods, so a slow spell of a shared machine hits them all alike;
    # each method keeps its best round.
    for round_index in range(args.rounds):
        for model_name in models:
            for method in methods:
                command = [
                    sys.executable,
                    __file__,
                    "--worker",
                    model_name,
                    method,
                    "--steps",
                    str(args.steps),
                    "--device",
                    args.device,
                    "--threads",
                    str(args.threads),
                    "--precision",
                    args.precision,
                ]
                command += ["--batch", str(args.batch)] if args.batch else []
                command += ["--noise-multiplier", str(args.noise_multiplier)]
                done = subprocess.run(
                    command + (["--small"] if args.small else []), capture_output=True, text=True
                )
                if done.returncode == 0:
                    runs[model_name, method].append(
                        json.loads(done.stdout.strip().splitlines()[-1])
                    )
                else:
                    runs[model_name, method].append(
                        {"error": (done.stderr.strip().splitlines() or ["failed"])[-1][:200]}
                    )
                print(
                    f"round {round_index + 1}: {model_name} {method}: {runs[model_name, method][-1]}",
                    file=sys.stderr,
                    flush=True,
                )
    # On a CPU the process's CPU time is the measure (a shared machine stretches wall time);
    # on a GPU wall time after synchronising.
    time_key = "cpu_seconds_per_step" if args.device == "cpu" else "seconds_per_step"
    rows = []
    for (model_name, method), results in runs.items():
        good = [r for r in results if "error" not in r]
        row = {"model": model_name, "method": method}
        if good:
            best = min(good, key=lambda r: r[time_key])
            row |= best | {
                "rounds": [r[time_key] for r in good],
                "peak_mib": min(r["peak_mib"] for r in good),
            }
        else:
            row["error"] = results[-1]["error"]
        rows.append(row)
    for model_name in args.models.split(","):
        base = next(
            (
                r
                for r in rows
                if r["model"] == model_name and r["method"] == "non_private" and "error" not in r
            ),
            None,
        )
        for r in rows:
            if r["model"] == model_name and base and "error" not in r:
                r["time_vs_non_private"] = r[time_key] / base[time_key]
                r["memory_vs_non_private"] = (
                    r["peak_mib"] / base["peak_mib"] if base["peak_mib"] > 0 else None
                )
    print(
        f"{'model':<12} {'method':<30} {'s/step':>8} {'wall s':>8} {'x time':>7} {'peak MiB':>9} {'x mem':>6}"
    )
    for r in rows:
        if "error" in r:
            print(f"{r['model']:<12} {r['method']:<30} error: {r['error']}")
        else:
            mem = r.get("memory_vs_non_private")
            print(
                f"{r['model']:<12} {r['method']:<30} {r[time_key]:8.3f} {r['seconds_per_step']:8.3f} "
                f"{r.get('time_vs_non_private', float('nan')):7.2f} "
                f"{r['peak_mib']:9.1f} {mem if mem is not None else float('nan'):6.2f}"
            )
    result = {
        "device": args.device,
        "precision": args.precision,
        "batch": args.batch,
        "noise_multiplier": args.noise_multiplier,
        "time_measure": time_key,
        "steps": args.steps,
        "rounds": args.rounds,
        "small": args.small,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "cpu_count": os.cpu_count(),
        "rows": rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=out.parent, delete=False, suffix=".tmp") as handle:
        json.dump(result, handle, indent=2)
    os.replace(handle.name, out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
