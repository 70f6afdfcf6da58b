"""One rank of the 2-process gloo test in test_distributed.py (run as a script, not collected)."""

import os
import sys

import torch
import torch.distributed as dist
import torch.nn.functional as F
from privaudit.dp.distributed import make_private_distributed
from test_distributed import PROBLEM, problem


def main(rank: int, world: int, out: str) -> None:
    dist.init_process_group("gloo", rank=rank, world_size=world)
    model, data = problem()
    if rank:  # rank 0's initial parameters reach every rank
        torch.nn.init.zeros_(model[0].weight)
    model, optimizer, loader, accountant = make_private_distributed(
        model,
        torch.optim.SGD(model.parameters(), lr=0.5),
        torch.utils.data.DataLoader(data, batch_size=PROBLEM["batch"]),
        noise_multiplier=PROBLEM["sigma"],
        max_grad_norm=0.5,
        noise_seed=PROBLEM["noise_seed"],
        max_physical_batch_size=PROBLEM["physical"],
    )
    sizes = []
    for _ in range(PROBLEM["epochs"]):
        for x, y in loader:
            sizes.append(len(x))
            if len(x):
                F.cross_entropy(model(x), y).backward()
            optimizer.step()
            optimizer.zero_grad()
    if rank == 0:
        torch.save(
            {"params": [p.detach() for p in model.parameters()], "history": accountant.history}, out
        )
    dist.barrier()  # no rank tears gloo down while a peer still talks to it (a SIGABRT in CI)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
    # the result is on disk; skip interpreter finalization, where gloo's worker threads can abort
    # the process (SIGABRT, "terminate called without an active exception", seen once in CI)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
