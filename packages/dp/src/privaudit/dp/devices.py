"""Which torch device a run uses: "auto" (the first CUDA device when there is one), "cpu", "cuda" or "cuda:N"."""

from __future__ import annotations

import itertools

import torch
from privaudit.dp.errors import DPError
from torch import nn

DEVICE_HELP = "where models train and score: auto (CUDA when present), cpu, cuda or cuda:N"


def is_device_name(name: object) -> bool:
    return isinstance(name, str) and (
        name in ("auto", "cpu", "cuda") or (name.startswith("cuda:") and name[5:].isdigit())
    )


def model_device(model: nn.Module) -> torch.device:
    """The device a module lives on: its first parameter's (or buffer's); the CPU if it has none."""
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        return tensor.device
    return torch.device("cpu")


def resolve_device(name: str) -> torch.device:
    """The torch.device for a name; a malformed name or CUDA where there is none is a DPError."""
    if not is_device_name(name):
        raise DPError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N' (got {name!r}).")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise DPError(
            f"device {name} was asked for, but this machine has {torch.cuda.device_count()} CUDA device(s)."
        )
    return device
