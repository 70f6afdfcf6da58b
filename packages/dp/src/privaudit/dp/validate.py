"""Modules that break per-sample DP, why, and the fix that replaces them."""

from __future__ import annotations

from privaudit.dp.errors import DPError
from torch import nn

_INSTANCE_NORMS = (nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)
_RNNS = {nn.LSTM: "DPLSTM", nn.GRU: "DPGRU", nn.RNN: "DPRNN"}


def problems(module: nn.Module) -> list[str]:
    """One sentence per DP-breaking submodule (empty when the module is fine)."""
    found = []
    for name, sub in module.named_modules():
        label = name or "the model"
        if isinstance(sub, nn.modules.batchnorm._BatchNorm):
            found.append(
                f"{label} is {type(sub).__name__}, which mixes the samples of a batch so no per-sample gradient "
                "exists; replace it with GroupNorm (privaudit.dp.validate.fix(model) does this)."
            )
        elif isinstance(sub, _INSTANCE_NORMS) and sub.track_running_stats:
            found.append(
                f"{label} is {type(sub).__name__} with track_running_stats=True, whose running statistics are "
                "computed from the data without noise; use track_running_stats=False (fix(model) does this)."
            )
        elif type(sub) is nn.MultiheadAttention:
            found.append(
                f"{label} is MultiheadAttention, which packs its q/k/v projections into one weight and applies "
                "out_proj's weight without calling out_proj, so no per-sample gradient of either can be seen; "
                "replace it with privaudit.dp.layers.attention.DPMultiheadAttention (fix(model) does this)."
            )
        elif type(sub) in _RNNS:
            found.append(
                f"{label} is {type(sub).__name__}, whose fused kernel hides the inputs of every time step; "
                f"replace it with opacus.layers.{_RNNS[type(sub)]}, the same network from linear layers "
                "(fix(model) does this)."
            )
    return found


def validate(module: nn.Module) -> None:
    """Raise DPError naming the first DP-breaking submodule."""
    found = problems(module)
    if found:
        raise DPError(found[0])


def _group_count(channels: int, preferred: int = 32) -> int:
    """The largest divisor of `channels` not above `preferred`."""
    return max(g for g in range(1, min(channels, preferred) + 1) if channels % g == 0)


def _replacement(sub: nn.Module) -> nn.Module | None:
    if isinstance(sub, nn.modules.batchnorm._BatchNorm):
        return nn.GroupNorm(
            _group_count(sub.num_features), sub.num_features, eps=sub.eps, affine=sub.affine
        )
    if isinstance(sub, _INSTANCE_NORMS) and sub.track_running_stats:
        return type(sub)(
            sub.num_features, eps=sub.eps, affine=sub.affine, track_running_stats=False
        )
    if type(sub) is nn.MultiheadAttention:
        from privaudit.dp.layers.attention import DPMultiheadAttention

        return DPMultiheadAttention.from_torch(sub)
    if type(sub) in _RNNS:
        return _dp_rnn(sub)
    return None


def _dp_rnn(sub: nn.RNNBase) -> nn.Module:
    """Opacus' DPLSTM / DPGRU / DPRNN with the weights of `sub` (Opacus renames them on load)."""
    from opacus import layers

    kwargs = {"nonlinearity": sub.nonlinearity} if type(sub) is nn.RNN else {}
    if getattr(sub, "proj_size", 0):
        raise DPError(f"{type(sub).__name__} with proj_size has no linear-layer replacement.")
    new = getattr(layers, _RNNS[type(sub)])(
        sub.input_size,
        sub.hidden_size,
        num_layers=sub.num_layers,
        bias=sub.bias,
        batch_first=sub.batch_first,
        dropout=sub.dropout,
        bidirectional=sub.bidirectional,
        **kwargs,
    )
    new.load_state_dict(sub.state_dict())
    return new.to(next(sub.parameters()).device, next(sub.parameters()).dtype).train(sub.training)


def fix(module: nn.Module) -> nn.Module:
    """Replace BatchNorm by GroupNorm (up to 32 groups), drop InstanceNorm running statistics, and swap
    MultiheadAttention / LSTM / GRU / RNN for their linear-layer equivalents, in place."""
    replacement = _replacement(module)
    if replacement is not None:
        return replacement
    for name, child in module.named_children():
        setattr(module, name, fix(child))
    return module
