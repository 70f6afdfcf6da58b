"""What a report's numbers mean, in sentences a model owner can act on, and the verdict drawn
from them: from the lower bounds (sound) and a comparison of the attack with the baseline at the
attack's own operating point, never from eps_tilde alone (a difference of two lower bounds)."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import numpy as np
from privaudit.core import bounds
from scipy import special

# A baseline (or a detector of the generator's examples) this good leaves no room above c_lb:
# the generator, not the target, limits the audit.
WEAK_GENERATOR_AUC = 0.98
# ... and neither does a c_lb this close to the largest bound the test size allows.
WEAK_GENERATOR_CEILING_FRACTION = 0.8

KINDS = ("panoramia", "ground_truth", "mia", "one_run")


def _f(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def bound_ceiling(n: int, members: int, level: float, delta: float, member_prior: float) -> float:
    """The largest eps lower bound any column can reach on this table at this per-threshold level:
    a perfect guesser naming every member (r = v = members)."""
    return float(
        bounds.eps_lower_bounds(
            n, members, members, delta=delta, alpha=level, member_prior=member_prior
        )
    )


def baseline_upper(
    labels: np.ndarray, baseline_scores: np.ndarray, r, level: float, member_prior: float
) -> np.ndarray:
    """Upper confidence limits of the baseline's eps at given numbers of member guesses `r`
    (elementwise): the baseline's r highest scores taken as r member guesses, the one-sided
    Clopper-Pearson upper limit of their precision at `level`, as eps = logit(q) -
    logit(member_prior), floored at 0 (inf when q reaches 1). It treats the guesses as independent
    trials: a statistical comparison of two classifiers on one test set, not a DP bound."""
    r = np.atleast_1d(np.asarray(r, dtype=np.int64))
    order = np.argsort(-np.asarray(baseline_scores, dtype=np.float64), kind="stable")
    hits = np.r_[0, np.cumsum(np.asarray(labels)[order])]
    return _upper_eps(r, hits[np.clip(r, 0, hits.size - 1)], level, member_prior)


def _upper_eps(r, v, level: float, member_prior: float) -> np.ndarray:
    """eps at the one-sided Clopper-Pearson upper limit of v right out of r guesses (inf at 1)."""
    r = np.asarray(r, dtype=np.float64)
    # the one-sided limit at `level` is the two-sided interval's upper end at 2 * level
    q = bounds.clopper_pearson_upper(v, r, 2 * level)
    with np.errstate(all="ignore"):
        eps = np.where(q < 1, special.logit(q) - special.logit(member_prior), np.inf)
    return np.where(r > 0, np.maximum(eps, 0.0), np.inf)


def _comparison_point(lb: np.ndarray, ub: np.ndarray) -> tuple[int, bool]:
    """Where an attack's lower bounds `lb` beat the baseline's upper limits `ub` (same guesses,
    elementwise) by the most, and whether they beat them anywhere; else where `lb` is largest."""
    margin = np.where(lb > 0, lb - ub, -np.inf)
    if np.any(margin > 0):
        return int(np.argmax(margin)), True
    return int(np.argmax(lb)), False


def two_sided_comparison(
    labels: np.ndarray,
    columns: Mapping[str, np.ndarray],
    baseline: str,
    *,
    alpha: float,
    delta: float,
) -> dict:
    """The verdict's comparison with member and non-member guesses (prior 1/2): at every pair of
    the one-run grid, each attack's lower bound against the baseline's upper confidence limit
    with the same numbers of IN and OUT guesses, each at alpha / 2 over the pairs (the attacks'
    bounds also Bonferroni over the attacks), so the comparison errs with probability at most
    alpha; the attack and pair with the largest margin. Like baseline_upper, a comparison of two
    classifiers on one test set, not a DP bound."""
    k_plus, k_minus = bounds.guess_pairs(labels.size, bounds.two_sided_steps(delta))
    level = alpha / 2 / k_plus.size
    ub = _upper_eps(
        *bounds.two_sided_counts(columns[baseline], labels, k_plus, k_minus), level, 0.5
    )
    attacks = [name for name in columns if name != baseline]
    best = None
    for name in attacks:
        r, v = bounds.two_sided_counts(columns[name], labels, k_plus, k_minus)
        lb = bounds.eps_lower_bounds(labels.size, r, v, delta=delta, alpha=level / len(attacks))
        at, beyond = _comparison_point(lb, ub)
        row = {"column": name, "eps_lb_at_comparison": float(lb[at]),
               "member_guesses": int(k_plus[at]), "non_member_guesses": int(k_minus[at]),
               "baseline_eps_upper": float(ub[at]), "beyond_baseline": beyond}  # fmt: skip
        if best is None or (row["beyond_baseline"], row["eps_lb_at_comparison"]) > (
            best["beyond_baseline"],
            best["eps_lb_at_comparison"],
        ):
            best = row
    return best


def _eps_at_level(curve: bounds.EpsCurve, divide: int, delta: float) -> np.ndarray:
    """The column's bound at each threshold with its per-threshold level divided by `divide`
    (Bonferroni over the attacks the verdict picks the best of)."""
    if divide == 1:
        return curve.eps_lb
    return bounds.eps_lower_bounds(
        curve.n,
        curve.r,
        curve.v,
        delta=delta,
        alpha=curve.level / divide,
        member_prior=curve.member_prior,
    )


def verdict(
    report: Mapping,
    curves: Mapping[str, bounds.EpsCurve],
    labels: np.ndarray,
    columns: Mapping[str, np.ndarray],
    *,
    kind: str,
    headline: Mapping | None = None,
    dp_epsilon: float | None = None,
) -> dict:
    """The report's verdict: `status` ("leaks" / "no measurable leakage"), `text` (one line),
    `evidence` and `caveats` (sentences), `generator_too_weak` (PANORAMIA only) and the numbers
    it rests on. See the module docstring for how it is derived."""
    alpha, delta, prior = report["alpha"], report["delta"], report["member_prior"]
    baseline = report["baseline"]
    attacks = [name for name in curves if name != baseline]
    n, members = report["n"], report["members"]
    any_curve = next(iter(curves.values()))
    ceiling = bound_ceiling(n, members, any_curve.level, delta, prior)
    evidence: list[str] = []
    caveats: list[str] = []
    out: dict = {"kind": kind, "bound_ceiling": ceiling}

    if kind == "panoramia" and baseline is not None and attacks:
        base_auc = report["columns"][baseline]["auc"]
        c_lb = report["c_lb"]
        weak = base_auc >= WEAK_GENERATOR_AUC or c_lb >= WEAK_GENERATOR_CEILING_FRACTION * ceiling
        # a detector trained longer on the examples alone (the image generator's quality) sees
        # what a baseline trained as briefly as the MIA may miss
        quality = (report.get("extra") or {}).get("generator_quality") or {}
        detector = quality.get("detector_auc")
        detected = not weak and detector is not None and detector >= WEAK_GENERATOR_AUC
        # the member-guess comparison and the two-sided one that may follow it share alpha,
        # half each, so that "leaks" is wrong with probability at most alpha whichever says it
        readings = 2 if report.get("two_sided") else 1
        best = None
        for name in attacks:
            curve = curves[name]
            lb = _eps_at_level(curve, len(attacks) * readings, delta)
            # the baseline's limits at the attack's every threshold, each at the attack's
            # per-threshold level: simultaneous over thresholds, like the lower bounds
            ub = baseline_upper(labels, columns[baseline], curve.r, curve.level / readings, prior)
            at, beyond = _comparison_point(lb, ub)
            # eps_lb is the report's {c+eps}_lb, which the text quotes beside the comparison
            row = {"column": name, "eps_lb": float(curve.eps_lb.max()),
                   "eps_lb_at_comparison": float(lb[at]),
                   "predicted_members": int(curve.r[at]), "baseline_eps_upper": float(ub[at]),
                   "beyond_baseline": beyond}  # fmt: skip
            if best is None or (row["beyond_baseline"], row["eps_lb"]) > (
                best["beyond_baseline"],
                best["eps_lb"],
            ):
                best = row
        out |= {"generator_too_weak": bool(weak or detected), "comparison": best}
        name, tilde = best["column"], report["eps_tilde"][best["column"]]
        ub_text = (
            "any value"
            if not np.isfinite(best["baseline_eps_upper"])
            else _f(best["baseline_eps_upper"])
        )
        both = None
        if report.get("two_sided") and not best["beyond_baseline"]:
            both = two_sided_comparison(
                labels, {c: columns[c] for c in [baseline, *attacks]}, baseline,
                alpha=alpha / readings, delta=delta,
            )  # fmt: skip
            out["comparison_two_sided"] = both
        if best["beyond_baseline"]:
            status = "leaks"
            text = (
                f"leaks: the membership attack on the target ({name}) reaches "
                f"an ε lower bound of {_f(best['eps_lb_at_comparison'])} with "
                f"{best['predicted_members']} member guesses, above what the baseline, which sees only the "
                f"generator's images or rows, can reach with as many "
                f"guesses (at most {ub_text} at {1 - alpha:.0%} confidence): the target "
                f"reveals its training members beyond the generator's baseline ({{c+ε}}_lb = "
                f"{_f(best['eps_lb'])} at its best threshold, ε̃ = {_f(tilde)})."
            )
        elif both is not None and both["beyond_baseline"]:
            status = "leaks"
            both_ub = both["baseline_eps_upper"]
            text = (
                f"leaks: the membership attack on the target ({both['column']}), guessing "
                f"member for the {both['member_guesses']} examples it scores highest and "
                f"non-member for the {both['non_member_guesses']} it scores lowest, reaches an ε "
                f"lower bound of {_f(both['eps_lb_at_comparison'])}, above what the baseline, "
                "which sees only the generator's examples, can reach with as many guesses (at "
                f"most {'any value' if not np.isfinite(both_ub) else _f(both_ub)} at "
                f"{1 - alpha:.0%} confidence): the target tells the examples it was trained on "
                "from those it never saw beyond the generator's baseline (ε̃ = "
                f"{_f(report['two_sided']['eps_tilde'][both['column']])} with member and "
                f"non-member guesses; {_f(report['eps_tilde'][both['column']])} with member "
                "guesses only, as the PANORAMIA paper reads it)."
            )
        else:
            status = "no measurable leakage"
            text = (
                "no measurable leakage beyond the generator's baseline: the membership attack "
                f"({name}) does not beat the baseline with confidence at any threshold (its bound "
                f"{_f(best['eps_lb_at_comparison'])} at {best['predicted_members']} member guesses; "
                f"the baseline could reach up to {ub_text} there; ε̃ = {_f(tilde)})"
                + (", nor with member and non-member guesses" if both is not None else "")
                + ". This is not proof that the target is private: a better generator or a "
                "stronger attack may show more."
            )
        evidence.append(
            f"Baseline AUC {_f(base_auc)} and c_lb = {_f(c_lb)}: how well the generator's "
            "examples can be told from real ones without the target."
        )
        if weak:
            caveats.append(
                f"The generator is too weak to audit this target: the baseline tells its examples "
                f"from real ones with AUC {_f(base_auc)}, and c_lb = {_f(c_lb)} is near the "
                f"largest bound {n} test points allow ({_f(ceiling)}), so ε̃ can be at most "
                f"{_f(max(ceiling - c_lb, 0.0))} whatever the target leaks. Train the generator "
                "longer or on more data (image: --gan-steps; tabular: --ctgan-epochs, or TVAE "
                "with --synthesizer tvae and more generator rows), check its quality below, and "
                "rely on the ground truth until the baseline AUC is well below 1."
            )
        elif detected:
            caveats.append(
                f"The generator is too weak to audit this target: a detector trained on its "
                f"examples alone tells them from real ones with AUC {_f(detector)} (the "
                f"generator section), while the baseline, trained as briefly as the MIA, reaches "
                f"AUC {_f(base_auc)}. So c_lb = {_f(c_lb)} understates how far the generator is "
                "from the data, and ε̃ and this verdict compare the target with this baseline, "
                "not with the best one. Train the generator longer or on more data "
                "(--gan-steps, a GPU), and rely on the ground truth until the detector's AUC is "
                "well below 1."
            )
        else:
            caveats.append(
                f"Generator quality: the baseline's AUC is {_f(base_auc)} (0.5 would mean its "
                "examples are indistinguishable from real ones)"
                + (
                    ""
                    if detector is None
                    else f", a detector trained longer on the examples alone reaches {_f(detector)}"
                )
                + ". The weaker the generator, the higher c_lb and the less room ε̃ has: judge ε̃ "
                "together with the generator section."
            )
        spread = report.get("sampling_spread")
        if spread:
            tilde_sd = spread["eps_tilde_sd"][name]
            caveats.append(
                f"Sampling spread: redrawing the {n} test points ({spread['resamples']} bootstrap "
                f"resamples) moves c_lb by ±{_f(spread['c_lb_sd'])} and ε̃ ({name}) by "
                f"±{_f(tilde_sd)} (one standard deviation). Two audits of the same model with "
                "fresh synthetic examples differ by about that much from sampling alone, and "
                "retrained attacks and generators add to it, so an ε̃ within about "
                f"±{_f(2 * tilde_sd)} of 0 is no evidence either way."
            )
        ground_truth = (report.get("extra") or {}).get("ground_truth")
        if ground_truth:
            out["ground_truth"] = _ground_truth_line(ground_truth, baseline)
            evidence.append(out["ground_truth"])
    else:
        if headline is not None:
            lb, name, reading = float(headline["value"]), str(headline["label"]), "headline"
        else:
            picked = [
                (float(_eps_at_level(curves[c], len(attacks), delta).max()), c) for c in attacks
            ]
            lb, name = max(picked) if picked else (0.0, "none")
            reading = "member guesses"
        both = None
        # with a baseline the member-guess bounds hold at alpha / 2, which leaves alpha / 2 for this
        # second reading; without one they spend all of alpha
        if (
            kind == "ground_truth"
            and headline is None
            and baseline is not None
            and report.get("two_sided")
            and attacks
        ):
            both = _two_sided_truth(labels, columns, attacks, alpha, delta)
            out["two_sided_eps_lb"] = both["eps_lb"]
        if lb > 0:
            status = "leaks"
            text = (
                f"leaks: {name} proves ε ≥ {_f(lb)} at {1 - alpha:.0%} confidence (a sound lower "
                "bound: no (ε, δ)-DP training with a smaller ε could produce these guesses except "
                "with probability α)."
            )
        elif both is not None and both["eps_lb"] > 0:
            lb, name, reading = both["eps_lb"], both["column"], "member and non-member guesses"
            status = "leaks"
            guesses = f"non-member for the {both['k_minus']} examples it scores lowest"
            if both["k_plus"]:
                guesses = (
                    f"member for the {both['k_plus']} examples it scores highest and " + guesses
                )
            text = (
                f"leaks: {name}, guessing {guesses} ({both['v']} of {both['r']} right), "
                f"proves ε ≥ {_f(lb)} at {1 - alpha:.0%} "
                "confidence (a sound lower bound: this reading and the member-guess one share "
                "the error probability α), though its member guesses alone show nothing."
            )
        else:
            status = "no measurable leakage"
            text = (
                f"no measurable leakage: no attack's ε lower bound rises above 0 at {n} test "
                "points. This is not proof of privacy: a stronger attack or more points may show "
                "more."
            )
        if kind == "ground_truth":
            text += " The same attacks here face real non-members, so no generator is involved."
        out |= {"eps_lb": lb, "eps_lb_column": name, "eps_lb_reading": reading}
        if dp_epsilon is not None:
            if lb > dp_epsilon + 1e-9:
                evidence.append(
                    f"The lower bound {_f(lb)} exceeds the ε = {_f(dp_epsilon)} the DP training "
                    "claims to have spent: the DP implementation or its accounting is broken."
                )
            else:
                evidence.append(
                    f"The DP training claims ε = {_f(dp_epsilon)}; the lower bound {_f(lb)} is "
                    "consistent with it (a lower bound far below the claim is usual: the attack "
                    "is not the worst case)."
                )
    auc_low = [c for c in attacks if report["columns"][c]["auc_ci95"][0] <= 0.5]
    if auc_low:
        caveats.append(
            f"The AUC's 95% interval reaches 0.5 (chance) for {', '.join(auc_low)}: at this "
            "sample size the attack cannot be told from guessing."
        )
    caveats.append(
        f"Sample size: {n} test points ({members} members). No column can show an ε lower bound "
        f"above {_f(ceiling)} here, and TPR at FPR below 1/{report['nonmembers']} is not "
        "measurable; more test points raise both limits."
    )
    out |= {"status": status, "text": text, "evidence": evidence, "caveats": caveats}
    return out


def _two_sided_truth(labels, columns, attacks, alpha, delta) -> dict:
    """The best two-sided one-run audit over the attacks (its `column` added), at alpha / 2
    divided by the number of attacks (Bonferroni): the ground truth's second reading."""
    level = alpha / 2 / len(attacks)
    steps = bounds.two_sided_steps(delta)
    found = [
        {
            **bounds.one_run_audit(columns[c], labels, delta=delta, alpha=level, steps=steps),
            "column": c,
        }
        for c in attacks
    ]
    return max(found, key=lambda f: f["eps_lb"])


