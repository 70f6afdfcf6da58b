"""Synthetic non-members for text: the base LM fine-tuned on the generator split, sampled from
prompts that are prefixes of its training texts, each sample cut to a length drawn from the
members' length distribution."""

from __future__ import annotations

import html
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from privaudit.core.report import ReportSection
from privaudit.dp.randomness import seed_for
from privaudit.text.examples import TextExamples
from privaudit.text.lm import BaseLM, FineTune, train_lm, with_lora


def length_ks(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic of two length samples."""
    grid = np.union1d(a, b)
    cdf = lambda x: np.searchsorted(np.sort(x), grid, side="right") / len(x)  # noqa: E731
    return float(np.max(np.abs(cdf(a) - cdf(b))))


def distinct_ngrams(ids: list[list[int]], n: int = 2) -> float:
    grams = [tuple(i[k : k + n]) for i in ids for k in range(len(i) - n + 1)]
    return len(set(grams)) / max(1, len(grams))


class CausalLMGenerator:
    """PANORAMIA's text generator; `conditional` False (texts carry no label)."""

    name = "causal LM"
    conditional = False
    quality_key: dict = {}  # quality() depends on the samples alone

    def __init__(
        self,
        base: BaseLM,
        tune: FineTune,
        *,
        prompt_tokens: int,
        min_tokens: int,
        top_k: int,
        device,
        batch_size: int = 64,
    ):
        self.base, self.tune, self.prompt_tokens, self.min_tokens = (
            base,
            tune,
            prompt_tokens,
            min_tokens,
        )
        self.top_k, self.device, self.batch_size = top_k, device, batch_size
        self.key = {
            "base": base.key,
            "tune": asdict(tune),
            "prompt_tokens": prompt_tokens,
            "top_k": top_k,
            "min_tokens": min_tokens,
        }

    def fit(self, members: TextExamples, checkpoint: Path, seed: int) -> None:
        tokenizer = self.base.tokenizer
        self.prompts_from = [i for i in tokenizer.encode(members.texts, self.base.block)]
        self.lengths = np.array([len(i) for i in self.prompts_from])
        if checkpoint.exists():
            self.model = self._build(seed)
            self.model.load_state_dict(
                torch.load(checkpoint, map_location="cpu", weights_only=True)
            )
            self.model = self.model.to(self.device).eval()
            return
        torch.manual_seed(seed_for(seed, "init"))
        self.model, _ = train_lm(
            self._build(seed),
            tokenizer,
            members.texts,
            self.base.block,
            self.tune,
            seed=seed,
            desc="generator fine-tune",
            device=self.device,
        )
        import io

        from privaudit.core.rundir import atomic_write_bytes

        buffer = io.BytesIO()
        torch.save({k: v.detach().cpu() for k, v in self.model.state_dict().items()}, buffer)
        atomic_write_bytes(checkpoint, buffer.getvalue())

    def _build(self, seed: int):
        model = self.base.fresh()
        return with_lora(model, self.tune.lora, seed) if self.tune.lora else model

    @torch.no_grad()
    def sample(self, count: int, labels, seed: int) -> TextExamples:
        """`count` texts: prompt = the first `prompt_tokens` tokens of a random training text,
        continued by top-k sampling with end-of-text suppressed up to a length drawn from the
        training texts' token lengths."""
        rng = np.random.default_rng(seed_for(seed, "prompts"))
        tokenizer = self.base.tokenizer
        picks = rng.integers(0, len(self.prompts_from), count)
        targets = np.maximum(rng.choice(self.lengths, count), self.prompt_tokens + 1)
        torch.manual_seed(seed_for(seed, "sampling"))
        gpt = self.model.gpt
        texts: list[str] = []
        for start in range(0, count, self.batch_size):
            rows = picks[start : start + self.batch_size]
            prompt = torch.tensor(
                [self.prompts_from[r][: self.prompt_tokens] for r in rows], dtype=torch.long
            )
            wanted = targets[start : start + self.batch_size]
            new = int(wanted.max()) - self.prompt_tokens
            out = gpt.generate(
                input_ids=prompt.to(self.device),
                attention_mask=torch.ones_like(prompt).to(self.device),
                do_sample=True,
                top_k=self.top_k,
                max_new_tokens=new,
                min_new_tokens=new,
                suppress_tokens=[tokenizer.eos],
                pad_token_id=tokenizer.eos,
            )
            for row, length in zip(out.cpu().tolist(), wanted, strict=True):
                texts.append(tokenizer.decode(row[: int(length)]))
        return TextExamples(texts)

    def quality(
        self, members: TextExamples, synthetic: TextExamples, held_out: TextExamples, seed: int
    ) -> dict:
        tokenizer = self.base.tokenizer
        ids = {
            name: tokenizer.encode(e.texts, self.base.block)
            for name, e in (("members", members), ("synthetic", synthetic), ("held_out", held_out))
        }
        lengths = {name: np.array([len(i) for i in v]) for name, v in ids.items()}
        return {
            "mean_tokens": {k: float(v.mean()) for k, v in lengths.items()},
            "length_ks_synthetic_vs_members": length_ks(lengths["synthetic"], lengths["members"]),
            "length_ks_held_out_vs_members": length_ks(lengths["held_out"], lengths["members"]),
            "shorter_than_min_tokens": int((lengths["synthetic"] < self.min_tokens).sum()),
            "distinct_2grams": {k: distinct_ngrams(v) for k, v in ids.items()},
        }

    def report_section(
        self, q: dict, members: TextExamples, synthetic: TextExamples
    ) -> ReportSection:
        samples = "".join(f"<li>{html.escape(t[:300])}</li>" for t in synthetic.texts[:3])
        body = (
            f"<p>Mean tokens: members {q['mean_tokens']['members']:.1f}, synthetic "
            f"{q['mean_tokens']['synthetic']:.1f}, held out {q['mean_tokens']['held_out']:.1f}. Length KS "
            f"statistic synthetic vs members {q['length_ks_synthetic_vs_members']:.3f} (held out vs members "
            f"{q['length_ks_held_out_vs_members']:.3f}). Distinct bigram fraction: synthetic "
            f"{q['distinct_2grams']['synthetic']:.3f}, members {q['distinct_2grams']['members']:.3f}.</p>"
            f"<p>First synthetic texts:</p><ul>{samples}</ul>"
        )
        return ReportSection("Generator (fine-tuned causal LM)", body)
