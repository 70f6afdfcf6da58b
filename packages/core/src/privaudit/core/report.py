"""The audit report: report.json, a self-contained report.html, PNG plots, provenance and the
resolved config, written all-or-nothing into a run directory."""

from __future__ import annotations

import base64
import html
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from privaudit.core import bounds, explain, metrics, plots
from privaudit.core.errors import InputError, plain
from privaudit.core.rundir import dumps_json, make_staging_dir, provenance, to_jsonable
from privaudit.core.scores import (
    MEMBER_COLUMN,
    check_baseline,
    score_columns,
    validate_scores_table,
)

FPR_KEYS = {0.1: "0.1", 0.01: "0.01", 0.001: "0.001", 0.0001: "0.0001", 0.0: "0"}
BOOTSTRAP_RESAMPLES = 100

# What each number in report.json is, stored beside them (the HTML says the same in its labels).
DEFINITIONS = {
    "c_lb": "eps lower bound of the baseline column (PANORAMIA's c_lb)",
    "eps_lb": "per column: the largest eps lower bound over the thresholds (c_lb for the baseline, "
    "{c+eps}_lb for an attack), Bonferroni-corrected over the thresholds, alpha split between the "
    "baseline and the attacks; each row taken to be a member with probability member_prior",
    "eps_tilde": "{c+eps}_lb - c_lb: a difference of two lower bounds, not a lower bound itself",
    "two_sided": "c_lb, {c+eps}_lb (per column eps_lb) and eps_tilde again, from member and "
    "non-member guesses (the one-run audit's test: IN for the k_plus highest scores, OUT for the "
    "k_minus lowest, the best pair on a geometric grid, Bonferroni over the pairs, alpha split "
    "between the baseline and the attacks); only where the design makes each row a member with "
    "probability 1/2",
    "eps_hypothesis_test_heuristic": "a heuristic, not a bound: the DP hypothesis-test eps from "
    "Clopper-Pearson intervals on FPR and FNR, which treat the rows as independent trials though "
    "they all come from one training run",
    "member_prior": "the probability with which each row is taken to have been made a member, "
    "independently of the others: the audit design's where it fixes one, else the table's member "
    "fraction; with delta > 0 the bounds need it to be at most 0.5",
    "sampling_spread": f"standard deviations of c_lb and each eps_tilde over {BOOTSTRAP_RESAMPLES} "
    "bootstrap resamples of the test rows (members and non-members resampled separately): the "
    "spread from which test points were drawn alone, not from retraining the generator or the "
    "attacks; an estimate, not a bound",
    "auc_ci95": f"percentile bootstrap interval ({BOOTSTRAP_RESAMPLES} resamples, members and "
    "non-members resampled separately)",
}


@dataclass(frozen=True)
class ReportSection:
    """Extra content a modality adds to the report: an HTML fragment and PNG images."""

    title: str
    html: str = ""
    images: tuple[tuple[str, bytes], ...] = ()

    def __post_init__(self):
        for name, data in self.images:
            if not name.endswith(".png") or "/" in name or not isinstance(data, bytes):
                raise ValueError(
                    f"section image {name!r} must be a plain file name ending .png with PNG bytes"
                )


def ground_truth_summary(report: Mapping, out_dir) -> dict:
    """What the main report keeps of a ground-truth report (the same attacks against real
    non-members) written to `out_dir`: `dir`, `n`, `c_lb`, `eps_tilde`, column -> eps_lb, auc, and
    its verdict's text, status, eps_lb and the column and reading that bound comes from (the
    verdict also reads member and non-member guesses)."""
    verdict = report.get("verdict") or {}
    return {
        "dir": str(out_dir),
        "n": report["n"],
        "c_lb": report["c_lb"],
        "eps_tilde": report["eps_tilde"],
        "columns": {
            k: {"eps_lb": v["eps_lb"], "auc": v["auc"]} for k, v in report["columns"].items()
        },
        "verdict": verdict.get("text"),
        "verdict_status": verdict.get("status"),
        "verdict_eps_lb": verdict.get("eps_lb"),
        "verdict_column": verdict.get("eps_lb_column"),
        "verdict_reading": verdict.get("eps_lb_reading"),
        **({"two_sided": report["two_sided"]} if "two_sided" in report else {}),
    }


