"""Metrics and decisions for several genres per row (multi-label output).

A multi-label model gives one probability per genre (sigmoid outputs); a genre is
predicted for a row when its probability reaches the genre's decision threshold.
Everything here works on two matrices of shape ``(n_rows, n_genres)``: the truth
as a multi-hot matrix (1 where the row has the genre) and the probabilities.

* Threshold metrics (:func:`f1_micro`, :func:`f1_macro`, :func:`subset_accuracy`,
  :func:`hamming_loss`, :func:`per_genre`) binarise the probabilities with a
  threshold: one number in (0, 1) for every genre (the mel-image study used 0.2), or
  one per genre, e.g. from :func:`tune_thresholds`.
* Ranking metrics (:func:`average_precision_macro`, :func:`roc_auc_macro`) use the
  probabilities themselves. They are undefined for a genre whose rows all carry the
  same truth (no positive row for average precision; no positive or no negative row
  for ROC AUC): such genres are left out of the average, and
  :func:`multilabel_metrics` says which.

The scores come from scikit-learn's functions; this module only shapes the inputs
and checks them.
"""
from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Iterable, Sequence

import numpy as np

from ..data.labels import SEPARATOR, LabelEncoding
from ..errors import ConfigError, DataError
from .config import MULTILABEL_METRIC_NAMES

__all__ = [
    "DEFAULT_GRID",
    "MULTILABEL_METRICS",
    "average_precision_macro",
    "check_thresholds",
    "f1_macro",
    "f1_micro",
    "format_genres",
    "hamming_loss",
    "multi_hot",
    "multilabel_metrics",
    "parse_multilabel",
    "per_genre",
    "predict_genres",
    "roc_auc_macro",
    "subset_accuracy",
    "tune_thresholds",
]

logger = logging.getLogger(__name__)

#: The thresholds :func:`tune_thresholds` tries by default: 0.05, 0.10, ..., 0.95.
DEFAULT_GRID = tuple(round(0.05 * k, 2) for k in range(1, 20))

#: The names of the figures :func:`multilabel_metrics` returns (and ``featx sweep --metric`` may rank by).
MULTILABEL_METRICS = MULTILABEL_METRIC_NAMES


# --------------------------------------------------------------------------- inputs


def _matrices(y_true, proba) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true)
    p = np.asarray(proba, dtype=np.float64)
    if y.ndim != 2 or p.shape != y.shape:
        raise DataError("expected a multi-hot truth matrix and a probability matrix of the same shape "
                        f"(rows, genres). Received: y_true shape={y.shape}, proba shape={p.shape}")
    if y.size and not np.isin(y, (0, 1)).all():
        bad = y[~np.isin(y, (0, 1))].ravel()[0]
        raise DataError(f"the truth matrix must hold only 0 and 1 (multi-hot rows). Received: {bad!r}")
    if p.size and (not np.isfinite(p).all() or p.min() < 0 or p.max() > 1):
        bad = p[~(np.isfinite(p) & (p >= 0) & (p <= 1))].ravel()[0]
        raise DataError(f"probabilities must be finite and in [0, 1]. Received: {bad!r}")
    return y.astype(np.int64), p


def _in_open_unit(value) -> bool:
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(float(value)) and 0.0 < float(value) < 1.0)


def check_thresholds(threshold, n_genres: int) -> np.ndarray:
    """One decision threshold per genre, each strictly between 0 and 1.

    Parameters
    ----------
    threshold : float or sequence of float
        One threshold for every genre, or one per genre (``n_genres`` of them).
    n_genres : int

    Returns
    -------
    np.ndarray [shape=(n_genres,), dtype=float64]

    Raises
    ------
    ConfigError
        A threshold outside (0, 1), not a number, or the wrong count (one line naming it).
    """
    if isinstance(threshold, np.ndarray) and threshold.ndim == 0:
        threshold = threshold.item()
    if isinstance(threshold, np.generic):
        threshold = threshold.item()
    if isinstance(threshold, str) or not isinstance(threshold, Iterable):
        if not _in_open_unit(threshold):
            raise ConfigError(f"threshold must be a number strictly between 0 and 1 (e.g. 0.2). "
                              f"Received: threshold={threshold!r}", param="threshold")
        return np.full(int(n_genres), float(threshold))
    values = list(threshold)
    if len(values) != int(n_genres):
        raise ConfigError(f"expected one threshold per genre ({n_genres}). "
                          f"Received: {len(values)} thresholds", param="threshold")
    for i, value in enumerate(values):
        value = value.item() if isinstance(value, np.generic) else value
        if not _in_open_unit(value):
            raise ConfigError(f"threshold of genre {i} must be strictly between 0 and 1. "
                              f"Received: threshold={value!r}", param="threshold")
    return np.asarray(values, dtype=np.float64)


