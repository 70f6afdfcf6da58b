"""A user's checkpoint: an unreadable file and one that does not fit get different messages."""

import pytest
import torch
from privaudit.attacks.checkpoints import load_checkpoint
from privaudit.core.errors import InputError
from torch import nn


def test_corrupt_file_missing_keys_and_wrong_shapes_are_told_apart(tmp_path):
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(InputError, match="not a readable torch file"):
        load_checkpoint(model, corrupt, "mlp")
    with pytest.raises(InputError, match="does not exist"):
        load_checkpoint(model, tmp_path / "absent.pt", "mlp")
    renamed = tmp_path / "renamed.pt"
    torch.save({"layer." + k: v for k, v in model.state_dict().items()}, renamed)
    with pytest.raises(
        InputError,
        match=r"keys missing 0.weight, 0.bias, 2.weight, 2.bias; unexpected layer.0.weight",
    ):
        load_checkpoint(model, renamed, "mlp")
    wider = tmp_path / "wider.pt"
    torch.save(nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2)).state_dict(), wider)
    with pytest.raises(InputError, match=r"0.weight has shape \(5, 3\), expected \(4, 3\)"):
        load_checkpoint(model, wider, "mlp")
    not_tensors = tmp_path / "numbers.pt"
    torch.save({"a": 1}, not_tensors)
    with pytest.raises(InputError, match="not a state dict of named tensors"):
        load_checkpoint(model, not_tensors, "mlp")
    good = tmp_path / "good.pt"
    torch.save({"state_dict": model.state_dict()}, good)
    assert (
        load_checkpoint(nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)), good, "mlp")
        is not None
    )
