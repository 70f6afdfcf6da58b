"""Synthetic non-members: an sdv synthesizer (CTGAN or TVAE) trained on the generator split, and its
quality report."""

from __future__ import annotations

import html

import numpy as np
import pandas as pd
import torch
from privaudit.core.report import ReportSection
from privaudit.dp.randomness import seed_for
from privaudit.tabular.data import Table
from privaudit.tabular.rejection import DensityRatioFilter

# Integer columns with at most this many distinct values (age, hours, capital gain on Adult) are
# modelled by CTGAN as categories: as continuous columns it samples values no real row has.
DISCRETE_MAX_VALUES = 128


def discrete_columns(table: Table, train: pd.DataFrame) -> list[str]:
    """Numerical columns of `train` that hold only integers with few distinct values."""
    found = []
    for column in table.numerical:
        values = train[column].to_numpy(dtype=np.float64)
        if np.all(values == np.round(values)) and len(np.unique(values)) <= DISCRETE_MAX_VALUES:
            found.append(column)
    return found


def synthesizer_metadata(table: Table, discrete: list[str]):
    """sdv metadata with the `discrete` numerical columns declared categorical."""
    from sdv.metadata import Metadata

    sdtypes = {c: ("categorical" if c in discrete else t) for c, t in table.sdtypes.items()}
    return Metadata.load_from_dict(
        {"tables": {"table": {"columns": {c: {"sdtype": t} for c, t in sdtypes.items()}}}}
    )


def calibration_samples(quantile: float) -> int:
    """Fresh samples over which the filter's quantile M is taken: 10,000, or enough that about 100
    of them lie above M."""
    return max(10_000, round(100 / (1 - quantile)))


# name -> (sdv class, label in reports)
SYNTHESIZERS = {"ctgan": ("CTGANSynthesizer", "CTGAN"), "tvae": ("TVAESynthesizer", "TVAE")}


