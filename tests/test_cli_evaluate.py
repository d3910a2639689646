"""``featx evaluate``: macro figures over the genres present, and where its outputs go."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest


def test_evaluate_on_some_genres_averages_over_those(five_genres, tmp_path, invoke):
    from sklearn.metrics import f1_score

    bundle, _, frame = five_genres
    part = tmp_path / "three.csv"
    frame[frame["label"].isin(["blues", "metal", "rock"])].to_csv(part, index=False)
    out = tmp_path / "eval"
    result = invoke("-q", "evaluate", bundle, part, "-o", out)
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    track = metrics["track"]
    assert track["macro_classes"] == ["blues", "metal", "rock"]
    predictions = pd.read_csv(out / "predictions.csv")
    expected = f1_score(predictions["label"], predictions["predicted"], labels=["blues", "metal", "rock"],
                        average="macro", zero_division=0)
    assert track["f1_macro"] == pytest.approx(expected)
    per_class = [track["per_class"][g]["f1"] for g in ("blues", "metal", "rock")]
    assert track["f1_macro"] == pytest.approx(np.mean(per_class))
    report = (out / "report.md").read_text()
    assert "means over folds" not in report and "no folds" in report
    assert "over the 3 of the model's 5 genres" in report
    normalised = report.split("### Confusion matrix (fractions")[1].split("##")[0]
    rows = {line.split("|")[1].strip(): line for line in normalised.splitlines() if line.startswith("| ")}
    for genre in ("jazz", "pop"):
        assert rows[genre].count("n/a") == 5 and "0.00" not in rows[genre]
    for genre in ("blues", "metal", "rock"):
        assert "n/a" not in rows[genre]
        cells = [float(c) for c in rows[genre].split("|")[2:-1]]
        assert sum(cells) == pytest.approx(1.0, abs=0.03)
    per_class_table = report.split("### Per class")[1].split("###")[0]
    jazz = next(line for line in per_class_table.splitlines() if line.startswith("| jazz |"))
    assert jazz.split("|")[3].strip() == "n/a" and jazz.split("|")[4].strip() == "n/a"


@pytest.mark.slow
def test_an_evaluation_csv_name_never_reaches_the_bundle_files(five_genres, tmp_path, invoke):
    bundle, _, frame = five_genres
    own = {name: (bundle / name).read_bytes() for name in ("metrics.json", "report.md", "predictions.csv")}
    dots = tmp_path / "...csv"
    frame.to_csv(dots, index=False)
    result = invoke("-q", "evaluate", bundle, dots)
    assert result.exit_code == 0, result.output
    for name, content in own.items():
        assert (bundle / name).read_bytes() == content, name
    assert (bundle / "evaluation" / "unnamed" / "metrics.json").is_file()
    # two CSVs with one stem get two folders; evaluating the first again reuses its folder
    first, second = tmp_path / "a" / "test.csv", tmp_path / "b" / "test.csv"
    for path, n in ((first, 10), (second, 20)):
        path.parent.mkdir()
        frame.head(n).to_csv(path, index=False)
    for path in (first, second, first):
        assert invoke("-q", "evaluate", bundle, path).exit_code == 0
    one = json.loads((bundle / "evaluation" / "test" / "metrics.json").read_text())
    two = json.loads((bundle / "evaluation" / "test-2" / "metrics.json").read_text())
    assert one["track"]["n"] == 10 and two["track"]["n"] == 20
    assert not (bundle / "evaluation" / "test-3").exists()
