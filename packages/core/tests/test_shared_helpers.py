"""Pieces every package shares: the config layer, the stage cache, the ground-truth report section."""

from dataclasses import dataclass
from pathlib import Path

import pytest
from privaudit.core.config import (
    OPEN_UNIT,
    POSITIVE_INT,
    Config,
    add_config_arguments,
    add_config_flags,
    flag_values,
    load_config,
    optional,
    setting,
)
from privaudit.core.errors import CliParser, InputError


@dataclass(frozen=True)
class Inner(Config):
    count: int = setting(4, check=POSITIVE_INT)
    rate: float = setting(0.5, check=OPEN_UNIT)


@dataclass(frozen=True)
class Settings(Config):
    seed: int = 0
    name: str = "run"
    widths: tuple[int, ...] = (8, 8)
    limit: int | None = setting(None, check=optional(POSITIVE_INT))
    inner: Inner = Inner()


def test_fields_come_from_yaml_then_flags_then_set(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("seed: 7\ninner: {count: 2}\nwidths: [3, 4]\n")
    assert load_config(Settings, path) == Settings(seed=7, widths=(3, 4), inner=Inner(count=2))
    config = load_config(
        Settings, path, ["inner.rate=0.25", "seed=9"], flags={"name": "x", "seed": 8, "limit": None}
    )
    assert config == Settings(seed=9, name="x", widths=(3, 4), inner=Inner(count=2, rate=0.25))
    path.write_text("")
    assert load_config(Settings, path) == Settings()


@pytest.mark.parametrize(
    ("text", "overrides", "message"),
    [
        ("sead: 1", [], "has an unknown field 'sead'"),
        ("[1, 2]", [], "must hold a mapping"),
        ("seed: [", [], "not readable YAML"),
        ("inner: {count: 0}", [], "config field 'inner.count' must be a positive integer (got 0)."),
        ("", ["inner.rate=2"], "config field 'inner.rate' must be in (0, 1) (got 2.0)."),
        ("", ["limit=-1"], "config field 'limit' must be a positive integer or null (got -1)."),
        ("", ["seed=many"], "config field 'seed' must be int, got 'many'."),
        ("", ["widths=[1, x]"], "config field 'widths[1]' must be int, got 'x'."),
        ("", ["inner.size=3"], "config field 'inner' has an unknown field 'inner.size'"),
        ("", ["seed"], "must look like field.subfield=value"),
        ("", ["seed.x=1"], "config field 'seed' must be int"),
    ],
)
def test_bad_config_is_one_sentence_naming_the_field(tmp_path, text, overrides, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as error:
        load_config(Settings, path, overrides)
    assert message in str(error.value)


def test_flags_are_generated_from_the_fields_with_their_defaults():
    parser = CliParser(prog="t")
    add_config_arguments(parser, "seed=1")
    dests = add_config_flags(parser, Inner)
    args = parser.parse_args(["--count", "3", "--set", "rate=0.1"])
    assert flag_values(args, dests) == {"count": 3}
    assert load_config(Inner, None, args.overrides, flag_values(args, dests)) == Inner(
        count=3, rate=0.1
    )
    assert "default: 4" in parser.format_help()


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
        "verdict": None,
        "verdict_status": None,
        "verdict_eps_lb": None,
        "verdict_column": None,
        "verdict_reading": None,
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
