"""Bad inputs exit 2 with one clear line on stderr and write nothing."""

import pandas as pd
import pytest
from privaudit.tabular.cli import main


def _run_bad(argv, tmp_path, capsys):
    out = tmp_path / "run"
    code = main([*argv, "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error: ")
    assert not out.exists()
    return err[0]


def test_missing_label_column(adult_slice_csv, tmp_path, capsys):
    line = _run_bad(["--data", str(adult_slice_csv), "--label", "salary"], tmp_path, capsys)
    assert "'salary'" in line


def test_unsupported_column_type(adult_slice_csv, tmp_path, capsys):
    frame = pd.read_csv(adult_slice_csv).iloc[:400]
    frame["signup"] = pd.date_range("2020-01-01", periods=len(frame), freq="D").strftime("%Y-%m-%d")
    path = tmp_path / "dated.csv"
    frame.to_csv(path, index=False)
    line = _run_bad(["--data", str(path), "--label", "income"], tmp_path, capsys)
    assert "'signup'" in line and "datetime" in line


def test_too_few_rows(adult_slice_csv, tmp_path, capsys):
    path = tmp_path / "tiny.csv"
    pd.read_csv(adult_slice_csv).iloc[:40].to_csv(path, index=False)
    line = _run_bad(["--data", str(path), "--label", "income"], tmp_path, capsys)
    assert "40 labelled rows" in line


@pytest.mark.parametrize("content", [b"\x89PNG\r\n\x1a\n\x00\x00binary", b"just one column\n1\n2\n"])
def test_not_a_table(content, tmp_path, capsys):
    path = tmp_path / "thing.csv"
    path.write_bytes(content)
    line = _run_bad(["--data", str(path), "--label", "income"], tmp_path, capsys)
    assert str(path) in line


def test_unknown_flag_and_bad_epsilon(tmp_path, capsys):
    _run_bad(["--frobnicate"], tmp_path, capsys)
    _run_bad(["--target", "dp", "--epsilon", "-1"], tmp_path, capsys)


def test_torch_checkpoint_without_spec(adult_slice_csv, tmp_path, capsys):
    checkpoint = tmp_path / "model.pt"
    checkpoint.write_bytes(b"not really")
    line = _run_bad(["--data", str(adult_slice_csv), "--label", "income", "--model", str(checkpoint)], tmp_path, capsys)
    assert "--model-spec" in line