def summary_lines(report: Mapping) -> list[str]:
    """The console summary of a PANORAMIA report: c_lb, each attack's {c+eps}_lb, eps_tilde and AUC,
    and the ground-truth attacks' eps_lb and AUC when `extra` holds a `ground_truth_summary`."""

    def fmt(value) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    spread = report.get("sampling_spread")
    lines = [
        f"c_lb = {fmt(report['c_lb'])}"
        + (f" (sampling sd {fmt(spread['c_lb_sd'])})" if spread else "")
    ]
    for column, eps in report["eps_tilde"].items():
        stats = report["columns"][column]
        lines.append(
            f"{column}: {{c+eps}}_lb = {fmt(stats['eps_lb'])}, eps_tilde = {fmt(eps)} (not a lower bound"
            + (f"; sampling sd {fmt(spread['eps_tilde_sd'][column])}" if spread else "")
            + f"), AUC = {fmt(stats['auc'])}"
        )
    two_sided = report.get("two_sided")
    if two_sided and two_sided["c_lb"] is not None:
        for column, eps in two_sided["eps_tilde"].items():
            lines.append(
                f"{column} with member and non-member guesses: c_lb = {fmt(two_sided['c_lb'])}, "
                f"{{c+eps}}_lb = {fmt(two_sided['columns'][column]['eps_lb'])}, eps_tilde = {fmt(eps)}"
            )
    ground_truth = (report.get("extra") or {}).get("ground_truth")
    for column, stats in (ground_truth or {}).get("columns", {}).items():
        lines.append(
            f"ground truth (real non-members) {column}: eps_lb = {fmt(stats['eps_lb'])}, AUC = {fmt(stats['auc'])}"
        )
    lines += verdict_lines(report)
    return lines


def verdict_lines(report: Mapping) -> list[str]:
    """The verdict for the console, and the weak-generator warning when there is one."""
    verdict = report.get("verdict")
    if not verdict:
        return []
    lines = [f"verdict: {verdict['text']}"]
    if verdict.get("generator_too_weak"):
        lines += [c for c in verdict["caveats"] if c.startswith("The generator is too weak")]
    return lines


def ground_truth_section(summary: Mapping) -> ReportSection:
    """A `ground_truth_summary` as a section of the main report."""
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{_fmt(v['eps_lb'])}</td><td>{v['auc']:.3f}</td></tr>"
        for k, v in summary["columns"].items()
    )
    return ReportSection(
        "Ground truth: the same attacks against real non-members",
        "<p id='ground-truth'>The same classifiers, trained and tested with real examples the "
        "model never saw in place of the generated ones: no generator is involved, so their ε "
        "lower bounds are sound for the target alone. The audit above is trustworthy when it "
        "agrees with these numbers; the baseline column here (the helper, trained on synthetic "
        "data only) should stay near chance.</p>"
        + (
            f"<p><b>Ground-truth verdict:</b> {html.escape(summary['verdict'])}</p>"
            if summary.get("verdict")
            else ""
        )
        + f"<p>Report in <code>{html.escape(summary['dir'])}</code>; {summary['n']} test points.</p>"
        f"<table><tr><th>column</th><th>ε lower bound</th><th>AUC</th></tr>{rows}</table>",
    )


