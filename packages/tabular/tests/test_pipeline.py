"""The audit end to end on a slice of Adult: reports written, caches reused, overfit leaks more than DP."""

import json

import pytest
from privaudit.tabular.audit import run_audit
from privaudit.tabular.config import TabularAuditConfig

pytestmark = pytest.mark.slow  # whole audits end to end: the full tier only

TINY = dict(
    generator_rows=500,
    audit_members=1200,
    non_members=700,
    ctgan_epochs=5,
    epochs=5,
    helper_epochs=5,
    hidden=(64, 64),
    overfit_hidden=(256, 256),
    overfit_epochs=150,
    classifier_iterations=60,
    seed=3,
)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


def _config(adult_slice_csv, out, cache_dir, **changes):
    return TabularAuditConfig(
        data=str(adult_slice_csv), out_dir=str(out), cache_dir=str(cache_dir), **{**TINY, **changes}
    )


def test_end_to_end_report_and_resume(adult_slice_csv, tmp_path, cache_dir):
    config = _config(adult_slice_csv, tmp_path / "mlp", cache_dir)
    report = run_audit(config)
    written = json.loads((tmp_path / "mlp" / "report.json").read_text())
    assert written["eps_tilde"].keys() == {"mia_mlp_pred"}
    assert written["c_lb"] is not None
    assert (tmp_path / "mlp" / "report.html").stat().st_size > 1000
    assert 0 < written["extra"]["generator_quality"]["score"] <= 1
    assert {s["column"] for s in written["extra"]["generator_quality"]["column_shapes"]} >= {
        "age",
        "workclass",
    }
    assert (tmp_path / "mlp" / "ground-truth" / "report.json").exists()
    assert written["n"] == report["n"] == 600  # test slots: half of the 1,200 audit members
    assert 250 < written["members"] < 350  # each slot is real with probability 1/2
    cached = {p.name: p.stat().st_mtime_ns for p in cache_dir.iterdir()}
    again = run_audit(config)
    assert {
        p.name: p.stat().st_mtime_ns for p in cache_dir.iterdir()
    } == cached  # nothing retrained
    assert again["eps_tilde"] == report["eps_tilde"]
    assert again["extra"]["cached_stages"]
    html = (tmp_path / "mlp" / "report.html").read_text()
    assert "Reused from the cache" in html and 'id="verdict"' in html
    assert 'id="verdict"' in (tmp_path / "mlp" / "ground-truth" / "report.html").read_text()


def test_overfit_target_leaks_more_than_dp(noisy_adult_csv, tmp_path, cache_dir):
    # A CTGAN trained for 200 steps: with the 5 of TINY the baseline is perfect and no attack can beat it.
    # Measured over seeds 0-5 (with the rejection filter, both read at delta 0): the paper's
    # eps_tilde (member guesses) overfit 0.25-0.61 vs DP -0.31-0.27, ordered right on 6 seeds of 6
    # (margins 0.09-0.61); but the DP noise is unseeded by design, so the DP target changes on every
    # run, and at this test's seed 1 run of 4 failed that ordering: it is not asserted. With member
    # and non-member guesses, over seeds 0-5 and two more DP targets at seed 3: overfit 1.46-1.69
    # vs DP -0.21-0.28, the smallest margin 1.18 (8 runs of 8); asserted with room to spare.
    generator = dict(synthesizer_batch_size=100, ctgan_epochs=40)
    overfit = run_audit(
        _config(noisy_adult_csv, tmp_path / "overfit", cache_dir, target="overfit", **generator)
    )
    private = run_audit(
        _config(noisy_adult_csv, tmp_path / "dp", cache_dir, target="dp", epsilon=1.0, **generator)
    )
    assert private["extra"]["target"]["spent_epsilon"] <= 1.0 + 1e-6
    assert (
        overfit["columns"]["baseline_pred"]["auc"] < 0.95
    )  # the generator leaves room for the attack
    gt_overfit = overfit["extra"]["ground_truth"]["columns"]["mia_overfit_pred"]["auc"]
    gt_private = private["extra"]["ground_truth"]["columns"]["mia_dp_pred"]["auc"]
    assert gt_overfit > gt_private + 0.1
    two_sided_overfit = overfit["two_sided"]["eps_tilde"]["mia_overfit_pred"]
    assert two_sided_overfit > 1.0
    assert two_sided_overfit > private["two_sided"]["eps_tilde"]["mia_dp_pred"] + 0.5
    # the DP target's spend is in the HTML; the ground truth ran at its delta, PANORAMIA at 0 as
    # for every target (so eps_tilde compares), and each config.json says what its report used
    html = (tmp_path / "dp" / "report.html").read_text()
    assert f"spent ε = {private['extra']['target']['spent_epsilon']:.3f}" in html
    assert "read at δ = 0, as for every target" in html
    saved_config = json.loads((tmp_path / "dp" / "config.json").read_text())
    assert saved_config["audit"]["delta"] == private["delta"] == overfit["delta"] == 0.0
    truth = json.loads((tmp_path / "dp" / "ground-truth" / "report.json").read_text())
    truth_config = json.loads((tmp_path / "dp" / "ground-truth" / "config.json").read_text())
    assert (
        truth_config["audit"]["delta"]
        == truth["delta"]
        == private["extra"]["target"]["delta"]
        == saved_config["delta"]
    )
    assert overfit["verdict"]["ground_truth"].startswith("Ground truth")
    # at its delta the ground truth's bound is read at the guess-count grid, where it can rise
    # above 0 (a sweep over every distinct score could not: its ceiling was 0.000)
    assert truth["guess_grid"] == truth_config["audit"]["guess_grid"] == 24
    assert private["guess_grid"] is overfit["guess_grid"] is None
    assert truth["verdict"]["bound_ceiling"] > 1.0


