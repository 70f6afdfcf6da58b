"""The PANORAMIA audit (Kazmi et al., 2024), once for every modality: splits, the target, the
generator's synthetic non-members, the helper, the baseline and MIA classifiers on a test mix
where each slot holds a real member with probability 1/2, the ground truth against real
non-members, every stage cached under a stable key, and the report.

A modality supplies the data, the target's model family, a generator and a learned attack
(protocols.py); everything else happens here."""

from __future__ import annotations

import html
import io
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from privaudit.attacks.panoramia.protocols import (
    Examples,
    Generator,
    LearnedAttack,
    ModelFamily,
    Target,
)
from privaudit.core import metrics
from privaudit.core.bounds import default_guess_grid
from privaudit.core.errors import InputError
from privaudit.core.report import (
    ReportSection,
    ground_truth_section,
    ground_truth_summary,
    write_report,
)
from privaudit.core.rundir import (
    StageCache,
    atomic_write_bytes,
    atomic_write_json,
    prepare_output_dir,
)
from privaudit.dp.randomness import seed_for
from torch import nn


@dataclass
class TrainedTarget:
    """A target trained here, on the generator split and the audit members."""

    family: ModelFamily
    info: dict


@dataclass
class GivenTarget:
    """A model trained elsewhere on every example of the data; real non-members, if any, come
    from the user (`PanoramiaInputs.non_members`)."""

    target: Target
    info: dict
    key: dict


@dataclass
class PanoramiaInputs:
    modality: str  # "image", "tabular", "text": names logs and titles
    source: str  # what the data is, for people
    data: Examples
    data_key: dict  # what identifies the data in cache keys
    target: TrainedTarget | GivenTarget
    target_name: str
    generator: Generator
    helper: ModelFamily
    attack: Callable[[int, str], LearnedAttack]  # (seed, description) -> a fresh classifier
    attack_key: dict  # the classifiers' settings, for the scores' cache keys
    non_members: Examples | None = None
    # called with the target's training examples before anything is trained or scored (a table
    # fits its feature encoding on them)
    prepare: Callable[[Examples], None] | None = None
    # closed-form attacks that need no training (a language model's LOSS, zlib, min-k%): called with
    # the test examples of each table and the target, they return score columns added to both
    # tables, and the report lists every ground-truth column's TPR at low FPR
    closed_form: Callable[[Examples, Target], dict[str, np.ndarray]] | None = None
    # the MIA also sees the helper's signals (LearnedAttack's `reference`): the baseline's view
    # plus the target's, so their difference is the target's alone
    mia_reference: bool = False


@dataclass(frozen=True)
class PanoramiaSettings:
    seed: int
    out_dir: str
    cache_dir: str | None
    generator_examples: int
    audit_members: int
    non_members: int
    helper_examples: int | None  # None: as many synthetic examples as audit members
    # what the baseline's helper model trains on: "synthetic" examples (the PANORAMIA paper), or
    # the "generator-split" members with the target's own recipe when it is trained here — a
    # reference model that never saw the audit members, so it shares the target's view of real
    # against generated data and the MIA's edge over the baseline is the audit members' alone
    helper_data: str
    test_fraction: float
    alpha: float
    min_examples: int  # the generator split and the audit members each need at least this many
    config: dict  # the modality's resolved config, written to config.json

    @classmethod
    def from_config(
        cls, config, *, generator_examples: int, helper_examples: int | None, min_examples: int
    ) -> PanoramiaSettings:
        """From a modality's config, whose seed, out_dir, cache_dir, audit_members, non_members,
        test_fraction and alpha fields every PANORAMIA audit shares."""
        return cls(
            seed=config.seed,
            out_dir=config.out_dir,
            cache_dir=config.cache_dir,
            generator_examples=generator_examples,
            audit_members=config.audit_members,
            non_members=config.non_members,
            helper_examples=helper_examples,
            helper_data=config.helper_data,
            test_fraction=config.test_fraction,
            alpha=config.alpha,
            min_examples=min_examples,
            config=config.as_dict(),
        )