class SdvGenerator:
    """An sdv synthesizer (CTGAN or TVAE), trained on the generator split; samples come with their
    labels."""

    conditional = False
    quality_key: dict = {}  # quality() depends on the samples alone

    def __init__(
        self,
        table: Table,
        *,
        synthesizer: str,
        epochs: int,
        batch_size: int,
        rejection_quantile: float = 0.0,
    ):
        self.table, self.synthesizer_name = table, synthesizer
        self.epochs, self.batch_size = epochs, batch_size
        self.rejection_quantile = rejection_quantile
        self.name = SYNTHESIZERS[synthesizer][1]
        self.key = {
            "synthesizer": synthesizer,
            "epochs": epochs,
            "batch_size": batch_size,
            "rejection_quantile": rejection_quantile,
        }

    def fit(self, members, checkpoint, seed: int) -> None:
        """Train on the members' rows (sdv saves a synthesizer only by pickling, so there is no
        checkpoint: the driver caches the samples instead)."""
        from sdv import single_table

        train = members.frame
        self.discrete = discrete_columns(self.table, train)
        metadata = synthesizer_metadata(self.table, self.discrete)
        train = train.astype({c: str for c in self.discrete})
        # CTGAN packs `pac`=10 rows per critic input, so the batch must be a multiple of 10 and fit
        # the data; TVAE takes the same batch
        batch = max(10, min(self.batch_size, len(train)) // 10 * 10)
        torch.manual_seed(seed_for(seed, "fit"))
        np.random.seed(seed_for(seed, "fit") % 2**32)
        synthesizer = getattr(single_table, SYNTHESIZERS[self.synthesizer_name][0])
        # verbose: the synthesizer's own tqdm bar over epochs (with its losses)
        self.synthesizer = synthesizer(
            metadata, epochs=self.epochs, batch_size=batch, verbose=True, enable_gpu=False
        )
        self.synthesizer.fit(train)
        self.filter = None
        if self.rejection_quantile > 0:
            # the discriminator sees the generator's own rows only: it is part of the generator
            self.synthesizer._set_random_state(seed_for(seed, "discriminator samples") % 2**32)
            fakes = self._raw_sample(len(train))
            calibration = self._raw_sample(
                max(calibration_samples(self.rejection_quantile), len(train))
            )
            self.filter = DensityRatioFilter(self.table, self.rejection_quantile)
            self.filter.fit(members.frame, fakes, calibration, seed_for(seed, "discriminator"))

    def _raw_sample(self, count: int) -> pd.DataFrame:
        """`count` rows from the synthesizer, in the table's columns and dtypes."""
        sample = self.synthesizer.sample(num_rows=count)
        for column in self.discrete:
            sample[column] = (
                sample[column].astype(np.float64).astype(self.table.frame[column].dtype)
            )
        for column in self.table.categorical + [self.table.label]:
            sample[column] = sample[column].astype(str)
        return sample[list(self.table.frame.columns)]

    def sample(self, count: int, labels, seed: int):
        from privaudit.tabular.targets import FrameExamples

        # sdv samples from a fixed seed unless given one
        self.synthesizer._set_random_state(seed % 2**32)
        if self.filter is None:
            return FrameExamples(self._raw_sample(count), self.table)
        coins = np.random.default_rng(seed_for(seed, "rejection"))
        kept, total = [], 0
        while total < count:
            # a pool expected to hold the rows still missing, and 10 % more
            pool = self._raw_sample(int(np.ceil(1.1 * (count - total) / self.filter.acceptance)))
            kept.append(self.filter.kept(pool, coins))
            total += len(kept[-1])
        rows = pd.concat(kept, ignore_index=True).iloc[:count]
        return FrameExamples(rows, self.table)

    def quality(self, members, synthetic, held_out, seed: int) -> dict:
        found = quality(self.table, members.frame, synthetic.frame.iloc[: len(members)])
        if self.filter is not None:
            found["rejection"] = {
                "quantile": self.rejection_quantile,
                "acceptance": self.filter.acceptance,
            }
        return found

    def report_section(self, q: dict, members, synthetic) -> ReportSection:
        rows = "".join(
            f"<tr><td>{html.escape(s['column'])}</td><td>{html.escape(s['metric'])}</td><td>{s['score']:.3f}</td></tr>"
            for s in q["column_shapes"]
        )
        props = ", ".join(f"{html.escape(k)} {v:.3f}" for k, v in q["properties"].items())
        body = (
            f"<p>sdv quality score of the {self.name} samples against the generator's training rows: "
            f"<b>{q['score']:.3f}</b> ({props}).</p>"
            f"<table><tr><th>column</th><th>metric</th><th>shape score</th></tr>{rows}</table>"
        )
        if "rejection" in q:
            body += (
                f"<p>Samples were filtered by discriminator rejection sampling: a classifier trained "
                f"on the generator's rows against its samples estimates each sample's density ratio "
                f"real / synthetic, and a sample is kept with probability min(1, ratio / M), M the "
                f"ratio's {q['rejection']['quantile']:g}-quantile; "
                f"{100 * q['rejection']['acceptance']:.1f} % of the samples are kept.</p>"
            )
        return ReportSection(f"Generator ({self.name}) quality", body)


def quality(table: Table, real: pd.DataFrame, synthetic: pd.DataFrame) -> dict:
    """sdv's quality report: overall score, property scores and the per-column shape scores."""
    from sdv.evaluation.single_table import evaluate_quality

    report = evaluate_quality(real, synthetic, table.metadata(), verbose=False)
    shapes = report.get_details("Column Shapes")
    return {
        "score": float(report.get_score()),
        "properties": {
            row["Property"]: float(row["Score"]) for _, row in report.get_properties().iterrows()
        },
        "column_shapes": [
            {
                "column": str(row["Column"]),
                "metric": str(row["Metric"]),
                "score": float(row["Score"]),
            }
            for _, row in shapes.iterrows()
        ],
    }
