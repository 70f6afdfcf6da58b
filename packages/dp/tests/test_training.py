"""The shared training loop: an empty Poisson batch still takes its private step."""

import torch
import torch.nn.functional as F
from privaudit.dp import make_private
from privaudit.dp.training import fit
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def test_empty_poisson_batches_still_step():
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(8, 3), torch.randint(0, 2, (8,)))
    model = nn.Linear(3, 2)
    model, optimizer, loader, accountant = make_private(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        DataLoader(data, batch_size=1),
        noise_multiplier=1.0,
        noise_seed=4,
    )
    sizes = []

    def loss_fn(m, batch):
        sizes.append(len(batch[0]))
        return F.cross_entropy(m(batch[0]), batch[1])

    fit(model, optimizer, loader, loss_fn, epochs=3, progress=False)
    steps = sum(count for _, _, count in accountant.history)
    assert steps == 3 * len(loader)  # every drawn batch, empty or not, is one accounted step
    assert len(sizes) < steps  # some batches were empty (sample rate 1/8: about a third of them)
