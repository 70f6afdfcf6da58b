"""PANORAMIA on images: eps_tilde, c_lb and {c+eps}_lb for a target trained without DP, with DP at
epsilon 8 and 1 (privaudit.dp), and for the pretrained ccexam MNIST CNN; generator training time and
quality (Fréchet distance). All runs share one generator (same data split, same settings, one cache).

    uv run python tools/bench/image_panoramia.py            # the default audit sizes (MNIST subset)
    uv run python tools/bench/image_panoramia.py --small    # fewer generator steps and epochs

    uv run python tools/bench/image_panoramia.py --device cuda   # on a GPU (image_panoramia_cuda.json)

Prints a table and writes tools/bench/results/image_panoramia[_small][_cuda].json.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch
from privaudit.core.rundir import atomic_write_json, provenance
from privaudit.image.audit import run_audit
from privaudit.image.config import ImageAuditConfig

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--small", action="store_true", help="reduced setting: 300 generator steps, fewer epochs"
    )
    parser.add_argument(
        "--runs", default="runs/bench-image", help="run directories (cache shared by all targets)"
    )
    parser.add_argument(
        "--cache",
        help="cache folder (default <runs>/cache); runs/image-mnist/cache reuses "
        "the default audit's generator and target",
    )
    parser.add_argument("--only", nargs="*", help="subset of: no-dp dp-eps8 dp-eps1 ccexam")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    args = parser.parse_args()
    base = ImageAuditConfig(cache_dir=args.cache or f"{args.runs}/cache", device=args.device)
    if args.small:
        base = base.replace(
            gan_steps=300, epochs=15, dp_epochs=8, helper_epochs=8, attack_epochs=10
        )
    setups = {
        "no-dp": base.replace(out_dir=f"{args.runs}/no-dp"),
        "dp-eps8": base.replace(out_dir=f"{args.runs}/dp-eps8", epsilon=8.0),
        "dp-eps1": base.replace(out_dir=f"{args.runs}/dp-eps1", epsilon=1.0),
        "ccexam": base.replace(out_dir=f"{args.runs}/ccexam", target="ccexam-mnist"),
    }
    rows = []
    for name, config in setups.items():
        if args.only and name not in args.only:
            continue
        started = time.perf_counter()
        report = run_audit(config)
        seconds = time.perf_counter() - started
        mia = next(c for c in report["columns"] if c != "baseline_pred")
        extra = report["extra"]
        gt = extra["ground_truth"]
        rows.append(
            {
                "target": name,
                "config": config.as_dict(),
                "seconds_incl_cached_stages": round(seconds, 1),
                "c_lb": report["c_lb"],
                "c_plus_eps_lb": report["columns"][mia]["eps_lb"],
                "eps_tilde": report["eps_tilde"][mia],
                "auc_baseline": report["columns"]["baseline_pred"]["auc"],
                "auc_mia": report["columns"][mia]["auc"],
                "n_test": report["n"],
                "target_info": extra["target"],
                "ground_truth": None
                if gt is None
                else {
                    "c_lb": gt["c_lb"],
                    "eps_lb_mia": gt["columns"][mia]["eps_lb"],
                    "auc_mia": gt["columns"][mia]["auc"],
                },
                "generator": extra["generator_quality"],
            }
        )
    print(
        f"{'target':10} {'c_lb':>7} {'{c+eps}_lb':>11} {'eps_tilde':>10} {'AUC base':>9} {'AUC MIA':>8} "
        f"{'GT eps_lb':>10} {'spent eps':>10} {'seconds':>8}"
    )
    for r in rows:
        gt = r["ground_truth"]

        def f(v):
            return "n/a" if v is None else f"{v:.3f}"

        print(
            f"{r['target']:10} {f(r['c_lb']):>7} {f(r['c_plus_eps_lb']):>11} {f(r['eps_tilde']):>10} "
            f"{f(r['auc_baseline']):>9} {f(r['auc_mia']):>8} {f(gt and gt['eps_lb_mia']):>10} "
            f"{f(r['target_info'].get('spent_epsilon')):>10} {r['seconds_incl_cached_stages']:>8}"
        )
    if rows:
        g = rows[0]["generator"]
        print(
            f"generator: {g['steps']} steps (batch {g['batch_size']}) in {g['seconds']:.0f} s, "
            f"Frechet distance {g['frechet_distance']:.2f} (real vs real {g['frechet_distance_real_vs_real']:.2f}), "
            f"{g['feature_space']}"
        )
    device = base.torch_device()
    out = (
        RESULTS
        / f"image_panoramia{'_small' if args.small else ''}{'_cuda' if device.type == 'cuda' else ''}.json"
    )
    machine = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or platform.machine()
    )
    atomic_write_json(
        out,
        {
            "setting": "small" if args.small else "default",
            "machine": machine,
            "device": str(device),
            "torch_threads": torch.get_num_threads(),
            "results": rows,
            "provenance": provenance(),
        },
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