def _column_stats(
    counts: metrics.ThresholdCounts,
    labels: np.ndarray,
    scores: np.ndarray,
    curve: bounds.EpsCurve,
    *,
    alpha: float,
    delta: float,
    seed: int,
) -> dict:
    best = int(np.argmax(curve.eps_lb))
    # Every distinct score is a threshold (the +inf one, nobody predicted member, left out).
    heuristic = bounds.max_hypothesis_test_eps_heuristic(
        counts.fp[1:],
        counts.negatives,
        counts.positives - counts.tp[1:],
        counts.positives,
        delta=delta,
        alpha=alpha / (counts.thresholds.size - 1),
    )
    auc_lo, auc_hi = metrics.bootstrap_auc_ci(
        labels, scores, n_resamples=BOOTSTRAP_RESAMPLES, seed=seed
    )
    return {
        "eps_lb": curve.eps_max,
        "level_per_threshold": curve.level,
        "threshold_at_eps_lb": float(curve.thresholds[best]),
        "recall_at_eps_lb": float(curve.recall[best]),
        "predicted_members_at_eps_lb": int(curve.r[best]),
        "true_positives_at_eps_lb": int(curve.v[best]),
        "auc": counts.auc(),
        "auc_ci95": [auc_lo, auc_hi],
        "tpr_at_fpr": {FPR_KEYS[f]: t for f, t in counts.tpr_at_fpr(tuple(FPR_KEYS)).items()},
        "eps_hypothesis_test_heuristic": heuristic,
    }


def _fmt(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


def _img(name: str, data: bytes) -> str:
    encoded = base64.b64encode(data).decode("ascii")
    return f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,{encoded}"></figure>'


def _table(report: dict, kind: str) -> str:
    panoramia = kind == "panoramia"
    heads = ["column", "role"] if panoramia else ["column"]
    if panoramia:
        heads += ["ε lower bound (c_lb / {c+ε}_lb)", "ε̃ = {c+ε}_lb − c_lb (not a lower bound)"]
    elif kind == "one_run":
        heads.append("threshold-sweep ε lower bound (member guesses only)")
    else:
        heads.append("ε lower bound")
    heads += ["AUC", "AUC 95% CI (bootstrap)", "TPR at 1% FPR", "TPR at 0.1% FPR",
              "hypothesis-test ε (heuristic, not a bound)"]  # fmt: skip
    rows = []
    for name, col in report["columns"].items():
        cells = [name, col["role"]] if panoramia else [name]
        cells.append(col["eps_lb"])
        if panoramia:
            cells.append(report["eps_tilde"].get(name))
        cells += [
            col["auc"],
            f"{col['auc_ci95'][0]:.3f}–{col['auc_ci95'][1]:.3f}",
            col["tpr_at_fpr"]["0.01"],
            col["tpr_at_fpr"]["0.001"],
            col["eps_hypothesis_test_heuristic"],
        ]
        rows.append("<tr>" + "".join(f"<td>{_fmt(x)}</td>" for x in cells) + "</tr>")
    head = "".join(f"<th>{html.escape(h)}</th>" for h in heads)
    return f"<table id='numbers'><tr>{head}</tr>{''.join(rows)}</table>"


def _two_sided_html(report: dict) -> str:
    two_sided = report.get("two_sided")
    if not two_sided or two_sided["c_lb"] is None:
        return ""
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{_fmt(col['eps_lb'])}</td>"
        f"<td>{_fmt(two_sided['eps_tilde'].get(name))}</td><td>{col['k_plus']}</td>"
        f"<td>{col['k_minus']}</td><td>{col['v']} of {col['r']}</td></tr>"
        for name, col in two_sided["columns"].items()
    )
    return (
        "<h2>With member and non-member guesses</h2><p id='two-sided'>The bounds above count "
        "member guesses only (the classifier's highest scores), as the PANORAMIA paper does. Here "
        "each classifier also guesses <i>non-member</i> for its lowest scores, the one-run audit's "
        "two-sided test, sound because each test slot holds a real member with probability 1/2: "
        "an attack that recognises the rows the target never saw (a synthetic row the target gets "
        "badly wrong) shows here and not above. c_lb = "
        f"{_fmt(two_sided['c_lb'])}.</p><table id='two-sided-numbers'><tr><th>column</th>"
        "<th>ε lower bound (c_lb / {c+ε}_lb)</th><th>ε̃ (not a lower bound)</th>"
        "<th>member guesses</th><th>non-member guesses</th><th>right</th></tr>"
        f"{rows}</table>"
    )


