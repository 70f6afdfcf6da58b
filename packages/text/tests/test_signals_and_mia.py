"""The text signals against a hand computation from logits, and the closed-form LM attacks
against their definitions."""

import math
import zlib

import numpy as np
import pytest
import torch
from privaudit.text import mia
from privaudit.text.corpus import read_texts
from privaudit.text.examples import TextExamples, TextSignals
from privaudit.text.lm import LMTarget, small_gpt2, train_tokenizer


@pytest.fixture(scope="module")
def tiny():
    texts = read_texts("sotu")[:300]
    tokenizer = train_tokenizer(texts, 300)
    model = small_gpt2(tokenizer, 32, 1, 16, seed=0).eval()
    return texts, tokenizer, model


def test_signals_equal_a_hand_computation_from_logits(tiny):
    texts, tokenizer, model = tiny
    chosen = [texts[3], texts[7][:40], texts[11]]
    signals = LMTarget(model, tokenizer, 32).signals(chosen)
    for row, text in enumerate(chosen):
        ids = torch.tensor([tokenizer.encode([text], 32)[0]])
        with torch.no_grad():
            out = model.gpt(input_ids=ids, output_hidden_states=True)
        log_p = torch.log_softmax(out.logits[0, :-1].double(), -1)
        token = log_p[torch.arange(ids.shape[1] - 1), ids[0, 1:]].numpy()
        n = len(token)
        np.testing.assert_allclose(signals.token_logprob[row, :n], token, rtol=1e-5, atol=1e-6)
        assert np.all(np.isnan(signals.token_logprob[row, n:]))
        assert signals.loss[row, 0] == pytest.approx(-token.mean(), rel=1e-5)
        assert signals.perplexity[row] == pytest.approx(math.exp(-token.mean()), rel=1e-5)
        p = log_p.exp().numpy()
        mu = (p * log_p.numpy()).sum(-1)
        sigma = np.sqrt((p * (log_p.numpy() - mu[:, None]) ** 2).sum(-1))
        np.testing.assert_allclose(signals.token_mean[row, :n], mu, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(signals.token_std[row, :n], sigma, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(
            signals.hidden[row],
            out.hidden_states[-1][0].double().mean(0).numpy(),
            rtol=1e-4,
            atol=1e-5,
        )


def _fixed_signals():
    logp = np.array([[-0.5, -3.0, -1.0, -0.2, -6.0, np.nan], [-2.0, -0.1, -0.3, -4.0, -1.5, -0.7]])
    mean = np.array([[-1.0, -2.0, -1.5, -0.5, -3.0, np.nan], [-1.0, -1.0, -1.0, -1.0, -1.0, -1.0]])
    std = np.array([[0.5, 1.0, 0.5, 0.25, 2.0, np.nan], [1.0, 0.5, 2.0, 1.0, 0.5, 1.0]])
    loss = -np.nanmean(logp, axis=1)[:, None]
    return TextSignals(loss, np.exp(-loss), -loss, None, logp, mean, std, np.zeros((2, 1)))


def test_min_k_plus_and_zlib_equal_their_definitions_on_a_fixed_text():
    signals = _fixed_signals()
    texts = [
        "We the people of the United States, in order to form a more perfect union.",
        "Fellow-Citizens of the Senate and of the House of Representatives",
    ]
    # min-k%++ (k = 20 %): z_t = (log p - mu) / sigma, mean of the ceil(0.2 n) smallest
    z0 = sorted(
        [(-0.5 + 1) / 0.5, (-3 + 2) / 1, (-1 + 1.5) / 0.5, (-0.2 + 0.5) / 0.25, (-6 + 3) / 2]
    )
    z1 = sorted(
        [
            (-2 + 1) / 1,
            (-0.1 + 1) / 0.5,
            (-0.3 + 1) / 2,
            (-4 + 1) / 1,
            (-1.5 + 1) / 0.5,
            (-0.7 + 1) / 1,
        ]
    )
    expected = [np.mean(z0[: math.ceil(0.2 * 5)]), np.mean(z1[: math.ceil(0.2 * 6)])]
    np.testing.assert_allclose(mia.min_k_plus_score(signals), expected)
    # min-k% prob: the same over log p
    np.testing.assert_allclose(mia.min_k_score(signals), [-6.0, np.mean([-4.0, -2.0])])
    # zlib ratio: minus the mean NLL over the zlib-compressed byte length
    for row, text in enumerate(texts):
        nll = -np.nanmean(signals.token_logprob[row])
        want = -nll / len(zlib.compress(text.encode("utf-8")))
        assert mia.zlib_score(signals, texts)[row] == pytest.approx(want)
    other = TextSignals(
        signals.loss + 0.25,
        signals.probability,
        signals.confidence,
        None,
        signals.token_logprob,
        signals.token_mean,
        signals.token_std,
        signals.hidden,
    )
    np.testing.assert_allclose(mia.reference_score(signals, other), [0.25, 0.25])
    np.testing.assert_allclose(mia.loss_score(signals), -signals.loss[:, 0])


def test_text_signals_take_and_concat_pad_tokens():
    a = _fixed_signals()
    b = a.take([1])
    both = b.concat(
        TextSignals(
            a.loss[:1],
            a.probability[:1],
            a.confidence[:1],
            None,
            a.token_logprob[:1, :3],
            a.token_mean[:1, :3],
            a.token_std[:1, :3],
            a.hidden[:1],
        )
    )
    assert both.token_logprob.shape == (2, 6) and np.isnan(both.token_logprob[1, 3:]).all()
    assert both.loss[0, 0] == a.loss[1, 0]


def test_text_examples_round_trip(tmp_path):
    examples = TextExamples(["één", "two"])
    examples.save(tmp_path / "t.json")
    assert examples.load(tmp_path / "t.json").texts == ["één", "two"]
    assert examples.take([1, 0]).concat(examples).texts == ["two", "één", "één", "two"]
