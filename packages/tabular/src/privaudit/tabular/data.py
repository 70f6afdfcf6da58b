"""Tables to audit: UCI Adult shipped inside a wheel, or a user's CSV/Parquet with a label column."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from privaudit.core.errors import InputError
from privaudit.core.scores import read_frame

# UCI Adult ships inside this package (CC BY 4.0; attribution in embedded/ADULT.md)
ADULT_FILE = Path(__file__).parent / "embedded" / "adult.parquet"
ADULT_LABEL = "income"
SUPPORTED_SDTYPES = ("numerical", "categorical", "boolean")
MAX_CLASSES = 50


@dataclass(frozen=True)
class Table:
    """A validated table: feature columns with their sdv sdtypes, and the label column."""

    frame: pd.DataFrame
    label: str
    sdtypes: dict[str, str]  # every column, label included
    source: str

    @property
    def features(self) -> list[str]:
        return [c for c in self.frame.columns if c != self.label]

    @property
    def numerical(self) -> list[str]:
        return [c for c in self.features if self.sdtypes[c] == "numerical"]

    @property
    def categorical(self) -> list[str]:
        return [c for c in self.features if self.sdtypes[c] != "numerical"]

    @property
    def classes(self) -> list:
        return sorted(self.frame[self.label].unique().tolist(), key=str)

    def metadata(self):
        """sdv single-table metadata for this table (what CTGAN and the quality report need)."""
        from sdv.metadata import Metadata

        return Metadata.load_from_dict(
            {"tables": {"table": {"columns": {c: {"sdtype": t} for c, t in self.sdtypes.items()}}}}
        )


# A 1:1 numeric code of `education`: CTGAN breaks that identity, which alone tells its rows apart.
ADULT_DUPLICATE_COLUMN = "educational-num"


def adult() -> pd.DataFrame:
    """UCI Adult (48,842 rows, label `income`), shipped inside this package.

    `educational-num` is dropped: it duplicates `education` (one code per level).
    """
    return pd.read_parquet(ADULT_FILE).drop(columns=[ADULT_DUPLICATE_COLUMN])


def read_table(path: str | Path) -> pd.DataFrame:
    """A user's CSV or Parquet file as a DataFrame; anything that is not a table is an InputError."""
    frame = read_frame(path, "data file")
    if frame.shape[1] < 2:
        raise InputError(
            f"data file {path} is not a table with at least two columns (found {frame.shape[1]})."
        )
    return frame


def _holds_dates(values: pd.Series) -> bool:
    """Text that all parses as dates (and has digits: month names alone stay categories)."""
    text = values.dropna().astype(str)
    if text.empty or not text.str.contains(r"\d").all():
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas warns when it has to guess the format per value
        try:
            pd.to_datetime(text, format="mixed")
        except (ValueError, TypeError, OverflowError):
            return False
    return True


def detect_sdtypes(frame: pd.DataFrame) -> dict[str, str]:
    """Column sdtypes from the values, never from the names (sdv's detection reads a column named
    `city` or `email` as personal data and refuses to model it)."""
    sdtypes = {}
    for column in frame.columns:
        values = frame[column]
        if pd.api.types.is_bool_dtype(values):
            sdtypes[column] = "boolean"
        elif pd.api.types.is_numeric_dtype(values):
            sdtypes[column] = "numerical"
        elif pd.api.types.is_datetime64_any_dtype(values) or _holds_dates(values):
            sdtypes[column] = "datetime"
        else:
            sdtypes[column] = "categorical"
    return sdtypes


def prepare_table(frame: pd.DataFrame, label: str, *, source: str, min_rows: int) -> Table:
    """Validate a raw table for the audit: label present, a classification label, supported columns."""
    if label not in frame.columns:
        raise InputError(
            f"{source} has no label column {label!r} (columns: {', '.join(map(str, frame.columns))})."
        )
    frame = frame.dropna(subset=[label]).reset_index(drop=True)
    if len(frame) < min_rows:
        raise InputError(
            f"{source} has {len(frame)} labelled rows; the audit needs at least {min_rows}."
        )
    n_classes = frame[label].nunique()
    if not 2 <= n_classes <= MAX_CLASSES:
        raise InputError(
            f"label column {label!r} in {source} has {n_classes} distinct values; a classifier label needs 2 to {MAX_CLASSES}."
        )
    sdtypes = detect_sdtypes(frame)
    sdtypes[label] = "categorical"
    for column, sdtype in sdtypes.items():
        if sdtype not in SUPPORTED_SDTYPES:
            raise InputError(
                f"column {column!r} in {source} has sdv type {sdtype!r}; supported types are {', '.join(SUPPORTED_SDTYPES)} (drop or convert it)."
            )
    for column in frame.columns:
        if (
            column != label
            and sdtypes[column] == "categorical"
            and frame[column].nunique() == len(frame)
        ):
            raise InputError(
                f"column {column!r} in {source} has a different value in every row (an identifier?); drop it."
            )
        if sdtypes[column] == "numerical" and frame[column].isna().any():
            raise InputError(
                f"numerical column {column!r} in {source} has missing values; fill or drop them first."
            )
        if sdtypes[column] != "numerical":
            frame[column] = frame[column].astype(str)
    return Table(frame=frame, label=label, sdtypes=sdtypes, source=source)


@dataclass(frozen=True)
class Splits:
    """Disjoint row sets: generator training members, audit members, real non-members.

    The target trains on generator + audit members (the generator's rows are members too, as in
    PANORAMIA), but the audit only ever scores the audit members, never the generator's rows.
    """

    generator: pd.DataFrame
    audit_members: pd.DataFrame
    non_members: pd.DataFrame

    @property
    def target_train(self) -> pd.DataFrame:
        return pd.concat([self.generator, self.audit_members], ignore_index=True)


def split_table(
    table: Table, *, generator_rows: int, audit_members: int, non_members: int, seed: int
) -> Splits:
    """Shuffle once with the seed and cut three disjoint splits (shrunk proportionally if the table is
    small, the rows that rounding leaves over going to the largest remainders: no row is dropped)."""
    wanted = np.array([generator_rows, audit_members, non_members], dtype=np.float64)
    scaled = wanted * min(1.0, len(table.frame) / wanted.sum())
    sizes = np.floor(scaled).astype(int)
    leftover = min(len(table.frame), int(wanted.sum())) - sizes.sum()
    sizes[np.argsort(sizes - scaled, kind="stable")[:leftover]] += 1
    order = np.random.default_rng(seed).permutation(len(table.frame))
    cuts = np.cumsum(sizes)
    parts = [
        table.frame.iloc[order[a:b]].reset_index(drop=True)
        for a, b in zip([0, *cuts[:-1]], cuts, strict=True)
    ]
    return Splits(*parts)