class RunCache(StageCache):
    """The stage cache, with torch modules and examples, recording which stages were reused."""

    def __init__(self, root: Path):
        super().__init__(root)
        self.reused: list[str] = []

    def module(
        self, path: Path, make: Callable[[], nn.Module], build: Callable[[], nn.Module]
    ) -> nn.Module:
        if path.exists():
            self.reused.append(path.name.split("-")[0])
            model = make()
            model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            return model.eval()
        model = build()
        buffer = io.BytesIO()
        torch.save({k: v.detach().cpu().clone() for k, v in model.state_dict().items()}, buffer)
        atomic_write_bytes(path, buffer.getvalue())
        return model

    def examples(self, path: Path, like: Examples, build: Callable[[], Examples]) -> Examples:
        if path.exists():
            self.reused.append(path.name.split("-")[0])
            return like.load(path)
        examples = build()
        examples.save(path)
        return examples

    def frame(self, path: Path, build) -> pd.DataFrame:
        if path.exists():
            self.reused.append(path.name.split("-")[0])
        return super().frame(path, build)

    def json(self, path: Path, build):
        if path.exists():
            self.reused.append(path.name.split("-")[0])
        return super().json(path, build)


def split_sizes(n: int, wanted: list[int]) -> list[int]:
    """`wanted` shrunk in proportion when the data holds fewer than their sum; the rows rounding
    leaves over go to the largest remainders, so no example is dropped."""
    wanted_array = np.array(wanted, dtype=np.float64)
    scaled = wanted_array * min(1.0, n / max(wanted_array.sum(), 1))
    sizes = np.floor(scaled).astype(int)
    leftover = min(n, int(wanted_array.sum())) - sizes.sum()
    sizes[np.argsort(sizes - scaled, kind="stable")[:leftover]] += 1
    return sizes.tolist()


def cut_splits(data: Examples, sizes: list[int], seed: int) -> list[Examples]:
    """The audit's splits of `data`, of `sizes` in order (generator split, audit members, real
    non-members), from the run seed's "split" permutation."""
    order = np.random.default_rng(seed_for(seed, "split")).permutation(len(data))
    cuts = np.cumsum([0, *sizes])
    return [data.take(order[a:b]) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]


def mixed_test(
    real: Examples, other: Examples, seed: int
) -> tuple[Examples, np.ndarray, np.ndarray]:
    """PANORAMIA's test: slot i holds real[i] with probability 1/2, else other[i]. Returns the
    mixed examples, whether each is real, and its index into real.concat(other)."""
    is_real = np.random.default_rng(seed_for(seed, "test-mix")).random(len(real)) < 0.5
    index = np.where(is_real, np.arange(len(real)), len(real) + np.arange(len(real)))
    return real.concat(other).take(index), is_real, index


