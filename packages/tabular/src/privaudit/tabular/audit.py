"""The PANORAMIA audit of a tabular model, with every expensive stage cached in the run directory."""

from __future__ import annotations

import html
import io
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from privaudit.core.errors import InputError
from privaudit.core.report import (
    ReportSection,
    ground_truth_section,
    ground_truth_summary,
    write_report,
)
from privaudit.core.rundir import StageCache, atomic_write_bytes, atomic_write_json
from privaudit.dp.randomness import seed_for
from privaudit.tabular import data as tabular_data
from privaudit.tabular.config import TabularAuditConfig
from privaudit.tabular.generator import fit_and_sample, quality
from privaudit.tabular.models import FeatureEncoder, TabularMLP, TrainSettings, train_mlp
from privaudit.tabular.targets import EncodedTorchTarget, Target, load_user_target
from sklearn.ensemble import HistGradientBoostingClassifier

ATTACK_INPUTS = "record (features + one-hot label) + float64 cross-entropy"


def _say(message: str) -> None:
    print(f"[audit-tabular] {message}", file=sys.stderr, flush=True)


class RunCache(StageCache):
    """The run's stage cache, with the MLPs (state dicts, loaded weights-only)."""

    def mlp(self, path: Path, hidden, in_features: int, n_classes: int, build: Callable[[], TabularMLP]) -> TabularMLP:
        if path.exists():
            model = TabularMLP(in_features, hidden, n_classes)
            model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            return model.eval()
        model = build()
        buffer = io.BytesIO()
        torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, buffer)
        atomic_write_bytes(path, buffer.getvalue())
        return model


def _data_identity(path: str | None) -> dict:
    """What the cache keys record about the data: its path, size and modification time."""
    if path is None:
        return {"data": "uci-adult"}
    stat = Path(path).stat()
    return {"data": str(Path(path).resolve()), "size": stat.st_size, "mtime": stat.st_mtime_ns}


def load_table(config: TabularAuditConfig) -> tabular_data.Table:
    if config.data is None:
        return tabular_data.prepare_table(tabular_data.adult(), config.label, source="UCI Adult", min_rows=config.min_rows)
    frame = tabular_data.read_table(config.data)
    return tabular_data.prepare_table(frame, config.label, source=f"data file {config.data}", min_rows=config.min_rows)


def _splits(config: TabularAuditConfig, table: tabular_data.Table) -> tabular_data.Splits:
    if config.model is None:
        return tabular_data.split_table(table, generator_rows=config.generator_rows, audit_members=config.audit_members,
                                        non_members=config.non_members, seed=seed_for(config.seed, "split"))
    # A user's model was trained on the whole file: every row is a member; non-members come separately.
    splits = tabular_data.split_table(table, generator_rows=config.generator_rows, audit_members=config.audit_members,
                                      non_members=0, seed=seed_for(config.seed, "split"))
    non_members = splits.non_members
    if config.non_members_data is not None:
        frame = tabular_data.read_table(config.non_members_data)
        missing = [c for c in table.frame.columns if c not in frame.columns]
        if missing:
            raise InputError(f"non-member file {config.non_members_data} lacks column {missing[0]!r}.")
        non_members = frame[list(table.frame.columns)].dropna(subset=[table.label]).reset_index(drop=True)
        for column in table.categorical + [table.label]:
            non_members[column] = non_members[column].astype(str)
    return tabular_data.Splits(splits.generator, splits.audit_members, non_members)


def _target_settings(config: TabularAuditConfig) -> TrainSettings:
    if config.target == "overfit":
        return TrainSettings(config.overfit_hidden, config.overfit_epochs, config.lr, config.batch_size)
    if config.target == "dp":
        return TrainSettings(config.hidden, config.epochs, config.dp_lr, config.dp_batch_size,
                             dp_epsilon=config.epsilon, dp_delta=config.delta, max_grad_norm=config.max_grad_norm)
    return TrainSettings(config.hidden, config.epochs, config.lr, config.batch_size)


