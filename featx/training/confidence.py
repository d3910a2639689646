"""How sure a model is of a file's genre: calibration and the ``uncertain`` rule, fitted on held-out predictions.

A model's top probability is not yet a confidence: an overfitted network says 0.99
when it is right four times in five. :func:`fit_confidence` reads the out-of-fold
predictions of a cross-validated run (every track predicted by a model that never
saw it), averaged per track as prediction averages a file's segments, and fits:

* a **temperature** ``T``: the calibrated probabilities are ``softmax(log(p) / T)``
  (a multi-label model's: ``sigmoid(logit(p) / T)`` per genre), ``T`` chosen to
  minimise the log loss of the held-out tracks; it never changes which genre is
  on top;
* a **threshold** on the calibrated probability of the top genre: the lowest value
  at which the held-out tracks at or above it were right (their top genre among
  their labels) at least :data:`PRECISION` of the time. A prediction below it is
  ``uncertain``.

Both go in the bundle's ``metadata.json`` (``confidence``), so prediction needs no
training data. :func:`calibrate` applies the temperature.
"""
from __future__ import annotations

import logging
import math

import numpy as np

from ..data.labels import LabelEncoding
from ..errors import BundleError
from .multilabel import multi_hot, parse_multilabel
from .tracks import aggregate_tracks

logger = logging.getLogger(__name__)

__all__ = ["PRECISION", "OUTSIDE_PERCENTILE", "fit_confidence", "calibrate", "check_confidence"]

#: The precision the confident predictions must reach on held-out tracks.
PRECISION = 0.9
#: A file whose distance percentile (:class:`~featx.models.distance.TrainingDistance`) is at
#: or above this lies outside the training data, and its prediction is ``uncertain``.
OUTSIDE_PERCENTILE = 99.0
#: Range searched for the temperature (its logarithm is bounded by +-ln of this).
MAX_TEMPERATURE = 100.0
#: Probabilities are kept this far from 0 and 1 before their logarithm.
EPSILON = 1e-12


def calibrate(proba, temperature: float, *, multi_label: bool) -> np.ndarray:
    """Probabilities with the temperature applied (rows of ``proba`` are files or tracks).

    Parameters
    ----------
    proba : np.ndarray [shape=(n, n_classes)]
        A model's probabilities (softmax rows, or independent sigmoids for ``multi_label``).
    temperature : float > 0
        1 changes nothing; above 1 makes the probabilities less extreme.
    multi_label : bool

    Returns
    -------
    np.ndarray [shape=(n, n_classes)]

    Examples
    --------
    >>> calibrate(np.array([[0.9, 0.1]]), 2.0, multi_label=False).round(3).tolist()
    [[0.75, 0.25]]
    """
    p = np.clip(np.asarray(proba, dtype=np.float64), EPSILON, 1.0 - EPSILON)
    if multi_label:
        return 1.0 / (1.0 + np.exp(-(np.log(p) - np.log1p(-p)) / temperature))
    z = np.log(p) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _log_loss(proba, truth, multi_label: bool) -> float:
    p = np.clip(proba, EPSILON, 1.0 - EPSILON)
    if multi_label:
        return float(-np.mean(truth * np.log(p) + (1 - truth) * np.log1p(-p)))
    return float(-np.mean(np.log(p[truth.astype(bool)])))


def _fit_temperature(proba, truth, multi_label: bool) -> float:
    from scipy.optimize import minimize_scalar  # SciPy is heavy: only when a model is saved

    bound = math.log(MAX_TEMPERATURE)
    found = minimize_scalar(lambda t: _log_loss(calibrate(proba, math.exp(t), multi_label=multi_label), truth,
                                                multi_label),
                            bounds=(-bound, bound), method="bounded", options={"xatol": 1e-4})
    return float(math.exp(found.x))


