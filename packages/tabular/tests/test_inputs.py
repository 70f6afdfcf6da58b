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


@pytest.mark.parametrize(
    "content", [b"\x89PNG\r\n\x1a\n\x00\x00binary", b"just one column\n1\n2\n"]
)
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
    line = _run_bad(
        ["--data", str(adult_slice_csv), "--label", "income", "--model", str(checkpoint)],
        tmp_path,
        capsys,
    )
    assert "--model-spec" in line


def test_column_types_come_from_values_not_names(adult_slice_csv):
    from privaudit.tabular.data import detect_sdtypes, prepare_table

    frame = pd.read_csv(adult_slice_csv).iloc[:300]
    frame["city"] = [
        "Paris",
        "Lyon",
        "Nice",
    ] * 100  # sdv's name-based detection calls this personal data
    frame["email"] = [1.5, 2.5, 3.5] * 100
    types = detect_sdtypes(frame)
    assert types["city"] == "categorical" and types["email"] == "numerical"
    assert prepare_table(frame, "income", source="t", min_rows=100).sdtypes["city"] == "categorical"


@pytest.mark.parametrize("rows", [997, 998, 1001, 1999])
def test_small_tables_lose_no_row_to_the_splits(adult_slice_csv, rows):
    from privaudit.tabular.data import prepare_table, split_table

    table = prepare_table(
        pd.read_csv(adult_slice_csv).iloc[:rows], "income", source="t", min_rows=100
    )
    splits = split_table(table, generator_rows=700, audit_members=900, non_members=400, seed=0)
    sizes = [len(splits.generator), len(splits.audit_members), len(splits.non_members)]
    assert sum(sizes) == rows, sizes


# /proc refuses new entries, even for root: an output directory no CLI can create
UNWRITABLE = "/proc/privaudit-unwritable/run"
UNWRITABLE_ERROR = f"error: output directory {UNWRITABLE} cannot be created or written (No such file or directory)."


@pytest.mark.parametrize("argv", [[]])
def test_unwritable_output_directory_exits_2_before_any_work(capsys, argv):
    assert main([*argv, "--out", UNWRITABLE]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == UNWRITABLE_ERROR and not any("Traceback" in line for line in err), err


def test_dp_target_whose_noise_cannot_reach_epsilon_is_one_line(adult_slice_csv, tmp_path, capsys):
    # the accountant finds no noise level for epsilon 1e-6: privaudit.dp's DPError, as one line
    out = tmp_path / "run"
    code = main(
        [
            "--data",
            str(adult_slice_csv),
            "--label",
            "income",
            "--target",
            "dp",
            "--epsilon",
            "1e-6",
            "--epochs",
            "2",
            "--out",
            str(out),
        ]
    )
    err = [
        line
        for line in capsys.readouterr().err.strip().splitlines()
        if not line.startswith("[audit-tabular]")
    ]
    assert code == 2 and len(err) == 1 and "no noise level reaches epsilon 1e-06" in err[0], err
    assert not (out / "report.json").exists()


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ("label_noise=1.0", "must be in [0, 1)"),
        ("weight_decay=-1", "must be zero or positive"),
        ("rejection_quantile=1", "must be in [0, 1)"),
        ("mia_reference=helper", "needs helper_data 'generator-split'"),
    ],
)
def test_bad_target_knobs(override, words, tmp_path, capsys):
    line = _run_bad(["--set", override], tmp_path, capsys)
    assert words in line and override.split("=")[0] in line
