"""Benchmark: how much of the tabular ladder's eps_tilde noise is the split of one audit set, and
does eps_tilde rank the targets once that noise is averaged away?

One seed's pieces are trained as the audit trains them (the splits, CTGAN with the rejection
filter, the synthetic-data helper, every target of tools/bench/ladder.py's tabular ladder). Then
the audit members and their synthetic partners are cut into train and test halves `--splits`
ways (split 0 is the audit's own cut: the first half trains), each with fresh test coins, and the
baseline and MIA classifiers are trained and read on each: c_lb, eps_tilde and the MIA's AUC per
split, and their mean and sd per target. Prints a table, writes JSON.

    uv run python tools/bench/tabular_resplits.py [--seed 0] [--splits 10]
        [--out tools/bench/results/tabular_resplits.json]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from privaudit.attacks.panoramia.driver import cut_splits, split_sizes
from privaudit.core.bounds import panoramia_bounds
from privaudit.core.metrics import auc
from privaudit.core.rundir import atomic_write_json, provenance
from privaudit.dp.randomness import seed_for
from privaudit.tabular.attack import TabularAttack
from privaudit.tabular.audit import load_table, target_settings
from privaudit.tabular.config import TabularAuditConfig
from privaudit.tabular.generator import SdvGenerator
from privaudit.tabular.models import FeatureEncoder, TrainSettings
from privaudit.tabular.targets import FrameExamples, MLPFamily

sys.path.insert(0, str(Path(__file__).parent))
from ladder import TABULAR_LADDER  # noqa: E402  (the same targets as the ladder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--splits", type=int, default=10)
    parser.add_argument("--out", default="tools/bench/results/tabular_resplits.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    seed, config = args.seed, TabularAuditConfig(seed=args.seed)
    table = load_table(config)
    data = FrameExamples(table.frame, table)
    sizes = split_sizes(len(data), [config.generator_rows, config.audit_members, 0])
    generator_split, members, _ = cut_splits(data, sizes, seed)
    encoder = FeatureEncoder(table, generator_split.concat(members).frame)

    started = time.perf_counter()
    generator = SdvGenerator(
        table,
        synthesizer="ctgan",
        epochs=config.ctgan_epochs,
        batch_size=config.synthesizer_batch_size,
        rejection_quantile=config.rejection_quantile,
    )
    generator.fit(generator_split, None, seed_for(seed, "generator"))  # sdv keeps no checkpoint
    n = len(members)
    synthetic = generator.sample(2 * n, None, seed_for(seed, "synthetic"))
    others, helper_rows = synthetic.take(np.arange(n)), synthetic.take(np.arange(n, 2 * n))
    helper_family = MLPFamily(
        TrainSettings(config.hidden, config.helper_epochs, config.lr, config.batch_size),
        table,
        "helper",
    )
    helper_family.encoder = encoder
    helper = helper_family.target(helper_family.train(helper_rows, seed_for(seed, "helper"))[0])
    print(f"generator and helper: {time.perf_counter() - started:.0f} s", flush=True)

    both = members.concat(others)
    n_train = n // 2
    results = {}
    for name, overrides in TABULAR_LADDER.items():
        target_config = config.replace(**overrides)
        family = MLPFamily(
            target_settings(target_config), table, "target", label_noise=target_config.label_noise
        )
        family.encoder = encoder
        model, _ = family.train(generator_split.concat(members), seed_for(seed, "target"))
        signals = {
            "baseline": helper.signals(both.inputs, both.labels),
            "mia": family.target(model).signals(both.inputs, both.labels),
        }
        rows = []
        for split in range(args.splits):
            pairs = (
                np.arange(n)
                if split == 0
                else np.random.default_rng(seed_for(seed, "resplit", split)).permutation(n)
            )
            train, test = pairs[:n_train], pairs[n_train:]
            train_index = np.r_[train, n + train]
            is_member = np.r_[np.ones(n_train), np.zeros(n_train)]
            is_real = np.random.default_rng(seed_for(seed, "coins", split)).random(len(test)) < 0.5
            test_index = np.where(is_real, test, n + test)
            columns = {}
            for position, (column, signal) in enumerate(signals.items(), start=1):
                attack = TabularAttack(
                    encoder,
                    iterations=config.classifier_iterations,
                    seed=seed_for(seed, "classifier", position, split),
                )
                attack.fit(both.take(train_index), signal.take(train_index), is_member)
                columns[column] = attack.score(both.take(test_index), signal.take(test_index))
            bounds = panoramia_bounds(is_real.astype(int), columns, baseline="baseline")
            rows.append(
                {
                    "c_lb": bounds["c_lb"],
                    "eps_tilde": bounds["eps_tilde"]["mia"],
                    "auc_mia": auc(is_real, columns["mia"]),
                    "auc_baseline": auc(is_real, columns["baseline"]),
                }
            )
        tilde = [r["eps_tilde"] for r in rows]
        results[name] = {
            "eps_tilde_mean": statistics.mean(tilde),
            "eps_tilde_sd": statistics.stdev(tilde),
            "eps_tilde_audit_split": tilde[0],
            "auc_mia_mean": statistics.mean(r["auc_mia"] for r in rows),
            "splits": rows,
        }
        print(
            f"{name:16} eps_tilde mean {statistics.mean(tilde):6.3f} sd {statistics.stdev(tilde):.3f} "
            f"(audit split {tilde[0]:6.3f})  MIA AUC {results[name]['auc_mia_mean']:.3f}",
            flush=True,
        )
    c_lb = [r["c_lb"] for r in next(iter(results.values()))["splits"]]
    print(f"c_lb over the splits: mean {statistics.mean(c_lb):.3f} sd {statistics.stdev(c_lb):.3f}")
    atomic_write_json(
        args.out,
        {
            "seed": seed,
            "splits": args.splits,
            "config": config.as_dict(),
            "c_lb_mean": statistics.mean(c_lb),
            "c_lb_sd": statistics.stdev(c_lb),
            "targets": results,
            "seconds": round(time.perf_counter() - started, 1),
            "provenance": provenance(seed=seed),
        },
    )


if __name__ == "__main__":
    main()
