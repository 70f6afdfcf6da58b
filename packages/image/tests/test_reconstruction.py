"""`audit-image reconstruct` end to end on scikit-learn's 8x8 digits, and its bad inputs."""

import json

import pytest
from privaudit.image.cli import main

TINY = [
    "--data", "digits", "--quiet",
    "--set", "image_size=8", "--set", "backbone_images=300", "--set", "backbone_epochs=2",
    "--set", "attacked_images=300", "--set", "shadow_heads=600", "--set", "chunk_size=256",
    "--set", "attacked_heads=60", "--set", "reconstructor.steps=30", "--set", "reconstructor.width=4",
    "--set", "reconstructor.checkpoint_every=10",
]  # fmt: skip


@pytest.mark.slow
def test_reconstruct_end_to_end_and_rerun_reuses_every_stage(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["reconstruct", *TINY, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "shadow heads 600, attacked heads 60, reconstructor steps 30" in printed
    assert f"report (sensitive: shows training images): {out}/report.html" in printed
    report = json.loads((out / "report.json").read_text())
    assert report["contains_training_images"] is True
    results = report["results"]
    assert results["h0_count"] == results["h1_count"] == 60 * 10
    assert 0 <= results["tpr_at_fpr"]["0.01"] <= 1 and 0 <= results["auc"] <= 1
    assert report["run"]["pools"] == {"attacked": 300, "backbone": 300, "shadow": 1197}
    assert report["run"]["head_parameters"] == 10 * 128 + 10
    page = (out / "report.html").read_text()
    assert page.count("SENSITIVE") >= 2 and "data:image/png;base64" in page
    assert (out / "sensitive-targets-and-reconstructions.png").stat().st_size > 0

    cached = sorted((out / "cache").rglob("*.npy")) + sorted(
        (out / "cache").glob("reconstructor-*.pt")
    )
    stamps = [p.stat().st_mtime_ns for p in cached]
    assert main(["reconstruct", *TINY, "--out", str(out)]) == 0
    assert [p.stat().st_mtime_ns for p in cached] == stamps
    assert json.loads((out / "report.json").read_text())["results"] == results


def test_reconstruct_one_vs_rest_heads_with_dp(tmp_path, capsys):
    out = tmp_path / "dp"
    args = [
        "reconstruct",
        *TINY,
        "--heads",
        "mlp",
        "--epsilon",
        "10",
        "--set",
        "dp.accountant=rdp",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    run = json.loads((out / "report.json").read_text())["run"]
    assert run["head_kind"] == "mlp" and run["conditional"] is False
    assert run["head_parameters"] == 128 * 4 + 4 + 4 + 1
    assert run["dp"]["sample_rate"] == pytest.approx(0.9) and run["dp"]["epsilon"] <= 10
    assert "DP heads: noise multiplier" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "shadow_heads=0"], "shadow_heads must be a positive integer"),
        (["--set", "heads.kind=conv"], "heads.kind must be one of linear, mlp"),
        (["--set", "heads.lr=fast"], "config field 'heads.lr' must be float, got 'fast'"),
        (["--set", "shadow_heds=5"], "unknown field 'shadow_heds'"),
        (["--data", "/nonexistent/images"], "data path /nonexistent/images does not exist"),
        (["--backbone", "ccexam-mnist", "--data", "digits"], "backbone ccexam-mnist reads MNIST"),
        (["--epsilon", "-1"], "dp.epsilon must be positive"),
        (["--set", "image_size=12"], "image_size must be a power of two"),
        (["--config", "/nonexistent.yaml"], "config file /nonexistent.yaml cannot be read"),
        (["--heads", "cnn"], "invalid choice: 'cnn'"),
        (["--set", "attacked_images=2000", "--data", "digits"], "the data has 1797 images"),
        (
            ["--data", "digits", "--set", "attacked_images=30", "--set", "class_size=4"],
            "fewer than class_size 4",
        ),
    ],
)
def test_bad_input_exits_2_with_one_sentence_and_writes_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "run"
    assert main(["reconstruct", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err.startswith("error: ") and message in err and "\n" not in err and "Traceback" not in err
    )
    assert not (out / "report.json").exists()


@pytest.mark.parametrize("name", ["paper-mnist-n10", "paper-mnist-n10-dp-eps10"])
def test_the_papers_scale_ships_as_a_config(name):
    from privaudit.image.reconstruction.config import load

    config = load(name)
    assert config.shadow_heads == 2_560_000 and config.reconstructor.steps == 1_000_000
    assert config.reconstructor.width == 256 and config.heads.kind == "linear"
    assert (config.dp.epsilon is None) == (name == "paper-mnist-n10")
