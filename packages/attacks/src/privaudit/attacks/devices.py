"""Which torch device a run uses: "auto" (the first CUDA device when there is one), "cpu", "cuda" or "cuda:N"."""

from __future__ import annotations

import itertools

from privaudit.core.errors import InputError

DEVICE_HELP = "where models train and score: auto (CUDA when present), cpu, cuda or cuda:N"


def is_device_name(name: object) -> bool:
    return isinstance(name, str) and (
        name in ("auto", "cpu", "cuda") or (name.startswith("cuda:") and name[5:].isdigit())
    )


def model_device(model):
    """The device a torch module lives on: its first parameter's (or buffer's); the CPU if it has none."""
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        return tensor.device
    import torch

    return torch.device("cpu")


def resolve_device(name: str):
    """The torch.device for a name; a malformed name or CUDA where there is none is an InputError."""
    import torch

    if not is_device_name(name):
        raise InputError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N' (got {name!r}).")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise InputError(
            f"device {name} was asked for, but this machine has {torch.cuda.device_count()} CUDA device(s)."
        )
    return device
