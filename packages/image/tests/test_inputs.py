"""Bad input ends with exit code 2 and one line naming the problem, before any training."""

from __future__ import annotations

import pytest
from privaudit.image.cli import main


def _run(capsys, argv):
    code = main(argv)
    lines = capsys.readouterr().err.strip().splitlines()
    assert not any("Traceback" in line for line in lines)
    # progress lines ([audit-image] ...) may come first; the problem is one line starting "error: "
    return code, [line for line in lines if not line.startswith("[audit-image]")]


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--target", "lenet"], "invalid choice"),
        (["--data", "/no/such/folder"], "/no/such/folder does not exist"),
        (["--model", "x.pt"], "architecture"),
        (["--epochs", "0"], "'epochs' must be a positive integer"),
        (["--gan-threads", "0"], "'gan_threads' must be a positive integer or null"),
        (
            ["--target", "ccexam-mnist", "--data", "digits"],
            "must be 'mnist' for the ccexam-mnist target",
        ),
        (["--non-members", "somewhere"], "needs `model` too"),
        (["--bogus"], "unrecognized arguments"),
        (["--device", "tpu"], "'device' must be 'auto', 'cpu', 'cuda' or 'cuda:N'"),
        (["--device", "cuda:7"], "device cuda:7 was asked for"),
        (["--set", "mia_reference=helper"], "needs helper_data 'generator-split'"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(capsys, argv, needle):
    code, err = _run(capsys, argv)
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error: ") and needle in err[0], err


def test_bad_config_files(capsys, tmp_path):
    unknown = tmp_path / "a.yaml"
    unknown.write_text("gan_stepz: 3\n")
    code, err = _run(capsys, ["--config", str(unknown)])
    assert (
        code == 2
        and len(err) == 1
        and err[0].startswith("error: the config has an unknown field 'gan_stepz'")
    )
    broken = tmp_path / "b.yaml"
    broken.write_text("a: [1,\n")
    code, err = _run(capsys, ["--config", str(broken)])
    assert code == 2 and "not readable YAML" in err[0] and len(err) == 1


def test_corrupt_and_mismatched_checkpoints(capsys, tmp_path):
    small = tmp_path / "small.yaml"
    small.write_text("data: digits\ngenerator_images: 300\naudit_members: 300\n")
    corrupt = tmp_path / "bad.pt"
    corrupt.write_bytes(b"not a checkpoint")
    code, err = _run(
        capsys,
        [
            "--config",
            str(small),
            "--model",
            str(corrupt),
            "--architecture",
            "cnn",
            "--out",
            str(tmp_path / "r"),
        ],
    )
    assert code == 2 and len(err) == 1 and "not a readable torch file" in err[0], err

    import torch
    from privaudit.image.models import build_model

    other = tmp_path / "vit.pt"
    torch.save(build_model("vit", 1, 10, 8).state_dict(), other)
    code, err = _run(
        capsys,
        [
            "--config",
            str(small),
            "--model",
            str(other),
            "--architecture",
            "cnn",
            "--out",
            str(tmp_path / "r"),
        ],
    )
    assert (
        code == 2
        and len(err) == 1
        and "does not match the cnn architecture: keys missing" in err[0]
    ), err
    assert "expected keys: " in err[0]


def test_image_folder_problems(capsys, tmp_path):
    (tmp_path / "only").mkdir()
    (tmp_path / "only" / "a").mkdir()
    code, err = _run(capsys, ["--data", str(tmp_path / "only"), "--out", str(tmp_path / "r")])
    assert code == 2 and "at least 2" in err[-1]
    folder = tmp_path / "imgs"
    for cls in ("cat", "dog"):
        (folder / cls).mkdir(parents=True)
        (folder / cls / "x.png").write_bytes(b"garbage")
    code, err = _run(capsys, ["--data", str(folder), "--out", str(tmp_path / "r")])
    assert code == 2 and len(err) == 1 and "cannot be read" in err[0], err


def test_dataset_too_small_for_the_splits(capsys, tmp_path):
    # the splits shrink in proportion to the data, but 12 images leave fewer than 20 audit members
    import numpy as np
    from PIL import Image

    for cls in ("a", "b"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(np.full((8, 8), 40 * i, dtype=np.uint8)).save(
                tmp_path / "imgs" / cls / f"{i}.png"
            )
    code, err = _run(capsys, ["--data", str(tmp_path / "imgs"), "--out", str(tmp_path / "r")])
    assert code == 2 and len(err) == 1 and "is too small" in err[0] and "12 examples" in err[0], err
    assert not (tmp_path / "r" / "report.json").exists()


# /proc refuses new entries, even for root: an output directory no CLI can create
UNWRITABLE = "/proc/privaudit-unwritable/run"
UNWRITABLE_ERROR = f"error: output directory {UNWRITABLE} cannot be created or written (No such file or directory)."


@pytest.mark.parametrize(
    "argv",
    [["--data", "digits"], ["reconstruct", "--data", "digits"], ["invert", "--private", "digits"]],
)
def test_unwritable_output_directory_exits_2_before_any_work(capsys, argv):
    assert main([*argv, "--out", UNWRITABLE]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == UNWRITABLE_ERROR and not any("Traceback" in line for line in err), err


def test_the_generator_trains_longer_on_a_gpu_unless_told_how_long():
    from privaudit.image.config import CPU_GAN_STEPS, GPU_GAN_STEPS, ImageAuditConfig

    assert GPU_GAN_STEPS > CPU_GAN_STEPS
    default = ImageAuditConfig()
    assert default.generator_steps("cpu") == CPU_GAN_STEPS
    assert default.generator_steps("cuda:0") == GPU_GAN_STEPS
    assert ImageAuditConfig(gan_steps=500).generator_steps("cuda") == 500