def _html(report: dict, images: dict[str, bytes], sections: Sequence[ReportSection]) -> str:
    kind = report["kind"]
    thresholds = report["thresholds"]
    if report.get("guess_grid") is not None:
        sweep = (
            f"the scores where the member guesses first reach each of "
            f"{bounds.guess_grid_size(report['n'], report['guess_grid'])} counts on a geometric "
            f"grid from 1 to {report['n']}"
        )
    elif thresholds is None:
        sweep = "every distinct score"
    else:
        sweep = f"{thresholds} evenly spaced thresholds on [0, 1]"
    headline = report.get("headline")
    dp = report.get("dp")
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(report['title'])}</title><style>",
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}",
        "table{border-collapse:collapse}td,th{border:1px solid #bbb;padding:4px 8px;text-align:right}",
        "td:first-child,th:first-child{text-align:left}figure{display:inline-block;margin:0.5em}",
        "dd{margin:0 0 0.6em 1.5em}img{max-width:520px}</style></head><body>",
        f"<h1>{html.escape(report['title'])}</h1>",
    ]
    if headline:
        parts.append(
            f"<p id='headline' style='font-size:1.3em'><b>{html.escape(headline['label'])} = "
            f"{headline['value']:.3f}</b>"
            + (f" — {html.escape(headline['detail'])}" if headline.get("detail") else "")
            + "</p>"
        )
    if dp:
        spent = dp.get("spent_epsilon")
        parts.append(
            "<p id='dp'><b>DP training:</b> "
            + (f"spent ε = {spent:.3f}" if spent is not None else "spent ε not recorded")
            + (f" (target ε = {dp['target_epsilon']:g})" if dp.get("target_epsilon") else "")
            + (f", δ = {dp['delta']:g}" if dp.get("delta") is not None else "")
            + ".</p>"
        )
    parts += [
        explain.verdict_html(report["verdict"]),
        explain.weak_generator_html(report["verdict"]),
        "".join(f"<p><b>Note:</b> {html.escape(note)}</p>" for note in report["notes"]),
        "<p>"
        + (f"<b>c_lb</b> = {_fmt(report['c_lb'])} &nbsp; " if kind == "panoramia" else "")
        + f"n = {report['n']} ({report['members']} members, {report['nonmembers']} non-members); "
        f"sweep: {sweep}; alpha = {report['alpha']}, delta = {report['delta']}; member prior = "
        f"{report['member_prior']:.4g}.</p>",
        _table(report, kind),
        _two_sided_html(report),
        explain.explanations_html(explain.explanations(kind, report)),
    ]
    if kind == "panoramia":
        parts.append(
            "<p>Details: c_lb and {c+ε}_lb are ε lower bounds: each holds at confidence 1 − alpha, "
            "split between the baseline and the MIA bound and Bonferroni-corrected over the "
            "thresholds, taking each row to be a member with probability equal to the member "
            "prior (the design's, else the table's member fraction), so an unbalanced table gets "
            "no bound from its imbalance. The verdict compares the attack's lower bound with an "
            "upper confidence limit of the baseline at the attack's own number of member guesses, "
            "and, where the test mix makes each slot real with probability 1/2, of member and "
            "non-member guesses (a comparison of two classifiers on this test set, not a DP "
            "bound).</p>"
        )
    else:
        parts.append(
            "<p>Details: each ε lower bound holds at confidence 1 − alpha, Bonferroni-corrected "
            "over the thresholds, taking each row to be a member with probability equal to the "
            "member prior (the design's, else the table's member fraction); the verdict's bound "
            "is also corrected for picking the best of the attacks.</p>"
        )
    parts += ["<h2>Plots</h2>", "".join(_img(name, data) for name, data in images.items())]
    for section in sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>{section.html}")
        parts.append("".join(_img(name, data) for name, data in section.images))
    parts.append("</body></html>\n")
    return "".join(parts)


