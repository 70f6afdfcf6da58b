"""The dp-train command once a task package is installed (privaudit.dp.cli checks that first):
the shared DP options, each task's own, and one report.json."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Protocol

import numpy as np
from privaudit.core import config as cfg
from privaudit.core.config import Config, setting
from privaudit.core.errors import CliParser, InputError, run_cli
from privaudit.core.rundir import atomic_write_json, prepare_output_dir
from privaudit.dp import cli as dp_cli
from privaudit.dp.cli import TASK_GROUP
from privaudit.dp.devices import DEVICE_HELP, is_device_name, resolve_device
from privaudit.dp.randomness import REPRODUCIBLE_WARNING, seed_for
from privaudit.dp.training import PrivacySettings


@dataclass(frozen=True)
class DpTrainConfig(Config):
    model: str = setting("cnn", doc="what to train (the installed tasks' models)")
    data: str | None = setting(None, doc="the task's data (default: its embedded data set)")
    limit: int = setting(
        2000, check=cfg.NON_NEGATIVE_INT, doc="use at most this many examples (0: all)"
    )
    epsilon: float = setting(4.0, check=cfg.POSITIVE, doc="target epsilon")
    delta: float = setting(1e-5, check=cfg.OPEN_UNIT, doc="target delta")
    epochs: int = setting(2, check=cfg.POSITIVE_INT, doc="passes over the data")
    batch_size: int = setting(128, check=cfg.POSITIVE_INT, doc="expected Poisson batch size")
    lr: float | None = setting(
        None, check=cfg.optional(cfg.POSITIVE), doc="learning rate (default: the task's)"
    )
    max_grad_norm: float = setting(1.0, check=cfg.POSITIVE, doc="per-sample clipping norm")
    clipping: str = setting("abadi", check=cfg.one_of("abadi", "automatic"), doc="clipping rule")
    accountant: str = setting("rdp", check=cfg.one_of("rdp", "prv"), doc="Opacus accountant")
    device: str = setting(
        "cpu",
        check=cfg.Check(is_device_name, "must be 'auto', 'cpu', 'cuda' or 'cuda:N'"),
        doc=DEVICE_HELP,
    )
    seed: int = setting(0, doc="seeds the split and the initial weights, never the DP noise")
    reproducible_noise: bool = setting(
        False,
        doc="derive the Poisson masks and noise from --seed too: "
        "reproducible and NOT private (tests only)",
    )
    out: str = setting("runs/dp-train", doc="run directory for report.json")

    def privacy(self) -> PrivacySettings:
        return PrivacySettings(
            self.epsilon,
            self.delta,
            self.max_grad_norm,
            self.clipping,
            self.accountant,
            self.reproducible_noise,
        )


def split_indices(count: int, limit: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Training and test indices: a shuffle from the seed's "split" stream, cut 80/20 after
    keeping at most `limit` (0: all)."""
    order = np.random.default_rng(seed_for(seed, "split")).permutation(count)
    if limit:
        order = order[:limit]
    cut = int(0.8 * len(order))
    if cut < 1 or cut == len(order):
        raise InputError(
            f"dp-train needs at least 2 examples to split into training and test sets, got {len(order)}."
        )
    return order[:cut], order[cut:]


class TrainingTask(Protocol):
    """What a package registers under the `privaudit.dp_train` entry points."""

    models: tuple[str, ...]
    options: type | None  # a Config dataclass of the task's own fields, or None

    def run(self, config: DpTrainConfig, options, device) -> dict: ...


def _tasks() -> dict[str, TrainingTask]:
    tasks = {}
    for point in entry_points(group=TASK_GROUP):
        task = point.load()()
        for model in task.models:
            if model in tasks:
                raise RuntimeError(
                    f"dp-train model {model!r} is registered twice (entry point {point.name})."
                )
            tasks[model] = task
    return tasks


def _parser(tasks: dict[str, TrainingTask]):
    parser = CliParser(
        prog="dp-train",
        description=dp_cli.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cfg.add_config_arguments(parser, "epochs=3")
    common = cfg.add_config_flags(parser, DpTrainConfig)
    per_task: dict[int, dict[str, str]] = {}
    for task in {id(t): t for t in tasks.values()}.values():
        if task.options is not None:
            group = parser.add_argument_group(f"{', '.join(task.models)} options")
            per_task[id(task)] = cfg.add_config_flags(group, task.options)
    return parser, common, per_task


def run(argv: Sequence[str] | None = None) -> int:
    def body() -> int:
        tasks = _tasks()
        parser, common, per_task = _parser(tasks)
        args = parser.parse_args(argv)
        config = cfg.load_config(
            DpTrainConfig, args.config, args.overrides, cfg.flag_values(args, common)
        )
        if config.model not in tasks:
            raise InputError(
                f"dp-train has no model {config.model!r}; installed: {', '.join(sorted(tasks))}."
            )
        task = tasks[config.model]
        for other, dests in per_task.items():
            given = cfg.flag_values(args, dests)
            if other != id(task) and given:
                raise InputError(
                    f"--{next(iter(given)).replace('_', '-')} does not apply to the {config.model} model."
                )
        options = (
            cfg.load_config(task.options, flags=cfg.flag_values(args, per_task[id(task)]))
            if task.options
            else None
        )
        out = prepare_output_dir(config.out)
        report = task.run(config, options, resolve_device(config.device))
        atomic_write_json(out / "report.json", report)
        quality = ", ".join(f"{k.replace('_', ' ')} {v:.3f}" for k, v in report["quality"].items())
        print(
            f"{quality} at epsilon {report['privacy']['epsilon_spent']:.2f} (delta {config.delta}); "
            f"report: {Path(out) / 'report.json'}"
        )
        if config.reproducible_noise:
            print(f"warning: {REPRODUCIBLE_WARNING}")
        return 0

    return run_cli(body)
