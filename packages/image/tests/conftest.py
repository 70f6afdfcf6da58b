"""Tiny configs on scikit-learn's 8x8 digits, so the whole suite runs in minutes on 2 CPU cores."""

from __future__ import annotations

import os

import pytest
from privaudit.image.config import ImageAuditConfig

os.environ.setdefault("TQDM_DISABLE", "1")  # progress bars only clutter test logs


def tiny_config(tmp_path, **changes) -> ImageAuditConfig:
    fields = dict(
        data="digits",
        out_dir=str(tmp_path / "run"),
        generator_images=500,
        audit_members=400,
        non_members=400,
        epochs=8,
        gan_steps=150,
        gan_batch_size=16,
        gan_channel_base=64,
        gan_channel_max=16,
        gan_z_dim=16,
        helper_images=300,
        helper_epochs=4,
        attack_epochs=4,
        gan_threads=1,  # a tiny generator gains nothing from threads, and they stall on a busy CPU
    )
    fields.update(changes)
    return ImageAuditConfig(**fields)


@pytest.fixture
def tiny(tmp_path):
    return lambda **changes: tiny_config(tmp_path, **changes)
