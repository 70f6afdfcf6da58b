"""The audit end to end on sklearn digits: report contents, caching/resume, and a leaking target."""

from __future__ import annotations

import json
import time

import pytest
import torch
from privaudit.image import attack, gan, models
from privaudit.image.audit import run_audit
from privaudit.image.cli import main

pytestmark = pytest.mark.slow  # whole audits end to end: the full tier only


def test_pipeline_runs_end_to_end_and_a_rerun_reuses_the_cache(tiny, capsys, monkeypatch):
    config = tiny()
    report = run_audit(config)
    run = config.out_dir
    assert {"c_lb", "eps_tilde", "columns"} <= set(report)
    assert set(report["columns"]) == {"baseline_pred", "mia_cnn_pred"}
    assert (
        report["n"] == 200 and 60 < report["members"] < 140
    )  # each test slot real with probability 1/2
    extra = report["extra"]
    q = extra["generator_quality"]
    assert q["frechet_distance"] > 0 and q["frechet_distance_real_vs_real"] > 0
    assert "trained on the generator's training images" in q["feature_space"]
    assert 0 <= q["detector_auc"] <= 1 and "epochs on images alone" in q["detector"]
    assert extra["ground_truth"] is not None and set(extra["ground_truth"]["columns"]) == {
        "baseline_pred",
        "mia_cnn_pred",
    }
    html = open(f"{run}/report.html").read()
    assert "generator_samples.png" in html and "Fréchet distance" in html and "Ground truth" in html
    assert "A detector (GroupNorm CNN" in html
    weak = report["verdict"]["generator_too_weak"]
    assert ("Warning: the generator limits this audit" in html) == weak
    assert "Verdict:" in html and "What the numbers mean" in html
    saved = json.loads(open(f"{run}/report.json").read())
    assert saved["eps_tilde"] == report["eps_tilde"]

    # A rerun loads every stage from the cache: no training call happens and the numbers are equal.
    def forbidden(*args, **kwargs):
        raise AssertionError("a cached stage was recomputed")

    for module, name in ((models, "train_classifier"), (attack, "train"), (gan, "train_gan")):
        monkeypatch.setattr(module, name, forbidden)
    started = time.perf_counter()
    assert main(["--config", _write_yaml(config), "--out", run]) == 0
    assert time.perf_counter() - started < 60
    captured = capsys.readouterr()
    out = captured.out
    assert "reused from the cache: target, synthetic, quality, helper, scores" in captured.err
    assert f"report: {run}/report.html" in out and "eps_tilde" in out and "verdict: " in out
    assert "Reused from the cache" in open(f"{run}/report.html").read()
    assert json.loads(open(f"{run}/report.json").read())["eps_tilde"] == report["eps_tilde"]


def _write_yaml(config) -> str:
    import yaml

    path = f"{config.out_dir}.yaml"
    fields = {k: v for k, v in config.as_dict().items() if v is not None and k != "out_dir"}
    with open(path, "w") as handle:
        yaml.safe_dump(fields, handle)
    return path


def test_overfit_target_leaks_more_than_the_baseline(tiny):
    # A ViT trained long on few digits memorises them (member accuracy 1.0, non-members ~0.93).
    # Against real non-members (ground truth) the MIA, reading the target's loss, beats the
    # baseline, reading the helper's. Against this tiny generator's images both attack networks
    # saturate (the image branch spots generated digits), so eps_tilde itself stays near 0 here;
    # see the package README.
    config = tiny(
        generator_images=300,
        audit_members=600,
        non_members=400,
        target="vit",
        epochs=60,
        lr=3e-3,
        gan_steps=300,
        attack_epochs=15,
        helper_epochs=8,
        helper_architecture="cnn",
    )
    report = run_audit(config)
    target = report["extra"]["target"]
    assert target["member_accuracy"] == 1.0 and target["non_member_accuracy"] < 0.97
    gt = report["extra"]["ground_truth"]["columns"]
    assert gt["mia_vit_pred"]["auc"] > gt["baseline_pred"]["auc"] + 0.03, gt
    assert report["c_lb"] > 1.0  # the generated digits are told apart from real ones
    assert report["eps_tilde"]["mia_vit_pred"] is not None


def test_dp_target_trains_through_privaudit_dp(tiny):
    config = tiny(
        epsilon=1.0, dp_epochs=2, dp_batch_size=128, gan_steps=20, attack_epochs=2, helper_epochs=2
    )
    report = run_audit(config)
    target = report["extra"]["target"]
    assert target["target_epsilon"] == 1.0
    assert 0 < target["spent_epsilon"] <= 1.0 + 1e-6
    assert "mia_cnn_dp_eps1_pred" in report["columns"]


def test_user_checkpoint_is_audited_with_its_non_members(tiny, tmp_path):
    from privaudit.image.models import build_model

    torch.manual_seed(0)
    path = tmp_path / "model.pt"
    torch.save(build_model("cnn", 1, 10, 8).state_dict(), path)
    config = tiny(
        model=str(path),
        architecture="cnn",
        non_members=0,
        gan_steps=10,
        attack_epochs=2,
        helper_epochs=2,
        epochs=2,
    )
    report = run_audit(config)
    assert report["extra"]["target"]["kind"] == "user checkpoint"
    assert "mia_model_pred" in report["columns"]
    assert report["extra"]["ground_truth"] is None  # no real non-members given


@pytest.mark.gpu
def test_pipeline_runs_on_cuda(tiny):
    config = tiny(
        device="cuda",
        epsilon=4.0,
        dp_epochs=2,
        dp_batch_size=128,
        gan_steps=30,
        attack_epochs=2,
        helper_epochs=2,
    )
    report = run_audit(config)
    assert report["extra"]["generator_quality"]["device"] == "cuda"
    assert 0 < report["extra"]["target"]["spent_epsilon"] <= 4.0 + 1e-6
    assert report["eps_tilde"]["mia_cnn_dp_eps4_pred"] is not None
