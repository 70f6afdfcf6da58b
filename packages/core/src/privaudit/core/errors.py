"""Bad user input as one exception type, and the CLI wrapper that turns it into exit code 2."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from typing import Any

# argparse's own pattern misses exponents, so "--delta -1e-5" read as a missing value.
_NEGATIVE_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


class InputError(ValueError):
    """Bad user input (file, column, value, option); `str(e)` is one sentence naming it."""


def plain(value: Any) -> str:
    """A value as a message shows it: numpy scalars as plain Python numbers (`nan`, `2`, `0.5`,
    not `np.float64(nan)`), strings quoted, anything else as repr shows it."""
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # numpy scalars, 0-d arrays
        value = value.item()
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bool | int | float):
        return str(value)
    return repr(value)


class CliParser(argparse.ArgumentParser):
    """argparse that reports a usage error as one InputError line (exit 2 via run_cli), not a
    usage dump, and reads negative numbers with exponents ("-1e-5") as values; parse arguments
    inside the run_cli body."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = _NEGATIVE_NUMBER

    def error(self, message: str):
        raise InputError(f"{self.prog}: {message} (see --help)")


def is_user_error(error: BaseException) -> bool:
    """An InputError, or an error of a lower package that marks itself as one sentence for the
    user (`user_error = True`, as privaudit.dp's DPError does: dp cannot import core)."""
    return isinstance(error, InputError) or getattr(error, "user_error", False) is True


def run_cli(body: Callable[[], int]) -> int:
    """Run a CLI body: a user error -> `error: ...` on stderr and 2; Ctrl-C -> 130; no traceback."""
    try:
        return body()
    except Exception as e:
        if not is_user_error(e):
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "interrupted; finished outputs are kept, unfinished ones were not written",
            file=sys.stderr,
        )
        return 130
