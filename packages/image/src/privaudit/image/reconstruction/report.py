"""The reconstruction report: report.json, a self-contained report.html marked as sensitive (it
shows training images), the ROC and min-MSE plots, and grids of targets beside reconstructions."""

from __future__ import annotations

import base64
import html
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from privaudit.core import plots
from privaudit.core.plots import figure_png, pixels_png, plt  # plt: matplotlib, Agg backend
from privaudit.core.rundir import dumps_json, provenance

SENSITIVE = (
    "SENSITIVE: this report shows training images of the attacked heads and reconstructions of them. "
    "Share it only with people allowed to see that training data."
)
PAPER_SCALE = "the paper's MNIST runs: 2.56M shadow heads, about 1M reconstructor steps of batch 32, width 256"


def _cell(image: torch.Tensor, colour: tuple[int, int, int], border: int = 1) -> np.ndarray:
    """An RGB cell of one [C, h, w] image in [-1, 1], framed in `colour`."""
    gray = ((image.clamp(-1, 1) + 1) * 127.5).round().byte().numpy()
    rgb = np.repeat(gray[:1], 3, 0) if gray.shape[0] == 1 else gray[:3]
    h, w = rgb.shape[1:]
    cell = np.empty((3, h + 2 * border, w + 2 * border), dtype=np.uint8)
    cell[:] = np.array(colour, dtype=np.uint8)[:, None, None]
    cell[:, border : border + h, border : border + w] = rgb
    return cell


