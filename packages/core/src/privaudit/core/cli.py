from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    return 0
