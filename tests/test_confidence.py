"""featx.training.confidence: temperature calibration and the ``uncertain`` threshold on held-out tracks."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from featx.data.labels import LabelEncoding
from featx.errors import BundleError
from featx.training.confidence import PRECISION, calibrate, check_confidence, fit_confidence


def _predictions(seed=0, n=400, sharp=4.0):
    """Out-of-fold predictions of an overconfident model: right 70% of the time, top-1 near 1."""
    rng = np.random.default_rng(seed)
    classes = ["a", "b", "c"]
    truth = rng.integers(0, 3, n)
    guess = np.where(rng.random(n) < 0.7, truth, (truth + 1) % 3)
    logits = rng.normal(size=(n, 3))
    logits[np.arange(n), guess] += sharp + rng.random(n) * 4
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    frame = pd.DataFrame({"fold": 0, "track": [f"t{i}" for i in range(n)],
                          "label": [classes[t] for t in truth]})
    for j, c in enumerate(classes):
        frame[f"prob_{c}"] = p[:, j]
    return frame, LabelEncoding().fit(classes)


def test_overconfident_model_is_cooled_and_threshold_reaches_precision():
    frame, labels = _predictions()
    record = fit_confidence(frame, labels)
    assert record["temperature"] > 1.5  # probabilities near 1 for a model right 70% of the time
    assert record["precision"] >= PRECISION and 0 < record["coverage"] < 1
    check_confidence(record, "metadata.json")
    # on fresh predictions of the same model the confident ones are right about as often
    fresh, _ = _predictions(seed=1)
    p = calibrate(fresh[["prob_a", "prob_b", "prob_c"]].to_numpy(), record["temperature"], multi_label=False)
    top = p.argmax(axis=1)
    sure = p[np.arange(len(p)), top] >= record["threshold"]
    right = np.array(["a", "b", "c"])[top] == fresh["label"].to_numpy()
    assert right[sure].mean() > 0.8 and right[~sure].mean() < right[sure].mean()


def test_calibration_keeps_the_order():
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    for t in (0.5, 1.0, 3.0):
        c = calibrate(p, t, multi_label=False)
        assert np.allclose(c.sum(axis=1), 1) and (c.argmax(axis=1) == p.argmax(axis=1)).all()
    assert np.allclose(calibrate(p, 1.0, multi_label=True), p)


def test_no_labelled_predictions_no_record():
    frame, labels = _predictions()
    assert fit_confidence(frame.drop(columns="label"), labels) is None
    assert fit_confidence(frame.iloc[:0], labels) is None


@pytest.mark.parametrize("record, field", [
    ({"temperature": 0, "threshold": 0.5, "outside_percentile": 99}, "temperature"),
    ({"temperature": 1, "threshold": 1.5, "outside_percentile": 99}, "threshold"),
    ({"temperature": 1, "threshold": 0.5, "outside_percentile": "x"}, "outside_percentile"),
    ("yes", "confidence must be an object"),
])
def test_corrupt_record_is_named(record, field):
    with pytest.raises(BundleError, match=field):
        check_confidence(record, "b/metadata.json")
