import json

import pytest
from privaudit.attacks.cli import main

TINY_MIA = """
seed: 1
data: {dataset: digits, audit_size: 200, population_size: 100, shift: 1}
model: {kind: mlp, width: 32}
training: {epochs: 5, batch_size: 32, lr: 0.1}
references: {count: 16}
attacks: [loss, population, lira_online, lira_offline, rmia_online, {name: rmia_offline, a: 0.5, label: rmia_offline_a05}]
"""


def test_mia_end_to_end_and_rerun_reuses_models(tmp_path, capsys):
    config = tmp_path / "mia.yaml"
    config.write_text(TINY_MIA)
    out = tmp_path / "run"
    args = [
        "mia",
        "--config",
        str(config),
        "--set",
        "references.count=4",
        "--out",
        str(out),
        "--quiet",
    ]
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text())
    assert set(report["columns"]) == {
        f"mia_{n}_pred"
        for n in (
            "loss",
            "population",
            "lira_online",
            "lira_offline",
            "rmia_online",
            "rmia_offline_a05",
        )
    }
    assert (
        out / "report.html"
    ).exists() and f"report: {out}/report.html" in capsys.readouterr().out
    checkpoints = sorted(out.glob("cache/references-*/model_*.pt"))
    assert len(checkpoints) == 4
    stamps = [p.stat().st_mtime_ns for p in checkpoints]
    assert main(args) == 0
    assert [p.stat().st_mtime_ns for p in checkpoints] == stamps
    assert json.loads((out / "report.json").read_text())["columns"] == report["columns"]
    # its own report: no PANORAMIA baseline, c_lb or eps_tilde, a verdict from its bounds
    html = (out / "report.html").read_text()
    assert report["kind"] == "mia" and 'id="verdict"' in html
    assert "c_lb" not in html and "ε̃" not in html and "baseline" not in html.lower()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("data: {dataset: cifar}", "data.dataset must be one of mnist, digits, got 'cifar'"),
        ("data: {audit_size: 7}", "audit_size must be an even number"),
        ("referencez: {}", "unknown field 'referencez'"),
        ("attacks: [lira]", "unknown attack 'lira'"),
        ("training: {epochs: many}", "config field 'training.epochs' must be int"),
        ("data: [", "is not readable YAML"),
    ],
)
def test_bad_config_exits_2_with_one_sentence(tmp_path, capsys, text, message):
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    assert main(["mia", "--config", str(config), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "run" / "report.json").exists()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("references.count=3", "references.count must be even"),
        ("data.audit_size", "must look like field.subfield=value"),
        ("seed.x=1", "config field 'seed' must be int"),
    ],
)
def test_bad_override_exits_2_with_one_sentence(tmp_path, capsys, override, message):
    assert main(["mia", "--set", override, "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_missing_config_file_exits_2(tmp_path, capsys):
    assert main(["one-run", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml cannot be read" in capsys.readouterr().err


ONE_RUN = """
seed: 0
dataset: digits
train_size: 300
canaries: {count: 400, kind: mislabelled}
model: {kind: mlp, width: 128}
training: {epochs: 30, batch_size: 32, lr: 0.1}
dp: {target_epsilon: 1.0, delta: 1.0e-5, max_grad_norm: 1.0}
"""


def test_one_run_non_private_gives_positive_bound(tmp_path, capsys):
    config = tmp_path / "one.yaml"
    config.write_text(ONE_RUN)
    assert (
        main(["one-run", "--config", str(config), "--out", str(tmp_path / "plain"), "--quiet"]) == 0
    )
    report = json.loads((tmp_path / "plain" / "report.json").read_text())
    extra = report["extra"]
    assert extra["eps_lower_bound"] > 0.5 and extra["dp_epsilon_spent"] is None
    # the HTML's headline is the bound the console prints, and the verdict rests on it
    console = capsys.readouterr().out
    assert "verdict: leaks:" in console
    printed = console.split("eps lower bound ")[1].split()[0]
    html = (tmp_path / "plain" / "report.html").read_text()
    assert f"one-run ε lower bound = {printed}</b>" in html
    assert report["headline"]["value"] == extra["eps_lower_bound"] == report["verdict"]["eps_lb"]
    assert report["verdict"]["status"] == "leaks" and "c_lb" not in html


def test_one_run_dp_bound_stays_below_epsilon(tmp_path):
    config = tmp_path / "one.yaml"
    config.write_text(ONE_RUN)
    assert (
        main(["one-run", "--config", str(config), "--out", str(tmp_path / "dp"), "--dp", "--quiet"])
        == 0
    )
    extra = json.loads((tmp_path / "dp" / "report.json").read_text())["extra"]
    assert extra["dp_epsilon_spent"] == pytest.approx(1.0, rel=0.05)
    assert extra["eps_lower_bound"] < extra["dp_epsilon_spent"]
    report = json.loads((tmp_path / "dp" / "report.json").read_text())
    html = (tmp_path / "dp" / "report.html").read_text()
    assert f"spent ε = {extra['dp_epsilon_spent']:.3f}" in html
    saved_config = json.loads((tmp_path / "dp" / "config.json").read_text())
    assert saved_config["audit"]["delta"] == report["delta"] == saved_config["dp"]["delta"] == 1e-5


def test_negative_threads_exit_2(tmp_path, capsys):
    assert main(["one-run", "--threads", "-1", "--out", str(tmp_path / "run"), "--quiet"]) == 2
    assert "--threads must be >= 0" in capsys.readouterr().err


@pytest.mark.parametrize(
    "device, message",
    [
        ("tpu", "device must be 'auto', 'cpu', 'cuda' or 'cuda:N'"),
        ("cuda:7", "device cuda:7 was asked for"),
    ],
)
def test_unknown_or_missing_device_exits_2(tmp_path, capsys, device, message):
    assert main(["mia", "--device", device, "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "run").exists()  # nothing written


def test_corrupt_reference_checkpoint_exits_2_with_one_sentence(tmp_path, capsys):
    import numpy as np

    refs = tmp_path / "refs"
    refs.mkdir()
    for i in range(2):
        (refs / f"m{i}.pt").write_bytes(b"garbage, not torch.save output")
    np.save(tmp_path / "membership.npy", np.array([[1, 0] * 100, [0, 1] * 100]))
    config = tmp_path / "mia.yaml"
    config.write_text(TINY_MIA)
    args = ["mia", "--config", str(config), "--set", f"references.checkpoint_dir={refs}",
            "--set", f"references.membership={tmp_path / 'membership.npy'}", "--set", "references.count=2",
            "--out", str(tmp_path / "run"), "--quiet"]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err
    assert (
        "m0.pt is not a readable torch file" in err
        and err.count("\n") == 1
        and "Traceback" not in err
    )


# /proc refuses new entries, even for root: an output directory no CLI can create
UNWRITABLE = "/proc/privaudit-unwritable/run"
UNWRITABLE_ERROR = f"error: output directory {UNWRITABLE} cannot be created or written (No such file or directory)."


@pytest.mark.parametrize("argv", [["mia", "--quiet"], ["one-run", "--quiet"], ["lood", "--quiet"]])
def test_unwritable_output_directory_exits_2_before_any_work(capsys, argv):
    assert main([*argv, "--out", UNWRITABLE]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == UNWRITABLE_ERROR and not any("Traceback" in line for line in err), err
