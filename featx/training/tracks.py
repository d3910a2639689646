"""Track-level predictions from row predictions: a track's segments averaged."""
from __future__ import annotations

import pandas as pd

from ..data.labels import LabelEncoding

__all__ = ["as_encoding", "aggregate_tracks"]


def as_encoding(labels) -> LabelEncoding:
    """``labels`` itself, or a single-label encoding of a list of class names."""
    if isinstance(labels, LabelEncoding):
        return labels
    return LabelEncoding.from_dict({"classes": list(labels)})


def aggregate_tracks(predictions: pd.DataFrame, labels) -> pd.DataFrame:
    """Average segment probabilities per (fold, track): one row per track.

    ``labels`` is the :class:`~featx.data.labels.LabelEncoding` (or the class names
    of a single-label one) that turns the averaged probabilities into predictions.
    """
    encoding = as_encoding(labels)
    classes = encoding.classes_
    prob_cols = [f"prob_{c}" for c in classes]
    grouped = predictions.groupby(["fold", "track"], sort=False)
    tracks = grouped[prob_cols].mean().reset_index()
    if "label" in predictions.columns:
        tracks["label"] = grouped["label"].first().to_numpy()
    tracks["predicted"] = encoding.decode_proba(tracks[prob_cols].to_numpy())
    tracks["n_segments"] = grouped.size().to_numpy()
    return tracks
