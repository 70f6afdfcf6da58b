"""Users' torch checkpoints: read safely (weights_only=True) and loaded into an architecture, with
errors that tell an unreadable file from one that does not fit."""

from __future__ import annotations

from pathlib import Path

import torch
from privaudit.core.errors import InputError
from torch import nn

# How many key names an error lists before it says "and N more".
SHOWN_KEYS = 4


def _names(keys) -> str:
    keys = list(keys)
    shown = ", ".join(keys[:SHOWN_KEYS])
    return shown + (f" and {len(keys) - SHOWN_KEYS} more" if len(keys) > SHOWN_KEYS else "")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a file saved by `torch.save(model.state_dict(), path)` (or {"state_dict": ...})."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"model checkpoint {path} does not exist.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt, truncated or unsafe files
        raise InputError(
            f"model checkpoint {path} is not a readable torch file ({type(exc).__name__}: it is corrupt, "
            "truncated or holds more than tensors); save it with torch.save(model.state_dict(), path)."
        ) from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise InputError(
            f"model checkpoint {path} is readable but not a state dict of named tensors."
        )
    return state


def load_into(
    model: nn.Module, state: dict[str, torch.Tensor], path: str | Path, architecture: str
) -> nn.Module:
    """`model` with `state` loaded; a key or shape mismatch names the keys and the expected ones."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = [
            f"missing {_names(missing)}" if missing else "",
            f"unexpected {_names(unexpected)}" if unexpected else "",
        ]
        raise InputError(
            f"model checkpoint {path} does not match the {architecture} architecture: keys "
            f"{'; '.join(p for p in parts if p)} (expected keys: {_names(expected)})."
        )
    for name, tensor in expected.items():
        if state[name].shape != tensor.shape:
            raise InputError(
                f"model checkpoint {path} does not match the {architecture} architecture: {name} has shape "
                f"{tuple(state[name].shape)}, expected {tuple(tensor.shape)}."
            )
    model.load_state_dict(state)
    return model


def load_checkpoint(model: nn.Module, path: str | Path, architecture: str) -> nn.Module:
    """read_state_dict + load_into."""
    return load_into(model, read_state_dict(path), path, architecture)
