"""Any other module with trainable parameters: per-sample gradients with torch.func (vmap of a vjp)."""

import torch
from privaudit.dp.layers.registry import LayerCall, LayerRule
from torch import Tensor
from torch.func import functional_call, grad, vmap


class FuncRule(LayerRule):
    """Re-runs the module on each sample under vmap; assumes every tensor argument is batched on dim 0."""

    def per_sample_grads(self, call: LayerCall) -> dict[str, Tensor]:
        module = call.module
        params = {n: p.detach() for n, p in module.named_parameters(recurse=False) if p.requires_grad}
        tensor_positions = [i for i, a in enumerate(call.args) if isinstance(a, Tensor)]
        batched = [call.args[i] for i in tensor_positions]

        def sample_loss(p, sample_args, g):
            args = list(call.args)
            for i, a in zip(tensor_positions, sample_args, strict=True):
                args[i] = a.unsqueeze(0)
            out = functional_call(module, p, tuple(args), call.kwargs, strict=False)
            return (out * g.unsqueeze(0)).sum()

        with torch.enable_grad():
            return vmap(grad(sample_loss), in_dims=(None, 0, 0))(params, batched, call.grad_out)


FALLBACK_RULE = FuncRule()
