"""Target adapters: the model under audit, answering per-example signals and nothing else."""

from __future__ import annotations

import numpy as np
import torch
from privaudit.attacks.augment import Queries, identity_queries
from privaudit.attacks.signals import Signals, logit_scaled_confidence
from privaudit.core.errors import InputError
from privaudit.dp.devices import model_device
from torch import nn


class ClassifierTarget:
    """A torch classifier mapping inputs [B, ...] to logits [B, C], queried over augmentations."""

    def __init__(
        self, model: nn.Module, queries: Queries = identity_queries, batch_size: int = 1024
    ):
        self.model = model
        self.queries = queries
        self.batch_size = batch_size

    @torch.no_grad()
    def logits(self, inputs: torch.Tensor) -> torch.Tensor:
        """Logits [N, Q, C] for every example and augmented query, on the CPU (the model may be on
        another device: each batch goes to the model's device)."""
        was_training = self.model.training
        self.model.eval()
        device = model_device(self.model)
        try:
            chunks = []
            for start in range(0, len(inputs), self.batch_size):
                batch = inputs[start : start + self.batch_size].to(device)
                chunks.append(
                    torch.stack([self.model(view) for view in self.queries(batch)], dim=1).cpu()
                )
            return torch.cat(chunks)
        finally:
            self.model.train(was_training)

    def signals(self, inputs: torch.Tensor, labels: torch.Tensor) -> Signals:
        """Loss, true-class probability and logit-scaled confidence, each [N, Q]."""
        return Signals.from_logits(self.logits(inputs), labels)


class SklearnTarget:
    """A fitted scikit-learn classifier with `predict_proba` and `classes_`, over whatever inputs it
    takes (a pipeline may take a raw DataFrame); labels are class values as `classes_` holds them."""

    def __init__(self, estimator, describe: str = "the scikit-learn model"):
        self.estimator = estimator
        self.describe = describe

    def signals(self, inputs, labels) -> Signals:
        try:
            proba = np.asarray(self.estimator.predict_proba(inputs), dtype=np.float64)
        except (
            Exception
        ) as exc:  # the user's estimator: any failure means it does not fit the inputs
            detail = str(exc).splitlines()[0] if str(exc) else "no message"
            raise InputError(
                f"{self.describe} cannot score these inputs ({type(exc).__name__}: {detail})."
            ) from exc
        column = {str(c): i for i, c in enumerate(self.estimator.classes_)}
        picked = proba[np.arange(len(proba)), [column[str(label)] for label in labels]]
        signals = Signals.from_probabilities(np.clip(picked, 1e-12, 1.0))
        return Signals(
            signals.loss,
            signals.probability,
            signals.confidence,
            correct=(proba.argmax(1) == [column[str(label)] for label in labels])[:, None],
        )


class CausalLMTarget:
    """A causal language model whose forward(input_ids, attention_mask) returns logits [B, T, V]
    (or an object with `.logits`, as Hugging Face models do)."""

    def __init__(self, model: nn.Module, batch_size: int = 16):
        self.model = model
        self.batch_size = batch_size

    @torch.no_grad()
    def token_log_likelihoods(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-token log-likelihood log p(t_i | t_<i) [N, T-1], logit-scaled confidence [N, T-1],
        and the mask [N, T-1] of predicted tokens that are real (not padding)."""
        self.model.eval()
        log_likelihoods, confidences = [], []
        for start in range(0, len(input_ids), self.batch_size):
            ids = input_ids[start : start + self.batch_size]
            output = self.model(ids, attention_mask=attention_mask[start : start + self.batch_size])
            logits = getattr(output, "logits", output)[:, :-1].double()
            next_tokens = ids[:, 1:]
            log_probs = torch.log_softmax(logits, dim=-1)
            log_likelihoods.append(log_probs.gather(-1, next_tokens.unsqueeze(-1)).squeeze(-1))
            confidences.append(logit_scaled_confidence(logits, next_tokens))
        return torch.cat(log_likelihoods), torch.cat(confidences), attention_mask[:, 1:].bool()

    def signals(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Signals:
        """Per-sequence signals [N, 1]: mean token loss, its geometric-mean probability, and the
        mean per-token logit-scaled confidence (each next token is one classification)."""
        log_likelihoods, confidences, mask = self.token_log_likelihoods(input_ids, attention_mask)
        counts = mask.sum(dim=1).clamp(min=1)
        loss = -(log_likelihoods * mask).sum(dim=1) / counts
        confidence = (confidences * mask).sum(dim=1) / counts
        loss, confidence = (
            loss.numpy()[:, None],
            confidence.numpy()[:, None],
        )  # one query per sequence
        return Signals(loss=loss, probability=np.exp(-loss), confidence=confidence)
