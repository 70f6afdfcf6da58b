"""Which implementation forms per-sample norms and clipped sums: Triton kernels or PyTorch.

`kernels="auto"` (the default) takes PRIVAUDIT_DP_KERNELS when set ("triton" or "torch"), else
Triton for CUDA tensors when Triton is installed and PyTorch everywhere else. "triton" on CPU
tensors runs Triton's interpreter, which needs TRITON_INTERPRET=1 before the kernels are imported.
Nothing here imports Triton until a kernel is used.
"""

from __future__ import annotations

import importlib.util
import os

import torch
from privaudit.dp.errors import DPError

KERNELS = ("auto", "triton", "torch")
ENV = "PRIVAUDIT_DP_KERNELS"


def check_kernels(choice: str) -> None:
    if choice not in KERNELS:
        raise DPError(f"kernels must be one of {', '.join(KERNELS)}, got {choice!r}.")


def resolve(choice: str, device: torch.device) -> str:
    """'triton' or 'torch' for layers whose tensors live on `device`."""
    check_kernels(choice)
    if choice == "auto":
        choice = os.environ.get(ENV, "auto")
        if choice not in KERNELS:
            raise DPError(f"{ENV} must be one of {', '.join(KERNELS)}, got {choice!r}.")
    if choice == "auto":
        return "triton" if device.type == "cuda" and triton_installed() else "torch"
    if choice == "triton":
        if not triton_installed():
            raise DPError(
                "kernels='triton' needs the triton package (it comes with torch on Linux)."
            )
        if device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
            raise DPError(
                f"kernels='triton' on {device.type} tensors needs Triton's interpreter: set TRITON_INTERPRET=1."
            )
    return choice


def triton_installed() -> bool:
    return importlib.util.find_spec("triton") is not None
