"""A whole LOOD run: records, kernel, one factorisation, the LOOD of every record, the top records,
optimised queries, optionally the ground-truth study, and the report. Expensive stages are cached
in <out>/cache under keys of the settings that decide them, so a rerun or a resumed run reuses them."""

from __future__ import annotations

import html
import io
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from privaudit.attacks.lood import plots
from privaudit.attacks.lood.data import LoodData, load_lood_data
from privaudit.attacks.lood.groundtruth import GroundTruthConfig, choose_targets, run_ground_truth
from privaudit.attacks.lood.kernels import KernelSpec, kernel_matrix
from privaudit.attacks.lood.posterior import centred_one_hot, factorise, self_lood
from privaudit.attacks.lood.queries import OptimisedQuery, QuerySettings, optimise_query
from privaudit.core.errors import InputError
from privaudit.core.report import ReportSection, write_page_report
from privaudit.core.rundir import atomic_write_bytes, prepare_output_dir, stable_key
from privaudit.dp.randomness import seed_for
from tqdm.auto import tqdm

RECORDS_ROLE, QUERY_ROLE = "lood-scored-records", "lood-query-start"
# Records whose LOOD is solved for at once: [n, block] float64 temporaries.
LOOD_BLOCK = 512


@dataclass(frozen=True)
class LoodConfig:
    """data: mnist, digits or a .npz/.csv path; classes: labels kept (None: all); records: how
    many records to score (0: all); top: records in the grid; queries: top records that get an
    optimised query."""

    data: str = "mnist"
    classes: tuple[int, ...] | None = (3, 5)
    records: int = 0
    sigma2: float = 0.05
    kernel: KernelSpec = field(default_factory=KernelSpec)
    top: int = 24
    queries: int = 4
    query: QuerySettings = field(default_factory=QuerySettings)
    ground_truth: GroundTruthConfig = field(default_factory=GroundTruthConfig)
    seed: int = 0

    def __post_init__(self):
        if not (
            isinstance(self.sigma2, float | int) and np.isfinite(self.sigma2) and self.sigma2 > 0
        ):
            raise InputError(f"--sigma2 must be a positive number, got {self.sigma2}")
        if self.records < 0 or self.top < 0 or self.queries < 0:
            raise InputError("--records, --top and --queries must be >= 0")


def _array_cache(path: Path, build) -> dict[str, np.ndarray]:
    """Arrays stored as .npz at path (atomic), built once."""
    if path.exists():
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    arrays = build()
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())
    return arrays


def _kernel(data: LoodData, spec: KernelSpec, cache: Path, progress: bool) -> torch.Tensor:
    path = cache / f"kernel-{stable_key({'data': data.fingerprint(), 'kernel': asdict(spec)})}.npy"
    if path.exists():
        return torch.from_numpy(np.load(path, allow_pickle=False))
    with tqdm(
        total=1, desc=f"kernel {len(data.rows)}x{len(data.rows)}", disable=not progress
    ) as bar:
        kernel = kernel_matrix(data.rows, data.rows, spec)
        bar.update()
    buffer = io.BytesIO()
    np.save(buffer, kernel.numpy())
    atomic_write_bytes(path, buffer.getvalue())
    return kernel


def _query_row(data: LoodData, result: OptimisedQuery, rank: int) -> dict:
    start = None if result.start_record is None else int(data.index[result.start_record])
    return {
        "record": int(data.index[result.record]), "lood_rank": rank, "label": data.class_names[data.labels[result.record]],
        "lood_at_record": result.lood_at_record, "lood_at_start": result.lood_at_start,
        "lood_at_query": result.lood_at_query, "cosine_to_record": result.cosine_to_record,
        "cosine_start_to_record": result.cosine_start_to_record, "record_rank_by_similarity": result.record_rank,
        "start_record": start,
    }  # fmt: skip


