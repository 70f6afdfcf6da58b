"""Runs of different targets get their own run directory, so no report overwrites another's."""

import pytest
from privaudit.tabular.cli import resolve_config


@pytest.mark.parametrize(
    ("argv", "out_dir"),
    [
        ([], "runs/tabular-adult"),  # the README's default run
        (["--target", "overfit"], "runs/tabular-adult-overfit"),
        (["--target", "dp"], "runs/tabular-adult-dp-eps1"),
        (["--epsilon", "1"], "runs/tabular-adult-dp-eps1"),  # an epsilon alone means the dp target
        (["--target", "dp", "--epsilon", "8"], "runs/tabular-adult-dp-eps8"),
        (["--set", "target=dp", "--set", "epsilon=0.5"], "runs/tabular-adult-dp-eps0.5"),
        (["--data", "t/table.csv", "--label", "y"], "runs/tabular-table"),
        (["--data", "t/table.csv", "--label", "y", "--target", "dp"], "runs/tabular-table-dp-eps1"),
        (["--target", "overfit", "--synthesizer", "tvae"], "runs/tabular-adult-overfit-tvae"),
        (["--target", "dp", "--out", "runs/mine"], "runs/mine"),
        (["--target", "dp", "--set", "out_dir=runs/set"], "runs/set"),
    ],
)
def test_each_target_gets_its_own_run_directory(argv, out_dir):
    assert resolve_config(argv).out_dir == out_dir


def test_a_config_file_that_names_the_run_directory_keeps_it(tmp_path):
    path = tmp_path / "audit.yaml"
    path.write_text("target: dp\nout_dir: runs/from-file\n")
    assert resolve_config(["--config", str(path)]).out_dir == "runs/from-file"
    path.write_text("target: overfit\n")
    assert resolve_config(["--config", str(path)]).out_dir == "runs/tabular-adult-overfit"