def _threshold(confidence, correct, precision: float) -> tuple[float, float, float]:
    """``(threshold, precision reached, coverage)``: the lowest confidence at which the tracks
    at or above it are right at least ``precision`` of the time; 1.0 (nothing confident
    but certainty) when no such value exists."""
    order = np.argsort(-confidence, kind="stable")
    conf, hits = confidence[order], correct[order].astype(float)
    reached = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    # a threshold must take in every track of equal confidence: the last of each run of ties
    last = np.r_[conf[1:] != conf[:-1], True]
    good = np.nonzero((reached >= precision) & last)[0]
    if len(good) == 0:
        return 1.0, float("nan"), 0.0
    i = int(good[-1])
    return float(conf[i]), float(reached[i]), float((i + 1) / len(conf))


def fit_confidence(predictions, labels: LabelEncoding, *, precision: float = PRECISION) -> dict | None:
    """The ``confidence`` record of a bundle, from out-of-fold row predictions.

    Parameters
    ----------
    predictions : pandas.DataFrame
        Out-of-fold predictions (:func:`~featx.training.metrics.prediction_frame`):
        ``fold``, ``track``, ``label`` and ``prob_<class>``.
    labels : LabelEncoding
    precision : float in (0, 1)
        What the confident predictions must reach.

    Returns
    -------
    dict or None
        ``temperature``, ``threshold``, ``precision_target``, ``precision`` (reached on
        the held-out tracks), ``coverage`` (share of them at or above the threshold),
        ``tracks`` and ``outside_percentile``; ``None`` without labelled predictions.
    """
    if predictions is None or len(predictions) == 0 or "label" not in predictions.columns:
        return None
    classes = list(labels.classes_)
    tracks = aggregate_tracks(predictions, labels)
    proba = tracks[[f"prob_{c}" for c in classes]].to_numpy(dtype=np.float64)
    truth = multi_hot(parse_multilabel(tracks["label"].astype(str)), classes).astype(float)
    multi = bool(labels.multi_label)
    temperature = _fit_temperature(proba, truth, multi)
    calibrated = calibrate(proba, temperature, multi_label=multi)
    top = calibrated.argmax(axis=1)
    confidence = calibrated[np.arange(len(top)), top]
    correct = truth[np.arange(len(top)), top] > 0
    threshold, reached, coverage = _threshold(confidence, correct, precision)
    record = {"method": "temperature", "level": "track", "temperature": round(temperature, 6),
              "threshold": round(threshold, 6), "precision_target": precision,
              "precision": None if math.isnan(reached) else round(reached, 6),
              "coverage": round(coverage, 6), "tracks": int(len(tracks)),
              "outside_percentile": OUTSIDE_PERCENTILE}
    logger.info("confidence: temperature %.3f; top-1 below %.3f is uncertain (%.0f%% of held-out tracks are "
                "at or above it, %s right)", temperature, threshold, 100 * coverage,
                "none" if math.isnan(reached) else f"{100 * reached:.0f}%")
    return record


def check_confidence(record, where: str) -> dict | None:
    """A bundle's ``confidence`` record, every value checked (``None`` when it has none).

    Raises
    ------
    BundleError
        A record that is not what :func:`fit_confidence` writes.
    """
    if record is None:
        return None

    def bad(field, expected):
        return BundleError(f"corrupt bundle: {where}: confidence.{field} must be {expected}. "
                           f"Received: {str(record.get(field) if isinstance(record, dict) else record)[:80]}")

    if not isinstance(record, dict):
        raise BundleError(f"corrupt bundle: {where}: confidence must be an object. Received: {str(record)[:80]}")

    def number(field, low, high, *, open_low=False):
        value = record.get(field)
        ok = (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
              and (low < value if open_low else low <= value) and value <= high)
        if not ok:
            raise bad(field, f"a number in {'(' if open_low else '['}{low}, {high}]")
        return float(value)

    number("temperature", 1.0 / MAX_TEMPERATURE - 1e-9, MAX_TEMPERATURE + 1e-9, open_low=True)
    number("threshold", 0.0, 1.0)
    number("outside_percentile", 0.0, 100.0, open_low=True)
    return record
