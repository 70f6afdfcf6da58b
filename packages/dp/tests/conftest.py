import pytest
import torch
from torch.func import functional_call, grad, vmap


def per_sample_grads(model, loss_fn, *batch):
    """Reference per-sample gradients of every trainable parameter: vmap of grad over the whole model."""
    params = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    buffers = {n: b.detach() for n, b in model.named_buffers()}

    def one(p, *sample):
        sample = [s.unsqueeze(0) for s in sample]
        out = functional_call(model, (p, buffers), (sample[0],))
        return loss_fn(out, *sample[1:])

    return vmap(grad(one), in_dims=(None, *[0] * len(batch)))(params, *batch)


def clipped_reference(grads, max_norm, kind="abadi", gamma=0.01):
    """sum_i c_i g_i computed from per-sample gradients one sample at a time."""
    names = list(grads)
    size = grads[names[0]].shape[0]
    total = {n: torch.zeros_like(grads[n][0]) for n in names}
    for i in range(size):
        norm = torch.sqrt(sum(grads[n][i].pow(2).sum() for n in names))
        factor = (
            min(1.0, max_norm / (norm.item() + 1e-6))
            if kind == "abadi"
            else max_norm / (norm.item() + gamma)
        )
        for n in names:
            total[n] += factor * grads[n][i]
    return total


@pytest.fixture
def reference():
    class Reference:
        grads = staticmethod(per_sample_grads)
        clipped = staticmethod(clipped_reference)

    return Reference
