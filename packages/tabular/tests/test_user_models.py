"""`audit-tabular --data --label --model`: a user's scikit-learn estimator or torch checkpoint, end to end."""

import json

import joblib
import pandas as pd
import pytest
import skops.io
import torch
import yaml
from privaudit.core.errors import InputError
from privaudit.tabular.cli import main
from privaudit.tabular.models import TabularMLP
from privaudit.tabular.targets import _read_estimator
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

TINY = dict(
    generator_rows=500,
    audit_members=1000,
    ctgan_epochs=5,
    helper_epochs=5,
    hidden=[32],
    classifier_iterations=60,
    seed=3,
)


def _audit(tmp_path, capsys, train, held, model, *extra):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    train_csv, held_csv = tmp_path / "train.csv", tmp_path / "held.csv"
    train.to_csv(train_csv, index=False)
    held.to_csv(held_csv, index=False)
    out = tmp_path / "run"
    code = main(
        [
            "--config",
            str(config),
            "--data",
            str(train_csv),
            "--label",
            "income",
            "--model",
            str(model),
            "--non-members",
            str(held_csv),
            "--out",
            str(out),
            *extra,
        ]
    )
    printed = capsys.readouterr().out.strip().splitlines()
    assert code == 0
    assert printed[-1] == f"report: {out / 'report.html'}"
    return json.loads((out / "report.json").read_text())


def test_user_sklearn_estimator(adult_slice_csv, tmp_path, capsys):
    frame = pd.read_csv(adult_slice_csv)
    train, held = frame.iloc[:1500], frame.iloc[1500:]
    categorical = [
        c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c]) and c != "income"
    ]
    numerical = [c for c in frame.columns if c not in categorical and c != "income"]
    estimator = make_pipeline(
        ColumnTransformer(
            [
                ("c", OneHotEncoder(handle_unknown="ignore"), categorical),
                ("n", StandardScaler(), numerical),
            ]
        ),
        LogisticRegression(max_iter=500),
    ).fit(train.drop(columns="income"), train["income"])
    path = tmp_path / "clf.skops"
    skops.io.dump(estimator, path)
    report = _audit(tmp_path, capsys, train, held, path)
    assert set(report["eps_tilde"]) == {"mia_model_pred"}
    assert report["extra"]["target"]["kind"] == "user"
    # members are the 1,000 audit rows of train.csv; the ground truth uses all 900 held-out rows
    assert report["extra"]["ground_truth"]["n"] == 450


def test_user_torch_checkpoint(adult_slice_csv, tmp_path, capsys):
    columns = ["age", "capital-gain", "capital-loss", "hours-per-week", "income"]
    frame = pd.read_csv(adult_slice_csv)[columns]
    train, held = frame.iloc[:1500], frame.iloc[1500:]
    torch.manual_seed(0)
    model = TabularMLP(4, [16], 2)  # classes in sorted order: "<=50K", ">50K"
    path, spec = tmp_path / "net.pt", tmp_path / "spec.yaml"
    torch.save(model.state_dict(), path)
    spec.write_text("hidden: [16]\n")
    report = _audit(tmp_path, capsys, train, held, path, "--model-spec", str(spec))
    assert set(report["eps_tilde"]) == {"mia_model_pred"}
    assert report["extra"]["ground_truth"]["n"] == 450


class NotAnEstimator:
    """A user class: skops does not trust it, pickle would run its code."""


def test_estimator_files_skops_refuses_untrusted_types_joblib_loads(tmp_path):
    fitted = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    joblib.dump(fitted, tmp_path / "clf.joblib")
    assert _read_estimator(tmp_path / "clf.joblib").coef_.shape == (1, 1)
    skops.io.dump(fitted, tmp_path / "clf.skops")
    assert _read_estimator(tmp_path / "clf.skops").coef_.shape == (1, 1)
    skops.io.dump({"model": NotAnEstimator()}, tmp_path / "odd.skops")
    with pytest.raises(InputError, match="does not trust"):
        _read_estimator(tmp_path / "odd.skops")
    (tmp_path / "bad.skops").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="not a readable skops file"):
        _read_estimator(tmp_path / "bad.skops")