def predict_genres(proba, threshold=0.5) -> np.ndarray:
    """The multi-hot predictions: 1 where a probability reaches its genre's threshold.

    Parameters
    ----------
    proba : np.ndarray [shape=(n, n_genres)]
    threshold : float or sequence of float
        See :func:`check_thresholds`.

    Returns
    -------
    np.ndarray [shape=(n, n_genres), dtype=int64]
    """
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2:
        raise DataError(f"expected a probability matrix (rows, genres). Received: shape={p.shape}")
    return (p >= check_thresholds(threshold, p.shape[1])[None, :]).astype(np.int64)


# --------------------------------------------------------------------------- threshold metrics


def _binary(y_true, proba, threshold):
    y, p = _matrices(y_true, proba)
    return y, predict_genres(p, threshold)


def f1_micro(y_true, proba, *, threshold=0.5) -> float:
    """F1 over every (row, genre) decision pooled: ``2 TP / (2 TP + FP + FN)``."""
    from sklearn.metrics import f1_score  # scikit-learn is heavy: imported on use

    y, pred = _binary(y_true, proba, threshold)
    return float(f1_score(y, pred, average="micro", zero_division=0))


def f1_macro(y_true, proba, *, threshold=0.5) -> float:
    """The mean of the genres' F1 scores (a genre with no true and no predicted row counts 0)."""
    from sklearn.metrics import f1_score  # scikit-learn is heavy: imported on use

    y, pred = _binary(y_true, proba, threshold)
    return float(f1_score(y, pred, average="macro", zero_division=0))


def subset_accuracy(y_true, proba, *, threshold=0.5) -> float:
    """The share of rows whose predicted genre set is exactly the true one."""
    from sklearn.metrics import accuracy_score  # scikit-learn is heavy: imported on use

    y, pred = _binary(y_true, proba, threshold)
    return float(accuracy_score(y, pred))


def hamming_loss(y_true, proba, *, threshold=0.5) -> float:
    """The share of wrong (row, genre) decisions (lower is better)."""
    from sklearn.metrics import hamming_loss as _hamming  # scikit-learn is heavy: imported on use

    y, pred = _binary(y_true, proba, threshold)
    return float(_hamming(y, pred))


def per_genre(y_true, proba, classes: Sequence[str], *, threshold=0.5) -> dict:
    """Precision, recall, F1 and support (true rows) of each genre.

    Returns
    -------
    dict
        ``{genre: {"precision", "recall", "f1", "support", "threshold"}}``.
    """
    from sklearn.metrics import precision_recall_fscore_support  # scikit-learn is heavy: imported on use

    y, p = _matrices(y_true, proba)
    if len(classes) != y.shape[1]:
        raise DataError(f"expected {y.shape[1]} genre names. Received: {len(classes)}")
    thresholds = check_thresholds(threshold, y.shape[1])
    pred = predict_genres(p, thresholds)
    prec, rec, f1, support = precision_recall_fscore_support(y, pred, average=None, zero_division=0)
    return {str(c): {"precision": float(prec[i]), "recall": float(rec[i]), "f1": float(f1[i]),
                     "support": int(support[i]), "threshold": float(thresholds[i])}
            for i, c in enumerate(classes)}


# --------------------------------------------------------------------------- ranking metrics


