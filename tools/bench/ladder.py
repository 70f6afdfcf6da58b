"""The leakage ladder: targets of graded true leakage, each audited by PANORAMIA with the same
generator, against the ground truth (the same attacks against real non-members). Does the audit
rank the targets as the ground truth does?

For each seed the splits and the generator are shared by every target of the ladder (one cache),
and so are the helper and the baseline wherever the targets share an architecture (the helper
takes the target's, as in the paper); each seed cuts new splits and trains all of them anew.

    uv run python tools/bench/ladder.py tabular [--seeds 0,1,2]
    uv run python tools/bench/ladder.py image [--seeds 0,1,2] [--gan-steps 2000] [--default-sizes]
    uv run python tools/bench/ladder.py image --recheck A.json B.json --out MERGED.json

Prints a table and writes tools/bench/results/ladder_<modality>.json and ladder_<modality>.png
(eps_tilde against ground-truth AUC, one point per target and seed), once for the paper's
statistic (member guesses) and once for member and non-member guesses (report.json's
`two_sided`; `checks_two_sided`, ladder_<modality>_two_sided.png). The checks:
Spearman between mean eps_tilde and mean ground-truth AUC over the targets (goal >= 0.9); the most
leaking non-private target's eps_tilde above 0 on every seed; every DP eps=1 target's mean
eps_tilde below the most leaking target's. Where targets stand beside helpers of different
architectures (and so different c_lb), `per_baseline` gives the Spearman among each helper's
targets, and the Spearman of {c+eps}_lb (which needs no baseline) compares them all.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

from privaudit.core.plots import ladder_png
from privaudit.core.rundir import atomic_write_bytes, atomic_write_json, provenance
from scipy.stats import spearmanr

RESULTS = Path(__file__).parent / "results"

# name -> config overrides; ordered from the least to the most memorising, then DP
TABULAR_LADDER = {
    "mlp-wd": {"target": "mlp", "weight_decay": 1e-3},
    "mlp-60ep": {"target": "mlp", "epochs": 60},
    "overfit": {"target": "overfit"},
    "overfit-noise20": {"target": "overfit", "label_noise": 0.2},
    "dp-eps8": {"target": "dp", "epsilon": 8.0},
    "dp-eps1": {"target": "dp", "epsilon": 1.0},
}
# on the reduced split (the CNN trains on generator_images + audit_members = 1,600 images); the
# PANORAMIA paper's image results grow with training epochs
IMAGE_LADDER = {
    "cnn-5ep-wd": {"epochs": 5, "weight_decay": 5e-4},
    "cnn-20ep": {"epochs": 20},
    "cnn-60ep": {"epochs": 60},
    # a share of the training labels replaced by another class (audited on the true labels): a
    # memorisation stress test, if the target has the capacity to fit the wrong labels
    "cnn-60ep-noise10": {"epochs": 60, "label_noise": 0.1},
    "cnn-60ep-noise30": {"epochs": 60, "label_noise": 0.3},
    # a ViT (139k parameters against the CNN's 10k) fits its training set exactly; its helper is a
    # ViT too, as in the paper (--helper-architecture cnn shares the CNN's baseline instead)
    "vit-5ep": {"target": "vit", "epochs": 5},
    "vit-20ep": {"target": "vit", "epochs": 20},
    "vit-60ep": {"target": "vit", "epochs": 60},
    "vit-60ep-noise10": {"target": "vit", "epochs": 60, "label_noise": 0.1},
    "dp-eps8": {"epsilon": 8.0},
    "dp-eps1": {"epsilon": 1.0},
    # DP variants of the architecture that memorises (DP-SGD, ghost clipping, its dp_epochs)
    "vit-dp-eps8": {"target": "vit", "epsilon": 8.0},
    "vit-dp-eps1": {"target": "vit", "epsilon": 1.0},
}


def tabular_base(args):
    from privaudit.tabular.config import TabularAuditConfig

    config = TabularAuditConfig(helper_data=args.helper_data)
    if args.synthesizer:
        config = config.replace(synthesizer=args.synthesizer)
    if args.generator_rows:
        config = config.replace(generator_rows=args.generator_rows)
    if args.rejection_quantile is not None:
        config = config.replace(rejection_quantile=args.rejection_quantile)
    if args.audit_members:
        config = config.replace(audit_members=args.audit_members, non_members=args.audit_members)
    if args.mia_reference:
        config = config.replace(mia_reference=args.mia_reference)
    return config


def image_base(args):
    from privaudit.image.config import ImageAuditConfig

    config = ImageAuditConfig(
        helper_data=args.helper_data,
        mia_reference=args.mia_reference or "none",
        helper_architecture=args.helper_architecture,
    )
    if args.default_sizes:  # the audit's own sizes and steps, as `uv run audit-image` runs
        return config.replace(gan_steps=args.gan_steps)
    # reduced sizes: a smaller training set memorises sooner and trains faster
    members = args.audit_members or 600
    return config.replace(
        generator_images=args.generator_images or 1000,
        audit_members=members,
        non_members=members,
        helper_images=members,
        gan_steps=args.gan_steps or 2000,
        helper_epochs=10,
        attack_epochs=15,
        dp_epochs=15,
    )


def one_run(modality: str, config) -> dict:
    if modality == "tabular":
        from privaudit.tabular.audit import run_audit
    else:
        from privaudit.image.audit import run_audit
    started = time.perf_counter()
    report = run_audit(config)
    seconds = time.perf_counter() - started
    mia = next(c for c in report["columns"] if c != "baseline_pred")
    gt = report["extra"]["ground_truth"]
    gt_full = json.loads((Path(gt["dir"]) / "report.json").read_text())
    target = report["extra"]["target"]
    quality = report["extra"]["generator_quality"]
    two_sided = report["two_sided"]
    return {
        "eps_tilde": report["eps_tilde"][mia],
        "c_lb": report["c_lb"],
        "c_plus_eps_lb": report["columns"][mia]["eps_lb"],
        "two_sided": {
            "eps_tilde": two_sided["eps_tilde"][mia],
            "c_lb": two_sided["c_lb"],
            "c_plus_eps_lb": two_sided["columns"][mia]["eps_lb"],
            "guesses": {k: two_sided["columns"][mia][k] for k in ("k_plus", "k_minus", "r", "v")},
        },
        "sampling_spread": report.get("sampling_spread"),
        "auc_baseline": report["columns"]["baseline_pred"]["auc"],
        "auc_mia": report["columns"][mia]["auc"],
        "n_test": report["n"],
        "ground_truth": {
            "auc": gt_full["columns"][mia]["auc"],
            "eps_lb": gt_full["columns"][mia]["eps_lb"],
            "eps_lb_two_sided": gt_full["two_sided"]["columns"][mia]["eps_lb"],
            "tpr_at_1pct_fpr": gt_full["columns"][mia]["tpr_at_fpr"]["0.01"],
            "n_test": gt_full["n"],
        },
        "target": {k: v for k, v in target.items() if k != "dp"},
        "generator_quality": {k: v for k, v in quality.items() if not isinstance(v, list | dict)},
        "seconds_incl_cached_stages": round(seconds, 1),
        "cached_stages": report["extra"].get("cached_stages"),
    }


def two_sided_view(runs: list[dict]) -> list[dict]:
    """The runs with eps_tilde, c_lb, {c+eps}_lb and the ground truth's eps_lb from member and
    non-member guesses (report.json's `two_sided`); empty for results written before it existed."""
    if not all("two_sided" in r for r in runs):
        return []
    return [
        {
            **r,
            **{k: v for k, v in r["two_sided"].items() if k != "guesses"},
            "ground_truth": {**r["ground_truth"], "eps_lb": r["ground_truth"]["eps_lb_two_sided"]},
        }
        for r in runs
    ]


def all_checks(runs: list[dict], ladder: dict, base_config: dict) -> dict:
    """The checks of the paper's member-guess statistic, and of the two-sided one where recorded."""
    found = {"checks": checks(runs, ladder, base_config)}
    if two_sided := two_sided_view(runs):
        found["checks_two_sided"] = checks(two_sided, ladder, base_config)
    return found


def baseline_of(name: str, ladder: dict, base_config: dict) -> str:
    """The helper architecture behind a target's baseline: within a seed, targets of one
    architecture share c_lb, so their eps_tilde differ by {c+eps}_lb alone."""
    if "helper_architecture" not in base_config:  # tabular: one helper for every target
        return "shared"
    return base_config["helper_architecture"] or ladder[name].get("target", base_config["target"])


def checks(runs: list[dict], ladder: dict, base_config: dict) -> dict:
    per_target = {}
    for name in ladder:
        mine = [r for r in runs if r["target_name"] == name]
        if not mine:
            continue
        eps = [r["eps_tilde"] for r in mine]
        gt = [r["ground_truth"]["auc"] for r in mine]
        per_target[name] = {
            "eps_tilde_mean": statistics.fmean(eps),
            "eps_tilde_min": min(eps),
            "eps_tilde_max": max(eps),
            "eps_tilde_sd": statistics.stdev(eps) if len(eps) > 1 else 0.0,
            "gt_auc_mean": statistics.fmean(gt),
            "gt_auc_min": min(gt),
            "gt_auc_max": max(gt),
            "gt_eps_lb_mean": statistics.fmean(r["ground_truth"]["eps_lb"] for r in mine),
            "gt_tpr_at_1pct_fpr_mean": statistics.fmean(
                r["ground_truth"]["tpr_at_1pct_fpr"] for r in mine
            ),
            "c_lb_mean": statistics.fmean(r["c_lb"] for r in mine),
            "c_plus_eps_lb_mean": statistics.fmean(r["c_plus_eps_lb"] for r in mine),
            "auc_baseline_mean": statistics.fmean(r["auc_baseline"] for r in mine),
            "auc_mia_mean": statistics.fmean(r["auc_mia"] for r in mine),
            "loss_attack_auc_mean": (
                statistics.fmean(r["target"]["loss_attack_auc"] for r in mine)
                if all("loss_attack_auc" in r["target"] for r in mine)
                else None
            ),
            "seeds": len(mine),
        }
    names = list(per_target)
    rho = spearmanr(
        [per_target[n]["eps_tilde_mean"] for n in names],
        [per_target[n]["gt_auc_mean"] for n in names],
    )
    # a diagnostic, not the audit's statistic: does the MIA's AUC on the real/synthetic test rank them?
    rho_auc = spearmanr(
        [per_target[n]["auc_mia_mean"] for n in names],
        [per_target[n]["gt_auc_mean"] for n in names],
    )
    # the ground truth's own eps lower bound: like eps_tilde, read from the most confident guesses
    rho_eps_lb = spearmanr(
        [per_target[n]["eps_tilde_mean"] for n in names],
        [per_target[n]["gt_eps_lb_mean"] for n in names],
    )
    # the untrained LOSS attack's AUC (members vs real non-members) as a second ground truth
    rho_loss = None
    if all(per_target[n]["loss_attack_auc_mean"] is not None for n in names):
        rho_loss = float(
            spearmanr(
                [per_target[n]["eps_tilde_mean"] for n in names],
                [per_target[n]["loss_attack_auc_mean"] for n in names],
            ).statistic
        )
    # the same checks within each seed (one generator, one baseline): how often does each hold?
    within = {}
    for seed in sorted({r["seed"] for r in runs}):
        mine = {r["target_name"]: r for r in runs if r["seed"] == seed}
        rho_seed = spearmanr(
            [mine[n]["eps_tilde"] for n in names if n in mine],
            [mine[n]["ground_truth"]["auc"] for n in names if n in mine],
        )
        within[str(seed)] = {"spearman": float(rho_seed.statistic)}
        if all("loss_attack_auc" in mine[n]["target"] for n in names if n in mine):
            within[str(seed)]["spearman_vs_loss_attack_auc"] = float(
                spearmanr(
                    [mine[n]["eps_tilde"] for n in names if n in mine],
                    [mine[n]["target"]["loss_attack_auc"] for n in names if n in mine],
                ).statistic
            )
    # targets of different baselines are compared across two c_lb; within one, only the MIA moves
    groups: dict[str, list[str]] = {}
    for n in names:
        groups.setdefault(baseline_of(n, ladder, base_config), []).append(n)
    per_baseline = {
        group: {
            "targets": members,
            "spearman_eps_tilde_vs_gt_auc": float(
                spearmanr(
                    [per_target[n]["eps_tilde_mean"] for n in members],
                    [per_target[n]["gt_auc_mean"] for n in members],
                ).statistic
            ),
        }
        for group, members in groups.items()
        if len(groups) > 1 and len(members) >= 3
    }
    # {c+eps}_lb needs no baseline, so it compares targets of any helper (c is in it, though)
    rho_c_plus_eps = spearmanr(
        [per_target[n]["c_plus_eps_lb_mean"] for n in names],
        [per_target[n]["gt_auc_mean"] for n in names],
    )
    non_private = [n for n in names if not ladder[n].get("epsilon")]
    top = max(non_private, key=lambda n: per_target[n]["gt_auc_mean"])
    dp1 = [n for n in names if ladder[n].get("epsilon") == 1.0]
    for seed, entry in within.items():
        mine = {r["target_name"]: r for r in runs if str(r["seed"]) == seed}
        entry["most_leaking_above_dp_eps1"] = all(
            mine[top]["eps_tilde"] > mine[n]["eps_tilde"] for n in dp1 if n in mine
        )
    return {
        "per_target": per_target,
        "within_seed": within,
        "spearman_eps_tilde_vs_gt_auc": float(rho.statistic),
        "spearman_p_value": float(rho.pvalue),
        "spearman_goal_met": bool(rho.statistic >= 0.9),
        "spearman_mia_auc_vs_gt_auc": float(rho_auc.statistic),
        "spearman_eps_tilde_vs_gt_eps_lb": float(rho_eps_lb.statistic),
        "spearman_eps_tilde_vs_loss_attack_auc": rho_loss,
        "spearman_c_plus_eps_lb_vs_gt_auc": float(rho_c_plus_eps.statistic),
        "per_baseline": per_baseline,
        "most_leaking_non_private": top,
        "most_leaking_eps_tilde_above_0_every_seed": bool(per_target[top]["eps_tilde_min"] > 0),
        "dp_eps1_below_most_leaking": bool(
            all(per_target[n]["eps_tilde_mean"] < per_target[top]["eps_tilde_mean"] for n in dp1)
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modality", choices=("tabular", "image"))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--runs", help="run directories (default runs/ladder-<modality>)")
    parser.add_argument("--only", nargs="*", help="a subset of the ladder's targets")
    parser.add_argument(
        "--helper-data",
        default="synthetic",
        choices=("synthetic", "generator-split"),
        help="what the baseline's helper trains on (default: synthetic, as the paper)",
    )
    parser.add_argument(
        "--helper-architecture",
        help="image: every target's helper (default: the target's own architecture)",
    )
    parser.add_argument("--synthesizer", help="tabular: ctgan or tvae (default: the audit's)")
    parser.add_argument(
        "--rejection-quantile", type=float, help="tabular: the filter's quantile (0 keeps all)"
    )
    parser.add_argument(
        "--generator-rows", type=int, help="tabular: the synthesizer's training rows"
    )
    parser.add_argument(
        "--mia-reference", choices=("helper", "none"), help="what else the MIA sees"
    )
    parser.add_argument(
        "--gan-steps",
        type=int,
        help="image: generator steps (default 2000; --default-sizes: the audit's)",
    )
    parser.add_argument(
        "--generator-images",
        type=int,
        help="image: the generator's training members (default 1000)",
    )
    parser.add_argument(
        "--default-sizes",
        action="store_true",
        help="image: the audit's default split, steps and epochs instead of the reduced ones",
    )
    parser.add_argument(
        "--audit-members",
        type=int,
        help="audit members (= real non-members; default image 600, tabular the audit's)",
    )
    parser.add_argument(
        "--out", help="JSON path (default tools/bench/results/ladder_<modality>.json)"
    )
    parser.add_argument(
        "--recheck",
        metavar="JSON",
        nargs="+",
        help="recompute the checks and the plot of written results; several (one ladder, other "
        "seeds, e.g. run side by side) are merged into --out",
    )
    args = parser.parse_args()
    if args.recheck:
        recheck([Path(p) for p in args.recheck], Path(args.out or args.recheck[0]))
        return
    import torch

    torch.set_num_threads(1)
    ladder = TABULAR_LADDER if args.modality == "tabular" else IMAGE_LADDER
    if args.only:
        ladder = {k: v for k, v in ladder.items() if k in args.only}
    base = tabular_base(args) if args.modality == "tabular" else image_base(args)
    runs_dir = args.runs or f"runs/ladder-{args.modality}"
    runs = []
    seeds = [int(s) for s in args.seeds.split(",")]
    out = Path(args.out) if args.out else RESULTS / f"ladder_{args.modality}.json"
    written = {
        "modality": args.modality,
        "ladder": ladder,
        "base_config": base.as_dict(),
        "machine": platform.processor() or platform.machine(),
        "torch_threads": "1 (the image generator: its timed choice, in each run's generator_quality)",
        "seeds": seeds,
        "runs": runs,
        "provenance": provenance(),
    }
    for seed in seeds:
        for name, overrides in ladder.items():
            config = base.replace(
                seed=seed,
                out_dir=f"{runs_dir}/seed{seed}/{name}",
                cache_dir=f"{runs_dir}/seed{seed}/cache",
                **overrides,
            )
            row = {
                "target_name": name,
                "seed": seed,
                "overrides": overrides,
                **one_run(args.modality, config),
            }
            runs.append(row)
            gt = row["ground_truth"]
            print(
                f"seed {seed} {name:18} eps_tilde {row['eps_tilde']:7.3f}  c_lb {row['c_lb']:6.3f}  "
                f"{{c+eps}}_lb {row['c_plus_eps_lb']:6.3f}  GT AUC {gt['auc']:.3f}  GT eps_lb {gt['eps_lb']:.3f}  "
                f"GT TPR@1% {gt['tpr_at_1pct_fpr']:.3f}  ({row['seconds_incl_cached_stages']} s)",
                flush=True,
            )
        # written after every seed, so an interrupted ladder keeps what it measured
        written["complete"] = seed == seeds[-1]
        written.update(all_checks(runs, ladder, written["base_config"]))
        report(runs, out, written)


def recheck(paths: list[Path], out: Path) -> None:
    """Recompute the checks and plots of written ladders; several are merged, one seed each."""
    parts = [json.loads(p.read_text()) for p in paths]
    sources = [
        {"path": str(p), "seeds": w["seeds"], "provenance": w["provenance"]}
        for p, w in zip(paths, parts, strict=True)
    ]
    written = dict(parts[0])
    for other, path in zip(parts[1:], paths[1:], strict=True):
        for key in ("modality", "ladder", "base_config"):
            if other[key] != written[key]:
                raise SystemExit(f"{path} has another {key} than {paths[0]}; not merged.")
        if set(other["seeds"]) & set(written["seeds"]):
            raise SystemExit(f"{path} repeats a seed of the results before it; not merged.")
        written["seeds"] = written["seeds"] + other["seeds"]
        written["runs"] = written["runs"] + other["runs"]
        written["complete"] = written.get("complete", False) and other.get("complete", False)
    if len(parts) > 1:
        written["merged_from"] = sources
    written.update(all_checks(written["runs"], written["ladder"], written["base_config"]))
    report(written["runs"], out, written)


def report(runs: list[dict], out: Path, written: dict) -> None:
    """Print each statistic's table and checks, plot eps_tilde against ground-truth AUC (the
    two-sided statistic in <out>_two_sided.png), write the JSON."""
    plots = {}
    for key, view, suffix in (
        ("checks", runs, ""),
        ("checks_two_sided", two_sided_view(runs), "_two_sided"),
    ):
        if key not in written:
            continue
        print(f"\n== {'member and non-member guesses' if suffix else 'member guesses (the paper)'}")
        print_checks(written[key])
        plot = out.with_name(out.stem + suffix + ".png")
        atomic_write_bytes(
            plot,
            ladder_png(
                [
                    {
                        "target": r["target_name"],
                        "auc": r["ground_truth"]["auc"],
                        "eps_tilde": r["eps_tilde"],
                    }
                    for r in view
                ]
            ),
        )
        plots[key] = plot.name
    written.pop("plot", None)  # results from before there were two plots
    atomic_write_json(out, {**written, "plots": plots})
    print(f"wrote {out} and {', '.join(plots.values())}")


def print_checks(summary: dict) -> None:
    print(
        f"\n{'target':18} {'eps~ mean':>9} {'[min, max]':>17} {'c_lb':>6} {'{c+e}_lb':>8} {'GT AUC':>7} "
        f"{'GT eps_lb':>9} {'GT TPR@1%':>9} {'LOSS AUC':>8}"
    )
    for name, t in summary["per_target"].items():
        print(
            f"{name:18} {t['eps_tilde_mean']:9.3f} [{t['eps_tilde_min']:7.3f}, {t['eps_tilde_max']:6.3f}] "
            f"{t['c_lb_mean']:6.3f} {t['c_plus_eps_lb_mean']:8.3f} {t['gt_auc_mean']:7.3f} {t['gt_eps_lb_mean']:9.3f} "
            f"{t['gt_tpr_at_1pct_fpr_mean']:9.3f} {t['loss_attack_auc_mean'] or float('nan'):8.3f}"
        )
    print(
        f"Spearman(mean eps_tilde, mean GT AUC) = {summary['spearman_eps_tilde_vs_gt_auc']:.3f} (goal >= 0.9: "
        f"{summary['spearman_goal_met']}); most leaking non-private: {summary['most_leaking_non_private']}, "
        f"eps_tilde > 0 on every seed: {summary['most_leaking_eps_tilde_above_0_every_seed']}; "
        f"DP eps=1 below it: {summary['dp_eps1_below_most_leaking']}"
    )
    print(
        f"Spearman(mean eps_tilde, mean LOSS-attack AUC vs real non-members) = "
        f"{summary['spearman_eps_tilde_vs_loss_attack_auc']}; "
        f"Spearman(mean eps_tilde, mean GT eps_lb) = {summary['spearman_eps_tilde_vs_gt_eps_lb']:.3f}; "
        f"Spearman(mean {{c+eps}}_lb, mean GT AUC) = {summary['spearman_c_plus_eps_lb_vs_gt_auc']:.3f}"
    )
    for group, entry in summary["per_baseline"].items():
        print(
            f"beside the {group} helper ({', '.join(entry['targets'])}): Spearman(mean eps_tilde, "
            f"mean GT AUC) = {entry['spearman_eps_tilde_vs_gt_auc']:.3f}"
        )
    print(
        f"diagnostic: Spearman(mean MIA AUC on the PANORAMIA test, mean GT AUC) = "
        f"{summary['spearman_mia_auc_vs_gt_auc']:.3f}; within each seed: "
        + ", ".join(
            f"seed {s}: Spearman {w['spearman']:.3f} (vs LOSS AUC {w.get('spearman_vs_loss_attack_auc', float('nan')):.3f}), top > DP eps 1 {w['most_leaking_above_dp_eps1']}"
            for s, w in summary["within_seed"].items()
        )
    )


if __name__ == "__main__":
    main()
