"""dp-train: train an image classifier or a small GPT-2 with DP-SGD at a target epsilon; report
test accuracy (images) or perplexity (text) and the epsilon spent."""

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
from privaudit.dp.randomness import seed_for
from privaudit.dp.training import fit
from torch.utils.data import DataLoader, TensorDataset


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dp-train", description=__doc__)
    parser.add_argument("--model", choices=[*sorted(MODELS), "gpt2"], default="cnn")
    parser.add_argument("--data", help="images: 'mnist' (embedded 5,000-image subset, the default) or an .npz with "
                        "'images' and 'labels'; gpt2: 'sotu' (embedded speeches, the default), a .txt or a .jsonl file")
    parser.add_argument("--limit", type=int, default=2000, help="use at most this many examples or token blocks (0: all)")
    parser.add_argument("--epsilon", type=float, default=4.0)
    parser.add_argument("--delta", type=float, default=1e-5)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, help="learning rate (default: 2.0 for SGD on images, 1e-3 for Adam on gpt2)")
    parser.add_argument("--block", type=int, default=64, help="gpt2: tokens per training example")
    parser.add_argument("--vocab", type=int, default=2048, help="gpt2: BPE vocabulary size of the tokenizer trained on the data")
    parser.add_argument("--layers", type=int, default=2, help="gpt2: transformer blocks")
    parser.add_argument("--width", type=int, default=128, help="gpt2: embedding width")
    parser.add_argument("--max-grad-norm", type=float, default=1.0)
    parser.add_argument("--clipping", choices=["abadi", "automatic"], default="abadi")
    parser.add_argument("--accountant", choices=["rdp", "prv"], default="rdp")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0, help="seeds the split and the initial weights (not the DP noise)")
    parser.add_argument("--reproducible-noise", action="store_true",
                        help="derive the Poisson masks and noise from --seed too: reproducible, NOT private (tests only)")
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


def _check_args(args: argparse.Namespace) -> None:
    if args.epochs < 1 or args.batch_size < 1 or args.epsilon <= 0 or (args.lr is not None and args.lr <= 0):
        raise DPError("--epochs, --batch-size, --epsilon and --lr must be positive.")
    if args.model == "gpt2" and (args.block < 8 or args.vocab < 300 or args.layers < 1 or args.width < 8 or args.width % 4):
        raise DPError("gpt2 needs --block >= 8, --vocab >= 300, --layers >= 1 and --width a multiple of 4 (>= 8).")


def _split(count: int, limit: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded shuffle cut 80/20 into training and test indices, after keeping at most `limit`."""
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed_for(seed, "split")))
    if limit:
        order = order[:limit]
    split = int(0.8 * len(order))
    return order[:split], order[split:]


def _private_training(args, model, optimizer, train_set, loss_fn, device) -> tuple:
    """The DP-SGD loop shared by both model kinds; loss_fn(model, batch) gives the mean batch loss."""
    model, optimizer, loader, accountant = make_private(
        model, optimizer, DataLoader(train_set, batch_size=min(args.batch_size, len(train_set))),
        target_epsilon=args.epsilon, target_delta=args.delta, epochs=args.epochs,
        max_grad_norm=args.max_grad_norm, clipping=args.clipping, accountant=args.accountant,
        noise_seed=seed_for(args.seed, "dp-randomness") if args.reproducible_noise else None,
    )
    fit(model, optimizer, loader, lambda m, batch: loss_fn(m, [t.to(device) for t in batch]), args.epochs,
        desc="dp-train")
    return optimizer, loader, accountant


def _summary(args, optimizer, loader, accountant, train_count: int, test_count: int) -> dict:
    return {
        "model": args.model, "data": args.data, "train_examples": train_count, "test_examples": test_count,
        "epsilon_spent": float(accountant.get_epsilon(args.delta)), "delta": args.delta,
        "target_epsilon": args.epsilon, "noise_multiplier": optimizer.noise_multiplier,
        "sample_rate": loader.sample_rate, "steps": len(loader) * args.epochs, "seed": args.seed,
        "dp_randomness": optimizer.dp_randomness,
    }


def train_images(args: argparse.Namespace) -> dict:
    torch.manual_seed(seed_for(args.seed, "init"))
    x, y = _tensors(*_load_images(args.data or "mnist"))
    train_idx, test_idx = _split(len(x), args.limit, args.seed)
    device = torch.device(args.device)
    model = MODELS[args.model](x.shape[1], int(y.max()) + 1).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr or 2.0, momentum=0.0)
    optimizer, loader, accountant = _private_training(
        args, model, optimizer, TensorDataset(x[train_idx], y[train_idx]),
        lambda m, batch: F.cross_entropy(m(batch[0]), batch[1]), device,
    )
    with torch.no_grad():
        predictions = torch.cat([model(b.to(device)).argmax(1).cpu() for b in x[test_idx].split(256)])
    return _summary(args, optimizer, loader, accountant, len(train_idx), len(test_idx)) | {
        "test_accuracy": float((predictions == y[test_idx]).float().mean()),
    }


def train_text(args: argparse.Namespace) -> dict:
    from privaudit.dp import text

    torch.manual_seed(seed_for(args.seed, "init"))
    documents = text.read_documents(args.data or "sotu")
    tokenizer = text.train_tokenizer(documents, args.vocab)
    blocks = text.token_blocks(documents, tokenizer, args.block)
    train_idx, test_idx = _split(len(blocks), args.limit, args.seed)
    device = torch.device(args.device)
    model = text.SmallGPT2(tokenizer.get_vocab_size(), args.block, args.layers, args.width).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr or 1e-3)
    optimizer, loader, accountant = _private_training(
        args, model, optimizer, TensorDataset(blocks[train_idx]),
        lambda m, batch: text.per_sample_lm_loss(m(batch[0]), batch[0]).mean(), device,
    )
    with torch.no_grad():
        test_loss = torch.cat([text.per_sample_lm_loss(model(b.to(device)), b.to(device)).cpu()
                               for b in blocks[test_idx].split(64)]).mean()
    return _summary(args, optimizer, loader, accountant, len(train_idx), len(test_idx)) | {
        "test_perplexity": float(test_loss.exp()), "block_tokens": args.block,
        "vocab_size": tokenizer.get_vocab_size(),
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
        _check_args(args)
        report = train_text(args) if args.model == "gpt2" else train_images(args)
    except (_UsageError, DPError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    path = Path(args.out) / "report.json"
    _write_json(path, report)
    quality = (f"test perplexity {report['test_perplexity']:.1f}" if args.model == "gpt2"
               else f"test accuracy {report['test_accuracy']:.3f}")
    print(f"{quality} at epsilon {report['epsilon_spent']:.2f} (delta {args.delta}); report: {path}")
    if not report["dp_randomness"]["private"]:
        print(f"warning: {report['dp_randomness']['warning']}", file=sys.stderr)
    return 0
