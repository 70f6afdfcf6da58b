import json
import os
import stat
from pathlib import Path

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
    "labels.csv": (
        "member,baseline_pred\n0,0.1\n2,0.3\n",
        "'member' must be 0 or 1, but row 1 holds 2.",
    ),
    "nan.csv": (
        "member,baseline_pred\n0,0.1\n1,nan\n",
        "'baseline_pred' holds a non-finite or non-numeric value nan at row 1",
    ),
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
    assert "np." not in line  # plain numbers, not numpy reprs
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
    out = capsys.readouterr().out.strip()
    assert out.startswith("eps lower bound ") and "m = 1000" in out and "r = 100" in out
    assert "v = 90" in out and "delta = 0," in out and "alpha = 0.05" in out
    printed = float(out.split()[3])
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
    """c_lb and {c+eps}_lb on the PANORAMIA authors' table, against their code re-derived in conftest:
    their bound takes a member prior of 1/2; the table's member fraction is 5573 / 11023 > 1/2, so
    the bound at that prior is theirs less logit(fraction) (the floor at 0 commutes with the shift)."""
    out = tmp_path / "authors"
    assert main(["report", str(authors_table), "--out", str(out), "--thresholds", "100"]) == 0
    report = json.loads((out / "report.json").read_text())
    table = pd.read_csv(authors_table)
    labels = table["member"].to_numpy()
    fraction = labels.mean()
    assert report["member_prior"] == pytest.approx(fraction) and fraction > 0.5
    shift = np.log(fraction / (1 - fraction))
    expected = {
        c: max(authors_bound(table[c].to_numpy(), labels) - shift, 0.0)
        for c in table.columns
        if c != "member"
    }
    assert report["c_lb"] == pytest.approx(expected["baseline_pred"], abs=1e-7)
    for column in ("mia_mlp10_pred", "mia_mlp100_pred"):
        assert report["columns"][column]["eps_lb"] == pytest.approx(expected[column], abs=1e-7)
        assert report["eps_tilde"][column] == pytest.approx(
            expected[column] - expected["baseline_pred"], abs=2e-7
        )


def member_fraction_table(fraction, n=1000, seed=0, leak=0.0):
    """Exactly round(fraction * n) members; scores in (0, 1), shifted up for members by `leak`."""
    rng = np.random.default_rng(seed)
    members = round(fraction * n)
    member = rng.permutation(np.r_[np.ones(members, np.int64), np.zeros(n - members, np.int64)])
    columns = {
        name: 1 / (1 + np.exp(-rng.normal(leak * member, 1)))
        for name in ("baseline_pred", "mia_pred")
    }
    return pd.DataFrame({"member": member, **columns})


@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
def test_random_scores_give_no_bound_at_any_member_fraction(tmp_path, fraction):
    """Scores independent of membership prove nothing: c_lb, {c+eps}_lb and the report's per-column
    eps stay at ~0 whatever the member fraction (with a prior of 1/2 assumed, 800 members of 1000
    gave c_lb 1.09)."""
    table = member_fraction_table(fraction)
    report = write_report(table, tmp_path / "r")
    assert report["c_lb"] <= 0.05
    assert all(col["eps_lb"] <= 0.05 for col in report["columns"].values())
    labels = table["member"].to_numpy()
    columns = {c: table[c].to_numpy() for c in ("baseline_pred", "mia_pred")}
    swept = bounds.panoramia_bounds(labels, columns, thresholds=100)
    assert swept["c_lb"] <= 0.05 and swept["curves"]["mia_pred"].eps_max <= 0.05
    if fraction <= 0.5:
        with_delta = bounds.panoramia_bounds(
            labels, columns, delta=1e-8
        )  # small: a real delta term
        assert with_delta["c_lb"] <= 0.05 and with_delta["curves"]["mia_pred"].eps_max <= 0.05
    else:
        with pytest.raises(InputError, match="use --delta 0, or a balanced table"):
            write_report(table, tmp_path / "d", delta=1e-5)