def _move_into_place(staging: Path, out_dir: Path) -> None:
    """Publish the staged files: one rename for a new directory, else one rename per file."""
    if staging.parent == out_dir:
        for item in staging.iterdir():
            os.replace(item, out_dir / item.name)
        staging.rmdir()
    else:
        os.rename(staging, out_dir)


def check_report_inputs(
    scores: pd.DataFrame,
    out_dir,
    *,
    baseline: str | None = "baseline_pred",
    thresholds: int | None = None,
    guess_grid: int | None = None,
    alpha: float = 0.05,
    delta: float = 0.0,
    member_prior: float | None = None,
) -> pd.DataFrame:
    """Every refusal write_report makes about its inputs, made before any work (a CLI calls it
    before privaudit.core.rundir.prepare_output_dir); returns the validated table."""
    if thresholds is not None and thresholds < 1:
        raise InputError(f"--thresholds must be a positive integer, got {plain(thresholds)}.")
    if guess_grid is not None and guess_grid < 1:
        raise InputError(f"--guess-grid must be a positive integer, got {plain(guess_grid)}.")
    if guess_grid is not None and thresholds is not None:
        raise InputError("pass --thresholds or --guess-grid, not both.")
    if not 0 < alpha < 1:
        raise InputError(f"--alpha must be between 0 and 1, got {plain(alpha)}.")
    if not 0 <= delta < 1:
        raise InputError(f"--delta must be in [0, 1), got {plain(delta)}.")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"output path {out_dir} exists and is not a directory.")
    scores = validate_scores_table(scores)
    check_baseline(scores, baseline)
    members = int(scores[MEMBER_COLUMN].sum())
    bounds.resolve_member_prior(members, len(scores), delta=delta, member_prior=member_prior)
    if thresholds is not None:
        for name in score_columns(scores):
            bounds.check_threshold_range(name, scores[name].to_numpy())
    return scores


