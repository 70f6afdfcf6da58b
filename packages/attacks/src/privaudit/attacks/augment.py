"""Augmented queries: the same image seen mirrored and shifted, as the attack queries the model."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

Queries = Callable[[torch.Tensor], list[torch.Tensor]]


def shift_images(images: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Images [B, C, H, W] moved by (dy, dx) pixels, the uncovered border filled with zeros."""
    height, width = images.shape[-2:]
    pad = max(abs(dy), abs(dx))
    padded = F.pad(images, (pad, pad, pad, pad))
    top, left = pad - dy, pad - dx
    return padded[..., top : top + height, left : left + width]


def image_queries(mirror: bool = False, shift: int = 0) -> Queries:
    """Query function giving the identity, the four shifts by `shift` pixels, and their mirrors."""
    if shift < 0:
        raise ValueError(f"shift must be >= 0, got {shift}")
    offsets = [(0, 0)] + ([(shift, 0), (-shift, 0), (0, shift), (0, -shift)] if shift else [])

    def queries(images: torch.Tensor) -> list[torch.Tensor]:
        views = [shift_images(images, dy, dx) for dy, dx in offsets]
        if mirror:
            views += [torch.flip(view, dims=(-1,)) for view in views]
        return views

    return queries


def identity_queries(inputs: torch.Tensor) -> list[torch.Tensor]:
    """The single unaugmented query (tabular data, text)."""
    return [inputs]
