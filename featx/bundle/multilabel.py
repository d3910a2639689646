"""What a multi-label bundle adds: its decision thresholds and the ``genres`` column.

A multi-label bundle records its per-genre decision thresholds in
``metadata.json`` (``thresholds``: ``{genre: value}``, and ``threshold``: the
number it was trained with, or ``"tuned"``). Its predictions carry a
``genres`` column: every genre whose probability reaches its threshold, most
probable first, joined by ``;`` (empty when none does).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import BundleError, ConfigError
from ..training.config import DEFAULT_THRESHOLD
from ..training.multilabel import check_thresholds
from ..training.multilabel_eval import decide

__all__ = ["GENRES_COLUMN", "thresholds_metadata", "read_thresholds", "add_genres", "single_label_refusal"]

#: The column of a multi-label prediction that lists the genres above their thresholds.
GENRES_COLUMN = "genres"


def thresholds_metadata(model, config, thresholds) -> dict:
    """``metadata.json`` entries of a fitted model's thresholds: empty for a single-label model."""
    if not model.multi_label or thresholds is None:
        return {}
    return {"threshold": config.threshold,
            "thresholds": {c: float(t) for c, t in zip(model.classes, thresholds)}}


def read_thresholds(metadata: dict, classes: list[str], *, where: str = "metadata.json") -> np.ndarray:
    """The per-genre thresholds a multi-label bundle recorded (0.2 each when it recorded none).

    Raises
    ------
    BundleError
        Thresholds that are not one number in (0, 1) for each of ``classes``.
    """
    saved = metadata.get("thresholds")
    if saved is None:
        return check_thresholds(DEFAULT_THRESHOLD, len(classes))
    if not isinstance(saved, dict) or sorted(saved) != sorted(classes):
        raise BundleError(f"corrupt bundle: {where}: thresholds must give one number per genre "
                          f"({', '.join(classes)}). Received: {str(saved)[:200]}")
    try:
        return check_thresholds([saved[c] for c in classes], len(classes))
    except ConfigError as exc:
        raise BundleError(f"corrupt bundle: {where}: thresholds: {exc}") from None


def add_genres(out: pd.DataFrame, classes: list[str], thresholds=None) -> pd.DataFrame:
    """Insert ``genre`` (the most probable genre) and ``genres`` after ``file`` of per-file predictions.

    ``genres``: every genre at or above its threshold (``thresholds``; default 0.2 each),
    most probable first, joined by ``;``.
    """
    proba = out[classes].to_numpy(dtype=np.float64)
    thresholds = DEFAULT_THRESHOLD if thresholds is None else thresholds
    out.insert(1, "genre", [classes[j] for j in proba.argmax(axis=1)] if len(out) else [])
    out.insert(2, GENRES_COLUMN, decide(proba, classes, thresholds) if len(out) else [])
    return out


def single_label_refusal(bundle_dir, what: str) -> ConfigError:
    """The error for a multi-label request (``what``) made of a single-label bundle."""
    return ConfigError(
        f"{Path(bundle_dir)}: {what} needs a multi-label model; this bundle predicts one genre per "
        "file (its probabilities sum to 1, so several genres above a threshold mean nothing). "
        "Train with --multi-label to get a genres column, or use --top-k for the k most probable "
        "genres", param="threshold")
