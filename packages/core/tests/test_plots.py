"""The ladder plot (eps_tilde against the ground-truth AUC) is a PNG a report can embed."""

from __future__ import annotations

import io

import matplotlib.image
from privaudit.core.plots import ladder_png


def test_ladder_png_is_a_readable_png_with_one_point_per_run():
    points = [
        {"target": t, "auc": 0.5 + 0.05 * i + 0.01 * s, "eps_tilde": 0.1 * i - 0.05 * s}
        for i, t in enumerate(["dp-eps1", "mlp", "overfit"])
        for s in range(3)
    ]
    png = ladder_png(points)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    image = matplotlib.image.imread(io.BytesIO(png), format="png")
    assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 200
