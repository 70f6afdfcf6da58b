"""dp-train's image task (registered by privaudit-image): a small DP run and bad inputs."""

import json

import numpy as np
import pytest
from privaudit.dp.cli import main


@pytest.mark.slow
def test_dp_train_small_run_reports_accuracy_and_epsilon(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["--limit", "1000", "--epochs", "2", "--epsilon", "8", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert 0 < report["privacy"]["epsilon_spent"] <= 8.05
    assert report["privacy"]["randomness"] == {
        "source": "os-entropy",
        "private": True,
        "secure_rng": False,
    }
    assert report["quality"]["test_accuracy"] > 0.25  # ten classes: chance is 0.1
    assert f"report: {out / 'report.json'}" in capsys.readouterr().out


def test_bad_input_exits_2_with_one_sentence(tmp_path, capsys):
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip archive")
    bad = tmp_path / "bad.npz"
    np.savez(bad, images=np.zeros((20, 4, 4)))
    cases = [
        (["--data", str(tmp_path / "missing.npz")], "expected 'mnist' or an existing .npz file"),
        (["--epsilon", "-1"], "config field 'epsilon' must be positive"),
        (["--data", str(bad)], "must hold arrays named 'images' and 'labels'"),
        (["--data", str(garbage)], "is not a readable .npz archive"),
        (["--model", "vgg"], "dp-train has no model 'vgg'"),
        (["--limit", "-3"], "config field 'limit' must be zero or a positive integer"),
        (["--device", "cuda:7"], "device cuda:7 was asked for"),
        (
            ["--out", "/proc/no-such-dir"],
            "output directory /proc/no-such-dir cannot be created or written",
        ),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: ") and message in err, (argv, err)
        assert "Traceback" not in err