def write_report(
    scores: pd.DataFrame,
    out_dir,
    *,
    baseline: str | None = "baseline_pred",
    thresholds: int | None = None,
    guess_grid: int | None = None,
    alpha: float = 0.05,
    delta: float = 0.0,
    member_prior: float | None = None,
    title: str = "privaudit report",
    sections: Sequence[ReportSection] = (),
    extra: Mapping | None = None,
    config: Mapping | None = None,
    notes: Sequence[str] = (),
    kind: str | None = None,
    headline: Mapping | None = None,
    dp: Mapping | None = None,
) -> dict:
    """Audit every score column of `scores` and write the report into `out_dir`; return report.json's dict.

    `member_prior`: the probability with which the audit's design made each row a member,
    independently of the others (PANORAMIA's test mix and the one-run canaries: 0.5); None takes
    the table's member fraction. `notes`: sentences shown at the top of the report.
    `kind`: which explanations and verdict the report gets (explain.KINDS; default "panoramia"
    with a baseline, else "mia"). `headline`: the run's own headline bound, shown first and used
    by the verdict ({"label", "value", "detail"}; the one-run audit's eps_lb). `dp`: a DP
    target's {"spent_epsilon", "target_epsilon", "delta"}, shown and compared with the bound.
    config.json holds `config` plus an `audit` block with the settings report.json used."""
    if kind is None:
        kind = "panoramia" if baseline is not None else "mia"
    if kind not in explain.KINDS:
        raise ValueError(f"unknown report kind {kind!r}; known: {', '.join(explain.KINDS)}")
    if config and "audit" in config:
        raise ValueError("config must not hold an 'audit' key: write_report writes that block")
    started = time.perf_counter()
    scores = check_report_inputs(
        scores,
        out_dir,
        baseline=baseline,
        thresholds=thresholds,
        guess_grid=guess_grid,
        alpha=alpha,
        delta=delta,
        member_prior=member_prior,
    )
    labels = scores[MEMBER_COLUMN].to_numpy()
    columns = {name: scores[name].to_numpy() for name in score_columns(scores)}

    audit = bounds.panoramia_bounds(
        labels,
        columns,
        baseline=baseline,
        thresholds=thresholds,
        guess_grid=guess_grid,
        alpha=alpha,
        delta=delta,
        member_prior=member_prior,
    )
    curves: dict[str, bounds.EpsCurve] = audit["curves"]
    prior = next(iter(curves.values())).member_prior
    report = {
        "title": title,
        "kind": kind,
        "notes": list(notes),
        "n": int(labels.size),
        "members": int(labels.sum()),
        "nonmembers": int(labels.size - labels.sum()),
        "member_fraction": float(labels.mean()),
        "member_prior": prior,
        "baseline": baseline,
        "thresholds": thresholds,
        "guess_grid": guess_grid,
        "alpha": alpha,
        "delta": delta,
        "c_lb": audit["c_lb"],
        "eps_tilde": audit["eps_tilde"],
        "definitions": DEFINITIONS,
        "columns": {},
    }
    # only where the design itself made each row a member with probability 1/2 (not a table
    # that happens to be balanced): the two-sided test's premise
    if kind in ("panoramia", "ground_truth") and member_prior == 0.5:
        report["two_sided"] = bounds.two_sided_bounds(
            labels, columns, baseline=baseline, alpha=alpha, delta=delta
        )
    if baseline is not None and labels.size <= bounds.SPREAD_MAX_ROWS:
        # how much c_lb and eps_tilde owe to which test points were drawn (a verdict caveat)
        report["sampling_spread"] = bounds.panoramia_sampling_spread(
            labels, columns, baseline=baseline, n_resamples=BOOTSTRAP_RESAMPLES,
            thresholds=thresholds, guess_grid=guess_grid, alpha=alpha, delta=delta,
            member_prior=member_prior,
        )  # fmt: skip
    counts = {name: metrics.threshold_counts(labels, values) for name, values in columns.items()}
    for seed, (name, values) in enumerate(columns.items()):
        stats = _column_stats(
            counts[name], labels, values, curves[name], alpha=alpha, delta=delta, seed=seed
        )
        report["columns"][name] = {"role": "baseline" if name == baseline else "attack", **stats}
    if extra:
        report["extra"] = to_jsonable(dict(extra))
    if headline is not None:
        report["headline"] = to_jsonable(dict(headline))
    if dp is not None:
        report["dp"] = to_jsonable(dict(dp))
    spent = None if dp is None else dp.get("spent_epsilon")
    report["verdict"] = to_jsonable(
        explain.verdict(
            report, curves, labels, columns, kind=kind, headline=headline, dp_epsilon=spent
        )
    )

    rocs = {name: c.roc()[:2] for name, c in counts.items()}
    precision_curves = {}
    for name, c in counts.items():
        precision, recall, _ = c.precision_recall()
        # Only the plotted points: the binomial quantiles below are the slow part.
        recall, precision, predicted = plots.thin(recall, precision, c.predicted[1:])
        # The authors' theoretical line: the (1 - alpha/2) binomial quantile at the column's bound.
        max_precision = bounds.theoretical_max_precision(
            predicted, curves[name].eps_max, alpha / 2, member_prior=prior
        )
        precision_curves[name] = (recall, precision, max_precision)
    images = {
        "roc.png": plots.roc_png(rocs, log_scale=False),
        "roc_loglog.png": plots.roc_png(rocs, log_scale=True),
        "eps_lb_recall.png": plots.eps_recall_png(
            {name: (c.recall, c.eps_lb, c.eps_max) for name, c in curves.items()}
        ),
        "precision_recall.png": plots.precision_recall_png(precision_curves),
    }
    for section in sections:
        images_clash = set(images) & {name for name, _ in section.images}
        if images_clash:
            raise ValueError(f"section {section.title!r} reuses image names {sorted(images_clash)}")

    # The audit's own settings in a block of their own: a run config's fields (a DP target's
    # training delta) never stand where the audit's delta should be.
    resolved = {
        "audit": {
            "title": title,
            "kind": kind,
            "baseline": baseline,
            "thresholds": thresholds,
            "guess_grid": guess_grid,
            "alpha": alpha,
            "delta": delta,
            "member_prior": prior,
        },
        **(dict(config) if config else {}),
    }
    files: dict[str, bytes] = {
        "report.json": dumps_json(report).encode(),
        "report.html": _html(report, images, sections).encode(),
        "config.json": dumps_json(resolved).encode(),
        "provenance.json": dumps_json(
            provenance(
                seed=resolved.get("seed"),
                extra={"report_seconds": round(time.perf_counter() - started, 3)},
            )
        ).encode(),
        **images,
    }
    for section in sections:
        files.update(dict(section.images))

    _publish(files, Path(out_dir))
    return report