class _Stages:
    """Seconds per stage of this run (a cached stage takes about nothing)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def done(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = round(now - self._last, 2)
        self._last = now


def run_panoramia(inputs: PanoramiaInputs, settings: PanoramiaSettings) -> dict:
    """The whole audit; returns the main report's dict (`extra`: target, generator quality,
    ground truth, the stages and which came from the cache)."""

    def say(message: str) -> None:
        print(f"[audit-{inputs.modality}] {message}", file=sys.stderr, flush=True)

    out_dir = prepare_output_dir(settings.out_dir)
    cache = RunCache(Path(settings.cache_dir) if settings.cache_dir else out_dir / "cache")
    stages = _Stages()
    seed = settings.seed
    given = isinstance(inputs.target, GivenTarget)

    # ---- splits: the generator's members, the audit members, real non-members (none of the data
    # is a non-member of a given model, which was trained on all of it)
    user_non_members = given or inputs.non_members is not None
    wanted = [
        settings.generator_examples,
        settings.audit_members,
        0 if user_non_members else settings.non_members,
    ]
    sizes = split_sizes(len(inputs.data), wanted)
    if min(sizes[:2]) < settings.min_examples:
        raise InputError(
            f"{inputs.source} is too small: the audit needs at least {settings.min_examples} generator "
            f"examples and {settings.min_examples} audit members (it has {len(inputs.data)} examples)."
        )
    generator_split, members, held_out = cut_splits(inputs.data, sizes, seed)
    non_members = inputs.non_members if user_non_members else (held_out if len(held_out) else None)
    identity = {**inputs.data_key, "seed": seed, "splits": wanted}
    say(
        f"{inputs.source}: {len(generator_split)} generator examples, {len(members)} audit members, "
        f"{0 if non_members is None else len(non_members)} real non-members"
    )

    trained_on = generator_split.concat(members)
    if inputs.prepare is not None:
        inputs.prepare(trained_on)

    # ---- target
    if given:
        target, target_info, target_key = (
            inputs.target.target,
            dict(inputs.target.info),
            inputs.target.key,
        )
    else:
        family = inputs.target.family
        target_key = {**identity, "family": family.key}
        record_path = cache.path("target-privacy", target_key, "json")

        def build_target():
            say(f"training the {inputs.target_name} target on {len(trained_on)} examples")
            model, privacy = family.train(trained_on, seed_for(seed, "target"))
            atomic_write_json(record_path, {"privacy": privacy})
            return model

        model = cache.module(cache.path("target", target_key, "pt"), family.build, build_target)
        privacy = json.loads(record_path.read_text())["privacy"] if record_path.exists() else None
        target = family.target(model)
        target_info = {
            **inputs.target.info,
            "trained_on": len(trained_on),
            "parameters": sum(p.numel() for p in model.parameters()),
        }
        if privacy is not None:
            target_info |= {
                "target_epsilon": privacy["target_epsilon"],
                "delta": privacy["delta"],
                "spent_epsilon": privacy["epsilon_spent"],
                "dp": privacy,
            }
    losses = {}
    for name, part in (("member", members), ("non_member", non_members)):
        if part is not None and len(part):
            signals = target.signals(part.inputs, part.labels)
            losses[name] = signals.loss[:, 0]
            target_info[f"{name}_loss_mean"] = float(signals.loss[:, 0].mean())
            if signals.correct is not None:
                target_info[f"{name}_accuracy"] = round(float(signals.correct[:, 0].mean()), 4)
    if len(losses) == 2:  # the LOSS attack (low loss = member), untrained: a second ground truth
        is_member = np.r_[np.ones(len(losses["member"])), np.zeros(len(losses["non_member"]))]
        loss_auc = metrics.auc(is_member, -np.r_[losses["member"], losses["non_member"]])
        target_info["loss_attack_auc"] = round(float(loss_auc), 4)
    stages.done("target")

    # ---- generator: trained on the generator split only; its samples stand in for non-members
    generator = inputs.generator
    n_helper = settings.helper_examples if settings.helper_examples is not None else len(members)
    generator_key = {**identity, "generator": generator.key}
    synthetic_key = {**generator_key, "n": len(members), "helper_examples": n_helper}

    fitted = []

    def fit_generator():  # only when a stage that needs the trained generator is not cached
        if not fitted:
            say(f"training the {generator.name} generator on {len(generator_split)} examples")
            generator.fit(
                generator_split,
                cache.path("generator", generator_key, "pt"),
                seed_for(seed, "generator"),
            )
            fitted.append(True)

    def build_synthetic():
        fit_generator()
        labels = None
        if (
            generator.conditional
        ):  # audit samples copy the members' labels; helper samples are class-balanced
            classes = int(inputs.data.labels.max()) + 1
            labels = np.concatenate([np.asarray(members.labels), np.arange(n_helper) % classes])
        say(f"sampling {len(members) + n_helper} synthetic examples")
        return generator.sample(len(members) + n_helper, labels, seed_for(seed, "synthetic"))

    synthetic = cache.examples(
        cache.path("synthetic", synthetic_key, "pt"), members, build_synthetic
    )
    synthetic_audit = synthetic.take(np.arange(len(members)))
    synthetic_helper = synthetic.take(np.arange(len(members), len(synthetic)))

    def build_quality():
        fit_generator()
        say(f"measuring the {generator.name} generator's quality")
        return generator.quality(
            generator_split,
            synthetic_audit,
            non_members if non_members is not None else members,
            seed_for(seed, "quality-features"),
        )

    quality = cache.json(
        cache.path("quality", {**synthetic_key, "quality": generator.quality_key}, "json"),
        build_quality,
    )
    stages.done("generator")

    # ---- helper: a model of the target's kind trained on synthetic examples, or (helper_data
    # "generator-split") on the generator's real members with the target's recipe
    if settings.helper_data == "generator-split":
        helper_family = inputs.helper if given else inputs.target.family
        helper_examples, helper_kind = generator_split, "generator-split (real member)"
        helper_key = {**identity, "helper": helper_family.key, "helper_data": "generator-split"}
    else:
        helper_family, helper_examples, helper_kind = inputs.helper, synthetic_helper, "synthetic"
        helper_key = {**synthetic_key, "helper": helper_family.key}

    def build_helper():
        say(
            f"training the {helper_family.name} helper on {len(helper_examples)} {helper_kind} "
            "examples"
        )
        return helper_family.train(helper_examples, seed_for(seed, "helper"))[0]

    helper = helper_family.target(
        cache.module(cache.path("helper", helper_key, "pt"), helper_family.build, build_helper)
    )
    stages.done("helper")

    # ---- baseline (helper signals) and MIA (target signals), each a learned classifier
    mia_column = f"mia_{inputs.target_name.replace('-', '_').replace('.', '_')}_pred"
    models = {"baseline_pred": helper, mia_column: target}
    attack_key = {
        "target": target_key,
        "helper": helper_key,
        "attack": inputs.attack_key,
        "test_fraction": settings.test_fraction,
    }
    if inputs.mia_reference:
        attack_key["mia_reference"] = "helper"

    def scores_against(others: Examples, role: str, kind: str) -> pd.DataFrame:
        say(f"training the baseline and MIA classifiers (real members vs {kind})")
        n = min(len(members), len(others))
        n_train = int(round(n * (1 - settings.test_fraction)))
        real, other = members.take(np.arange(n)), others.take(np.arange(n))
        train_index = np.r_[np.arange(n_train), n + np.arange(n_train)]
        train_examples = real.concat(other).take(train_index)
        is_member = np.r_[np.ones(n_train), np.zeros(n_train)]
        test, is_real, test_index = mixed_test(
            real.take(np.arange(n_train, n)),
            other.take(np.arange(n_train, n)),
            seed_for(seed, role),
        )
        table = {"member": is_real.astype(int)}
        test_order = np.r_[np.arange(n_train, n), n + np.arange(n_train, n)][test_index]
        helper_signals = None
        for position, (column, model) in enumerate(models.items(), start=1):
            both = model.signals(real.inputs, real.labels).concat(
                model.signals(other.inputs, other.labels)
            )
            reference = helper_signals if column == mia_column and inputs.mia_reference else None
            attack = inputs.attack(
                seed_for(seed_for(seed, role), "classifier", position), f"{role}: {column}"
            )
            # only a modality with mia_reference gets the keyword, so the others' attacks need not take it
            train_reference = (
                {} if reference is None else {"reference": reference.take(train_index)}
            )
            test_reference = {} if reference is None else {"reference": reference.take(test_order)}
            attack.fit(train_examples, both.take(train_index), is_member, **train_reference)
            table[column] = attack.score(test, both.take(test_order), **test_reference)
            if model is helper:
                helper_signals = both
        if inputs.closed_form is not None:
            table.update(inputs.closed_form(test, target))
        return pd.DataFrame(table)

    # each test slot holds a real member with probability 1/2 by design: the bounds' prior. The
    # ground truth audits a DP target at its own delta, so its sound bound compares with the
    # (eps, delta) it spent; PANORAMIA reads every target at delta = 0, so that eps_tilde (a
    # difference of two bounds, not a bound) compares across targets (tools/bench/ladder.py).
    dp = None
    if "spent_epsilon" in target_info:
        dp = {key: target_info[key] for key in ("spent_epsilon", "target_epsilon", "delta")}
    truth_delta = dp["delta"] if dp else 0.0
    common = {"alpha": settings.alpha, "config": settings.config, "member_prior": 0.5, "dp": dp}
    ground_truth = low_fpr = None
    if non_members is not None and len(non_members):
        gt_scores = cache.frame(
            cache.path("scores-ground-truth", {**attack_key, "n": len(non_members)}, "parquet"),
            lambda: scores_against(non_members, "ground-truth", "real non-members"),
        )
        gt_dir = out_dir / "ground-truth"
        gt_report = write_report(
            gt_scores,
            gt_dir,
            extra={"target": target_info},
            kind="ground_truth",
            delta=truth_delta,
            guess_grid=default_guess_grid(truth_delta, None, None),
            **common,
            title=f"privaudit {inputs.modality} ground truth: {inputs.target_name} target vs real non-members",
        )
        ground_truth = ground_truth_summary(gt_report, gt_dir)
        if inputs.closed_form is not None:
            low_fpr = {
                k: {"auc": v["auc"], "tpr_at_fpr": v["tpr_at_fpr"]}
                for k, v in gt_report["columns"].items()
            }
        stages.done("ground_truth")
    scores = cache.frame(
        cache.path("scores-panoramia", attack_key, "parquet"),
        lambda: scores_against(synthetic_audit, "panoramia", "synthetic non-members"),
    )
    stages.done("panoramia")

    # ---- report
    sections = [
        _target_section(target_info),
        generator.report_section(quality, generator_split, synthetic_audit),
    ]
    if ground_truth:
        sections.append(ground_truth_section(ground_truth))
    if low_fpr:
        sections.append(_low_fpr_section(low_fpr))
    cached = list(dict.fromkeys(cache.reused))
    notes = (
        [f"Reused from the cache ({cache.root}), not recomputed in this run: {', '.join(cached)}."]
        if cached
        else []
    )
    if dp:
        notes.append(
            f"c_lb, {{c+ε}}_lb and ε̃ are read at δ = 0, as for every target, so that this DP "
            f"target's ε̃ compares with a non-private one's. The DP claim (ε = "
            f"{dp['spent_epsilon']:.3f} at δ = {dp['delta']:g}) is checked at its own δ by the "
            "ground truth (ground-truth/report.html), whose bound is a lower bound on that ε."
        )
    if cached:
        say(f"reused from the cache: {', '.join(cached)}")
    report = write_report(
        scores,
        out_dir,
        sections=sections,
        notes=notes,
        kind="panoramia",
        delta=0.0,
        guess_grid=None,
        **common,
        title=f"privaudit {inputs.modality} PANORAMIA audit: {inputs.target_name} target on {inputs.source}",
        extra={
            "target": target_info,
            "generator": generator.name,
            "generator_quality": quality,
            "ground_truth": ground_truth,
            **({"ground_truth_low_fpr": low_fpr} if low_fpr else {}),
            "stage_seconds": stages.seconds,
            "cached_stages": cached,
        },
    )
    if report["verdict"].get("generator_too_weak"):
        say(
            "warning: "
            + next(
                c for c in report["verdict"]["caveats"] if c.startswith("The generator is too weak")
            )
        )
    return report


def _target_section(info: dict) -> ReportSection:
    rows = "".join(
        f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>"
        for k, v in info.items()
        if k != "dp"
    )
    return ReportSection("Target", f"<table>{rows}</table>")


def _low_fpr_section(columns: dict) -> ReportSection:
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{v['auc']:.3f}</td><td>{v['tpr_at_fpr']['0.01']:.4f}</td>"
        f"<td>{v['tpr_at_fpr']['0.001']:.4f}</td></tr>"
        for k, v in columns.items()
    )
    return ReportSection(
        "Every attack against real non-members: AUC and TPR at low FPR",
        (
            "<p>The ground-truth test mix (real members vs real held-out non-members); the closed-form columns "
            "need no training. With few test points the TPR at 0.1% FPR is the TPR at the lowest FPR the test "
            "can show.</p><table><tr><th>column</th><th>AUC</th><th>TPR at 1% FPR</th><th>TPR at 0.1% FPR</th></tr>"
            f"{rows}</table>"
        ),
    )
