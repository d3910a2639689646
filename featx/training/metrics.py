"""Metrics at segment and track level from out-of-fold predictions."""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ..data.table import FeatureTable
from ..errors import DataError

logger = logging.getLogger(__name__)
from .config import METRIC_NAMES


def track_labels(y, row_track, n_tracks: int, name: str = "table") -> np.ndarray:
    labels = np.full(n_tracks, -1, dtype=np.int64)
    for row, t in enumerate(row_track):
        if labels[t] == -1:
            labels[t] = y[row]
        elif labels[t] != y[row]:
            raise DataError(f"{name}: rows of one track carry different labels; expected one label per track")
    return labels


# ---------------------------------------------------------------------------
# Metrics


def _scores(y_true, y_pred) -> dict:
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, average="macro", zero_division=0)
    return {"accuracy": float(accuracy_score(y_true, y_pred)), "precision_macro": float(p),
            "recall_macro": float(r), "f1_macro": float(f)}


def aggregate_tracks(predictions: pd.DataFrame, classes: list[str]) -> pd.DataFrame:
    """Average segment probabilities per (fold, track): one row per track."""
    prob_cols = [f"prob_{c}" for c in classes]
    grouped = predictions.groupby(["fold", "track"], sort=False)
    tracks = grouped[prob_cols].mean().reset_index()
    if "label" in predictions.columns:
        tracks["label"] = grouped["label"].first().to_numpy()
    tracks["predicted"] = np.asarray(classes, dtype=object)[tracks[prob_cols].to_numpy().argmax(axis=1)]
    tracks["n_segments"] = grouped.size().to_numpy()
    return tracks


def _level_metrics(frame: pd.DataFrame, classes: list[str]) -> dict:
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    per_fold = []
    for fold, part in frame.groupby("fold", sort=False):
        per_fold.append({"fold": str(fold), "n": int(len(part)),
                         **_scores(part["label"].to_numpy(), part["predicted"].to_numpy())})
    out = {name: float(np.mean([f[name] for f in per_fold])) for name in METRIC_NAMES}
    out["std"] = {name: float(np.std([f[name] for f in per_fold])) for name in METRIC_NAMES}
    y_true = frame["label"].to_numpy().astype(str)
    y_pred = frame["predicted"].to_numpy().astype(str)
    out["pooled"] = _scores(y_true, y_pred)
    out["n"] = int(len(frame))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=classes, zero_division=0)
    out["per_class"] = {c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                            "support": int(s[i])} for i, c in enumerate(classes)}
    out["per_fold"] = per_fold
    out["confusion_matrix"] = confusion_matrix(y_true, y_pred, labels=classes).tolist()
    return out


def compute_metrics(predictions: pd.DataFrame, classes: list[str]) -> dict:
    """Segment- and track-level metrics from labelled row predictions.

    ``predictions`` has columns ``fold``, ``track``, ``label``, ``predicted``
    and ``prob_<class>``. Headline figures are means over folds; ``pooled``
    holds the figures over all rows at once, ``per_class`` and
    ``confusion_matrix`` are pooled.
    """
    tracks = aggregate_tracks(predictions, classes)
    return {"classes": list(classes),
            "segment": _level_metrics(predictions, classes),
            "track": _level_metrics(tracks, classes)}


def prediction_frame(table: FeatureTable, rows: np.ndarray, proba: np.ndarray, classes: list[str],
                     fold: str) -> pd.DataFrame:
    frame = pd.DataFrame({
        "filename": table.filenames[rows],
        "track": table.tracks[rows],
        "fold": fold,
    })
    if table.labelled:
        frame["label"] = table.labels[rows]
    frame["predicted"] = np.asarray(classes, dtype=object)[proba.argmax(axis=1)] if len(rows) else []
    for i, c in enumerate(classes):
        frame[f"prob_{c}"] = proba[:, i]
    return frame
