import pytest
import torch
import torch.nn.functional as F
from privaudit.dp import DPError, make_private
from privaudit.dp.validate import fix, problems
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def bn_model():
    return nn.Sequential(
        nn.Conv2d(1, 6, 3), nn.BatchNorm2d(6), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 4 * 4, 2)
    )


def test_batchnorm_is_refused_with_the_fix():
    model = bn_model()
    data = DataLoader(
        TensorDataset(torch.randn(8, 1, 6, 6), torch.randint(0, 2, (8,))), batch_size=4
    )
    with pytest.raises(DPError, match="BatchNorm2d.*GroupNorm"):
        make_private(model, torch.optim.SGD(model.parameters(), lr=0.1), data, noise_multiplier=1.0)
    model = fix(model)
    assert problems(model) == [] and isinstance(model[1], nn.GroupNorm) and model[1].num_groups == 6
    model, opt, loader, _ = make_private(
        model, torch.optim.SGD(model.parameters(), lr=0.1), data, noise_multiplier=1.0, noise_seed=0
    )
    for x, y in loader:
        F.cross_entropy(model(x), y).backward()
        opt.step()
        opt.zero_grad()


def test_instance_norm_running_stats_are_flagged_and_fixed():
    model = nn.Sequential(
        nn.Conv1d(2, 4, 3), nn.InstanceNorm1d(4, affine=True, track_running_stats=True)
    )
    assert "running statistics" in problems(model)[0]
    assert problems(fix(model)) == []


@pytest.mark.parametrize(
    "module, replacement",
    [
        (nn.MultiheadAttention(4, 2), "DPMultiheadAttention"),
        (nn.LSTM(3, 4), "DPLSTM"),
        (nn.GRU(3, 4), "DPGRU"),
        (nn.RNN(3, 4), "DPRNN"),
    ],
)
def test_attention_and_recurrent_layers_are_refused_with_their_replacement(module, replacement):
    model = nn.Sequential(module)
    data = DataLoader(TensorDataset(torch.randn(8, 2, 4)), batch_size=4)
    with pytest.raises(DPError, match=f"{type(module).__name__}.*{replacement}"):
        make_private(model, torch.optim.SGD(model.parameters(), lr=0.1), data, noise_multiplier=1.0)
    fixed = fix(model)
    assert problems(fixed) == [] and type(fixed[0]).__name__ == replacement
    x = torch.randn(2, 5, module.input_size if hasattr(module, "input_size") else 4)
    args = (x, x, x) if replacement == "DPMultiheadAttention" else (x,)
    torch.testing.assert_close(fixed[0](*args)[0], module(*args)[0])
