"""Targets: every architecture builds for small gray images; ccexam's CNN loads safely and is accurate."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from privaudit.image.models import ARCHITECTURES, build_model, ccexam_mnist


@pytest.mark.parametrize(
    "architecture", [a for a in ARCHITECTURES if a not in ("ccexam-mnist", "wrn28-10")]
)
@settings(max_examples=3, deadline=None)
@given(size=st.sampled_from([8, 16, 28]), batch=st.integers(2, 5), seed=st.integers(0, 2**16))
def test_each_example_is_classified_independently_of_its_batch(architecture, size, batch, seed):
    # What per-sample DP needs and membership signals assume: in training mode too, an example's
    # logits do not depend on the other examples of its batch (BatchNorm would break this).
    torch.manual_seed(seed)
    model = build_model(architecture, 1, 10, size)
    model.train()  # no dropout in these models: train-mode outputs are deterministic
    x = torch.rand(batch, 1, size, size) * 2 - 1
    with torch.no_grad():
        together = model(x)
        alone = torch.cat([model(x[i : i + 1]) for i in range(batch)])
        shuffled = model(x.flip(0)).flip(0)
    assert together.shape == (batch, 10) and torch.isfinite(together).all()
    torch.testing.assert_close(alone, together, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(shuffled, together, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("architecture", ["cnn", "wrn16-4", "resnet18"])
def test_dp_targets_pass_privaudit_dp_validation(architecture):
    from privaudit.dp.validate import validate

    validate(
        build_model(architecture, 1, 10, 28)
    )  # raises on BatchNorm and other DP-breaking layers


def test_a_dp_vit_trains_through_privaudit_dp_and_its_checkpoint_reloads():
    # the ViT's packed MultiheadAttention hides per-sample gradients: DP training swaps it for
    # separate linear layers, and the cache's rebuilt network must take the saved weights
    from privaudit.dp.validate import validate
    from privaudit.image.models import ImageClassifierFamily, TrainSettings, train_classifier

    settings = TrainSettings("vit", epochs=1, batch_size=32, dp_epsilon=8.0)
    images, labels = torch.randn(64, 1, 16, 16), torch.randint(0, 10, (64,))
    model, privacy = train_classifier(images, labels, 10, settings, seed=0, desc="vit")
    assert 0 < privacy["epsilon_spent"] <= 8.0 + 1e-6
    rebuilt = ImageClassifierFamily(settings, (1, 16, 16), 10, "cpu").build()
    validate(rebuilt)
    rebuilt.load_state_dict(model.state_dict())  # strict: the same layers, the same names
    torch.testing.assert_close(rebuilt.eval()(images[:4]), model.eval()(images[:4]))
    # trained without DP the network keeps torchvision's own attention
    plain = ImageClassifierFamily(TrainSettings("vit"), (1, 16, 16), 10, "cpu").build()
    assert any(type(m) is torch.nn.MultiheadAttention for m in plain.modules())


def test_ccexam_mnist_classifies_the_mnist_subset():
    from privaudit.image.data import mnist_subset

    data = mnist_subset()
    index = torch.arange(0, 5000, 10)  # 500 images, 50 per class
    with torch.no_grad():
        predicted = ccexam_mnist()(data.images[index]).argmax(1)
    assert (predicted == data.labels[index]).float().mean() > 0.97
