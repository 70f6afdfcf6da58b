"""The one error type of privaudit.dp."""


class DPError(ValueError):
    """An invalid DP configuration or a module that would break the DP guarantee; str(e) is one sentence."""
