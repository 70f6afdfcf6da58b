"""Targets: every architecture builds for small gray images; ccexam's CNN loads safely and is accurate."""

from __future__ import annotations

import pytest
import torch
from privaudit.image.models import ARCHITECTURES, accuracy, build_model, ccexam_mnist


@pytest.mark.parametrize("architecture", [a for a in ARCHITECTURES if a != "ccexam-mnist"])
@pytest.mark.parametrize("size", [8, 28])
def test_architectures_give_logits(architecture, size):
    torch.manual_seed(0)
    model = build_model(architecture, 1, 10, size).eval()
    with torch.no_grad():
        logits = model(torch.rand(2, 1, size, size) * 2 - 1)
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()


@pytest.mark.parametrize("architecture", ["cnn", "wrn16-4", "resnet18"])
def test_dp_targets_pass_privaudit_dp_validation(architecture):
    from privaudit.dp.validate import validate

    validate(build_model(architecture, 1, 10, 28))  # raises on BatchNorm and other DP-breaking layers


def test_ccexam_mnist_classifies_the_mnist_subset():
    from privaudit.image.data import mnist_subset

    data = mnist_subset()
    index = torch.arange(0, 5000, 10)  # 500 images, 50 per class
    assert accuracy(ccexam_mnist(), data.images[index], data.labels[index]) > 0.97