def _attack_scores(features_real, loss_real, features_other, loss_other, test_fraction, iterations, seed) -> pd.DataFrame:
    """Train a classifier per signal on a real/other mix; score a held-out mix where each point is real w.p. 1/2.

    `loss_real`/`loss_other` map a column name to the loss used beside the features for that column.
    """
    rng = np.random.default_rng(seed_for(seed, "test-mix"))
    n = min(len(features_real), len(features_other))
    n_train = int(round(n * (1 - test_fraction)))
    train_idx, test_idx = np.arange(n_train), np.arange(n_train, n)
    # PANORAMIA's test: slot i holds the real point with probability 1/2, else the other one.
    pick_real = rng.random(len(test_idx)) < 0.5
    scores = {"member": pick_real.astype(int)}
    for column in loss_real:
        def rows(features, loss, idx):
            return np.column_stack([features[idx], loss[idx]])

        x_train = np.vstack([rows(features_real, loss_real[column], train_idx),
                             rows(features_other, loss_other[column], train_idx)])
        y_train = np.r_[np.ones(n_train), np.zeros(n_train)]
        x_test = np.where(pick_real[:, None], rows(features_real, loss_real[column], test_idx),
                          rows(features_other, loss_other[column], test_idx))
        classifier = HistGradientBoostingClassifier(max_iter=iterations, random_state=seed_for(seed, "classifier", len(scores)) % 2**32)
        classifier.fit(x_train, y_train)
        scores[column] = classifier.predict_proba(x_test)[:, 1]
    return pd.DataFrame(scores)


def _quality_section(q: dict) -> ReportSection:
    rows = "".join(
        f"<tr><td>{html.escape(s['column'])}</td><td>{html.escape(s['metric'])}</td><td>{s['score']:.3f}</td></tr>"
        for s in q["column_shapes"]
    )
    props = ", ".join(f"{html.escape(k)} {v:.3f}" for k, v in q["properties"].items())
    body = (f"<p>sdv quality score of the CTGAN samples against the generator's training rows: "
            f"<b>{q['score']:.3f}</b> ({props}).</p>"
            f"<table><tr><th>column</th><th>metric</th><th>shape score</th></tr>{rows}</table>")
    return ReportSection("Generator (CTGAN) quality", body)


