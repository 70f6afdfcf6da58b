from pathlib import Path

import pytest

AUTHORS_TABLE = "panoramia_tabular_mia_baseline.csv"


@pytest.fixture(scope="session")
def authors_table() -> Path:
    """The PANORAMIA authors' tabular results table in ../shared/data beside a checkout (or a worktree's)."""
    for parent in Path(__file__).resolve().parents:
        candidate = parent.parent / "shared" / "data" / AUTHORS_TABLE
        if candidate.is_file():
            return candidate
    pytest.skip(f"{AUTHORS_TABLE} not found in any ../shared/data above the repository")
