"""Runs of different targets get their own run directory, so no report overwrites another's."""

import pytest
from privaudit.image.cli import resolve_config


@pytest.mark.parametrize(
    ("argv", "out_dir"),
    [
        ([], "runs/image-mnist"),  # the README's default run
        (["--target", "wrn16-4"], "runs/image-mnist-wrn16-4"),
        (["--epsilon", "8"], "runs/image-mnist-dp-eps8"),
        (["--set", "target=vit", "--set", "epsilon=1"], "runs/image-mnist-vit-dp-eps1"),
        (["--data", "digits"], "runs/image-digits"),
        (["--epsilon", "8", "--out", "runs/mine"], "runs/mine"),
        (["--set", "out_dir=runs/set"], "runs/set"),
    ],
)
def test_each_target_gets_its_own_run_directory(argv, out_dir):
    assert resolve_config(argv).out_dir == out_dir


def test_a_config_file_that_names_the_run_directory_keeps_it(tmp_path):
    path = tmp_path / "audit.yaml"
    path.write_text("target: resnet18\nout_dir: runs/from-file\n")
    assert resolve_config(["--config", str(path)]).out_dir == "runs/from-file"
    path.write_text("target: resnet18\n")
    assert resolve_config(["--config", str(path)]).out_dir == "runs/image-mnist-resnet18"
