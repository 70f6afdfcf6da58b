"""Per-sample clipping factors: Abadi's min(1, R/||g||) and automatic clipping R/(||g|| + gamma)."""

from privaudit.dp.errors import DPError
from torch import Tensor

CLIPPING_KINDS = ("abadi", "automatic")


def clip_factors(
    norms: Tensor, max_norm: float, kind: str = "abadi", gamma: float = 0.01
) -> Tensor:
    """Factor c_i so that c_i * g_i has norm at most max_norm (automatic: strictly below it)."""
    if kind == "abadi":
        return (max_norm / (norms + 1e-6)).clamp(max=1.0)
    if kind == "automatic":
        return max_norm / (norms + gamma)
    raise DPError(f"clipping must be one of {', '.join(CLIPPING_KINDS)}, got {kind!r}.")


def check_clipping(kind: str, max_norm: float, gamma: float) -> None:
    if kind not in CLIPPING_KINDS:
        raise DPError(f"clipping must be one of {', '.join(CLIPPING_KINDS)}, got {kind!r}.")
    if not max_norm > 0:
        raise DPError(f"max_grad_norm must be positive, got {max_norm}.")
    if kind == "automatic" and not gamma > 0:
        raise DPError(f"the automatic clipping stabiliser gamma must be positive, got {gamma}.")
