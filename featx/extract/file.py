"""File-level extraction: one audio file or array to rows of features."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .audio import load, segment
from ..errors import AudioError
from ..features.settings import FeatureSettings

logger = logging.getLogger(__name__)

#: Bounds the memory of one file's analysis: segments are analysed this many at a time.
SEGMENT_BATCH = 16


def row_names(path, n_segments: int, *, whole_file: bool) -> list[str]:
    """Kaggle-style ``filename`` values: ``<stem>.<segment><ext>``, or the file name."""
    path = Path(path)
    if whole_file:
        return [path.name]
    return [f"{path.stem}.{i}{path.suffix}" for i in range(n_segments)]


def extract_features(path, settings: FeatureSettings):
    """Feature rows of one audio file.

    Returns
    -------
    rows : pandas.DataFrame
        Columns ``filename``, ``length``, then ``settings.feature_columns()``; one row
        per full segment (or one for the whole file).

    Raises
    ------
    AudioError
        The file cannot be decoded, or is shorter than one segment.
    """
    import pandas as pd
    from threadpoolctl import threadpool_limits

    # one BLAS thread, as in `featx extract`: the same audio gives the very same numbers
    with threadpool_limits(limits=1):
        names, length, values = _extract_arrays(path, settings)
    frame = pd.DataFrame(values, columns=settings.feature_columns())
    frame.insert(0, "length", length)
    frame.insert(0, "filename", names)
    return frame


def _extract_arrays(path, settings: FeatureSettings):
    from ..features.compute import segment_features

    y = load(path, sr=settings.sr)
    seg_len = settings.segment_samples
    segments = segment(y, hop=settings.segment_hop, length=seg_len)
    if len(segments) == 0:
        raise AudioError(
            f"{path}: {len(y) / settings.sr:.2f} s long, shorter than one "
            f"{settings.segment_seconds:g} s segment ({seg_len} samples at {settings.sr} Hz)"
        )
    cols = settings.feature_columns()
    values = np.empty((len(segments), len(cols)), dtype=np.float64)
    for start in range(0, len(segments), SEGMENT_BATCH):
        batch = segments[start : start + SEGMENT_BATCH]
        feats = segment_features(batch, sr=settings.sr, settings=settings)
        for j, name in enumerate(cols):
            values[start : start + len(batch), j] = feats[name]
    names = row_names(path, len(segments), whole_file=seg_len is None)
    return names, segments.shape[1], values
