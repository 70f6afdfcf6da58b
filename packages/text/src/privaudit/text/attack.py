"""PANORAMIA's text classifier (baseline and MIA): a small transformer over the text's tokens, each
token's embedding joined with that token's log-likelihood features under one model (the target
for the MIA, the helper for the baseline), plus a branch over featurised per-text statistics.
Trained in two phases as in the paper: the log-likelihood feature branch first, then jointly."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from privaudit.dp.randomness import seed_for
from privaudit.dp.training import train
from privaudit.text.examples import TextExamples, TextSignals
from privaudit.text.lm import TextTokenizer
from privaudit.text.mia import lowest_fraction_mean
from torch import nn
from torch.utils.data import TensorDataset

QUANTILES = (0.0, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)
# what the classifiers see; part of the scores' cache key, so change it when that changes
ATTACK_INPUTS = (
    "tokens + per-token (logp, z) + quantiles of logp and z, loss, min-k, length; 2 phases"
)


def per_token_features(signals: TextSignals) -> np.ndarray:
    """[N, T, 2]: log p(x_t) and its min-k%++ z-score, 0 past the end (the mask says where)."""
    z = (signals.token_logprob - signals.token_mean) / np.maximum(signals.token_std, 1e-12)
    stacked = np.stack([signals.token_logprob, np.clip(z, -20, 20)], axis=-1)
    return np.nan_to_num(stacked, nan=0.0)


def text_features(signals: TextSignals) -> np.ndarray:
    """[N, F]: quantiles of the token log-likelihoods and z-scores, the loss, min-k% of both, the length."""
    z = (signals.token_logprob - signals.token_mean) / np.maximum(signals.token_std, 1e-12)
    rows = []
    for logp, zs in zip(signals.token_logprob, z, strict=True):
        lp, zz = logp[~np.isnan(logp)], np.clip(zs[~np.isnan(zs)], -20, 20)
        rows.append(
            [
                *np.quantile(lp, QUANTILES),
                *np.quantile(zz, QUANTILES),
                lp.mean(),
                zz.mean(),
                lowest_fraction_mean(lp, 0.2),
                lowest_fraction_mean(zz, 0.2),
                np.log(len(lp)),
            ]
        )
    return np.asarray(rows, dtype=np.float64)


class TextAttackNet(nn.Module):
    def __init__(
        self,
        vocab: int,
        features: int,
        width: int = 64,
        layers: int = 1,
        heads: int = 4,
        block: int = 512,
    ):
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.position = nn.Embedding(block, width)
        self.token_features = nn.Linear(2, width)
        layer = nn.TransformerEncoderLayer(width, heads, 2 * width, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.feature_branch = nn.Sequential(
            nn.Linear(features, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU()
        )
        self.text_branch = nn.Linear(width, 32)
        self.head = nn.Linear(64, 1)
        self.use_text = True

    def forward(self, ids, token_features, mask, features):
        feature_part = self.feature_branch(features)
        if not self.use_text:  # phase 1: the log-likelihood features alone
            return self.head(torch.cat([torch.zeros_like(feature_part), feature_part], 1)).squeeze(
                1
            )
        positions = torch.arange(ids.shape[1], device=ids.device)[None, :]
        h = self.embed(ids) + self.position(positions) + self.token_features(token_features)
        h = self.encoder(h, src_key_padding_mask=~mask)
        pooled = (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
        return self.head(
            torch.cat([torch.relu(self.text_branch(pooled)), feature_part], 1)
        ).squeeze(1)


class TextAttack:
    """The LearnedAttack of the text audit; features standardised on its training set."""

    def __init__(
        self,
        tokenizer: TextTokenizer,
        block: int,
        *,
        feature_epochs: int,
        joint_epochs: int,
        seed: int,
        desc: str,
        device,
        lr: float = 1e-3,
        batch_size: int = 32,
    ):
        self.tokenizer, self.block = tokenizer, block
        self.feature_epochs, self.joint_epochs, self.seed, self.desc, self.device = (
            feature_epochs,
            joint_epochs,
            seed,
            desc,
            device,
        )
        self.lr, self.batch_size = lr, batch_size

    def _tensors(self, examples: TextExamples, signals: TextSignals):
        ids, lengths = self.tokenizer.batch(examples.texts, self.block)
        # the token features of position t belong to the token predicted at t + 1
        per_token = per_token_features(signals)
        token_features = np.zeros((len(ids), ids.shape[1], 2))
        width = min(per_token.shape[1], ids.shape[1] - 1)
        token_features[:, 1 : width + 1] = per_token[:, :width]
        token_features = (token_features - self.token_mean) / self.token_std
        mask = torch.arange(ids.shape[1])[None, :] < lengths[:, None]
        features = (text_features(signals) - self.mean) / self.std
        return (
            ids,
            torch.from_numpy(token_features.astype(np.float32)),
            mask,
            torch.from_numpy(features.astype(np.float32)),
        )

    def fit(self, examples: TextExamples, signals: TextSignals, is_member: np.ndarray) -> None:
        features = text_features(signals)
        self.mean, self.std = features.mean(0), features.std(0) + 1e-6
        per_token = per_token_features(signals)
        valid = ~np.isnan(signals.token_logprob)
        self.token_mean, self.token_std = per_token[valid].mean(0), per_token[valid].std(0) + 1e-6
        torch.manual_seed(seed_for(self.seed, "init"))
        self.model = TextAttackNet(
            self.tokenizer.vocab_size, features.shape[1], block=self.block
        ).to(self.device)
        device = self.device
        data = TensorDataset(
            *self._tensors(examples, signals), torch.as_tensor(is_member, dtype=torch.float32)
        )

        def loss(m, b):
            return F.binary_cross_entropy_with_logits(
                m(*(t.to(device) for t in b[:4])), b[4].to(device)
            )

        for phase, epochs, use_text in (
            ("features", self.feature_epochs, False),
            ("joint", self.joint_epochs, True),
        ):
            if epochs < 1:
                continue
            self.model.use_text = use_text
            train(
                self.model,
                data,
                loss,
                optimizer=lambda params: torch.optim.Adam(params, lr=self.lr, weight_decay=1e-4),
                epochs=epochs,
                batch_size=self.batch_size,
                seed=seed_for(self.seed, phase),
                desc=f"{self.desc} ({phase})",
                progress=False,
            )
        self.model.use_text = self.joint_epochs >= 1

    @torch.no_grad()
    def score(
        self, examples: TextExamples, signals: TextSignals, batch_size: int = 256
    ) -> np.ndarray:
        self.model.eval()
        tensors = self._tensors(examples, signals)
        out = [
            torch.sigmoid(
                self.model(*(t[s : s + batch_size].to(self.device) for t in tensors))
            ).cpu()
            for s in range(0, len(tensors[0]), batch_size)
        ]
        return torch.cat(out).double().numpy()