def _ranking(score, y: np.ndarray, p: np.ndarray, usable) -> tuple[float, list[int]]:
    kept = [j for j in range(y.shape[1]) if usable(y[:, j])]
    skipped = [j for j in range(y.shape[1]) if j not in kept]
    if not kept:
        return float("nan"), skipped
    return float(np.mean([score(y[:, j], p[:, j]) for j in kept])), skipped


def _has_positive(column) -> bool:
    return bool(column.any())


def _has_both(column) -> bool:
    return bool(column.any() and not column.all())


def average_precision_macro(y_true, proba, *, return_skipped: bool = False):
    """Mean average precision (mAP) over the genres with at least one true row.

    Parameters
    ----------
    y_true : np.ndarray [shape=(n, n_genres)]
        Multi-hot truth.
    proba : np.ndarray [shape=(n, n_genres)]
    return_skipped : bool
        Also return the indices of the genres left out (no true row).

    Returns
    -------
    float, or (float, list of int)
        NaN when no genre has a true row.
    """
    from sklearn.metrics import average_precision_score  # scikit-learn is heavy: imported on use

    y, p = _matrices(y_true, proba)
    value, skipped = _ranking(average_precision_score, y, p, _has_positive)
    if skipped:
        logger.info("average precision: %d genre(s) without a true row left out", len(skipped))
    return (value, skipped) if return_skipped else value


def roc_auc_macro(y_true, proba, *, return_skipped: bool = False):
    """Mean ROC AUC over the genres that have both true and false rows.

    A genre whose rows are all positive or all negative has no ROC curve; it is left
    out of the mean, and how many were left out is logged (and returned with
    ``return_skipped``).

    Returns
    -------
    float, or (float, list of int)
        NaN when no genre qualifies.
    """
    from sklearn.metrics import roc_auc_score  # scikit-learn is heavy: imported on use

    y, p = _matrices(y_true, proba)
    value, skipped = _ranking(roc_auc_score, y, p, _has_both)
    if skipped:
        logger.info("ROC AUC: %d genre(s) with only one kind of label left out", len(skipped))
    return (value, skipped) if return_skipped else value


def multilabel_metrics(y_true, proba, classes: Sequence[str], *, threshold=0.5) -> dict:
    """Every multi-label figure of one set of predictions, as plain data for metrics.json.

    Returns
    -------
    dict
        The six :data:`MULTILABEL_METRICS`, ``n`` (rows), ``thresholds`` (per genre),
        ``roc_auc_skipped`` and ``average_precision_skipped`` (the genres left out of
        those averages) and ``per_genre`` (see :func:`per_genre`).
    """
    y, p = _matrices(y_true, proba)
    classes = [str(c) for c in classes]
    thresholds = check_thresholds(threshold, y.shape[1])
    ap, ap_skipped = average_precision_macro(y, p, return_skipped=True)
    auc, auc_skipped = roc_auc_macro(y, p, return_skipped=True)
    return {
        "f1_micro": f1_micro(y, p, threshold=thresholds),
        "f1_macro": f1_macro(y, p, threshold=thresholds),
        "subset_accuracy": subset_accuracy(y, p, threshold=thresholds),
        "hamming_loss": hamming_loss(y, p, threshold=thresholds),
        "average_precision_macro": ap,
        "roc_auc_macro": auc,
        "n": len(y),
        "thresholds": {c: float(t) for c, t in zip(classes, thresholds)},
        "average_precision_skipped": [classes[j] for j in ap_skipped],
        "roc_auc_skipped": [classes[j] for j in auc_skipped],
        "per_genre": per_genre(y, p, classes, threshold=thresholds),
    }


# --------------------------------------------------------------------------- tuning


