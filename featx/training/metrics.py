"""Metrics at segment and track level from out-of-fold predictions."""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ..data.table import FeatureTable
from .config import DEFAULT_THRESHOLD, METRIC_NAMES
from .multilabel_eval import compute_multilabel_metrics, decide
from .tracks import aggregate_tracks, as_encoding

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------
# Metrics


def _scores(y_true, y_pred) -> dict:
    """Accuracy and macro precision/recall/F1, averaged over the classes present in ``y_true``.

    A genre with no row in the evaluated data has no recall and no F1 to average:
    counting it as 0 would put a 3-genre test set's macro F1 far below its accuracy.
    Wrong predictions of an absent genre still lower the recall of the true genres.
    """
    # scikit-learn is heavy: imported on use
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    present = sorted(set(np.asarray(y_true).tolist()))
    p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=present, average="macro",
                                                 zero_division=0)
    return {"accuracy": float(accuracy_score(y_true, y_pred)), "precision_macro": float(p),
            "recall_macro": float(r), "f1_macro": float(f)}


def _level_metrics(frame: pd.DataFrame, classes: list[str]) -> dict:
    # scikit-learn is heavy: imported on use
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    per_fold = []
    for fold, part in frame.groupby("fold", sort=False):
        per_fold.append({"fold": str(fold), "n": int(len(part)),
                         "n_classes": int(part["label"].astype(str).nunique()),
                         **_scores(part["label"].to_numpy(), part["predicted"].to_numpy())})
    out = {name: float(np.mean([f[name] for f in per_fold])) for name in METRIC_NAMES}
    out["std"] = {name: float(np.std([f[name] for f in per_fold])) for name in METRIC_NAMES}
    y_true = frame["label"].to_numpy().astype(str)
    y_pred = frame["predicted"].to_numpy().astype(str)
    out["pooled"] = _scores(y_true, y_pred)
    out["n"] = int(len(frame))
    # the genres the macro averages run over: those with rows in the evaluated data
    out["macro_classes"] = [c for c in classes if c in set(y_true)]
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=classes, zero_division=0)
    out["per_class"] = {c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                            "support": int(s[i])} for i, c in enumerate(classes)}
    out["per_fold"] = per_fold
    out["confusion_matrix"] = confusion_matrix(y_true, y_pred, labels=classes).tolist()
    return out


def compute_metrics(predictions: pd.DataFrame, labels, *, thresholds=None) -> dict:
    """Segment- and track-level metrics from labelled row predictions.

    ``predictions`` has columns ``fold``, ``track``, ``label``, ``predicted``
    and ``prob_<class>``; ``labels`` is their
    :class:`~featx.data.labels.LabelEncoding` (or a single-label one's class
    names). Headline figures are means over folds; ``pooled`` holds the
    figures over all rows at once, ``per_class`` and ``confusion_matrix`` are
    pooled. Macro averages run over the classes with rows in the data
    (``macro_classes`` of each level), not over every class the model knows.

    A multi-label encoding gets the multi-label figures instead
    (:func:`featx.training.multilabel_eval.compute_multilabel_metrics`), decided
    with ``thresholds`` (``{fold: per-genre thresholds}`` or one set for all;
    default 0.2).
    """
    encoding = as_encoding(labels)
    if encoding.multi_label:
        return compute_multilabel_metrics(predictions, encoding,
                                          DEFAULT_THRESHOLD if thresholds is None else thresholds)
    classes = encoding.classes_
    tracks = aggregate_tracks(predictions, encoding)
    return {"classes": list(classes),
            "segment": _level_metrics(predictions, classes),
            "track": _level_metrics(tracks, classes)}


def prediction_frame(table: FeatureTable, rows: np.ndarray, proba: np.ndarray, labels,
                     fold: str, *, thresholds=None) -> pd.DataFrame:
    """Row predictions: ``filename``, ``track``, ``fold``, ``label``, ``predicted``, ``prob_<class>``.

    ``labels`` (a :class:`~featx.data.labels.LabelEncoding`, or a single-label
    one's class names) turns ``proba`` into the predicted labels; a multi-label one
    predicts every genre above its threshold (``thresholds``, default 0.2), most
    probable first, joined by ``;``.
    """
    encoding = as_encoding(labels)
    classes = encoding.classes_
    frame = pd.DataFrame({
        "filename": table.filenames[rows],
        "track": table.tracks[rows],
        "fold": fold,
    })
    if table.labelled:
        frame["label"] = table.labels[rows]
    if encoding.multi_label:
        frame["predicted"] = decide(proba, classes, DEFAULT_THRESHOLD if thresholds is None else thresholds)
    else:
        frame["predicted"] = encoding.decode_proba(proba) if len(rows) else []
    # every probability column at once: one per genre, thousands for a large vocabulary
    probs = pd.DataFrame(np.asarray(proba).reshape(len(frame), len(classes)),
                         columns=[f"prob_{c}" for c in classes], index=frame.index)
    return pd.concat([frame, probs], axis=1)
