"""The inversion report: the defence table (one row per target), the reference values, the grid
of reconstructions beside real private examples (marked sensitive) and the loss curves."""

from __future__ import annotations

import html

import numpy as np
import torch
from privaudit.core.plots import figure_png, pixels_png, plt  # plt: matplotlib, Agg backend
from privaudit.core.report import ReportSection, write_page_report

SENSITIVE = ("SENSITIVE: this report shows private training images of the target and reconstructions of "
             "its classes. Share it only with people allowed to see that training data.")  # fmt: skip
COLUMNS = (("target", "target"), ("target_accuracy", "target accuracy"), ("epsilon_spent", "DP eps spent"),
           ("attack_top1", "attack acc. top-1"), ("attack_top5", "top-5"), ("knn_distance", "KNN dist."),
           ("frechet_distance", "FD"), ("public_top1", "no-GAN top-1"),
           ("public_knn_distance", "no-GAN KNN"))  # fmt: skip


def _fmt(value) -> str:
    if value is None:
        return "–"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def table_html(rows: list[dict]) -> str:
    head = "".join(f"<th>{html.escape(title)}</th>" for _, title in COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(row.get(key)))}</td>" for key, _ in COLUMNS) + "</tr>"
                   for row in rows)  # fmt: skip
    return f"<table><tr>{head}</tr>{body}</table>"


def table_text(rows: list[dict]) -> str:
    """The defence table as aligned text, for the terminal."""
    cells = [[title for _, title in COLUMNS]] + [
        [_fmt(row.get(key)) for key, _ in COLUMNS] for row in rows
    ]
    widths = [max(len(r[i]) for r in cells) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells)


def grid_png(real: torch.Tensor, real_labels: torch.Tensor, rebuilt: torch.Tensor, rebuilt_labels: torch.Tensor,
             classes: int, per_class: int, scale: int = 3) -> bytes:  # fmt: skip
    """One row per class: real private examples, a gap, then reconstructions of that class."""
    c, h, w = real.shape[1:]
    blank = torch.full((c, h, w), -1.0)
    gap = torch.full((c, h, w // 2), 1.0)
    rows = []
    for k in range(classes):
        shown_real, shown_rebuilt = (
            real[real_labels == k][:per_class],
            rebuilt[rebuilt_labels == k][:per_class],
        )
        cells = [shown_real[i] if i < len(shown_real) else blank for i in range(per_class)] + [gap]
        cells += [shown_rebuilt[i] if i < len(shown_rebuilt) else blank for i in range(per_class)]
        rows.append(torch.cat(cells, dim=2))
    grid = torch.cat(rows, dim=1)
    array = ((grid.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    return pixels_png(array[:, :, 0] if c == 1 else array, scale)


def losses_png(runs: dict[str, dict]) -> bytes:
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for name, run in runs.items():
        log = run["cgan_log"]
        axes[0].plot(
            [e["step"] for e in log], [e["inversion_loss"] for e in log], label=name, linewidth=1.2
        )
        curve = np.asarray(run["reconstruction_losses"])
        axes[1].plot(np.arange(1, len(curve) + 1), curve, label=name, linewidth=1.2)
    axes[0].set_xlabel("cGAN generator step")
    axes[0].set_ylabel("inversion loss (max-margin)")
    axes[1].set_xlabel("latent optimisation iteration")
    axes[1].set_ylabel("max-margin, two views")
    for ax in axes:
        ax.legend(fontsize=8)
    return figure_png(fig)


def write_report(out_dir, report: dict, *, grids: dict[str, bytes], runs: dict[str, dict], config: dict,
                 seed: int) -> dict:  # fmt: skip
    ref = report["reference"]
    summary = "".join([
        f"<p style='background:#b00020;color:white;padding:0.8em 1em;font-weight:bold'>{html.escape(SENSITIVE)}</p>",
        "<p>PLG-MI (Yuan et al., 2023): the target pseudo-labels public images, the top "
        f"{report['run']['top_n']} per class train a conditional GAN (hinge loss, spectral-norm projection "
        f"discriminator) with the target's max-margin inversion loss (alpha {report['run']['alpha']:g}); per class, "
        "latents are then optimised against the target. An evaluation classifier of another architecture and seed, "
        "trained on the private data, judges the reconstructions.</p>",
        f"<p>Private: {html.escape(report['run']['private'])}. Public: {html.escape(report['run']['public'])}.</p>",
        "<h2>Defence: the same attack against each target</h2>", table_html(report["targets"]),
        f"<p>Random guessing: top-1 {ref['random_top1']:.3g}, top-5 {ref['random_top5']:.3g}. Real held-out private "
        f"images score: evaluation-model accuracy {ref['evaluation_accuracy']:.3g}, KNN distance "
        f"{ref['knn_distance_held_out']:.4g}, FD {ref['frechet_distance_held_out']:.4g} ({ref['frechet_reference_images']} "
        f"held-out vs the training images, as many as there are reconstructions; all held-out images: "
        f"{ref['frechet_distance_held_out_all']:.4g}). Lower KNN distance and FD mean reconstructions closer to the private images. FD in "
        f"{html.escape(ref['frechet_space'])}; KNN distance (squared L2) in the evaluation model's 128-d "
        "features. No-GAN columns: the same measures on the most confident public images of each class (as many as "
        "the reconstructions), what the attacker has before the cGAN and the latent search.</p>",
    ])  # fmt: skip
    grid_html = (f"<p style='color:#b00020;font-weight:bold'>{html.escape(SENSITIVE)}</p><p>Each row a class: "
                 "real private training images on the left, reconstructions of that class on the right.</p>")  # fmt: skip
    sections = [
        ReportSection("Reconstructions beside real private examples (sensitive)", grid_html,
                      tuple((f"sensitive-{name}.png", png) for name, png in grids.items())),
        ReportSection("Losses", "", (("losses.png", losses_png(runs)),)),
        ReportSection("Timings (s)", table_timings(report["timings_s"])),
    ]  # fmt: skip
    return write_page_report(
        out_dir, report, summary_html=summary, sections=sections, config=config, seed=seed
    )


def table_timings(timings: dict) -> str:
    stages = sorted({stage for row in timings.values() for stage in row})
    head = "".join(f"<th>{html.escape(s)}</th>" for s in stages)
    body = "".join(f"<tr><td>{html.escape(name)}</td>" + "".join(f"<td>{_fmt(row.get(s))}</td>" for s in stages)
                   + "</tr>" for name, row in timings.items())  # fmt: skip
    return f"<table><tr><th>target</th>{head}</tr>{body}</table>"