def _ground_truth_line(summary: Mapping, baseline: str | None) -> str:
    """The main report's line for its ground truth: that report's own verdict, which is
    Bonferroni-corrected over the attacks and also reads member and non-member guesses."""
    attacks = {k: v for k, v in summary["columns"].items() if k != baseline}
    if not attacks:
        return "Ground truth: no attack column."
    head = "Ground truth (the same attack against real non-members, no generator involved): "
    name = summary.get("verdict_column")
    if summary.get("verdict_status") == "leaks" and name in attacks:
        two_sided = summary.get("verdict_reading") == "member and non-member guesses"
        guesses = "with member and non-member guesses " if two_sided else ""
        return (
            f"{head}{name} proves ε ≥ {_f(summary['verdict_eps_lb'])} {guesses}(AUC "
            f"{_f(attacks[name]['auc'])}): the target leaks."
        )
    best_auc = max(v["auc"] for v in attacks.values())
    return (
        f"{head}no ε lower bound above 0 (AUC {_f(best_auc)}): no measurable leakage against "
        "real data."
    )


def explanations(kind: str, report: Mapping) -> list[tuple[str, str]]:
    """(term, sentence) pairs for the numbers this kind of report shows."""
    alpha = report["alpha"]
    conf = f"{1 - alpha:.0%}"
    rows: list[tuple[str, str]] = []
    if kind == "panoramia":
        rows += [
            (
                "c_lb",
                "How well a baseline classifier tells your real training examples from the "
                "generator's synthetic ones without looking at your model, as an ε lower bound. It "
                "measures the generator, not your model: the better the generator, the lower it is.",
            ),
            (
                "{c+ε}_lb",
                "The same, for a membership attack that also sees your model's outputs "
                f"(loss, confidence): a lower bound at {conf} confidence on the generator's part c "
                "plus your model's leakage ε.",
            ),
            (
                "ε̃ = {c+ε}_lb − c_lb",
                "How much further the attack gets because it sees your "
                "model. It is a difference of two lower bounds, not a lower bound itself: it can be "
                "negative when the attack, which has to learn from your model's noisier signals, "
                "does slightly worse than the baseline on this test set; a negative or near-zero ε̃ "
                "means no leakage beyond the baseline was measured.",
            ),
        ]
        if report.get("two_sided"):
            rows.append(
                (
                    "with member and non-member guesses",
                    'The same three numbers when each classifier may also say "not a member" '
                    "for the examples it scores lowest. A model that recognises the examples it "
                    "never saw (it gets a synthetic example badly wrong) leaks this way, and only "
                    "this version of ε̃ shows it; on privaudit's leakage ladders it is the one that "
                    "ranks models as their real leakage does. The verdict weighs both.",
                )
            )
    elif kind == "one_run":
        rows += [
            (
                "one-run ε lower bound",
                "From one training run with canaries, each included with "
                "probability 1/2: the attack guesses IN for the highest-scoring canaries, OUT for "
                "the lowest and abstains on the rest; how many guesses are right gives an ε that "
                f"any (ε, δ)-DP training must exceed, at {conf} confidence (Steinke, Nasr, "
                "Jagielski 2023). This is the number the CLI prints.",
            ),
            (
                "threshold-sweep ε lower bound (table)",
                "The same kind of bound from member "
                "guesses only, at every threshold (no OUT guesses): sound too, but usually lower "
                "than the one-run bound, which also counts right OUT guesses.",
            ),
        ]
    else:
        rows.append(
            (
                "ε lower bound",
                "The attack guesses 'member' above a threshold; from how "
                "many of those guesses are right, the smallest ε a DP guarantee would need "
                f"to allow them, at {conf} confidence (the best threshold, corrected for "
                "trying them all). 0 means nothing was proven.",
            )
        )
    rows += [
        (
            "AUC",
            "The probability that the attack scores a random member above a random "
            "non-member: 0.5 is guessing, 1 is perfect. It averages over all thresholds, so it "
            "can hide a few very exposed records.",
        ),
        (
            "TPR at low FPR",
            "The share of members the attack finds while wrongly flagging only "
            "0.1% (or 1%) of non-members: what matters when even a few confident hits are a "
            "breach.",
        ),
        (
            "hypothesis-test ε (heuristic)",
            "A quick DP-style estimate from confidence intervals "
            "on the error rates; it treats rows as independent trials though they share one "
            "training run, so it is not a bound.",
        ),
    ]
    if kind == "panoramia" and (report.get("extra") or {}).get("ground_truth"):
        rows.append(
            (
                "ground truth",
                "The same attacks run against real examples your model "
                "never saw instead of generated ones. Its ε lower bound is sound for your "
                "model alone (no generator in it); the audit is trustworthy when its ranking "
                "agrees with this.",
            )
        )
    return rows


