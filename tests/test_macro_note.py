"""The report says how its macro figures were averaged when folds hold few genres."""
from __future__ import annotations

import pandas as pd

from featx.reporting.report import _averaging_note
from featx.training.metrics import compute_metrics


def _predictions(folds):
    rows = []
    for fold, pairs in folds.items():
        for k, (label, predicted) in enumerate(pairs):
            probs = {f"prob_{c}": float(c == predicted) for c in "abcd"}
            rows.append({"fold": fold, "track": len(rows), "filename": f"{fold}{k}.wav", "label": label,
                         "predicted": predicted, **probs})
    return pd.DataFrame(rows)


def test_folds_with_few_genres_are_said_to_average_over_those_genres():
    sparse = _predictions({"0": [("a", "a"), ("b", "c")], "1": [("c", "c"), ("d", "a")]})
    metrics = compute_metrics(sparse, list("abcd"))
    assert [f["n_classes"] for f in metrics["track"]["per_fold"]] == [2, 2]
    note = _averaging_note(metrics)
    assert "average over all 4 genres" in note  # pooled over the folds, every genre has tracks
    assert "Within a fold they average over the genres that have tracks in that fold (2 to 2 here)" in note


def test_folds_holding_every_genre_need_no_such_sentence():
    full = _predictions({"0": [("a", "a"), ("b", "b")], "1": [("a", "b"), ("b", "b")]})
    note = _averaging_note(compute_metrics(full, list("ab")))
    assert "Within a fold" not in note
