import numpy as np
from privaudit.attacks.data import mnist_subset


def test_mnist_subset_has_500_images_per_class():
    images, labels = mnist_subset()
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [500] * 10
    # real digits: mostly dark background with some bright strokes
    assert 0.05 < (images > 128).mean() < 0.3
