"""Data loading: an image folder round-trips, padding crops back exactly."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from privaudit.image import data


def test_image_folder_loads_classes_in_sorted_order(tmp_path):
    digits = data.digits()
    for name, label in (("b_three", 3), ("a_seven", 7)):
        (tmp_path / name).mkdir()
        for i, image in enumerate(digits.images[digits.labels == label][:5]):
            pixels = ((image[0].numpy() + 1) * 127.5).round().astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / name / f"{i}.png")
    loaded = data.load_images(str(tmp_path), image_size=8)
    assert loaded.images.shape == (10, 1, 8, 8) and loaded.classes == 2
    assert loaded.labels.tolist() == [0] * 5 + [1] * 5  # a_seven -> 0, b_three -> 1
    expected = digits.images[digits.labels == 7][:5]
    torch.testing.assert_close(loaded.images[:5], expected, atol=1 / 127.5, rtol=0)


def test_padding_to_a_power_of_two_crops_back():
    x = torch.rand(3, 1, 28, 28)
    padded, pad = data.pad_to_power_of_two(x)
    assert padded.shape[-1] == 32 and pad == 2
    assert torch.equal(data.crop(padded, 28, pad), x)
    assert (padded[..., :2, :] == -1).all()
