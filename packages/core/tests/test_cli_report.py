import json

import numpy as np
import pandas as pd
import pytest
from privaudit.core import bounds
from privaudit.core.cli import main
from privaudit.core.errors import InputError
from privaudit.core.report import ReportSection, write_report
from privaudit.core.rundir import atomic_write_json, stable_key
from privaudit.core.scores import validate_scores_table


def small_table(n=400, seed=0):
    rng = np.random.default_rng(seed)
    member = rng.integers(0, 2, n)
    return pd.DataFrame(
        {
            "member": member,
            "baseline_pred": 1 / (1 + np.exp(-rng.normal(member - 0.5, 1))),
            "mia_a_pred": 1 / (1 + np.exp(-rng.normal(2 * member - 1, 1))),
        }
    )


def one_error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


BAD_TABLES = {
    "no_member.csv": ("score,other\n0.1,0.2\n", "'member'"),
    "labels.csv": ("member,baseline_pred\n0,0.1\n2,0.3\n", "'member' must be 0 or 1"),
    "nan.csv": ("member,baseline_pred\n0,0.1\n1,nan\n", "'baseline_pred'"),
    "inf.csv": ("member,baseline_pred\n0,0.1\n1,inf\n", "'baseline_pred'"),
    "text.csv": ("member,baseline_pred\n0,0.1\n1,high\n", "'high'"),
    "empty.csv": ("member,baseline_pred\n", "no rows"),
    "one_class.csv": ("member,baseline_pred\n1,0.1\n1,0.3\n", "only 1s"),
    "no_scores.csv": ("member\n0\n1\n", "no score column"),
    "garbage.parquet": ("this is not parquet", "cannot read"),
}


@pytest.mark.parametrize("name", sorted(BAD_TABLES))
def test_bad_tables_exit_2_with_one_line_and_write_nothing(tmp_path, capsys, name):
    content, fragment = BAD_TABLES[name]
    path = tmp_path / name
    path.write_text(content)
    out = tmp_path / "out"
    assert main(["report", str(path), "--out", str(out)]) == 2
    line = one_error_line(capsys)
    assert fragment in line
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no staging leftovers


def test_unknown_baseline_and_missing_file_and_bad_options(tmp_path, capsys):
    path = tmp_path / "s.csv"
    small_table().to_csv(path, index=False)
    assert main(["report", str(path), "--out", str(tmp_path / "o"), "--baseline", "nope"]) == 2
    assert "'nope'" in one_error_line(capsys)
    assert main(["report", str(tmp_path / "missing.csv")]) == 2
    assert "missing.csv" in one_error_line(capsys)
    assert main(["report", str(path), "--alpha", "1.5"]) == 2
    assert "--alpha" in one_error_line(capsys)
    assert main(["report", str(path), "--thresholds", "0"]) == 2
    one_error_line(capsys)
    assert main(["frobnicate"]) == 2
    one_error_line(capsys)
    assert not (tmp_path / "o").exists()


def test_no_arguments_prints_help_and_exits_0(capsys):
    assert main([]) == 0
    assert "report" in capsys.readouterr().out


def test_bound_one_run_agrees_with_the_formula(capsys):
    assert main(["bound", "one-run", "--m", "1000", "--r", "100", "--v", "90"]) == 0
    printed = float(capsys.readouterr().out)
    assert printed == pytest.approx(bounds.one_run_eps_lower_bound(1000, 100, 90), abs=1e-6)
    q = np.exp(printed) / (1 + np.exp(printed))
    from scipy import stats

    assert stats.binom.sf(89, 100, q) == pytest.approx(0.05, rel=1e-4)
    assert main(["bound", "one-run", "--m", "10", "--r", "100", "--v", "90"]) == 2
    assert "v <= r <= m" in one_error_line(capsys)


def test_report_files_and_keys(tmp_path):
    table = small_table()
    section = ReportSection("Extra", "<p>hello</p>", (("extra.png", b"\x89PNG fake"),))
    report = write_report(
        table,
        tmp_path / "run",
        thresholds=50,
        sections=[section],
        extra={"k": 1},
        config={"seed": 7},
    )
    names = {p.name for p in (tmp_path / "run").iterdir()}
    assert {
        "report.json",
        "report.html",
        "provenance.json",
        "config.json",
        "roc.png",
        "roc_loglog.png",
        "eps_lb_recall.png",
        "precision_recall.png",
        "extra.png",
    } <= names
    on_disk = json.loads((tmp_path / "run" / "report.json").read_text())
    assert on_disk["c_lb"] == pytest.approx(report["c_lb"])
    assert set(on_disk["columns"]["mia_a_pred"]["tpr_at_fpr"]) == {
        "0.1",
        "0.01",
        "0.001",
        "0.0001",
        "0",
    }
    assert on_disk["eps_tilde"]["mia_a_pred"] == pytest.approx(
        on_disk["columns"]["mia_a_pred"]["eps_lb"] - on_disk["c_lb"]
    )
    assert on_disk["extra"] == {"k": 1}
    html = (tmp_path / "run" / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 5 and 'src="roc.png"' not in html
    assert json.loads((tmp_path / "run" / "provenance.json").read_text())["seed"] == 7
    without = write_report(table, tmp_path / "run2", baseline=None)
    assert without["c_lb"] is None and without["eps_tilde"] == {}
    assert set(without["columns"]) == {"baseline_pred", "mia_a_pred"}


def test_authors_table_with_100_thresholds(tmp_path, capsys, authors_table, authors_bound):
    """c_lb and {c+eps}_lb on the PANORAMIA authors' table, against their code re-derived in conftest."""
    out = tmp_path / "authors"
    assert main(["report", str(authors_table), "--out", str(out), "--thresholds", "100"]) == 0
    report = json.loads((out / "report.json").read_text())
    table = pd.read_csv(authors_table)
    labels = table["member"].to_numpy()
    expected = {
        c: authors_bound(table[c].to_numpy(), labels) for c in table.columns if c != "member"
    }
    assert report["c_lb"] == pytest.approx(expected["baseline_pred"], abs=1e-7)
    for column in ("mia_mlp10_pred", "mia_mlp100_pred"):
        assert report["columns"][column]["eps_lb"] == pytest.approx(expected[column], abs=1e-7)
        assert report["eps_tilde"][column] == pytest.approx(
            expected[column] - expected["baseline_pred"], abs=2e-7
        )


def test_demo_runs_with_defaults(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["demo"]) == 0
    assert "runs/demo/report.html" in capsys.readouterr().out
    report = json.loads((tmp_path / "runs" / "demo" / "report.json").read_text())
    assert report["eps_tilde"]["mia_synthetic_pred"] > 0


def test_validate_and_rundir_helpers(tmp_path):
    with pytest.raises(InputError, match="no rows"):
        validate_scores_table(pd.DataFrame({"member": [], "x": []}))
    assert (
        stable_key({"a": 1, "b": [1, 2]})
        == stable_key({"b": [1, 2], "a": 1})
        != stable_key({"a": 2})
    )
    atomic_write_json(tmp_path / "x.json", {"v": np.float64(1.5), "n": float("nan")})
    assert json.loads((tmp_path / "x.json").read_text()) == {"v": 1.5, "n": None}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]