class _StageTimer:
    """Seconds spent per stage of this run (a cached stage takes about nothing)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def done(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = round(now - self._last, 2)
        self._last = now


def run_audit(config: TabularAuditConfig) -> dict:
    """Run the whole audit; returns the main report's dict (its `extra` holds target, generator, ground truth)."""
    torch.set_num_threads(config.torch_threads)
    timer = _StageTimer()
    out_dir = Path(config.out_dir)
    cache = RunCache(Path(config.cache_dir) if config.cache_dir else out_dir / "cache")
    table = load_table(config)
    splits = _splits(config, table)
    if len(splits.audit_members) < 50 or len(splits.generator) < 50:
        raise InputError(f"{table.source} is too small: the audit needs at least 50 generator rows and 50 audit members.")
    identity = {**_data_identity(config.data), "label": config.label, "seed": config.seed,
                "splits": [config.generator_rows, config.audit_members, config.non_members]}
    if config.non_members_data is not None:
        identity["non_members_data"] = _data_identity(config.non_members_data)
    encoder = FeatureEncoder(table, splits.target_train)
    n_in, n_classes = len(encoder.features(splits.generator.iloc[:1])[0]), len(table.classes)
    _say(f"{table.source}: {len(splits.generator)} generator rows, {len(splits.audit_members)} audit members, "
         f"{len(splits.non_members)} real non-members, {n_in} encoded features")

    if config.model is not None:
        target: Target = load_user_target(config.model, config.model_spec, table)
        target_name = "model"
        target_key = {**identity, "model": _data_identity(config.model), "spec": config.model_spec}
        target_info: dict = {"kind": "user", "model": config.model}
    else:
        settings = _target_settings(config)
        target_name = config.target
        target_key = {**identity, "settings": settings.__dict__}
        spent_path = cache.path("target-epsilon", target_key, "json")

        def build_target():
            _say(f"training the {config.target} target on {len(splits.target_train)} rows")
            x, y = encoder.features(splits.target_train), encoder.labels(splits.target_train)
            model, spent = train_mlp(x, y, n_classes, settings, seed=seed_for(config.seed, "target"), desc="target")
            atomic_write_json(spent_path, {"spent_epsilon": spent})
            return model

        model = cache.mlp(cache.path("target", target_key, "pt"), settings.hidden, n_in, n_classes, build_target)
        target = EncodedTorchTarget(model, encoder)
        target_info = {"kind": config.target, "hidden": list(settings.hidden), "epochs": settings.epochs,
                       "target_epsilon": settings.dp_epsilon, "delta": settings.dp_delta if settings.dp_epsilon else None,
                       "spent_epsilon": json.loads(spent_path.read_text())["spent_epsilon"]}
    timer.done("target")
    n_audit = len(splits.audit_members)
    for name, part in (("member", splits.audit_members), ("non_member", splits.non_members)):
        if len(part):
            target_info[f"{name}_loss_mean"] = float(target.loss(part).mean())

    gen_key = {**identity, "ctgan_epochs": config.ctgan_epochs, "ctgan_batch_size": config.ctgan_batch_size}

    def build_synthetic():
        _say(f"training CTGAN on {len(splits.generator)} rows for {config.ctgan_epochs} epochs")
        return fit_and_sample(table, splits.generator, 2 * n_audit, epochs=config.ctgan_epochs,
                              batch_size=config.ctgan_batch_size, seed=seed_for(config.seed, "generator"),
                              sample_seed=seed_for(config.seed, "synthetic"))

    synthetic = cache.frame(cache.path("synthetic", gen_key, "parquet"), build_synthetic)
    synthetic_audit, synthetic_helper = synthetic.iloc[:n_audit], synthetic.iloc[n_audit:]
    quality_path = cache.path("quality", gen_key, "json")
    if quality_path.exists():
        generator_quality = json.loads(quality_path.read_text())
    else:
        _say("scoring the generator with sdv's quality report")
        generator_quality = quality(table, splits.generator, synthetic_audit.iloc[: len(splits.generator)])
        atomic_write_json(quality_path, generator_quality)
    timer.done("generator")

    helper_settings = TrainSettings(config.hidden, config.helper_epochs, config.lr, config.batch_size)

    def build_helper():
        _say(f"training the helper on {len(synthetic_helper)} synthetic rows")
        x, y = encoder.features(synthetic_helper), encoder.labels(synthetic_helper)
        return train_mlp(x, y, n_classes, helper_settings, seed=seed_for(config.seed, "helper"), desc="helper")[0]

    helper_key = {**gen_key, "helper": helper_settings.__dict__}
    helper = EncodedTorchTarget(
        cache.mlp(cache.path("helper", helper_key, "pt"), helper_settings.hidden, n_in, n_classes, build_helper), encoder)
    timer.done("helper")

    mia_column = f"mia_{target_name}_pred"
    # ATTACK_INPUTS names what the classifiers see; change it when that changes, so old scores are not reused
    attack_key = {"target": target_key, "helper": helper_key, "inputs": ATTACK_INPUTS,
                  "test_fraction": config.test_fraction, "iterations": config.classifier_iterations}

    def attack(others: pd.DataFrame, kind: str, role: str):
        _say(f"training baseline and MIA classifiers (real members vs {kind})")
        losses = {name: {"baseline_pred": helper.loss(frame), mia_column: target.loss(frame)}
                  for name, frame in (("real", splits.audit_members), ("other", others))}
        return _attack_scores(encoder.records(splits.audit_members), losses["real"], encoder.records(others),
                              losses["other"], config.test_fraction, config.classifier_iterations,
                              seed_for(config.seed, role))

    common = {"alpha": config.alpha, "config": config.as_dict()}
    ground_truth = None
    if len(splits.non_members):
        gt_scores = cache.frame(cache.path("scores-ground-truth", {**attack_key, "n": len(splits.non_members)}, "parquet"),
                                lambda: attack(splits.non_members, "real non-members", "ground-truth"))
        gt_dir = out_dir / "ground-truth"
        gt_report = write_report(gt_scores, gt_dir, title=f"privaudit tabular ground truth: {target_name} target vs real non-members",
                                 extra={"target": target_info}, **common)
        ground_truth = ground_truth_summary(gt_report, gt_dir)
        timer.done("ground_truth_attacks")

    scores = cache.frame(cache.path("scores-panoramia", {**attack_key, **gen_key}, "parquet"),
                         lambda: attack(synthetic_audit.reset_index(drop=True), "synthetic non-members", "panoramia"))
    timer.done("panoramia_attacks")
    sections = [_quality_section(generator_quality)] + ([ground_truth_section(ground_truth)] if ground_truth else [])
    report = write_report(scores, out_dir, title=f"privaudit tabular PANORAMIA audit: {target_name} target on {table.source}",
                          sections=sections,
                          extra={"target": target_info, "generator_quality": generator_quality, "ground_truth": ground_truth,
                                 "stage_seconds": timer.seconds},
                          **common)
    return report
