"""The report's explanations and verdict, on tables whose answer is known by construction."""

import json

import numpy as np
import pandas as pd
import pytest
from privaudit.core import bounds, explain
from privaudit.core.report import summary_lines, write_report
from scipy import special, stats


def table(baseline_shift, attack_shift, n=600, seed=0):
    """Members shifted up by `*_shift` standard deviations in each column (0: chance)."""
    rng = np.random.default_rng(seed)
    member = rng.integers(0, 2, n)
    return pd.DataFrame(
        {
            "member": member,
            "baseline_pred": rng.normal(baseline_shift * member, 1),
            "mia_target_pred": rng.normal(attack_shift * member, 1),
        }
    )


def test_a_target_that_leaks_far_beyond_the_baseline_is_called_leaking(tmp_path):
    report = write_report(table(0.3, 3.0), tmp_path / "r", member_prior=0.5)
    verdict = report["verdict"]
    assert verdict["status"] == "leaks" and verdict["text"].startswith("leaks:")
    assert verdict["comparison"]["beyond_baseline"]
    assert (
        verdict["comparison"]["eps_lb_at_comparison"] > verdict["comparison"]["baseline_eps_upper"]
    )
    assert not verdict["generator_too_weak"]
    html = (tmp_path / "r" / "report.html").read_text()
    assert 'id="verdict"' in html and "Verdict:</b> leaks:" in html
    assert any(line.startswith("verdict: leaks:") for line in summary_lines(report))


def test_the_member_guess_and_two_sided_comparisons_share_alpha():
    # at a member prior of 1/2 the verdict may read two comparisons, so each gets alpha / 2: the
    # member-guess one reads the attack's bound and the baseline's limit at half the curve's level
    scores = table(0.3, 3.0)
    labels = scores["member"].to_numpy()
    columns = {c: scores[c].to_numpy() for c in ("baseline_pred", "mia_target_pred")}
    alpha = 0.05

    def comparison(two_sided):
        curves = bounds.panoramia_bounds(labels, columns, alpha=alpha, member_prior=0.5)["curves"]
        report = {"alpha": alpha, "delta": 0.0, "member_prior": 0.5, "baseline": "baseline_pred",
                  "n": labels.size, "members": int(labels.sum()),
                  "nonmembers": int(labels.size - labels.sum()), "c_lb": 0.0,
                  "eps_tilde": {"mia_target_pred": 1.0},
                  "columns": {c: {"auc": 0.9, "auc_ci95": [0.8, 1.0]} for c in columns},
                  **({"two_sided": {"eps_tilde": {}}} if two_sided else {})}  # fmt: skip
        out = explain.verdict(report, curves, labels, columns, kind="panoramia")["comparison"]
        return out, curves["mia_target_pred"].level

    for two_sided, share in ((True, 2), (False, 1)):
        got, level = comparison(two_sided)
        r = got["predicted_members"]
        v = labels[np.argsort(-columns["mia_target_pred"])[:r]].sum()
        want_lb = bounds.eps_lower_bounds(labels.size, r, v, alpha=level / share, member_prior=0.5)
        want_ub = explain.baseline_upper(labels, columns["baseline_pred"], [r], level / share, 0.5)
        assert got["eps_lb_at_comparison"] == pytest.approx(float(want_lb))
        assert got["baseline_eps_upper"] == pytest.approx(float(want_ub[0]))


def test_an_attack_no_better_than_the_baseline_is_no_leak_even_when_eps_tilde_is_positive(tmp_path):
    # The target adds nothing: both columns come from one distribution. eps_tilde still comes
    # out positive on some seeds (noise); the verdict must not follow it.
    tildes = []
    for seed in range(6):
        report = write_report(table(1.0, 1.0, seed=seed), tmp_path / str(seed), member_prior=0.5)
        tildes.append(report["eps_tilde"]["mia_target_pred"])
        assert report["verdict"]["status"] == "no measurable leakage", seed
        assert report["verdict"]["text"].startswith(
            "no measurable leakage beyond the generator's baseline"
        )
    assert max(tildes) > 0.2  # the heuristic alone would have called a leak