def test_tvae_synthesizer_end_to_end(adult_slice_csv, tmp_path, cache_dir):
    # the shared cache holds the first test's target: only TVAE, the helper and the classifiers train
    config = _config(
        adult_slice_csv, tmp_path / "tvae", cache_dir, synthesizer="tvae", tvae_epochs=5
    )
    report = run_audit(config)
    assert report["extra"]["generator"] == "TVAE"
    assert report["c_lb"] is not None and report["n"] == 600
    assert "Generator (TVAE) quality" in (tmp_path / "tvae" / "report.html").read_text()


def test_reference_helper_trains_on_the_generator_split(adult_slice_csv, tmp_path, cache_dir):
    # the module cache holds the first test's target, synthetic sample and synthetic-data helper
    synthetic = run_audit(_config(adult_slice_csv, tmp_path / "syn", cache_dir))
    reference = run_audit(
        _config(adult_slice_csv, tmp_path / "ref", cache_dir, helper_data="generator-split")
    )
    assert json.loads((tmp_path / "ref" / "config.json").read_text())["helper_data"] == (
        "generator-split"
    )
    # the same target and test; a different helper, so a different baseline
    assert reference["columns"]["mia_mlp_pred"] == synthetic["columns"]["mia_mlp_pred"]
    assert (
        reference["columns"]["baseline_pred"]["auc"] != synthetic["columns"]["baseline_pred"]["auc"]
    )
    assert "helper" not in reference["extra"]["cached_stages"]


def test_mia_reference_changes_the_mia_only(adult_slice_csv, tmp_path, cache_dir):
    # the module cache holds the first test's target, synthetic sample and generator-split helper
    reference = dict(helper_data="generator-split")
    plain = run_audit(_config(adult_slice_csv, tmp_path / "plain", cache_dir, **reference))
    calibrated = run_audit(
        _config(
            adult_slice_csv, tmp_path / "calibrated", cache_dir, mia_reference="helper", **reference
        )
    )
    # the same baseline, so the same c_lb; the MIA sees the helper's loss too, so it changes
    assert calibrated["columns"]["baseline_pred"] == plain["columns"]["baseline_pred"]
    assert calibrated["c_lb"] == plain["c_lb"]
    assert calibrated["columns"]["mia_mlp_pred"] != plain["columns"]["mia_mlp_pred"]
    assert not {"target", "synthetic", "helper"} - set(calibrated["extra"]["cached_stages"])
    saved = json.loads((tmp_path / "calibrated" / "config.json").read_text())
    assert saved["mia_reference"] == "helper"
