"""The one error type of privaudit.dp."""


class DPError(ValueError):
    """An invalid DP configuration or a module that would break the DP guarantee; str(e) is one sentence.

    `user_error` tells the CLIs (privaudit.core.errors.run_cli) to print it as one line and exit 2.
    """

    user_error = True
