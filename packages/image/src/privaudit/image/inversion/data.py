"""The attack's data: the private images (the target's training classes, which the attacker never
sees), the public images (another distribution, no labels), and PLG-MI's top-n selection of
public images pseudo-labelled by the target."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from privaudit.core.errors import InputError
from privaudit.dp.devices import model_device
from privaudit.dp.randomness import seed_for
from privaudit.image import data as image_data
from torch import nn

EMBEDDED = ("mnist", "digits")


@dataclass(frozen=True)
class InversionData:
    """Private train / test images with labels 0..classes-1, the public images, where they came from."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    public: torch.Tensor
    classes: int
    class_names: tuple[str, ...]
    private_source: str
    public_source: str

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.train_images.shape[1:])


def public_folder(path: str, image_size: int) -> torch.Tensor:
    """Every image under `path` (any layout: sub-folders are not classes), grayscale, in [-1, 1]."""
    from PIL import Image, UnidentifiedImageError

    root = Path(path)
    if not root.is_dir():
        raise InputError(f"public data path {path} is not a folder of images.")
    images = []
    for file in sorted(root.rglob("*")):
        if file.suffix.lower() not in image_data.IMAGE_SUFFIXES or file.name.startswith("."):
            continue
        try:
            with Image.open(file) as image:
                image = image.convert("L").resize((image_size, image_size), Image.BILINEAR)
                images.append(np.asarray(image, dtype=np.uint8))
        except (OSError, UnidentifiedImageError) as exc:
            raise InputError(f"image file {file} cannot be read ({type(exc).__name__}).") from exc
    if not images:
        raise InputError(
            f"public folder {path} holds no image files ({', '.join(image_data.IMAGE_SUFFIXES)})."
        )
    return torch.from_numpy(np.stack(images)).float().div(255).mul(2).sub(1).unsqueeze(1)


def load(private: str, public: str | None, private_classes: tuple[int, ...], test_fraction: float,
         seed: int) -> InversionData:  # fmt: skip
    """'mnist' / 'digits': `private_classes` of that dataset are private, every other class is the
    public data (pseudo-labelled, its labels dropped). A private image folder (one sub-folder per
    class) needs a public folder."""
    source = image_data.load_images(private)
    if source.images.shape[1] != 1:
        raise InputError(
            f"private data {private} has {source.images.shape[1]} channels; invert reads grayscale images."
        )
    if source.images.shape[-1] % 4:
        raise InputError(
            f"private images are {source.images.shape[-1]} pixels wide; the generator needs a multiple of 4."
        )
    labels = source.labels
    if private in EMBEDDED:
        present = set(labels.unique().tolist())
        missing = [k for k in private_classes if k not in present]
        if missing or len(set(private_classes)) < 2 or len(set(private_classes)) == len(present):
            raise InputError(f"private_classes {list(private_classes)} must be at least 2 and not all of the "
                             f"classes {sorted(present)} of {private} (the others are the public data).")  # fmt: skip
        keep = torch.isin(labels, torch.tensor(private_classes))
        remap = torch.full((int(labels.max()) + 1,), -1, dtype=torch.long)
        remap[torch.tensor(private_classes)] = torch.arange(len(private_classes))
        images, labels = source.images[keep], remap[labels[keep]]
        names = tuple(str(k) for k in private_classes)
        classes = len(private_classes)
        private_source = f"{source.source}, classes {', '.join(names)}"
    else:
        images, classes = source.images, source.classes
        names = tuple(
            sorted(
                d.name for d in Path(private).iterdir() if d.is_dir() and not d.name.startswith(".")
            )
        )
        if len(names) != classes:
            names = tuple(str(k) for k in range(classes))
        private_source = source.source
    if public is None:
        if private not in EMBEDDED:
            raise InputError(
                "a private image folder needs --public: a folder of public images of another distribution."
            )
        public_images = source.images[~keep]
        public_source = (f"{source.source}, the other classes "
                         f"{', '.join(str(k) for k in sorted(present - set(private_classes)))} (labels dropped)")  # fmt: skip
    else:
        public_images = public_folder(public, images.shape[-1])
        public_source = f"image folder {public}"
    order = torch.from_numpy(
        np.random.default_rng(seed_for(seed, "private-split")).permutation(len(labels))
    )
    test = max(1, int(round(test_fraction * len(labels))))
    test_rows, train_rows = order[:test], order[test:]
    counts = torch.bincount(labels[train_rows], minlength=classes)
    if counts.min() < 2:
        raise InputError(f"private class {names[int(counts.argmin())]} has {int(counts.min())} training images; "
                         f"every class needs at least 2.")  # fmt: skip
    return InversionData(images[train_rows], labels[train_rows], images[test_rows], labels[test_rows],
                         public_images, classes, names, private_source, public_source)  # fmt: skip


@torch.no_grad()
def probabilities(model: nn.Module, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    device = model_device(model)
    model.eval()
    return torch.cat([model(images[s : s + batch_size].to(device)).softmax(1).cpu()
                      for s in range(0, len(images), batch_size)])  # fmt: skip


def top_n_selection(probs: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """PLG-MI's top-n selection: for every class k the n public images the target gives the highest
    probability of k, pseudo-labelled k. Returns (indices into the public images, pseudo-labels),
    class by class, most confident first. An image can be among the top n of two classes only when
    neither probability is above 1/2."""
    if n > len(probs):
        raise InputError(
            f"top_n {n} is more than the {len(probs)} public images; give more public images or a smaller top_n."
        )
    indices = torch.topk(probs, n, dim=0).indices.T  # [classes, n]
    labels = torch.arange(probs.shape[1]).repeat_interleave(n)
    return indices.reshape(-1), labels