def test_a_perfect_baseline_is_a_generator_too_weak_to_audit(tmp_path):
    report = write_report(table(8.0, 8.0), tmp_path / "r", member_prior=0.5)
    verdict = report["verdict"]
    assert verdict["generator_too_weak"] and verdict["status"] == "no measurable leakage"
    html = (tmp_path / "r" / "report.html").read_text()
    assert "Warning: the generator limits this audit" in html and "--gan-steps" in html
    assert any(line.startswith("The generator is too weak") for line in summary_lines(report))
    # c_lb sits at the largest bound the test size allows
    assert report["c_lb"] == pytest.approx(verdict["bound_ceiling"], abs=0.05)


def test_explanations_cover_every_number_and_say_why_eps_tilde_can_be_negative(tmp_path):
    write_report(table(0.5, 1.0), tmp_path / "r", member_prior=0.5)
    html = (tmp_path / "r" / "report.html").read_text()
    for term in ("c_lb", "{c+ε}_lb", "ε̃ = {c+ε}_lb − c_lb", "AUC", "TPR at low FPR"):
        assert f"<dt><b>{term}</b></dt>" in html, term
    assert "can be negative" in html and "Sample size:" in html


def test_a_report_without_baseline_has_no_panoramia_boilerplate(tmp_path):
    scores = table(0.0, 2.0).drop(columns="baseline_pred")
    report = write_report(scores, tmp_path / "r", baseline=None, member_prior=0.5)
    assert report["kind"] == "mia" and report["verdict"]["status"] == "leaks"
    html = (tmp_path / "r" / "report.html").read_text()
    assert "c_lb" not in html and "ε̃" not in html and "eps_tilde" not in html
    assert "proves ε ≥" in html


def test_the_verdict_bound_is_corrected_for_picking_the_best_attack(tmp_path):
    scores = table(0.0, 1.5).drop(columns="baseline_pred")
    scores["mia_other_pred"] = scores["mia_target_pred"] + 0.01
    report = write_report(scores, tmp_path / "r", baseline=None, member_prior=0.5)
    best_column = max(c["eps_lb"] for c in report["columns"].values())
    assert 0 < report["verdict"]["eps_lb"] < best_column


def test_a_headline_bound_and_a_dp_spend_are_shown_and_compared(tmp_path):
    scores = table(0.0, 2.0).drop(columns="baseline_pred")
    headline = {"label": "one-run ε lower bound", "value": 1.604, "detail": "k+ = 10"}
    report = write_report(
        scores, tmp_path / "r", baseline=None, member_prior=0.5, kind="one_run",
        headline=headline, dp={"spent_epsilon": 1.0, "target_epsilon": 1.0, "delta": 1e-5},
    )  # fmt: skip
    html = (tmp_path / "r" / "report.html").read_text()
    assert "one-run ε lower bound = 1.604" in html and "spent ε = 1.000" in html
    assert report["verdict"]["eps_lb"] == 1.604
    assert any("accounting is broken" in e for e in report["verdict"]["evidence"])


def test_config_json_and_report_json_agree_on_delta(tmp_path):
    # a run config's own `delta` (a DP target's training delta) must not stand for the audit's
    report = write_report(
        table(0.5, 1.0), tmp_path / "r", member_prior=0.5, delta=1e-6,
        config={"delta": 1e-5, "seed": 3},
    )  # fmt: skip
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    saved = json.loads((tmp_path / "r" / "report.json").read_text())
    assert config["audit"]["delta"] == saved["delta"] == report["delta"] == 1e-6
    assert config["audit"]["member_prior"] == saved["member_prior"]
    assert config["delta"] == 1e-5 and config["seed"] == 3


