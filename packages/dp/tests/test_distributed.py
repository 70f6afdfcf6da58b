"""Data-parallel DP training over 2 gloo processes equals single-process training with the same
(reproducible, test-only) randomness: same Poisson masks, noise added once, same accountant steps."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from privaudit.dp import DPError, make_private
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

PROBLEM = {"batch": 16, "sigma": 0.7, "noise_seed": 5, "physical": 3, "epochs": 2}


def problem():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(64, 5, dtype=torch.float64, generator=generator)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 2)).double(), TensorDataset(x, y)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_gloo_processes_equal_one_process(tmp_path):
    here = Path(__file__).parent
    env = os.environ | {
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(free_port()),
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(here), os.environ.get("PYTHONPATH", "")]),
    }
    out = tmp_path / "rank0.pt"
    ranks = [
        subprocess.Popen(
            [sys.executable, str(here / "distributed_worker.py"), str(r), "2", str(out)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in range(2)
    ]
    for r, rank in enumerate(ranks):
        _, err = rank.communicate(timeout=300)
        assert rank.returncode == 0, f"rank {r}: {err[-3000:]}"
    distributed = torch.load(out, weights_only=True)

    model, data = problem()
    model, optimizer, loader, accountant = make_private(
        model,
        torch.optim.SGD(model.parameters(), lr=0.5),
        DataLoader(data, batch_size=PROBLEM["batch"]),
        noise_multiplier=PROBLEM["sigma"],
        max_grad_norm=0.5,
        noise_seed=PROBLEM["noise_seed"],
    )
    for _ in range(PROBLEM["epochs"]):
        for x, y in loader:
            if len(x):
                F.cross_entropy(model(x), y).backward()
            optimizer.step()
            optimizer.zero_grad()
    assert [tuple(h) for h in distributed["history"]] == [tuple(h) for h in accountant.history]
    for mine, theirs in zip(model.parameters(), distributed["params"], strict=True):
        torch.testing.assert_close(theirs, mine.detach(), rtol=1e-10, atol=1e-12)


def test_distributed_needs_a_process_group():
    from privaudit.dp.distributed import make_private_distributed

    model, data = problem()
    with pytest.raises(DPError, match="init_process_group"):
        make_private_distributed(
            model,
            torch.optim.SGD(model.parameters(), lr=0.1),
            DataLoader(data, batch_size=16),
            noise_multiplier=1.0,
        )


def test_distributed_refuses_per_process_reseeding():
    """secure_rng would give each rank its own Poisson masks: refused, in a one-process gloo group."""
    import torch.distributed as dist
    from privaudit.dp.distributed import make_private_distributed

    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1
    )
    try:
        model, data = problem()
        with pytest.raises(DPError, match="secure_rng"):
            make_private_distributed(
                model,
                torch.optim.SGD(model.parameters(), lr=0.1),
                DataLoader(data, batch_size=16),
                noise_multiplier=1.0,
                secure_rng=True,
            )
    finally:
        dist.destroy_process_group()
