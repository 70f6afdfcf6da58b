"""The whole text audit sees more leakage in a target fine-tuned longer: ground-truth LOSS AUC and
PANORAMIA's eps_tilde both higher at 10 epochs than at 1 (the ladder's small size, seed 0;
tools/bench/results/text_ladder.json has all three seeds: eps_tilde 0.62/0.51/0.70 -> 1.11/0.79/1.18,
LOSS AUC 0.46/0.51/0.45 -> 0.74/0.82/0.73)."""

import pytest
from privaudit.core.config import load_config
from privaudit.text.audit import run_audit
from privaudit.text.config import TextAuditConfig

SMALL = {
    "pretrain_texts": 800,
    "generator_examples": 200,
    "audit_members": 200,
    "non_members": 200,
    "pretrain_epochs": 2,
    "generator_epochs": 3,
    "helper_epochs": 3,
    "feature_epochs": 10,
    "joint_epochs": 2,
    "block": 32,
    "vocab": 512,
    "layers": 2,
    "width": 48,
}


@pytest.mark.slow
def test_ten_epochs_leak_more_than_one(tmp_path):
    reports = {}
    for epochs in (1, 10):
        config = load_config(
            TextAuditConfig,
            None,
            [],
            {
                **SMALL,
                "epochs": epochs,
                "out_dir": str(tmp_path / f"e{epochs}"),
                "cache_dir": str(tmp_path / "cache"),
            },
        )
        reports[epochs] = run_audit(config)
    mia = {e: next(k for k in r["eps_tilde"] if k.startswith("mia_")) for e, r in reports.items()}
    assert reports[10]["eps_tilde"][mia[10]] > reports[1]["eps_tilde"][mia[1]] + 0.2
    auc = {e: r["extra"]["ground_truth_low_fpr"]["loss_pred"]["auc"] for e, r in reports.items()}
    assert auc[10] > auc[1] + 0.15