def grid_png(
    targets, rebuilt, rebuilt_h1, h0: np.ndarray, threshold: float, scale: int = 3
) -> bytes:
    """Three rows per head: the training image of each group nearest its reconstruction, the
    reconstruction from the real head (green frame: min-MSE <= threshold, red: above), and the
    reconstruction from H1 random weights (grey frame). With one image per head, rows of 10 heads."""
    if (
        rebuilt.shape[1] == 1 and len(rebuilt) > 1
    ):  # one image per head (one-vs-rest): heads in rows of 10
        rows_of = min(10, len(rebuilt))
        n = len(rebuilt) // rows_of * rows_of
        targets, rebuilt, rebuilt_h1 = (
            t[:n].reshape(n // rows_of, rows_of, *t.shape[2:])
            for t in (targets, rebuilt, rebuilt_h1)
        )
        h0 = h0[:n].reshape(n // rows_of, rows_of)
    nearest = (rebuilt.unsqueeze(2) - targets).square().mean((-3, -2, -1)).argmin(2)  # [H, G]
    rows = []
    for h in range(len(rebuilt)):
        groups = range(rebuilt.shape[1])
        rows.append(
            np.concatenate(
                [_cell(targets[h, g, nearest[h, g]], (255, 255, 255)) for g in groups], 2
            )
        )
        rows.append(np.concatenate([_cell(rebuilt[h, g], (0, 170, 0) if h0[h, g] <= threshold else (210, 40, 40))
                                    for g in groups], 2))  # fmt: skip
        rows.append(np.concatenate([_cell(rebuilt_h1[h, g], (128, 128, 128)) for g in groups], 2))
        rows.append(np.full((3, 4, rows[-1].shape[2]), 255, dtype=np.uint8))
    return pixels_png(np.concatenate(rows, 1).transpose(1, 2, 0), scale)


def _histogram_png(h0: np.ndarray, h1: np.ndarray, threshold: float) -> bytes:
    fig, ax = plt.subplots(figsize=(5.5, 4))
    bins = np.linspace(
        0, max(float(np.quantile(np.r_[h0.ravel(), h1.ravel()], 0.995)), threshold * 1.5), 60
    )
    ax.hist(h0.ravel(), bins=bins, alpha=0.6, density=True, label="H0: real heads")
    ax.hist(h1.ravel(), bins=bins, alpha=0.6, density=True, label="H1: weights ~ N(0, Sigma_w)")
    ax.axvline(
        threshold, color="black", linestyle="--", linewidth=1, label=f"MSE threshold {threshold:g}"
    )
    ax.set_xlabel("min-MSE to the class's training images")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    return figure_png(fig)


def _loss_png(losses: list[float]) -> bytes:
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    values = np.asarray(losses)
    window = max(1, len(values) // 50)
    smooth = np.convolve(values, np.ones(window) / window, mode="valid")
    ax.plot(np.arange(len(smooth)) + window, smooth, linewidth=1.2)
    ax.set_xlabel("reconstructor step")
    ax.set_ylabel(f"(MSE + MAE) / 2, mean of {window}")
    return figure_png(fig)


def _img(name: str, data: bytes) -> str:
    encoded = base64.b64encode(data).decode("ascii")
    return f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,{encoded}"><figcaption>{html.escape(name)}</figcaption></figure>'


def _rows(mapping: dict) -> str:
    def fmt(v):
        if isinstance(v, float):
            return f"{v:.4g}"
        if isinstance(v, dict):
            return ", ".join(f"{k} {fmt(x)}" for k, x in v.items())
        return "–" if v is None else str(v)

    return "".join(
        f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(fmt(v))}</td></tr>"
        for k, v in mapping.items()
    )


def _html(report: dict, images: dict[str, bytes]) -> str:
    r = report["results"]
    summary = {
        f"reconstruction TPR at FPR {report['fpr_of_interest']:g}": r["tpr_at_fpr"][
            str(report["fpr_of_interest"])
        ],
        f"TPR / FPR at the MSE threshold {r['mse_threshold']:g}": f"{r['tpr_at_threshold']:.4f} / {r['fpr_at_threshold']:.4f}",
        "AUC (H0 vs H1)": r["auc"],
        "TPR at FPR": r["tpr_at_fpr"],
        "median min-MSE H0 / H1": f"{r['h0_median']:.4f} / {r['h1_median']:.4f}",
        "min-MSE values H0 / H1": f"{r['h0_count']} / {r['h1_count']}",
    }
    grids = {k: v for k, v in images.items() if k.startswith("sensitive")}
    other = {k: v for k, v in images.items() if k not in grids}
    return "".join([
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Reconstruction attack (sensitive)</title><style>",
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}",
        ".sensitive{background:#b00020;color:white;padding:0.8em 1em;font-weight:bold;border-radius:4px}",
        "table{border-collapse:collapse}td{border:1px solid #bbb;padding:3px 8px}",
        "figure{display:inline-block;margin:0.5em}img{max-width:1000px}</style></head><body>",
        f"<p class='sensitive'>{html.escape(SENSITIVE)}</p>",
        "<h1>Data reconstruction from transfer-learned heads</h1>",
        "<p>A reconstructor network trained on shadow heads maps the weights of a head, trained on a few "
        "images over a frozen backbone, to images; success is a small min-MSE to the head's training images "
        "of that class (H0), compared with what weights carrying no information give (H1: draws from "
        "N(0, Sigma_w)). Allison &amp; Maciążek, 2025.</p>",
        f"<h2>Result</h2><table>{_rows(summary)}</table>",
        f"<h2>Run (counts)</h2><p>Scale for comparison: {html.escape(PAPER_SCALE)}.</p><table>{_rows(report['run'])}</table>",
        f"<h2>Timings (s)</h2><table>{_rows(report['timings'])}</table>",
        "<h2>Plots</h2>", "".join(_img(k, v) for k, v in other.items()),
        f"<h2>Targets and reconstructions (sensitive)</h2><p class='sensitive'>{html.escape(SENSITIVE)}</p>",
        "<p>Per head three rows: the training image of each class nearest its reconstruction; the reconstruction "
        "from the real head (green frame: min-MSE at most the threshold, red: above); the reconstruction from "
        "H1 random weights.</p>",
        "".join(_img(k, v) for k, v in grids.items()),
        "</body></html>\n",
    ])  # fmt: skip


def write_reconstruction_report(out_dir: Path, *, config, facts: dict, rates: dict, timings: dict, losses,
                                h0, h1, grid, argv=None) -> dict:  # fmt: skip
    """Write the report files into `out_dir` (staged, then moved in, report.json last); returns
    report.json's dict."""
    roc = rates.pop("roc")
    fpr, tpr, mse = plots.thin(roc["fpr"], roc["tpr"], roc["mse_threshold"])
    report = {
        "title": "data reconstruction from transfer-learned heads",
        "contains_training_images": True,
        "sensitive": SENSITIVE,
        "fpr_of_interest": config.fpr,
        "results": rates,
        "roc": {"fpr": fpr, "tpr": tpr, "mse_threshold": mse},
        "run": facts,
        "paper_scale": PAPER_SCALE,
        "timings": {k: round(v, 2) for k, v in timings.items()},
    }
    targets, rebuilt, rebuilt_h1, grid_h0 = grid
    images = {
        "roc.png": plots.roc_png({"H0 vs H1": (roc["fpr"], roc["tpr"])}, log_scale=False),
        "roc_loglog.png": plots.roc_png({"H0 vs H1": (roc["fpr"], roc["tpr"])}, log_scale=True),
        "min_mse.png": _histogram_png(h0, h1, config.mse_threshold),
        "reconstructor_loss.png": _loss_png(losses),
        "sensitive-targets-and-reconstructions.png": grid_png(
            targets, rebuilt, rebuilt_h1, grid_h0, config.mse_threshold
        ),  # fmt: skip
    }
    files = {
        **images,
        "report.html": _html(report, images).encode(),
        "config.json": dumps_json(config.as_dict()).encode(),
        "provenance.json": dumps_json(provenance(argv=argv, seed=config.seed)).encode(),
        "report.json": dumps_json(report).encode(),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir, prefix=".report-"))
    try:
        for name, data in files.items():
            (staging / name).write_bytes(data)
        for name in files:  # report.json, written last, says the report is complete
            os.replace(staging / name, out_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return report