def test_baseline_upper_is_the_clopper_pearson_upper_limit_as_eps():
    labels = np.array([1, 1, 0, 1, 0, 0, 1, 0, 0, 0])
    scores = -np.arange(10.0)  # the first rows score highest
    level = 0.01
    got = explain.baseline_upper(labels, scores, [4, 10], level, 0.5)
    for r, value in zip([4, 10], got, strict=True):
        v = labels[:r].sum()
        q = stats.beta.ppf(1 - level, v + 1, r - v)
        assert value == pytest.approx(max(0.0, special.logit(q)))
    assert explain.baseline_upper(np.ones(3), scores[:3], [3], level, 0.5)[0] == np.inf


def test_bound_ceiling_is_what_a_perfect_column_reaches():
    labels = np.r_[np.ones(200), np.zeros(200)]
    level = 0.05 / 400
    curve = bounds.eps_lb_curve(labels, labels + np.linspace(0, 0.5, 400), level=level)
    assert curve.eps_max == pytest.approx(explain.bound_ceiling(400, 200, level, 0.0, 0.5))


def test_a_panoramia_report_carries_the_two_sided_bounds_at_prior_one_half(tmp_path):
    scores = table(0.3, 3.0)
    report = write_report(scores, tmp_path / "r", member_prior=0.5)
    two_sided = report["two_sided"]
    columns = {c: scores[c].to_numpy() for c in ("baseline_pred", "mia_target_pred")}
    assert two_sided == bounds.two_sided_bounds(scores["member"].to_numpy(), columns)
    assert two_sided["columns"]["mia_target_pred"]["eps_lb"] > 1.0
    page = (tmp_path / "r" / "report.html").read_text()
    assert "id='two-sided'" in page and "with member and non-member guesses" in page
    assert any("with member and non-member guesses" in line for line in summary_lines(report))
    # without a design prior of 1/2 there is no two-sided test; an attack-only report has no c_lb
    assert "two_sided" not in write_report(scores, tmp_path / "f")
    assert "two_sided" not in write_report(
        scores.drop(columns="baseline_pred"), tmp_path / "m", baseline=None, member_prior=0.5
    )


def test_an_attack_that_recognises_non_members_is_called_leaking(tmp_path):
    # the attack sees what the baseline sees, and ranks 200 of the non-members surely last:
    # member guesses show nothing beyond the baseline, non-member guesses do
    scores = table(0.5, 0.0, n=2000)
    scores["mia_target_pred"] = scores["baseline_pred"]
    sure = np.flatnonzero(scores["member"].to_numpy() == 0)[:200]
    scores.loc[sure, "mia_target_pred"] = -10.0
    report = write_report(scores, tmp_path / "r", member_prior=0.5)
    verdict = report["verdict"]
    assert not verdict["comparison"]["beyond_baseline"]
    assert verdict["comparison_two_sided"]["beyond_baseline"]
    assert verdict["comparison_two_sided"]["non_member_guesses"] > 100
    assert verdict["status"] == "leaks" and "non-member for the" in verdict["text"]
    # and the same table without those 200 is no leak either way
    same = write_report(table(0.5, 0.0, n=2000).assign(
        mia_target_pred=lambda t: t["baseline_pred"]), tmp_path / "s", member_prior=0.5)  # fmt: skip
    assert same["verdict"]["status"] == "no measurable leakage"
    assert "nor with member and non-member guesses" in same["verdict"]["text"]


