"""The per-file frame: a file's windows (segments) pooled into one prediction, with its confidence.

Every consumer of a bundle's predictions (``featx predict`` in each format, the Python
API, a web server passing the frame's columns through) reads this frame: one row per
file or track with

* ``file``, ``genre`` (the top genre after pooling) and, where the model or the pooling
  can name several genres, ``genres`` (``;``-joined, most likely first);
* ``confidence``: the calibrated probability of ``genre`` (the bundle's temperature
  applied to the file's mean probabilities, :func:`featx.training.confidence.calibrate`);
* ``uncertain``: ``confidence`` below the bundle's threshold (chosen on held-out tracks
  for a stated precision), or the file lying outside the training data;
* ``distance_pct``: how far the file's features lie from the training rows, as a
  percentile of the training tracks' own distances (the median over its windows);
  99 and above is outside the training data;
* one column per genre: what the pooling gives (see :data:`featx.training.config.AGGREGATES`).

A bundle without a confidence record (trained before featx made one, or fitted without
cross-validation) has no ``confidence`` and ``uncertain``; one without a distance
reference (image models, older bundles) no ``distance_pct``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import ConfigError
from ..training.confidence import calibrate
from ..training.config import AGGREGATES, MIN_SHARE
from ..training.multilabel import format_genres
from .multilabel import GENRES_COLUMN, add_genres

__all__ = ["AGGREGATES", "MIN_SHARE", "MAX_SHARE_CLEAR", "CONFIDENCE_COLUMNS", "per_file", "check_aggregate"]

# How a file's windows are pooled into one row (:data:`featx.training.config.AGGREGATES`):
#
# * ``mean``: each genre's mean probability over the windows (the default);
# * ``vote``: the fraction of the windows whose decision is the genre (single-label: its
#   top genre; multi-label: each genre at or above its threshold); ``genres`` lists every
#   genre holding at least ``min_share`` (:data:`MIN_SHARE`) of them, so a medley's two
#   halves both appear;
# * ``max``: each genre's highest probability in any window; ``genres`` lists every genre
#   at or above its threshold in some window (single-label: above :data:`MAX_SHARE_CLEAR`).

#: Single-label ``max`` pooling lists a genre that some window gives more than this.
MAX_SHARE_CLEAR = 0.5
#: The columns the confidence record and the distance reference add, in order.
CONFIDENCE_COLUMNS = ("confidence", "uncertain", "distance_pct")


def check_aggregate(aggregate: str, min_share: float = MIN_SHARE) -> None:
    """Raise :class:`~featx.errors.ConfigError` for an unknown pooling or a share outside (0, 1]."""
    if aggregate not in AGGREGATES:
        raise ConfigError(f"aggregate must be one of {', '.join(AGGREGATES)}. Received: aggregate={aggregate!r}",
                          param="aggregate")
    ok = isinstance(min_share, (int, float)) and not isinstance(min_share, bool) and 0 < float(min_share) <= 1
    if not ok:
        raise ConfigError(f"min_share must be a number in (0, 1]. Received: min_share={min_share!r}",
                          param="min_share")


def _decisions(proba: np.ndarray, multi_label: bool, thresholds) -> np.ndarray:
    """One row of 0/1 per window: its top genre, or (multi-label) every genre at its threshold."""
    if multi_label:
        return (proba >= np.asarray(thresholds, dtype=np.float64)[None, :]).astype(np.float64)
    hot = np.zeros_like(proba)
    if len(proba):
        hot[np.arange(len(proba)), proba.argmax(axis=1)] = 1.0
    return hot


def per_file(frame: pd.DataFrame, labels, thresholds=None, *, aggregate: str = "mean",
             min_share: float = MIN_SHARE, confidence: dict | None = None, percentile=None) -> pd.DataFrame:
    """Pool window rows into one row per ``file``.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per window: ``file``, one probability column per class and, optionally,
        ``distance`` (the window's distance to the training rows).
    labels : LabelEncoding
        The model's label encoding (classes, and whether several genres per file).
    thresholds : np.ndarray, optional
        A multi-label model's per-genre thresholds (default 0.2 each).
    aggregate : {'mean', 'vote', 'max'}
        How windows are pooled (:data:`AGGREGATES`).
    min_share : float in (0, 1]
        ``vote``: the share of windows a genre needs to be listed in ``genres``.
    confidence : dict, optional
        The bundle's confidence record (``temperature``, ``threshold``,
        ``outside_percentile``): adds ``confidence`` and ``uncertain``.
    percentile : callable, optional
        Distances to percentiles (the model's reference); with a ``distance`` column, adds
        ``distance_pct``.

    Returns
    -------
    pandas.DataFrame
        ``file``, ``genre``, [``genres``], [``confidence``, ``uncertain``], [``distance_pct``],
        then one column per class.
    """
    check_aggregate(aggregate, min_share)
    classes = list(labels.classes_)
    multi = bool(labels.multi_label)
    grouped = frame.groupby("file", sort=False)
    mean = grouped[classes].mean()
    if aggregate == "mean":
        scores = mean
    elif aggregate == "max":
        scores = grouped[classes].max()
    else:
        hot = pd.DataFrame(_decisions(frame[classes].to_numpy(dtype=np.float64), multi,
                                      thresholds if thresholds is not None else 0.2),
                           columns=classes, index=frame.index)
        hot.insert(0, "file", frame["file"].to_numpy())
        scores = hot.groupby("file", sort=False)[classes].mean()
    out = scores.reset_index()
    if multi and aggregate != "vote":
        out = add_genres(out, classes, thresholds)
    else:
        values = out[classes].to_numpy(dtype=np.float64)
        out.insert(1, "genre", [classes[j] for j in values.argmax(axis=1)] if len(out) else [])
        if aggregate != "mean":
            limit = min_share if aggregate == "vote" else np.nextafter(MAX_SHARE_CLEAR, 1.0)
            out.insert(2, GENRES_COLUMN, [format_genres(row, classes, np.full(len(classes), limit))
                                          for row in values] if len(out) else [])
    position = out.columns.get_loc(classes[0])
    if confidence is not None:
        calibrated = calibrate(mean.to_numpy(dtype=np.float64), float(confidence["temperature"]), multi_label=multi)
        chosen = [classes.index(g) for g in out["genre"]]
        value = calibrated[np.arange(len(chosen)), chosen] if len(chosen) else np.zeros(0)
        out.insert(position, "confidence", value)
        out.insert(position + 1, "uncertain", value < float(confidence["threshold"]))
        position += 2
    if percentile is not None and "distance" in frame.columns and frame["distance"].notna().all():
        median = grouped["distance"].median().to_numpy(dtype=np.float64)
        pct = np.asarray(percentile(median), dtype=np.float64) if len(median) else np.zeros(0)
        out.insert(position, "distance_pct", pct)
        if confidence is not None:
            out["uncertain"] = out["uncertain"] | (pct >= float(confidence["outside_percentile"]))
    return out