def run_lood(
    config: LoodConfig, out_dir: str | Path, *, progress: bool = True, device="cpu"
) -> dict:
    """Rank the records of config.data by LOOD and write the report into out_dir; returns
    report.json's dict. Only the ground-truth networks use `device`."""
    started = time.perf_counter()
    timings: dict[str, float] = {}
    data = load_lood_data(config.data, config.classes)
    out_dir = prepare_output_dir(out_dir)
    if config.ground_truth.records > (config.records or len(data.labels)):
        raise InputError(
            f"--ground-truth {config.ground_truth.records} is more than the records scored"
        )
    cache = out_dir / "cache"
    n = len(data.labels)
    scored = np.arange(n)
    if config.records and config.records < n:
        scored = np.sort(
            np.random.default_rng(seed_for(config.seed, RECORDS_ROLE)).choice(
                n, config.records, replace=False
            )
        )

    kernel = _kernel(data, config.kernel, cache, progress)
    timings["kernel_s"] = time.perf_counter() - started
    factor = factorise(kernel, centred_one_hot(data.labels, data.num_classes), config.sigma2)
    del kernel
    timings["factorisation_s"] = time.perf_counter() - started - timings["kernel_s"]
    base_key = {
        "data": data.fingerprint(),
        "kernel": asdict(config.kernel),
        "sigma2": config.sigma2,
    }

    def landscape():
        kl, mean = [], []
        for start in tqdm(
            range(0, len(scored), LOOD_BLOCK), desc="LOOD of the records", disable=not progress
        ):
            block = self_lood(factor, scored[start : start + LOOD_BLOCK])
            kl.append(block[0].numpy())
            mean.append(block[1].numpy())
        return {"kl": np.concatenate(kl), "mean_distance": np.concatenate(mean)}

    tick = time.perf_counter()
    lood = _array_cache(
        cache / f"landscape-{stable_key({**base_key, 'records': scored})}.npz", landscape
    )
    timings["lood_s"] = time.perf_counter() - tick
    order = np.argsort(-lood["kl"], kind="stable")
    top = scored[order[: config.top]]

    tick = time.perf_counter()
    queries = []
    for record in tqdm(top[: config.queries], desc="query optimisation", disable=not progress):
        key = {
            **base_key,
            "record": int(record),
            "query": asdict(config.query),
            "seed": config.seed,
        }

        def optimise(record=int(record)):
            seed = seed_for(config.seed, QUERY_ROLE, record)
            return optimise_query(
                data.rows, factor, record, config.kernel, config.query, seed
            ).to_arrays()

        queries.append(
            OptimisedQuery.from_arrays(
                _array_cache(cache / f"query-{stable_key(key)}.npz", optimise)
            )
        )
    timings["queries_s"] = time.perf_counter() - tick

    ground_truth = None
    if config.ground_truth.records:
        tick = time.perf_counter()
        positions = choose_targets(lood["kl"], config.ground_truth.records)
        ground_truth = run_ground_truth(
            data.inputs, data.labels, scored[positions], lood["kl"][positions], lood["mean_distance"][positions],
            config.kernel, config.ground_truth, config.seed, cache, progress=progress, device=device,
        )  # fmt: skip
        timings["ground_truth_s"] = time.perf_counter() - tick
    timings["total_s"] = time.perf_counter() - started
    return _write(config, out_dir, data, scored, lood, top, queries, ground_truth, timings)


def _write(config, out_dir, data, scored, lood, top, queries, ground_truth, timings) -> dict:
    kl, mean = lood["kl"], lood["mean_distance"]
    position = {int(r): i for i, r in enumerate(scored)}
    landscape = pd.DataFrame({
        "record": data.index[scored], "label": [data.class_names[c] for c in data.labels[scored]],
        "lood_kl": kl, "lood_mean_distance": mean,
    }).sort_values("lood_kl", ascending=False, kind="stable")  # fmt: skip
    top_rows = [
        {"record": int(data.index[r]), "position": int(r), "label": data.class_names[data.labels[r]],
         "lood_kl": float(kl[position[int(r)]]), "lood_mean_distance": float(mean[position[int(r)]])}
        for r in top
    ]  # fmt: skip
    if ground_truth is not None:
        for row in ground_truth["per_record"]:
            row["record"] = int(data.index[row["record"]])
    report = {
        "title": "privaudit attacks: LOOD (leave-one-out distinguishability under the NNGP)",
        "data": data.source, "classes": list(data.class_names), "records": len(data.labels),
        "scored": len(scored), "kernel": asdict(config.kernel), "sigma2": config.sigma2,
        "lood_kl": {"max": float(kl.max()), "median": float(np.median(kl)), "mean": float(kl.mean()), "min": float(kl.min())},
        "lood_mean_distance": {"max": float(mean.max()), "median": float(np.median(mean))},
        "spearman_kl_vs_mean_distance": float(pd.Series(kl).corr(pd.Series(mean), method="spearman")),
        "top": top_rows, "queries": [_query_row(data, q, i) for i, q in enumerate(queries, 1)],
        "ground_truth": ground_truth, "timings_s": timings,
    }  # fmt: skip
    sections = [_landscape_section(data, scored, kl, top_rows)]
    if queries:
        sections.append(_queries_section(data, queries))
    if ground_truth is not None:
        sections.append(_ground_truth_section(ground_truth))
    config_dict = asdict(config)
    return write_page_report(
        out_dir, report, summary_html=_summary_html(report), sections=sections,
        files={"landscape.csv": landscape.to_csv(index=False).encode()}, config=config_dict, seed=config.seed,
    )  # fmt: skip


def _summary_html(report: dict) -> str:
    k = report["kernel"]
    return (
        f"<p>{report['scored']} of {report['records']} records of {html.escape(report['data'])} "
        f"(classes {', '.join(map(html.escape, report['classes']))}) ranked by their KL LOOD: how far the GP "
        f"posterior of a {k['depth']}-hidden-layer {k['activation']} network's {k['kind'].upper()} "
        f"(w_std {k['w_std']:.3g}, b_std {k['b_std']:.3g}, sigma^2 {report['sigma2']:.3g}) moves at the record "
        f"when the record is left out. Max {report['lood_kl']['max']:.4g}, median {report['lood_kl']['median']:.4g} "
        f"nats. All records' LOOD come from one Cholesky factorisation and a rank-one update per record; "
        f"every record is in <code>landscape.csv</code>.</p>"
        "<p><b>What this means:</b> LOOD ranks which records a model of this kind would expose most, "
        "without training any model: a record far from the others, or mislabelled, moves the "
        "posterior most when it is left out, so an attacker could tell most easily whether it was "
        "in the training set. It is a ranking, not a privacy bound: 0 nats would mean leaving the "
        "record out changes nothing; compare records with each other (the top of the ranking "
        "against the median), and check the ranking with the ground-truth section where present "
        "(the same records attacked on trained networks).</p>"
    )


