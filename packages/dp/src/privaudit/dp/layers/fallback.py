"""Any other module with trainable parameters: per-sample gradients with torch.func (vmap of a vjp)."""

import torch
from privaudit.dp.layers.registry import LayerCall, LayerRule
from torch import Tensor
from torch.func import functional_call, grad, vmap
from torch.nn.attention import SDPBackend, sdpa_kernel


class FuncRule(LayerRule):
    """Re-runs the module on each sample under vmap; assumes every tensor argument is batched on dim 0."""

    def per_sample_grads(self, call: LayerCall) -> dict[str, Tensor]:
        module = call.module
        params = {
            n: p.detach()
            for n, p in module.named_parameters(recurse=self.covers_submodules)
            if p.requires_grad
        }
        tensor_positions = [i for i, a in enumerate(call.args) if isinstance(a, Tensor)]
        batched = [call.args[i].detach() for i in tensor_positions]

        def sample_loss(p, sample_args, g):
            args = list(call.args)
            for i, a in zip(tensor_positions, sample_args, strict=True):
                args[i] = a.unsqueeze(0)
            out = functional_call(module, p, tuple(args), call.kwargs, strict=False)
            return (out * g.unsqueeze(0)).sum()

        # attention by the math kernel: the fused ones have no batching rule, and on a CPU no gradient
        # for an attention mask built from parameters (BEiT's relative position bias)
        with torch.enable_grad(), sdpa_kernel(SDPBackend.MATH):
            return vmap(grad(sample_loss), in_dims=(None, 0, 0))(params, batched, call.grad_out)


class SubtreeFuncRule(FuncRule):
    """torch.func over a module and all its descendants' parameters, for modules whose forward
    uses a child's weight directly (e.g. F.linear(x, self.qkv.weight, bias))."""

    covers_submodules = True


FALLBACK_RULE = FuncRule()
