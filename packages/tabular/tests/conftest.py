import pytest
from privaudit.tabular.data import adult


@pytest.fixture(scope="session")
def adult_slice_csv(tmp_path_factory):
    """2,400 rows of UCI Adult as a user's CSV file (fixed rows, so fixed results)."""
    path = tmp_path_factory.mktemp("data") / "adult_slice.csv"
    adult().iloc[:2400].to_csv(path, index=False)
    return path