def _landscape_section(data: LoodData, scored, kl, top_rows) -> ReportSection:
    images = [("lood_distribution.png", plots.distribution_png(kl)),
              ("lood_landscape.png", plots.landscape_png(kl, data.labels[scored], data.class_names, data.rows[scored].numpy()))]  # fmt: skip
    if data.display is not None and top_rows:
        grid = plots.image_grid_png(
            [data.display[row["position"]] for row in top_rows],
            [f"#{row['record']} ({row['label']})\nLOOD {row['lood_kl']:.3g}" for row in top_rows],
            "Records with the highest LOOD",
        )
        images.append(("lood_top_records.png", grid))
    rows = "".join(
        f"<tr><td>{r['record']}</td><td>{html.escape(r['label'])}</td><td>{r['lood_kl']:.4g}</td>"
        f"<td>{r['lood_mean_distance']:.4g}</td></tr>"
        for r in top_rows[:10]
    )
    return ReportSection(
        "The LOOD landscape",
        "<table><tr><th>record</th><th>label</th><th>KL LOOD</th><th>mean-distance LOOD</th></tr>"
        f"{rows}</table>",
        tuple(images),
    )


def _queries_section(data: LoodData, queries: list[OptimisedQuery]) -> ReportSection:
    rows = "".join(
        f"<tr><td>{data.index[q.record]}</td><td>{q.lood_at_record:.4g}</td><td>{q.lood_at_start:.4g}</td>"
        f"<td>{q.lood_at_query:.4g}</td><td>{q.cosine_to_record:.3f}</td><td>{q.record_rank}</td></tr>"
        for q in queries
    )
    images = ()
    if data.display is not None:
        tiles, captions = [], []
        for q in queries:
            tiles += [data.display[q.record], data.to_display(q.start), data.to_display(q.query)]
            captions += [f"record #{data.index[q.record]}\nLOOD {q.lood_at_record:.3g}", f"start\nLOOD {q.lood_at_start:.2g}",
                         f"optimised\nLOOD {q.lood_at_query:.3g}"]  # fmt: skip
        images = (
            (
                "lood_queries.png",
                plots.image_grid_png(tiles, captions, "Optimised queries beside their records", 6),
            ),
        )
    return ReportSection(
        "Optimised queries (reconstruction)",
        "<p>For each top record, Adam maximises the KL LOOD over a single query. The cosine similarity "
        "to the record and the record's rank among all records by similarity to the query (1: the query "
        "points at it) measure how far the query reconstructs the record.</p>"
        "<table><tr><th>record</th><th>LOOD at record</th><th>LOOD at start</th><th>LOOD at query</th>"
        f"<th>cosine to record</th><th>record's similarity rank</th></tr>{rows}</table>",
        images,
    )


def _ground_truth_section(truth: dict) -> ReportSection:
    per_record = truth["per_record"]
    lood = np.array([r["lood_kl"] for r in per_record])
    auc = np.array([r["mia_auc"] for r in per_record])

    def fmt(value):
        return "n/a" if value is None else f"{value:.3f}"

    c, d = truth["kl_vs_auc"], truth["mean_distance_vs_prediction_difference"]
    return ReportSection(
        "Ground truth: does LOOD predict what trained networks leak?",
        f"<p>{truth['records']} records at evenly spaced LOOD ranks; {truth['models']} FC networks "
        f"(width {truth['model']['width']}, depth {truth['model']['depth']}, {truth['model']['activation']}, "
        f"NTK parameterisation, {truth['training']['epochs']} epochs of SGD; mean training accuracy "
        f"{truth['train_accuracy_mean']:.3f}), every record in half of them and all other records in all. "
        "Per-record MIA AUC of the record's logit-scaled confidence, in vs out models. The LOOD is "
        "that of the whole data set with and without the record; each network holds half of the "
        "other studied records, a small difference when they are few.</p>"
        "<table><tr><th>pair</th><th>Pearson</th><th>p</th><th>Spearman</th><th>p</th></tr>"
        f"<tr><td>KL LOOD vs MIA AUC</td><td>{fmt(c['pearson'])}</td><td>{fmt(c['pearson_p'])}</td>"
        f"<td>{fmt(c['spearman'])}</td><td>{fmt(c['spearman_p'])}</td></tr>"
        f"<tr><td>mean-distance LOOD vs squared mean-logit difference</td><td>{fmt(d['pearson'])}</td>"
        f"<td>{fmt(d['pearson_p'])}</td><td>{fmt(d['spearman'])}</td><td>{fmt(d['spearman_p'])}</td></tr></table>",
        (("lood_ground_truth.png", plots.scatter_png(lood, auc, c)),),
    )
