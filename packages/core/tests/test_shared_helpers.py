"""Pieces the modality packages share: flat YAML configs, the stage cache, the ground-truth report section."""

from dataclasses import dataclass
from pathlib import Path

import pytest
from privaudit.core.config import load_yaml_config
from privaudit.core.errors import InputError


@dataclass(frozen=True)
class Settings:
    seed: int = 0
    name: str = "run"


def test_fields_come_from_the_yaml_mapping(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("seed: 7\n")
    assert load_yaml_config(Settings, path) == Settings(seed=7)
    path.write_text("")
    assert load_yaml_config(Settings, path) == Settings()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sead: 1", "unknown field 'sead'"),
        ("[1, 2]", "must hold a mapping"),
        ("seed: [", "not readable YAML"),
    ],
)
def test_bad_config_names_the_file_and_the_problem(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=message) as error:
        load_yaml_config(Settings, path)
    assert str(path) in str(error.value)


def test_stage_cache_builds_once_and_reuses(tmp_path):
    import pandas as pd
    from privaudit.core.rundir import StageCache

    cache, calls = StageCache(tmp_path / "cache"), []
    frame_path = cache.path("scores", {"seed": 1}, "parquet")
    assert (
        frame_path
        == cache.path("scores", {"seed": 1}, "parquet")
        != cache.path("scores", {"seed": 2}, "parquet")
    )
    for _ in range(2):
        frame = cache.frame(
            frame_path, lambda: calls.append("frame") or pd.DataFrame({"a": [1, 2]})
        )
        value = cache.json(
            cache.path("quality", {}, "json"), lambda: calls.append("json") or {"score": 0.5}
        )
    assert calls == ["frame", "json"] and frame["a"].tolist() == [1, 2] and value == {"score": 0.5}


def test_ground_truth_summary_and_section_list_every_column():
    from privaudit.core.report import ground_truth_section, ground_truth_summary

    report = {
        "n": 10,
        "c_lb": 0.5,
        "eps_tilde": {"mia_<b>_pred": -0.25},
        "columns": {"mia_<b>_pred": {"eps_lb": 0.25, "auc": 0.61, "tpr_at_fpr": {}}},
    }
    summary = ground_truth_summary(report, Path("runs/x/ground-truth"))
    assert summary == {
        "dir": "runs/x/ground-truth",
        "n": 10,
        "c_lb": 0.5,
        "eps_tilde": {"mia_<b>_pred": -0.25},
        "columns": {"mia_<b>_pred": {"eps_lb": 0.25, "auc": 0.61}},
    }
    section = ground_truth_section(summary)
    assert "runs/x/ground-truth" in section.html and "0.610" in section.html
    assert "mia_&lt;b&gt;_pred" in section.html  # column names are escaped


def test_summary_lines_give_bounds_and_ground_truth():
    from privaudit.core.report import summary_lines

    report = {
        "c_lb": 2.0,
        "eps_tilde": {"mia_pred": 0.25},
        "columns": {
            "baseline_pred": {"eps_lb": 2.0, "auc": 0.9},
            "mia_pred": {"eps_lb": 2.25, "auc": 0.95},
        },
        "extra": {"ground_truth": {"columns": {"mia_pred": {"eps_lb": None, "auc": 0.5}}}},
    }
    assert summary_lines(report) == [
        "c_lb = 2.000",
        "mia_pred: {c+eps}_lb = 2.250, eps_tilde = 0.250 (not a lower bound), AUC = 0.950",
        "ground truth (real non-members) mia_pred: eps_lb = n/a, AUC = 0.500",
    ]


def test_prepare_output_dir_creates_or_refuses_with_one_sentence(tmp_path):
    from privaudit.core.rundir import prepare_output_dir

    nested = prepare_output_dir(tmp_path / "a" / "b")
    assert nested == tmp_path / "a" / "b" and nested.is_dir() and list(nested.iterdir()) == []
    assert prepare_output_dir(str(nested)) == nested  # an existing one is fine
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(InputError, match="exists and is not a directory"):
        prepare_output_dir(blocker)
    for bad in (blocker / "run", Path("/proc/privaudit-test")):
        with pytest.raises(
            InputError, match=f"output directory {bad} cannot be created or written"
        ):
            prepare_output_dir(bad)


def test_cli_parser_reads_negative_numbers_with_exponents_as_values():
    from privaudit.core.errors import CliParser

    parser = CliParser(prog="t")
    parser.add_argument("--delta", type=float)
    parser.add_argument("-v", action="store_true")
    for text, value in (("-1e-5", -1e-5), ("-2.5E+3", -2500.0), ("-.5", -0.5), ("-3", -3.0)):
        assert parser.parse_args(["--delta", text]).delta == value
    assert parser.parse_args(["-v"]).v
    with pytest.raises(InputError, match="expected one argument"):
        parser.parse_args(["--delta", "-v"])


def test_plain_prints_numbers_not_numpy_reprs():
    import numpy as np
    from privaudit.core.errors import plain

    assert [
        plain(v) for v in (np.float64("nan"), np.int64(2), np.float32(0.5), "high", 3, None)
    ] == ["nan", "2", "0.5", "'high'", "3", "None"]
