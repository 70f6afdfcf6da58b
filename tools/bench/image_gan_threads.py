"""The generator's CPU thread count on a shared machine: fixed 1 thread, fixed all cores, and the
default choice by timed steps (gan.ThreadChooser), run one after another under the load the machine
has (its load average is recorded), on the default image generator's sizes.

    uv run python tools/bench/image_gan_threads.py [--steps 150]
    uv run python tools/bench/image_gan_threads.py --busy 1 --steps 500 --modes auto,auto-no-abort \
        --out tools/bench/results/image_gan_threads_busy.json

`--busy N` runs N busy processes beside it (torch matrix products on every core, like the test
suite's: a load of its own, the same for every mode);
`--modes` picks rows among 1, all (the usable cores), auto and auto-no-abort (the chooser without
its early stop of a stalling trial count, as before that existed). Prints a table, writes JSON.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from privaudit.core.rundir import atomic_write_json, provenance
from privaudit.image import gan
from privaudit.image.config import ImageAuditConfig
from privaudit.image.data import load_images, pad_to_power_of_two

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--busy", type=int, default=0, help="busy torch processes to run beside it")
    parser.add_argument("--modes", default="1,all,auto")
    parser.add_argument("--out", default=str(RESULTS / "image_gan_threads.json"))
    args = parser.parse_args()
    # a busy process like the test suite's: torch on every core, matrix products without end
    hog = "import torch\na = torch.randn(512, 512)\nwhile True: a @ a"
    hogs = [subprocess.Popen([sys.executable, "-c", hog]) for _ in range(args.busy)]
    try:
        run(args)
    finally:
        for hog in hogs:
            hog.kill()


def run(args) -> None:
    c = ImageAuditConfig()
    settings = gan.GanSettings(
        steps=args.steps,
        batch_size=c.gan_batch_size,
        z_dim=c.gan_z_dim,
        w_dim=max(c.gan_z_dim, 32),
        channel_base=c.gan_channel_base,
        channel_max=c.gan_channel_max,
        lr=c.gan_lr,
        r1_gamma=c.r1_gamma,
    )
    data = load_images("mnist", 28, True)
    images, _ = pad_to_power_of_two(data.images[: c.generator_images])
    labels = data.labels[: c.generator_images]
    rows = []
    names = {
        "1": "1 thread",
        "all": f"{gan.usable_cores()} threads",
        "auto": "auto (ThreadChooser)",
        "auto-no-abort": "auto, no early stop of a stalling trial",
    }
    for name in (names[m] for m in args.modes.split(",")):
        chooser = None
        if name.startswith("auto"):
            chooser = gan.ThreadChooser.auto(
                **({"abort": float("inf")} if "no early" in name else {})
            )
        else:
            torch.set_num_threads(int(name.split()[0]))
        times, last = [], [time.perf_counter()]

        def on_step(step, times=times, last=last):
            now = time.perf_counter()
            times.append(now - last[0])
            last[0] = now

        load_before = os.getloadavg()[0]
        started = time.perf_counter()
        generator, summary = gan.train_gan(
            images, labels, data.classes, settings, seed=0, on_step=on_step, threads=chooser
        )
        seconds = time.perf_counter() - started
        checksum = sum(float(p.detach().double().sum()) for p in generator.parameters())
        rows.append(
            {
                "threads": name,
                "seconds": round(seconds, 2),
                "median_step_s": round(statistics.median(times), 4),
                "max_step_s": round(max(times), 3),
                "load_before": load_before,
                "choices": summary["threads"],
                "weights_sum": checksum,
            }
        )
        print(
            f"{name:22} {seconds:8.1f} s  median step {statistics.median(times):.3f} s  max {max(times):.2f} s  "
            f"load {load_before:.2f}  weights sum {checksum:.6f}"
        )
    for r in rows:
        if isinstance(r["choices"], list):
            print(f"{r['threads']}: {r['choices']}")
    out = Path(args.out)
    atomic_write_json(
        out,
        {
            "steps": args.steps,
            "busy_processes": args.busy,
            "usable_cores": gan.usable_cores(),
            "results": rows,
            "provenance": provenance(),
        },
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
