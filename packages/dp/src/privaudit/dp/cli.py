"""dp-train: train an image classifier with DP-SGD at a target epsilon and report accuracy and epsilon."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from privaudit.dp.datasets import mnist_subset
from privaudit.dp.errors import DPError
from privaudit.dp.models import MODELS
from privaudit.dp.private import make_private
from torch.utils.data import DataLoader, TensorDataset
from tqdm import tqdm


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dp-train", description=__doc__)
    parser.add_argument("--model", choices=sorted(MODELS), default="cnn")
    parser.add_argument("--data", default="mnist", help="'mnist' (embedded 5,000-image subset) or an .npz with 'images' and 'labels'")
    parser.add_argument("--limit", type=int, default=2000, help="use at most this many examples (0: all)")
    parser.add_argument("--epsilon", type=float, default=4.0)
    parser.add_argument("--delta", type=float, default=1e-5)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2.0)
    parser.add_argument("--max-grad-norm", type=float, default=1.0)
    parser.add_argument("--clipping", choices=["abadi", "automatic"], default="abadi")
    parser.add_argument("--accountant", choices=["rdp", "prv"], default="rdp")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="dp-train-run", help="directory for report.json")
    return parser


class _UsageError(Exception):
    """argparse's complaint, turned into exit code 2 without its usage dump."""


def _load_images(source: str) -> tuple[np.ndarray, np.ndarray]:
    if source == "mnist":
        return mnist_subset()
    path = Path(source)
    if not path.is_file() or path.suffix != ".npz":
        raise DPError(f"--data {source}: expected 'mnist' or an existing .npz file.")
    with np.load(path, allow_pickle=False) as archive:
        if "images" not in archive or "labels" not in archive:
            raise DPError(f"{source} must hold arrays named 'images' and 'labels'.")
        images, labels = archive["images"], archive["labels"]
    if images.ndim not in (3, 4) or len(images) != len(labels) or len(images) < 10:
        raise DPError(f"{source}: 'images' must be [N,H,W] or [N,C,H,W] with one label each (N >= 10).")
    return images, labels.astype(np.int64)


def _tensors(images: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.as_tensor(images, dtype=torch.float32)
    x = x.unsqueeze(1) if x.dim() == 3 else x
    x = x / 255.0 if images.dtype == np.uint8 else x
    return (x - x.mean()) / (x.std() + 1e-8), torch.as_tensor(labels)


def train(args: argparse.Namespace) -> dict:
    if args.epochs < 1 or args.batch_size < 1 or args.epsilon <= 0 or args.lr <= 0:
        raise DPError("--epochs, --batch-size, --epsilon and --lr must be positive.")
    torch.manual_seed(args.seed)
    x, y = _tensors(*_load_images(args.data))
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(args.seed))
    if args.limit:
        order = order[: args.limit]
    split = int(0.8 * len(order))
    train_set = TensorDataset(x[order[:split]], y[order[:split]])
    test_x, test_y = x[order[split:]], y[order[split:]]
    classes = int(y.max()) + 1
    device = torch.device(args.device)
    model = MODELS[args.model](x.shape[1], classes).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.0)
    model, optimizer, loader, accountant = make_private(
        model, optimizer, DataLoader(train_set, batch_size=min(args.batch_size, split)),
        target_epsilon=args.epsilon, target_delta=args.delta, epochs=args.epochs,
        max_grad_norm=args.max_grad_norm, clipping=args.clipping, accountant=args.accountant, seed=args.seed,
    )
    model.train()
    for epoch in range(args.epochs):
        progress = tqdm(loader, desc=f"epoch {epoch + 1}/{args.epochs}", file=sys.stderr)
        for xb, yb in progress:
            loss = F.cross_entropy(model(xb.to(device)), yb.to(device))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            progress.set_postfix(loss=f"{loss.item():.3f}", eps=f"{accountant.get_epsilon(args.delta):.2f}")
    model.eval()
    with torch.no_grad():
        predictions = torch.cat([model(b.to(device)).argmax(1).cpu() for b in test_x.split(256)])
    return {
        "model": args.model, "data": args.data, "train_examples": split, "test_examples": len(test_x),
        "test_accuracy": float((predictions == test_y).float().mean()),
        "epsilon_spent": float(accountant.get_epsilon(args.delta)), "delta": args.delta,
        "target_epsilon": args.epsilon, "noise_multiplier": optimizer.noise_multiplier,
        "sample_rate": loader.sample_rate, "steps": len(loader) * args.epochs, "seed": args.seed,
    }


def _write_json(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as handle:
        json.dump(obj, handle, indent=2)
    os.replace(handle.name, path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()

    def refuse(message: str):
        raise _UsageError(message)

    parser.error = refuse
    try:
        args = parser.parse_args(argv)
        report = train(args)
    except (_UsageError, DPError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    path = Path(args.out) / "report.json"
    _write_json(path, report)
    print(f"test accuracy {report['test_accuracy']:.3f} at epsilon {report['epsilon_spent']:.2f} (delta {args.delta}); report: {path}")
    return 0
