"""audit-attacks lood end to end on tiny data: the report, the cache on rerun, bad input."""

import json

import numpy as np
import pandas as pd
import pytest
from privaudit.attacks.cli import main

TINY = [
    "--data",
    "digits",
    "--classes",
    "0,1",
    "--top",
    "8",
    "--queries",
    "1",
    "--query-steps",
    "15",
    "--quiet",
]
TINY_TRUTH = ["--ground-truth", "6", "--gt-models", "4", "--gt-epochs", "2", "--gt-width", "32"]


def test_lood_end_to_end_with_ground_truth_and_rerun_reuses_the_cache(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["lood", *TINY, *TINY_TRUTH, "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert f"report: {out}/report.html" in printed and "LOOD vs MIA AUC Pearson" in printed
    report = json.loads((out / "report.json").read_text())
    assert report["records"] == report["scored"] == 360 and report["classes"] == ["0", "1"]
    assert len(report["top"]) == 8 and len(report["queries"]) == 1
    assert report["top"][0]["lood_kl"] == report["lood_kl"]["max"]
    truth = report["ground_truth"]
    assert truth["records"] == 6 and len(truth["per_record"]) == 6
    assert set(truth["kl_vs_auc"]) == {"pearson", "pearson_p", "spearman", "spearman_p"}
    assert all(0 <= row["mia_auc"] <= 1 for row in truth["per_record"])
    landscape = pd.read_csv(out / "landscape.csv")
    assert len(landscape) == 360 and landscape["lood_kl"].is_monotonic_decreasing
    page = (out / "report.html").read_text()
    for image in (
        "lood_distribution.png",
        "lood_landscape.png",
        "lood_top_records.png",
        "lood_queries.png",
        "lood_ground_truth.png",
    ):
        assert f'alt="{image}"' in page
    cached = sorted(p for p in (out / "cache").rglob("*") if p.is_file())
    assert any(p.name.startswith("kernel-") for p in cached) and any(
        p.name.startswith("model_") for p in cached
    )
    stamps = [p.stat().st_mtime_ns for p in cached]
    assert main(args) == 0
    assert [p.stat().st_mtime_ns for p in cached] == stamps
    rerun = json.loads((out / "report.json").read_text())
    assert rerun["top"] == report["top"] and rerun["ground_truth"] == report["ground_truth"]


def test_lood_on_a_users_npz_images_and_csv_table(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.random((40, 6, 6))
    labels = np.repeat([0, 1], 20)
    images[labels == 1, :3] += 1.0
    np.savez(tmp_path / "images.npz", x=images, y=labels)
    assert main(["lood", "--data", str(tmp_path / "images.npz"), "--queries", "1", "--query-steps", "5",
                 "--out", str(tmp_path / "a"), "--quiet"]) == 0  # fmt: skip
    table = pd.DataFrame(rng.normal(size=(30, 4)), columns=list("abcd")).assign(
        label=np.arange(30) % 3
    )
    table.to_csv(tmp_path / "table.csv", index=False)
    assert main(["lood", "--data", str(tmp_path / "table.csv"), "--depth", "3", "--activation", "gelu",
                 "--kind", "ntk", "--queries", "1", "--query-steps", "5", "--out", str(tmp_path / "b"), "--quiet"]) == 0  # fmt: skip
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    assert report["classes"] == ["0", "1", "2"] and report["kernel"]["kind"] == "ntk"
    assert not (tmp_path / "b" / "lood_top_records.png").exists()  # rows of a table are not images


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--sigma2", "0"], "--sigma2 must be a positive number"),
        (["--sigma2", "-1"], "--sigma2 must be a positive number"),
        (["--depth", "0"], "depth must be an integer >= 1"),
        (["--data", "NAN"], "NaN, infinite or non-numeric"),
        (["--data", "missing.npz"], "does not exist"),
        (["--classes", "0"], "at least two distinct labels"),
        (["--classes", "0,11"], "class 11 is not in the data"),
        (["--ground-truth", "3"], "even number >= 4"),
        (["--activation", "tanh"], "kernel activation must be one of relu, gelu, erf"),
        (["--set", "query.steps=0"], "query optimisation needs steps >= 1"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, extra, message):
    nan_file = tmp_path / "nan.npz"
    np.savez(nan_file, x=np.full((10, 3), np.nan), y=np.arange(10) % 2)
    extra = [
        str(nan_file) if e == "NAN" else str(tmp_path / e) if e.endswith(".npz") else e
        for e in extra
    ]
    out = tmp_path / "run"
    assert main(["lood", "--data", "digits", "--quiet", "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
    assert not out.exists()
