"""The generator-quality detector, on known answers: images it cannot tell apart and images it can."""

import torch
from privaudit.image.data import digits
from privaudit.image.quality import detector_auc


def test_the_detector_tells_marked_images_from_real_ones_and_not_real_from_real():
    images = digits().images
    # sklearn's digits are ordered by writer: random halves are two samples of one distribution
    shuffled = images[torch.randperm(len(images), generator=torch.Generator().manual_seed(0))]
    first, second = shuffled[: len(images) // 2], shuffled[len(images) // 2 :]
    assert 0.35 < detector_auc(first, second, seed=0) < 0.65
    # "generated" images that carry a mark no real one has (a lit corner pixel)
    marked = second.clone()
    marked[:, :, 0, 0] = 1.0
    assert detector_auc(first, marked, seed=0) > 0.95


def test_the_detector_is_fixed_by_its_seed():
    images = digits().images[:400]
    noisy = (
        images + 0.3 * torch.randn(images.shape, generator=torch.Generator().manual_seed(0))
    ).clamp(-1, 1)
    assert detector_auc(images[:200], noisy[200:], seed=1) == detector_auc(
        images[:200], noisy[200:], seed=1
    )