def test_a_ground_truth_that_recognises_non_members_says_the_target_leaks(tmp_path):
    # real members against real non-members: 20 non-members scored surely last (a target that
    # gets some examples it never saw badly wrong, as the default-size ViT), the other
    # non-members above every member, so that member guesses cannot show anything
    from privaudit.core.report import ground_truth_summary

    member = np.repeat([1, 0], 500)
    scores = table(0.0, 0.0, n=1000).assign(member=member)
    scores["mia_target_pred"] = np.where(member == 1, 0.0, 1.0)
    scores.loc[np.flatnonzero(member == 0)[:20], "mia_target_pred"] = -10.0
    truth = write_report(scores, tmp_path / "gt", member_prior=0.5, kind="ground_truth")
    verdict = truth["verdict"]
    assert truth["columns"]["mia_target_pred"]["eps_lb"] == 0  # member guesses alone: nothing
    assert (
        verdict["status"] == "leaks"
        and "guessing non-member for the 20 examples it scores lowest" in verdict["text"]
    )
    # Bonferroni over the attacks: at most the report's own two-sided bound of the column
    two_sided = truth["two_sided"]["columns"]["mia_target_pred"]["eps_lb"]
    assert 0 < verdict["eps_lb"] == verdict["two_sided_eps_lb"] <= two_sided
    # the main report's ground-truth line says so too
    main = write_report(
        table(0.3, 0.3, n=1000), tmp_path / "r", member_prior=0.5,
        extra={"ground_truth": ground_truth_summary(truth, tmp_path / "gt")},
    )  # fmt: skip
    line = main["verdict"]["ground_truth"]
    assert (
        "mia_target_pred proves ε ≥" in line and "with member and non-member guesses (AUC" in line
    )
    assert line.endswith("the target leaks.")
    # chance scores: no reading leaks
    chance = write_report(table(0.0, 0.0, n=1000), tmp_path / "c", member_prior=0.5,
                          kind="ground_truth")  # fmt: skip
    assert chance["verdict"]["status"] == "no measurable leakage"
    assert chance["verdict"]["two_sided_eps_lb"] == 0
    # without a baseline the member guesses spend all of alpha: no second reading
    alone = write_report(scores.drop(columns="baseline_pred"), tmp_path / "a", baseline=None,
                         member_prior=0.5, kind="ground_truth")  # fmt: skip
    assert alone["verdict"]["status"] == "no measurable leakage"
    assert "two_sided_eps_lb" not in alone["verdict"]


def test_a_detector_that_spots_the_generators_examples_flags_a_weak_generator(tmp_path):
    # the baseline (AUC about 0.6) leaves room above c_lb; a detector trained longer on the
    # examples alone tells them apart at 0.995, so the generator limits the audit all the same
    def verdict_with(detector_auc, name):
        extra = {"generator_quality": {"detector_auc": detector_auc}}
        report = write_report(table(0.4, 0.4), tmp_path / name, member_prior=0.5, extra=extra)
        return report, (tmp_path / name / "report.html").read_text()

    report, html = verdict_with(0.995, "detected")
    verdict = report["verdict"]
    assert verdict["generator_too_weak"]
    caveat = next(c for c in verdict["caveats"] if c.startswith("The generator is too weak"))
    assert "detector" in caveat and "0.995" in caveat and "understates" in caveat
    assert "Warning: the generator limits this audit" in html
    assert caveat in summary_lines(report)
    report, html = verdict_with(0.9, "not-detected")
    assert not report["verdict"]["generator_too_weak"]
    assert "Warning: the generator limits this audit" not in html
    assert any(
        "a detector trained longer" in c and "0.900" in c for c in report["verdict"]["caveats"]
    )


def test_the_verdict_gives_the_sampling_spread_of_c_lb_and_eps_tilde(tmp_path):
    report = write_report(table(1.0, 1.0), tmp_path / "r", member_prior=0.5)
    spread = report["sampling_spread"]
    assert spread["c_lb_sd"] > 0 and spread["eps_tilde_sd"]["mia_target_pred"] > 0
    caveat = next(c for c in report["verdict"]["caveats"] if c.startswith("Sampling spread"))
    assert f"±{spread['eps_tilde_sd']['mia_target_pred']:.3f}" in caveat
    assert caveat in (tmp_path / "r" / "report.html").read_text().replace("&#x27;", "'")
    assert f"(sampling sd {spread['c_lb_sd']:.3f})" in summary_lines(report)[0]
    # no baseline, no c_lb: no spread
    mia = write_report(table(1.0, 1.0).drop(columns="baseline_pred"), tmp_path / "m", baseline=None)
    assert "sampling_spread" not in mia