def tune_thresholds(y_true, proba, *, grid: Sequence[float] = DEFAULT_GRID) -> np.ndarray:
    """Per-genre thresholds that maximise each genre's F1 on the rows given.

    Pass only validation rows (out-of-fold predictions of the training folds), never
    the rows the thresholds will be judged on: the choice uses every row it gets.

    Parameters
    ----------
    y_true : np.ndarray [shape=(n, n_genres)]
        Multi-hot truth of the validation rows.
    proba : np.ndarray [shape=(n, n_genres)]
        The model's probabilities for those rows.
    grid : sequence of float
        The candidate thresholds, each in (0, 1). Where several give a genre the same
        F1, the one closest to 0.5 wins (then the lower); a genre without a true row
        scores 0 everywhere and so gets the grid's value closest to 0.5.

    Returns
    -------
    np.ndarray [shape=(n_genres,)]

    Raises
    ------
    ConfigError
        An empty grid, or a grid value outside (0, 1).
    """
    from sklearn.metrics import f1_score  # scikit-learn is heavy: imported on use

    y, p = _matrices(y_true, proba)
    grid = list(grid)
    if not grid:
        raise ConfigError("tune_thresholds needs at least one candidate threshold. Received: grid=[]",
                          param="grid")
    for value in grid:
        value = value.item() if isinstance(value, np.generic) else value
        if not _in_open_unit(value):
            raise ConfigError("tune_thresholds: every grid value must be strictly between 0 and 1. "
                              f"Received: threshold={value!r}", param="grid")
    candidates = sorted({float(t) for t in grid})
    candidates.sort(key=lambda t: (abs(t - 0.5), t))  # the preferred one first among equals
    chosen = np.empty(y.shape[1])
    for j in range(y.shape[1]):
        scores = [f1_score(y[:, j], (p[:, j] >= t).astype(np.int64), zero_division=0) for t in candidates]
        chosen[j] = candidates[int(np.argmax(scores))]  # argmax keeps the first of equal scores
    return chosen


# --------------------------------------------------------------------------- labels


def parse_multilabel(series, sep: str = SEPARATOR) -> list[set[str]]:
    """The genre set of each label cell (``"rock;blues"`` -> ``{"rock", "blues"}``).

    Parameters
    ----------
    series : pandas.Series or iterable of str
        Label cells; a cell with one genre gives a one-element set.
    sep : str
        The separator between genres.

    Raises
    ------
    DataError
        An empty cell or an empty genre between separators, naming the row.
    """
    if not sep:
        raise ConfigError(f"sep must be a non-empty string. Received: sep={sep!r}", param="sep")
    import pandas as pd  # pandas: kept off featx extract's path

    index = list(series.index) if isinstance(series, pd.Series) else None
    out = []
    for i, cell in enumerate(series):
        parts = [part.strip() for part in str(cell).split(sep)]
        if any(not part for part in parts):
            where = f"row {index[i]!r}" if index is not None else f"row {i}"
            raise DataError(f"label {str(cell)!r} ({where}) has an empty genre; expected genre names "
                            f"joined by {sep!r} like 'rock{sep}blues'")
        out.append(set(parts))
    return out


def multi_hot(genre_sets: Iterable[Iterable[str]], classes: Sequence[str]) -> np.ndarray:
    """The multi-hot matrix of genre sets, columns in the order of ``classes``.

    Raises
    ------
    DataError
        A genre that is not in ``classes``.
    """
    encoding = LabelEncoding(multi_label=True)
    encoding.classes_ = [str(c) for c in classes]
    return encoding.encode([SEPARATOR.join(sorted(s)) for s in genre_sets]).astype(np.int64)


def format_genres(proba_row, classes: Sequence[str], thresholds=0.5) -> str:
    """The genres of one row whose probability reaches their threshold, most probable first.

    Parameters
    ----------
    proba_row : sequence of float [shape=(n_genres,)]
    classes : sequence of str
    thresholds : float or sequence of float

    Returns
    -------
    str
        ``"rock;blues"``; empty when no genre reaches its threshold. Equal
        probabilities keep the order of ``classes``.

    Examples
    --------
    >>> format_genres([0.1, 0.7, 0.3], ["blues", "rock", "jazz"], 0.2)
    'rock;jazz'
    """
    p = np.asarray(proba_row, dtype=np.float64).ravel()
    if len(p) != len(classes):
        raise DataError(f"expected {len(classes)} probabilities, one per genre. Received: {len(p)}")
    t = check_thresholds(thresholds, len(classes))
    order = sorted((j for j in range(len(p)) if p[j] >= t[j]), key=lambda j: (-p[j], j))
    return SEPARATOR.join(str(classes[j]) for j in order)
