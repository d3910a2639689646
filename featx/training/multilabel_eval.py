"""Multi-label evaluation: thresholds per fold, metrics at segment and track level.

A multi-label model (several genres per row) is judged on its per-genre
probabilities and on the decisions its thresholds make from them. The
thresholds are either one fixed number for every genre or, with
``threshold='tuned'``, chosen per genre on validation predictions of the
training rows only (:func:`fold_thresholds`); the rows a fold is tested on
never choose its thresholds.
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from .config import DEFAULT_THRESHOLD, MULTILABEL_METRIC_NAMES, TUNED
from .multilabel import (
    average_precision_macro,
    check_thresholds,
    format_genres,
    multi_hot,
    parse_multilabel,
    predict_genres,
    roc_auc_macro,
    tune_thresholds,
)
from .tracks import aggregate_tracks

logger = logging.getLogger(__name__)

#: Share of a fold's training tracks held out to tune thresholds when the fold has no
#: validation part of its own.
TUNING_FRACTION = 0.25

__all__ = ["TUNING_FRACTION", "decide", "fold_thresholds", "multilabel_level_metrics",
           "compute_multilabel_metrics"]


def decide(proba, classes, thresholds) -> np.ndarray:
    """The ``;``-joined genres of each row above its threshold, most probable first."""
    t = check_thresholds(thresholds, len(classes))
    return np.array([format_genres(row, classes, t) for row in np.asarray(proba)], dtype=object)


def fold_thresholds(config, n_genres: int, *, tune) -> tuple[np.ndarray, int]:
    """One fold's per-genre thresholds, and how many rows chose them (0: fixed).

    Parameters
    ----------
    config : TrainConfig
        A validated configuration: ``config.threshold`` is a number or ``'tuned'``.
    n_genres : int
    tune : callable
        ``tune() -> (y_valid, proba_valid)``: multi-hot truth and probabilities of
        validation rows taken from the fold's training part (called only for
        ``'tuned'``). ``None`` from it (no validation rows could be formed) falls
        back to the default threshold with a warning.
    """
    if config.threshold != TUNED:
        return check_thresholds(config.threshold, n_genres), 0
    got = tune()
    if got is None or len(got[0]) == 0:
        logger.warning("too few training tracks to hold some out for tuning thresholds; "
                       "using %g for every genre", DEFAULT_THRESHOLD)
        return check_thresholds(DEFAULT_THRESHOLD, n_genres), 0
    y_valid, proba = got
    return tune_thresholds(y_valid, proba), int(len(y_valid))


def _scores(y, proba, pred) -> dict:
    """The six multi-label figures from truth, probabilities and decisions."""
    from sklearn.metrics import (  # scikit-learn is heavy: imported on use
        accuracy_score,
        f1_score,
    )
    from sklearn.metrics import hamming_loss as _hamming  # scikit-learn is heavy: imported on use

    return {
        "f1_micro": float(f1_score(y, pred, average="micro", zero_division=0)),
        "f1_macro": float(f1_score(y, pred, average="macro", zero_division=0)),
        "subset_accuracy": float(accuracy_score(y, pred)),
        "hamming_loss": float(_hamming(y, pred)),
        "average_precision_macro": float(average_precision_macro(y, proba)),
        "roc_auc_macro": float(roc_auc_macro(y, proba)),
    }


def multilabel_level_metrics(frame: pd.DataFrame, classes: list[str], thresholds: dict) -> dict:
    """Metrics of one level (rows or tracks) of a multi-label run.

    ``frame`` has ``fold``, ``label`` and ``prob_<genre>`` columns; ``thresholds``
    maps each fold to its per-genre thresholds. Headline figures are means over
    folds (NaN-aware for the ranking metrics, which are undefined for a genre
    without positives); ``pooled`` holds them over all rows with each row decided
    by its own fold's thresholds, and ``per_genre`` is pooled the same way.
    """
    from sklearn.metrics import precision_recall_fscore_support  # scikit-learn is heavy: imported on use

    prob_cols = [f"prob_{c}" for c in classes]
    per_fold, ys, ps, preds = [], [], [], []
    for fold, part in frame.groupby("fold", sort=False):
        y = multi_hot(parse_multilabel(part["label"].astype(str)), classes)
        p = part[prob_cols].to_numpy(dtype=np.float64)
        pred = predict_genres(p, thresholds[str(fold)])
        per_fold.append({"fold": str(fold), "n": int(len(part)), **_scores(y, p, pred)})
        ys.append(y), ps.append(p), preds.append(pred)
    y, p, pred = np.concatenate(ys), np.concatenate(ps), np.concatenate(preds)
    out = {}
    for name in MULTILABEL_METRIC_NAMES:
        values = np.array([f[name] for f in per_fold], dtype=np.float64)
        finite = values[np.isfinite(values)]
        out[name] = float(finite.mean()) if len(finite) else float("nan")
    out["std"] = {}
    for name in MULTILABEL_METRIC_NAMES:
        values = np.array([f[name] for f in per_fold], dtype=np.float64)
        finite = values[np.isfinite(values)]
        out["std"][name] = float(finite.std()) if len(finite) else float("nan")
    out["pooled"] = _scores(y, p, pred)
    out["n"] = int(len(frame))
    out["macro_classes"] = list(classes)
    prec, rec, f1, support = precision_recall_fscore_support(y, pred, average=None, zero_division=0,
                                                             labels=list(range(len(classes))))
    out["per_class"] = {c: {"precision": float(prec[i]), "recall": float(rec[i]), "f1": float(f1[i]),
                            "support": int(support[i]), "predicted": int(pred[:, i].sum())}
                        for i, c in enumerate(classes)}
    out["per_fold"] = per_fold
    return out


def compute_multilabel_metrics(predictions: pd.DataFrame, encoding, thresholds) -> dict:
    """Segment- and track-level multi-label metrics of out-of-fold (or evaluation) predictions.

    Parameters
    ----------
    predictions : pandas.DataFrame
        ``fold``, ``track``, ``label`` and ``prob_<genre>`` columns.
    encoding : LabelEncoding
        The multi-label encoding (its ``classes_`` order the probability columns).
    thresholds : dict or float or sequence
        ``{fold: per-genre thresholds}``, or one set of thresholds for every fold.
    """
    classes = list(encoding.classes_)
    folds = [str(f) for f in pd.unique(predictions["fold"])]
    if not isinstance(thresholds, dict):
        thresholds = {f: thresholds for f in folds}
    thresholds = {str(k): check_thresholds(v, len(classes)) for k, v in thresholds.items()}
    tracks = aggregate_tracks(predictions, encoding)
    predicted = pd.Series("", index=tracks.index, dtype=object)
    for fold, part in tracks.groupby("fold", sort=False):
        predicted[part.index] = decide(part[[f"prob_{c}" for c in classes]].to_numpy(), classes,
                                       thresholds[str(fold)])
    tracks["predicted"] = predicted
    shown = {f: {c: float(t) for c, t in zip(classes, thresholds[f])} for f in folds}
    return {"classes": classes, "multi_label": True, "thresholds": shown,
            "segment": multilabel_level_metrics(predictions, classes, thresholds),
            "track": multilabel_level_metrics(tracks, classes, thresholds)}

