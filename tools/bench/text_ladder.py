"""The text audit's ladder and its DP fine-tuning cost.

1. Ladder: the same data and base LM, the target fine-tuned for 1 / 3 / 10 epochs and with DP-SGD
   at epsilon 8 and 1 (10 epochs), over several seeds: per attack column the PANORAMIA eps_tilde
   (member guesses, and member and non-member guesses),
   and against real non-members the AUC and TPR at 1 % FPR (the learned MIA and the closed-form
   LOSS, zlib, min-k%, min-k%++ and reference-ratio columns). Each seed shares one cache, so the
   base LM, generator and helper are trained once per seed.
2. Step time: one fine-tuning step of the audit's default GPT-2 (CPU time, 1 thread) without DP,
   with privaudit's DP-SGD (full and LoRA) and with Opacus' per-sample hooks (full), on the same
   model and batch.

    uv run --no-sync python tools/bench/text_ladder.py                 # small size, ~10 min on 1 core
    uv run --no-sync python tools/bench/text_ladder.py --seeds 0 --rungs e1,e10   # quicker
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
import time
from pathlib import Path

RUNGS = {
    "e1": {"epochs": 1},
    "e3": {"epochs": 3},
    "e10": {"epochs": 10},
    "dp8": {"epochs": 10, "epsilon": 8.0},
    "dp1": {"epochs": 10, "epsilon": 1.0},
}
SMALL = {
    "pretrain_texts": 800,
    "generator_examples": 200,
    "audit_members": 200,
    "non_members": 200,
    "pretrain_epochs": 2,
    "generator_epochs": 3,
    "helper_epochs": 3,
    "feature_epochs": 10,
    "joint_epochs": 2,
    "block": 32,
    "vocab": 512,
    "layers": 2,
    "width": 48,
    "dp_batch_size": 64,
}


def ladder(seeds: list[int], rungs: list[str], size: dict, work: Path) -> list[dict]:
    from privaudit.core.config import load_config
    from privaudit.text.audit import run_audit
    from privaudit.text.config import TextAuditConfig

    rows = []
    for seed in seeds:
        cache = work / f"cache-{seed}"
        for rung in rungs:
            values = {
                **size,
                **RUNGS[rung],
                "seed": seed,
                "out_dir": str(work / f"{rung}-{seed}"),
                "cache_dir": str(cache),
            }
            config = load_config(TextAuditConfig, None, [], values)
            started = time.perf_counter()
            report = run_audit(config)
            extra = report["extra"]
            low_fpr = extra["ground_truth_low_fpr"]
            row = {
                "rung": rung,
                "seed": seed,
                "seconds": round(time.perf_counter() - started, 1),
                "c_lb": report["c_lb"],
                "eps_tilde": report["eps_tilde"],
                # with member and non-member guesses (report.json's two_sided)
                "eps_tilde_two_sided": report["two_sided"]["eps_tilde"],
                "ground_truth_auc": {k: v["auc"] for k, v in low_fpr.items()},
                "ground_truth_tpr_at_1pct_fpr": {
                    k: v["tpr_at_fpr"]["0.01"] for k, v in low_fpr.items()
                },
                "spent_epsilon": extra["target"].get("spent_epsilon"),
                "member_loss": extra["target"]["member_loss_mean"],
                "non_member_loss": extra["target"]["non_member_loss_mean"],
            }
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    return rows


def summarise(rows: list[dict]) -> dict:
    import numpy as np

    out = {}
    for rung in dict.fromkeys(r["rung"] for r in rows):
        mine = [r for r in rows if r["rung"] == rung]
        summary = {}
        for field in (
            "eps_tilde",
            "eps_tilde_two_sided",
            "ground_truth_auc",
            "ground_truth_tpr_at_1pct_fpr",
        ):
            summary[field] = {
                k: {
                    "mean": float(np.mean([r[field][k] for r in mine])),
                    "min": float(np.min([r[field][k] for r in mine])),
                    "max": float(np.max([r[field][k] for r in mine])),
                }
                for k in mine[0][field]
            }
        summary["c_lb_mean"] = float(np.mean([r["c_lb"] for r in mine]))
        eps = [r["spent_epsilon"] for r in mine if r["spent_epsilon"] is not None]
        summary["spent_epsilon"] = float(np.mean(eps)) if eps else None
        out[rung] = summary
    return out


def step_times(steps: int, rounds: int) -> list[dict]:
    import torch
    from privaudit.text.lm import FineTune, per_text_loss, with_lora
    from privaudit.text.models import SmallGPT2
    from torch.utils.data import DataLoader, TensorDataset

    torch.set_num_threads(1)
    from privaudit.text.config import TextAuditConfig

    c = TextAuditConfig()
    batch, vocab = FineTune().dp_batch_size, c.vocab
    torch.manual_seed(0)
    ids = torch.randint(0, vocab, (batch, c.block))
    lengths = torch.randint(c.min_tokens, c.block + 1, (batch,))
    base = SmallGPT2(vocab, c.block, c.layers, c.width)

    def setup(method):
        model = copy.deepcopy(base)
        if "lora" in method:
            model = with_lora(model, 8, 0)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(params, lr=1e-3)
        loader = DataLoader(TensorDataset(ids, lengths), batch_size=batch)
        if method.startswith("privaudit"):
            from privaudit.dp import make_private

            model, optimizer, _, _ = make_private(
                model, optimizer, loader, noise_multiplier=1.0, max_grad_norm=1.0
            )
        elif method.startswith("opacus"):
            from opacus import PrivacyEngine

            model, optimizer, _ = PrivacyEngine().make_private(
                module=model,
                optimizer=optimizer,
                data_loader=loader,
                noise_multiplier=1.0,
                max_grad_norm=1.0,
                grad_sample_mode="hooks",
                poisson_sampling=False,
            )
        model.train()

        def step():
            per_text_loss(model(ids), ids, lengths).mean().backward()
            optimizer.step()
            optimizer.zero_grad()

        return step

    methods = [
        "non_private",
        "privaudit_dp",
        "opacus_hooks",
        "non_private_lora",
        "privaudit_dp_lora",
    ]
    best: dict[str, float] = {}
    errors: dict[str, str] = {}
    for _ in range(rounds):  # interleaved rounds, the best counts (a shared machine)
        for method in methods:
            if method in errors:
                continue
            try:
                step = setup(method)
                step()
                started = time.process_time()
                for _ in range(steps):
                    step()
                seconds = (time.process_time() - started) / steps
                best[method] = min(seconds, best.get(method, float("inf")))
            except Exception as exc:  # noqa: BLE001 - a failing engine is a result, recorded
                errors[method] = f"{type(exc).__name__}: {str(exc)[:200]}"
    rows = []
    for method in methods:
        row = {
            "method": method,
            "model": f"SmallGPT2 {c.layers}x{c.width}, block {c.block}, vocab {vocab}",
            "batch": batch,
        }
        if method in best:
            reference = best["non_private_lora" if "lora" in method else "non_private"]
            row |= {
                "cpu_seconds_per_step": best[method],
                "time_vs_non_private": best[method] / reference,
            }
        else:
            row["error"] = errors[method]
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--rungs", default=",".join(RUNGS))
    parser.add_argument("--set", action="append", default=[], help="size override key=value (int)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-ladder", action="store_true")
    parser.add_argument("--out", default="tools/bench/results/text_ladder.json")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    size = dict(SMALL)
    for item in args.set:
        key, value = item.split("=", 1)
        size[key] = int(value)
    result = {"command": " ".join(sys.argv), "size": size, "load_before": os.getloadavg()}
    result["step_time"] = step_times(args.steps, args.rounds)
    if not args.skip_ladder:
        with tempfile.TemporaryDirectory() as work:
            rows = ladder(
                [int(s) for s in args.seeds.split(",")], args.rungs.split(","), size, Path(work)
            )
        result["ladder"] = rows
        result["summary"] = summarise(rows)
    result["load_after"] = os.getloadavg()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    for rung, s in result.get("summary", {}).items():
        gt = s["ground_truth_auc"]
        print(
            f"{rung:>4}: eps_tilde(MIA) {next(v['mean'] for k, v in s['eps_tilde'].items() if k.startswith('mia_')):.3f}"
            f" (two-sided {next(v['mean'] for k, v in s['eps_tilde_two_sided'].items() if k.startswith('mia_')):.3f})"
            f"  GT AUC: "
            + ", ".join(f"{k.removesuffix('_pred')} {v['mean']:.3f}" for k, v in gt.items())
            + (f"  eps spent {s['spent_epsilon']:.2f}" if s["spent_epsilon"] else "")
        )
    for row in result["step_time"]:
        print(
            f"{row['method']:<20} "
            + (
                f"{row['cpu_seconds_per_step']:.4f} s/step  x{row['time_vs_non_private']:.2f}"
                if "error" not in row
                else row["error"]
            )
        )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