def _publish(files: Mapping[str, bytes], out_dir: Path) -> None:
    """Write every file into a staging folder, then move them in all at once: inside an existing
    run directory (prepare_output_dir checked it is writable), else beside the new one."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"output path {out_dir} exists and is not a directory.")
    if out_dir.is_dir():
        staging = make_staging_dir(out_dir, ".report-")
    else:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = make_staging_dir(out_dir.parent, f".{out_dir.name}.")
    try:
        for name, data in files.items():
            (staging / name).write_bytes(data)
        _move_into_place(staging, out_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def write_page_report(
    out_dir,
    report: Mapping,
    *,
    summary_html: str,
    sections: Sequence[ReportSection] = (),
    files: Mapping[str, bytes] | None = None,
    config: Mapping | None = None,
    seed: int | None = None,
) -> dict:
    """A run that is not a membership audit of a scores table (a ranking, a landscape): write
    report.json (`report`, which holds a `title`), a self-contained report.html (the summary, then
    each section with its images), config.json, provenance.json, the sections' PNGs and `files`
    into `out_dir`, all or nothing. Returns report.json's dict."""
    if "title" not in report:
        raise ValueError("a page report needs a 'title'")
    report = to_jsonable(dict(report))
    title = html.escape(str(report["title"]))
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title><style>",
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}",
        "table{border-collapse:collapse}td,th{border:1px solid #bbb;padding:4px 8px;text-align:right}",
        "td:first-child,th:first-child{text-align:left}figure{display:inline-block;margin:0.5em}",
        f"img{{max-width:1000px}}</style></head><body><h1>{title}</h1>{summary_html}",
    ]
    published: dict[str, bytes] = {}
    for section in sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>{section.html}")
        parts.append("".join(_img(name, data) for name, data in section.images))
        published.update(dict(section.images))
    parts.append("</body></html>\n")
    extra = dict(files or {})
    reserved = {"report.json", "report.html", "config.json", "provenance.json"}
    clash = (set(published) & set(extra)) | (reserved & (set(published) | set(extra)))
    if clash:
        raise ValueError(f"page report file names clash: {sorted(clash)}")
    published.update(extra)
    published.update({
        "report.json": dumps_json(report).encode(),
        "report.html": "".join(parts).encode(),
        "config.json": dumps_json(dict(config or {})).encode(),
        "provenance.json": dumps_json(provenance(seed=seed)).encode(),
    })  # fmt: skip
    _publish(published, Path(out_dir))
    return report
