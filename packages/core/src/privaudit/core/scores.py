"""The scores table: the interchange format between attacks and the audit statistics.

One row per example, a `member` column (1 = member, 0 = non-member) and one float score
column per attack or baseline (`baseline_pred`, `mia_<name>_pred`, ...); higher = more
likely a member.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from privaudit.core.errors import InputError, plain

MEMBER_COLUMN = "member"


def score_columns(df: pd.DataFrame) -> list[str]:
    """Every column except `member`, in table order."""
    return [str(c) for c in df.columns if c != MEMBER_COLUMN]


def validate_scores_table(df: pd.DataFrame, source: str = "scores table") -> pd.DataFrame:
    """Check a scores table and return it with int `member` and float64 score columns."""
    if len(df) == 0:
        raise InputError(f"{source} has no rows.")
    if MEMBER_COLUMN not in df.columns:
        raise InputError(
            f"{source} has no '{MEMBER_COLUMN}' column (columns: {', '.join(map(str, df.columns))})."
        )
    columns = score_columns(df)
    if not columns:
        raise InputError(f"{source} has no score column besides '{MEMBER_COLUMN}'.")
    member = pd.to_numeric(df[MEMBER_COLUMN], errors="coerce")
    bad = ~member.isin([0, 1])
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(
            f"{source}: column '{MEMBER_COLUMN}' must be 0 or 1, but row {row} holds "
            f"{plain(df[MEMBER_COLUMN].iloc[row])}."
        )
    if member.nunique() < 2:
        only = int(member.iloc[0])
        raise InputError(
            f"{source}: column '{MEMBER_COLUMN}' holds only {only}s; an audit needs both members and non-members."
        )
    out = pd.DataFrame({MEMBER_COLUMN: member.astype(np.int64).to_numpy()})
    for column in columns:
        values = pd.to_numeric(df[column], errors="coerce").to_numpy(dtype=np.float64)
        bad_rows = np.flatnonzero(~np.isfinite(values))
        if bad_rows.size:
            row = int(bad_rows[0])
            raise InputError(
                f"{source}: score column '{column}' holds a non-finite or non-numeric value "
                f"{plain(df[column].iloc[row])} at row {row}."
            )
        out[column] = values
    return out


def read_frame(path: str | os.PathLike, what: str) -> pd.DataFrame:
    """A CSV or Parquet file (by its suffix) as a DataFrame; `what` names it in the one-line error
    a missing or unreadable file gives."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} {path} does not exist or is not a file.")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except Exception as e:  # pandas and pyarrow raise many types for files that are not tables
        reason = (str(e).splitlines() or [type(e).__name__])[0].rstrip(".") or type(e).__name__
        raise InputError(f"cannot read {what} {path} as CSV or Parquet: {reason}.") from e


def load_scores_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a CSV or Parquet scores table and validate it; every problem is an InputError."""
    return validate_scores_table(read_frame(path, "scores table"), source=f"scores table {path}")


def check_baseline(df: pd.DataFrame, baseline: str | None, source: str = "scores table") -> None:
    """The baseline column, when one is named, must be one of the score columns."""
    if baseline is None:
        return
    columns = score_columns(df)
    if baseline not in columns:
        raise InputError(
            f"{source} has no baseline column '{baseline}' (score columns: {', '.join(columns)}); "
            "name one with --baseline COLUMN, or use --baseline none to audit every column as an attack."
        )
