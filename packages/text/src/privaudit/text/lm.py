"""Causal LMs for the text audit: the tokenizer, the base model (a small GPT-2 pre-trained here, or
a local Hugging Face directory), fine-tuning (full, LoRA through peft, DP-SGD through privaudit.dp),
and the per-text signals a fine-tuned model answers."""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from privaudit.core.errors import InputError
from privaudit.dp.devices import model_device
from privaudit.dp.randomness import seed_for
from privaudit.dp.training import PrivacySettings, train
from privaudit.text.examples import TextExamples, TextSignals
from privaudit.text.models import SmallGPT2
from torch import nn
from torch.utils.data import TensorDataset

END_OF_TEXT = "<|endoftext|>"


class TextTokenizer:
    """A tokenizer behind one interface: a `tokenizers.Tokenizer` trained here or a user model's
    Hugging Face tokenizer. Texts are cut to `block` tokens; ids end with no special token."""

    def __init__(self, tokenizer, *, hf: bool):
        self.tokenizer, self.hf = tokenizer, hf
        if hf:
            eos = tokenizer.eos_token_id
            self.eos = eos if eos is not None else (tokenizer.pad_token_id or 0)
            self.vocab_size = len(tokenizer)
        else:
            self.eos = tokenizer.token_to_id(END_OF_TEXT)
            self.vocab_size = tokenizer.get_vocab_size()

    def encode(self, texts: list[str], block: int | None = None) -> list[list[int]]:
        if self.hf:
            ids = [self.tokenizer.encode(t, add_special_tokens=False) for t in texts]
        else:
            ids = [e.ids for e in self.tokenizer.encode_batch(list(texts))]
        return [i[:block] for i in ids] if block is not None else ids

    def decode(self, ids: list[int]) -> str:
        if self.hf:
            return self.tokenizer.decode(ids, skip_special_tokens=True)
        return self.tokenizer.decode(ids)

    def batch(self, texts: list[str], block: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids [N, T] right-padded with end-of-text, and each text's token count [N].
        A causal model never attends forward, so the padding changes no real token's output."""
        ids = self.encode(texts, block)
        width = max(2, max((len(i) for i in ids), default=2))
        padded = torch.full((len(ids), width), self.eos, dtype=torch.long)
        for row, i in enumerate(ids):
            padded[row, : len(i)] = torch.tensor(i, dtype=torch.long)
        return padded, torch.tensor([len(i) for i in ids], dtype=torch.long)


class HFCausalLM(nn.Module):
    """A Hugging Face causal LM returning logits only, with explicit per-example position ids
    (like SmallGPT2, so DP's per-sample norms see the batch)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.gpt = model

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1], device=ids.device).expand_as(ids).contiguous()
        return self.gpt(input_ids=ids, position_ids=positions, use_cache=False).logits


def masked_token_nll(
    logits: torch.Tensor, ids: torch.Tensor, lengths: torch.Tensor
) -> torch.Tensor:
    """Next-token NLL [N, T-1], zero past each text's last token."""
    nll = nn.functional.cross_entropy(
        logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten(), reduction="none"
    )
    nll = nll.view(len(ids), -1)
    mask = torch.arange(ids.shape[1] - 1, device=ids.device)[None, :] < (lengths[:, None] - 1)
    return nll * mask


def per_text_loss(logits: torch.Tensor, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean next-token NLL of each text [N] over its own tokens: one text is one private example."""
    return masked_token_nll(logits, ids, lengths).sum(1) / (lengths - 1).clamp(min=1)


def lora_targets(model: nn.Module) -> list[str]:
    """The projection layers LoRA adapts: GPT-2's attention and MLP Conv1Ds, else every nn.Linear
    except the LM head."""
    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    gpt2 = [n for n in ("c_attn", "c_proj", "c_fc") if n in names]
    if gpt2:
        return gpt2
    return sorted(
        {
            n.rsplit(".", 1)[-1]
            for n, m in model.named_modules()
            if isinstance(m, nn.Linear) and not n.endswith("lm_head")
        }
    )


def with_lora(model: nn.Module, rank: int, seed: int) -> nn.Module:
    """LoRA adapters (rank `rank`, alpha 2*rank, no dropout) injected by peft; only they train."""
    from peft import LoraConfig, inject_adapter_in_model

    torch.manual_seed(seed_for(seed, "lora-init"))
    config = LoraConfig(
        r=rank,
        lora_alpha=2 * rank,
        lora_dropout=0.0,
        target_modules=lora_targets(model),
        fan_in_fan_out=any(n in lora_targets(model) for n in ("c_attn", "c_fc")),
    )
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # peft's note that GPT-2's Conv1D needs fan_in_fan_out
        model = inject_adapter_in_model(config, model)
    for name, parameter in model.named_parameters():
        parameter.requires_grad_("lora_" in name)
    return model


@dataclass(frozen=True)
class FineTune:
    """How a base LM is fine-tuned: all weights (lora 0) or LoRA adapters of rank `lora`, DP-SGD
    at `epsilon` when set (per-sample clipping of the trainable parameters only)."""

    epochs: int = 3
    lr: float = 1e-3
    batch_size: int = 16
    lora: int = 0
    lora_lr: float = 1e-2  # LoRA's adapters start at zero and need larger steps
    epsilon: float | None = None
    delta: float = 1e-5
    max_grad_norm: float = 1.0
    dp_lr: float = 3e-3
    dp_batch_size: int = 64
    reproducible_noise: bool = False


class BaseLM:
    """The model every LM of one audit starts from, with its tokenizer and context length."""

    def __init__(
        self, model: nn.Module, tokenizer: TextTokenizer, block: int, key: dict, name: str
    ):
        self.model, self.tokenizer, self.block, self.key, self.name = (
            model.eval(),
            tokenizer,
            block,
            key,
            name,
        )

    def fresh(self) -> nn.Module:
        return copy.deepcopy(self.model)


def train_lm(
    model: nn.Module,
    tokenizer: TextTokenizer,
    texts: list[str],
    block: int,
    tune: FineTune,
    *,
    seed: int,
    desc: str,
    device,
    progress: bool = True,
) -> tuple[nn.Module, dict | None]:
    """Fine-tune `model` in place on `texts` (one text = one private example); returns (model, DP record)."""
    ids, lengths = tokenizer.batch(texts, block)
    model = model.to(device)
    privacy = None
    lr, batch_size = tune.lr, tune.batch_size
    if tune.epsilon is not None:
        privacy = PrivacySettings(
            tune.epsilon, tune.delta, tune.max_grad_norm, reproducible_noise=tune.reproducible_noise
        )
        lr, batch_size = tune.dp_lr, tune.dp_batch_size
    if tune.lora:
        lr = tune.lora_lr

    def loss(m, batch):
        b_ids, b_len = batch[0].to(device), batch[1].to(device)
        return per_text_loss(m(b_ids), b_ids, b_len).mean()

    result = train(
        model,
        TensorDataset(ids, lengths),
        loss,
        optimizer=lambda params: torch.optim.Adam([p for p in params if p.requires_grad], lr=lr),
        epochs=tune.epochs,
        batch_size=batch_size,
        seed=seed,
        privacy=privacy,
        desc=desc,
        progress=progress,
    )
    return result.model.eval(), result.privacy


class CausalLMFamily:
    """A base LM fine-tuned with `tune` (the PANORAMIA target trained here, and the helper)."""

    def __init__(self, base: BaseLM, tune: FineTune, name: str, device):
        self.base, self.tune, self.name, self.device = base, tune, name, device
        self.key = {"base": base.key, "tune": asdict(tune)}

    def build(self) -> nn.Module:
        model = self.base.fresh()
        return with_lora(model, self.tune.lora, 0) if self.tune.lora else model

    def train(self, examples: TextExamples, seed: int):
        torch.manual_seed(seed_for(seed, "init"))
        model = self.base.fresh()
        if self.tune.lora:
            model = with_lora(model, self.tune.lora, seed)
        return train_lm(
            model,
            self.base.tokenizer,
            examples.texts,
            self.base.block,
            self.tune,
            seed=seed,
            desc=f"{self.name} fine-tune",
            device=self.device,
        )

    def target(self, model: nn.Module) -> LMTarget:
        return LMTarget(model.to(self.device), self.base.tokenizer, self.base.block)


class LMTarget:
    """A causal LM answering per-text signals (TextSignals)."""

    def __init__(
        self, model: nn.Module, tokenizer: TextTokenizer, block: int, batch_size: int = 64
    ):
        self.model, self.tokenizer, self.block, self.batch_size = (
            model.eval(),
            tokenizer,
            block,
            batch_size,
        )

    @torch.no_grad()
    def signals(self, inputs: list[str], labels=None) -> TextSignals:
        device = model_device(self.model)
        ids, lengths = self.tokenizer.batch(list(inputs), self.block)
        width = ids.shape[1] - 1
        logprob, mean, std, hidden = [], [], [], []
        for start in range(0, len(ids), self.batch_size):
            b_ids, b_len = (
                ids[start : start + self.batch_size].to(device),
                lengths[start : start + self.batch_size].to(device),
            )
            positions = torch.arange(b_ids.shape[1], device=device).expand_as(b_ids).contiguous()
            out = self.model.gpt(
                input_ids=b_ids, position_ids=positions, use_cache=False, output_hidden_states=True
            )
            log_p = torch.log_softmax(out.logits[:, :-1].double(), dim=-1)
            token = log_p.gather(-1, b_ids[:, 1:, None]).squeeze(-1)
            mu = (log_p.exp() * log_p).sum(-1)
            sigma = ((log_p.exp() * log_p.square()).sum(-1) - mu.square()).clamp(min=0).sqrt()
            valid = torch.arange(width, device=device)[None, :] < (b_len[:, None] - 1)
            nan = torch.tensor(float("nan"), dtype=torch.float64, device=device)
            logprob.append(torch.where(valid, token, nan).cpu())
            mean.append(torch.where(valid, mu, nan).cpu())
            std.append(torch.where(valid, sigma, nan).cpu())
            tokens = (
                torch.arange(b_ids.shape[1], device=device)[None, :] < b_len[:, None]
            ).unsqueeze(-1)
            last = out.hidden_states[-1].double()
            hidden.append(((last * tokens).sum(1) / tokens.sum(1).clamp(min=1)).cpu())
        token_logprob = torch.cat(logprob).numpy()
        loss = -np.nanmean(token_logprob, axis=1)[:, None]
        return TextSignals(
            loss=loss,
            probability=np.exp(-loss),
            confidence=-loss,
            correct=None,
            token_logprob=token_logprob,
            token_mean=torch.cat(mean).numpy(),
            token_std=torch.cat(std).numpy(),
            hidden=torch.cat(hidden).numpy(),
        )


# ---- the base model: pre-trained here from scratch, or a user's Hugging Face directory


def train_tokenizer(texts: list[str], vocab: int) -> TextTokenizer:
    from privaudit.text.corpus import train_tokenizer as train_bpe

    return TextTokenizer(train_bpe(texts, vocab), hf=False)


def tokenizer_from_json(text: str) -> TextTokenizer:
    from tokenizers import Tokenizer

    return TextTokenizer(Tokenizer.from_str(text), hf=False)


def small_gpt2(
    tokenizer: TextTokenizer, block: int, layers: int, width: int, seed: int
) -> SmallGPT2:
    torch.manual_seed(seed_for(seed, "init"))
    return SmallGPT2(tokenizer.vocab_size, block, layers, width, end_token=tokenizer.eos)


def load_hf_directory(path: str) -> tuple[HFCausalLM, TextTokenizer, int]:
    """A local Hugging Face causal LM directory (config, weights and tokenizer files), read
    offline; returns the wrapped model, its tokenizer and its context length."""
    directory = Path(path)
    if not directory.is_dir():
        raise InputError(
            f"--model {path}: no such directory; give 'gpt2' (the small GPT-2 trained here) "
            "or a local Hugging Face model directory."
        )
    if not (directory / "config.json").is_file():
        raise InputError(
            f"--model {path} has no config.json: it is not a Hugging Face model directory."
        )
    if not any(
        (directory / name).is_file()
        for name in ("tokenizer.json", "tokenizer_config.json", "vocab.json")
    ):
        raise InputError(
            f"--model {path} has no tokenizer (tokenizer.json or tokenizer_config.json)."
        )
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(
            directory, local_files_only=True, attn_implementation="eager", torch_dtype=torch.float32
        )
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(
            f"--model {path} cannot be loaded as a causal LM ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:160]})."
        ) from exc
    context = getattr(model.config, "n_positions", None) or getattr(
        model.config, "max_position_embeddings", 1024
    )
    return HFCausalLM(model).eval(), TextTokenizer(tokenizer, hf=True), int(context)