def verdict_html(v: Mapping) -> str:
    colour = "#b00020" if v["status"] == "leaks" else "#1b5e20"
    parts = [
        f'<div id="verdict" style="border:2px solid {colour};padding:0.6em 1em;margin:1em 0">',
        f'<p style="font-size:1.15em"><b>Verdict:</b> {html.escape(v["text"])}</p>',
    ]
    if v.get("evidence"):
        parts.append(
            "<ul>" + "".join(f"<li>{html.escape(e)}</li>" for e in v["evidence"]) + "</ul>"
        )
    if v.get("caveats"):
        parts.append("<p><b>Caveats</b></p><ul>"
                     + "".join(f"<li>{html.escape(c)}</li>" for c in v["caveats"]) + "</ul>")  # fmt: skip
    parts.append("</div>")
    return "".join(parts)


def weak_generator_html(v: Mapping) -> str:
    if not v.get("generator_too_weak"):
        return ""
    warning = next(c for c in v["caveats"] if c.startswith("The generator is too weak"))
    return (
        '<div id="weak-generator" style="background:#fff3cd;border:1px solid #c90;padding:0.6em 1em">'
        f"<b>Warning: the generator limits this audit.</b> {html.escape(warning)}</div>"
    )


def explanations_html(rows: Sequence[tuple[str, str]]) -> str:
    return (
        "<h2>What the numbers mean</h2><dl>"
        + "".join(f"<dt><b>{html.escape(t)}</b></dt><dd>{html.escape(s)}</dd>" for t, s in rows)
        + "</dl>"
    )
