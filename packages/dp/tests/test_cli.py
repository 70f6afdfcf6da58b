import json

import numpy as np
from privaudit.dp.cli import main


def test_dp_train_small_run_reports_accuracy_and_epsilon(tmp_path):
    out = tmp_path / "run"
    assert main(["--limit", "1000", "--epochs", "2", "--epsilon", "8", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert 0 < report["epsilon_spent"] <= 8.05
    assert report["test_accuracy"] > 0.25  # ten classes: chance is 0.1


def test_bad_input_exits_2_with_one_sentence(tmp_path, capsys):
    assert main(["--data", str(tmp_path / "missing.npz")]) == 2
    assert main(["--epsilon", "-1"]) == 2
    bad = tmp_path / "bad.npz"
    np.savez(bad, images=np.zeros((20, 4, 4)))
    assert main(["--data", str(bad)]) == 2
    assert main(["--model", "vgg"]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 4 and "Traceback" not in err