@pytest.mark.parametrize("fraction", [0.1, 0.3, 0.7, 0.9])
def test_a_leaky_column_keeps_a_positive_bound_at_unbalanced_fractions(tmp_path, fraction):
    report = write_report(member_fraction_table(fraction, n=2000, leak=3.0), tmp_path / "r")
    assert report["columns"]["mia_pred"]["eps_lb"] > 0.5
    assert report["member_prior"] == pytest.approx(fraction)


def test_plain_table_without_baseline_column_reports_without_one(tmp_path, capsys):
    path = tmp_path / "plain.csv"
    table = small_table().drop(columns="baseline_pred")
    table.to_csv(path, index=False)
    out = tmp_path / "r"
    assert main(["report", str(path), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "no 'baseline_pred' column, so there is no baseline" in printed
    report = json.loads((out / "report.json").read_text())
    assert report["baseline"] is None and report["c_lb"] is None and report["eps_tilde"] == {}
    assert "no baseline" in report["notes"][0]
    assert "no baseline" in (out / "report.html").read_text()
    # A baseline named on the command line must exist; the error says how to go without one.
    assert (
        main(["report", str(path), "--out", str(tmp_path / "x"), "--baseline", "baseline_pred"])
        == 2
    )
    assert "--baseline none" in one_error_line(capsys)


def test_negative_delta_is_refused_as_a_value(tmp_path, capsys):
    path = tmp_path / "s.csv"
    small_table().to_csv(path, index=False)
    for value in ("-1e-5", "-0.5", "-1"):
        assert main(["report", str(path), "--out", str(tmp_path / "o"), "--delta", value]) == 2
        line = one_error_line(capsys)
        assert f"argument --delta: {value} is not in [0, 1)" in line, line
    assert main(["bound", "one-run", "--m", "10", "--r", "5", "--v", "5", "--delta", "-1e-5"]) == 2
    assert "is not in [0, 1)" in one_error_line(capsys)
    assert not (tmp_path / "o").exists()


def test_thresholds_refuse_scores_outside_the_unit_interval(tmp_path, capsys):
    path = tmp_path / "s.csv"
    table = small_table()
    table["mia_a_pred"] = table["mia_a_pred"] * 4 - 1
    table.to_csv(path, index=False)
    out = tmp_path / "o"
    assert main(["report", str(path), "--out", str(out), "--thresholds", "100"]) == 2
    line = one_error_line(capsys)
    assert "'mia_a_pred' ranges over [" in line and "omit --thresholds" in line
    assert not out.exists()
    assert main(["report", str(path), "--out", str(out)]) == 0  # every distinct score: fine


def test_unbalanced_table_with_delta_is_refused(tmp_path, capsys):
    path = tmp_path / "s.csv"
    member_fraction_table(0.8).to_csv(path, index=False)
    out = tmp_path / "o"
    assert main(["report", str(path), "--out", str(out), "--delta", "1e-5"]) == 2
    line = one_error_line(capsys)
    assert "800 of 1000 rows are members (0.800)" in line and "at most 0.5" in line
    assert "--delta 0" in line and not out.exists()
    assert main(["report", str(path), "--out", str(out)]) == 0
    assert "c_lb (baseline_pred): 0.0000" in capsys.readouterr().out


@pytest.mark.parametrize("where", ["under_a_file", "proc"])
def test_unwritable_output_directory_exits_2_before_any_work(tmp_path, capsys, where):
    path = tmp_path / "s.csv"
    small_table().to_csv(path, index=False)
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    # Paths no one can write to, root included (chmod does not stop root).
    out = blocker / "run" if where == "under_a_file" else Path("/proc/privaudit-test/run")
    for command in (["report", str(path)], ["demo"]):
        assert main([*command, "--out", str(out)]) == 2
        line = one_error_line(capsys)
        assert f"output directory {out} cannot be created or written" in line
    assert main(["report", str(path), "--out", str(blocker)]) == 2
    assert "exists and is not a directory" in one_error_line(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "s.csv"]


def test_report_labels_what_is_and_is_not_a_bound(tmp_path):
    write_report(small_table(), tmp_path / "r")
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert "not a lower bound" in report["definitions"]["eps_tilde"]
    assert report["definitions"]["eps_hypothesis_test_heuristic"].startswith(
        "a heuristic, not a bound"
    )
    column = report["columns"]["mia_a_pred"]
    assert "eps_hypothesis_test_heuristic" in column and "eps_lb_hypothesis_test" not in column
    html = (tmp_path / "r" / "report.html").read_text()
    assert "(not a lower bound)" in html and "hypothesis-test ε (heuristic, not a bound)" in html


def test_files_get_the_usual_mode(tmp_path):
    previous = os.umask(0o022)
    try:
        atomic_write_json(tmp_path / "x.json", {"a": 1})
        write_report(small_table(), tmp_path / "run")
        (tmp_path / "plain.txt").write_text("x")  # what open() gives, for comparison
        os.umask(0o077)
        atomic_write_json(tmp_path / "private.json", {"a": 1})
    finally:
        os.umask(previous)
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
    assert mode(tmp_path / "x.json") == mode(tmp_path / "plain.txt") == 0o644
    assert mode(tmp_path / "run") == 0o755
    assert {mode(p) for p in (tmp_path / "run").iterdir()} == {0o644}
    assert mode(tmp_path / "private.json") == 0o600


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


def test_a_design_prior_of_one_half_allows_delta_on_a_table_unbalanced_by_chance(tmp_path):
    """One-run canaries and PANORAMIA's test mix are members with probability 1/2 each: stating
    that prior keeps Steinke et al.'s bound (delta > 0 included) whatever the realised fraction."""
    table = member_fraction_table(0.52, leak=3.0)
    with pytest.raises(InputError, match="520 of 1000 rows are members"):
        write_report(table, tmp_path / "refused", delta=1e-8)
    report = write_report(table, tmp_path / "r", delta=1e-8, member_prior=0.5)
    assert report["member_prior"] == 0.5 and report["member_fraction"] == pytest.approx(0.52)
    labels, scores = table["member"].to_numpy(), table["mia_pred"].to_numpy()
    level = bounds.panoramia_level(0.05, np.unique(scores).size)
    curve = bounds.eps_lb_curve(labels, scores, level=level, delta=1e-8, member_prior=0.5)
    assert report["columns"]["mia_pred"]["eps_lb"] == curve.eps_max > 0


def test_delta_reports_read_the_guess_grid_by_default(tmp_path, capsys):
    """At --delta 1e-5 on 2,000 rows every distinct score as a threshold cannot show a bound above
    0 (the delta term outweighs the Bonferroni level); the default grid can, --thresholds still
    sweeps as asked, and asking for both is refused."""
    path = tmp_path / "s.csv"
    rng = np.random.default_rng(0)
    member = rng.permutation(np.r_[np.ones(1000, int), np.zeros(1000, int)])  # delta: <= half
    pd.DataFrame({"member": member, "mia_a_pred": rng.normal(3.0 * member, 1.0)}).to_csv(
        path, index=False
    )
    out = tmp_path / "grid"
    assert main(["report", str(path), "--out", str(out), "--delta", "1e-5"]) == 0
    written = json.loads((out / "report.json").read_text())
    assert written["guess_grid"] == bounds.DELTA_GUESS_GRID
    assert written["columns"]["mia_a_pred"]["eps_lb"] > 1.0
    assert any("--guess-grid 24" in note for note in written["notes"])
    assert json.loads((out / "config.json").read_text())["audit"]["guess_grid"] == 24
    every = write_report(
        pd.read_csv(path), tmp_path / "every", baseline=None, delta=1e-5
    )  # the library's default: every distinct score
    assert every["columns"]["mia_a_pred"]["eps_lb"] == 0.0
    capsys.readouterr()
    args = ["report", str(path), "--out", str(tmp_path / "o"), "--delta", "1e-5"]
    assert main([*args, "--thresholds", "10", "--guess-grid", "8"]) == 2
    assert "not both" in one_error_line(capsys) and not (tmp_path / "o").exists()
