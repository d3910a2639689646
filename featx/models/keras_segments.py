"""Keras networks on a track's sequence of segment rows (segment-lstm).

A segmented feature table has one row per segment (``rock.00001.7.wav``). This
family stacks each track's standardised segment rows, in time order, into one
zero-padded sequence of :attr:`KerasSegments.max_segments` steps, and the network
classifies whole tracks. Its row-level probabilities give every segment row its
track's probabilities, so metrics and per-file averages treat it like any model.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError
from .base import check_finite_proba, rows_of
from .fields import check_int, corrupt
from .keras_fit import predict_batches
from .keras_rows import KerasRows

logger = logging.getLogger(__name__)

__all__ = ["KerasSegments", "segment_sequences", "track_labels"]

#: Longest sequence a bundle may record (segments per track).
MAX_SEGMENTS = 100_000


def segment_sequences(X, tracks, order, *, max_segments: int | None = None):
    """Stack each track's segment rows into a zero-padded sequence.

    Parameters
    ----------
    X : np.ndarray [shape=(n_rows, n_features)]
    tracks : np.ndarray [shape=(n_rows,)]
        Track id of every row.
    order : np.ndarray [shape=(n_rows,)]
        Segment index of every row (time order within a track).
    max_segments : int or None
        Sequence length; longer tracks keep their first ``max_segments`` segments.

    Returns
    -------
    sequences : np.ndarray [shape=(n_tracks, max_segments, n_features)]
    track_ids : np.ndarray [shape=(n_tracks,)]
    row_track : np.ndarray [shape=(n_rows,)]
        Index into ``track_ids`` of every row.
    """
    tracks = np.asarray(tracks, dtype=object)
    track_ids, row_track = np.unique(tracks, return_inverse=True)
    counts = np.bincount(row_track, minlength=len(track_ids))
    length = int(max_segments or (counts.max() if len(counts) else 1))
    seqs = np.zeros((len(track_ids), length, X.shape[1]), dtype=np.float32)
    sort = np.lexsort((np.asarray(order), row_track))
    position = np.zeros(len(track_ids), dtype=int)
    for row in sort:
        t = row_track[row]
        if position[t] < length:
            seqs[t, position[t]] = X[row]
        position[t] += 1
    return seqs, track_ids, row_track


def track_labels(y, row_track, n_tracks: int, name: str = "table") -> np.ndarray:
    """The targets of each track from its rows' targets (codes, or multi-hot rows).

    Raises
    ------
    DataError
        Rows of one track carry different targets.
    """
    y = np.asarray(y)
    row_track = np.asarray(row_track, dtype=np.int64)
    first = np.full(n_tracks, -1, dtype=np.int64)
    first[row_track[::-1]] = np.arange(len(row_track))[::-1]  # each track's first row
    labels = y[first]
    if len(y) and (y != labels[row_track]).reshape(len(y), -1).any():
        raise DataError(f"{name}: rows of one track carry different labels; expected one label per track")
    return labels


def longest_track(table) -> int:
    """The most segment rows any track of ``table`` has."""
    _, counts = np.unique(np.asarray(table.tracks, dtype=object), return_counts=True)
    return int(counts.max()) if len(counts) else 1


class KerasSegments(KerasRows):
    """A Keras network on each track's sequence of segment rows (see
    :class:`~featx.models.base.ModelFamily`).

    Attributes
    ----------
    max_segments : int or None
        Steps of every sequence: the most segments a track of the training table has
        (taken from the whole table of a cross-validation, so that every fold builds
        the same network).
    """

    input = "segments"

    def __init__(self, spec, params, labels, *, config=None, table=None):
        super().__init__(spec, params, labels, config=config, table=table)
        self.max_segments = longest_track(table) if table is not None and table.segmented else None

    def check_input(self, table) -> None:
        super().check_input(table)
        if not table.segmented:
            raise DataError(
                f"{table.name}: model {self.name!r} needs segment rows (filenames like "
                "rock.00001.7.wav); this table has one row per file. Use a segmented table "
                "(features extracted with segment_seconds=3) or a row model (mlp, lstm, cnn)")

    def check_split(self, split: str) -> None:
        if split == "random":
            raise ConfigError(
                f"model {self.name!r} predicts whole tracks; split='random' would cut tracks apart. "
                "Expected split='track', 'artist' or 'fault-filtered'. Received: split='random'",
                param="split")

    def check_table(self, table):
        super().check_table(table)
        if not table.segmented:
            raise DataError(f"{table.name}: model {self.name!r} needs segment rows; this table has one "
                            "row per file")
        return table

    def _examples(self, table, rows, y):
        rows = rows_of(table, rows)
        if self.max_segments is None:
            self.max_segments = longest_track(table)
        seqs, _, row_track = segment_sequences(self._transform(table, rows), table.tracks[rows],
                                               table.segment_indices[rows], max_segments=self.max_segments)
        return seqs, track_labels(y[rows], row_track, len(seqs), table.name)

    def predict_proba(self, table, rows=None) -> np.ndarray:
        rows = rows_of(table, rows)
        seqs, _, row_track = segment_sequences(self._transform(table, rows), table.tracks[rows],
                                               table.segment_indices[rows], max_segments=self.max_segments)
        proba = predict_batches(self.estimator, seqs, num_classes=self.n_classes)
        if not np.all(np.isfinite(proba)):
            check_finite_proba(proba, self.name)
        return proba[row_track]

    def record(self) -> dict:
        return {**super().record(), "max_segments": self.max_segments}

    def _read_sequence_length(self, directory, metadata) -> None:
        path = Path(directory) / "metadata.json"
        value = metadata.get("max_segments")
        if value is None:
            raise corrupt(path, "max_segments", f"must be an integer >= 1 for model {self.name!r}", None)
        self.max_segments = check_int(path, "max_segments", value, low=1, high=MAX_SEGMENTS)

    def _expected_input(self) -> tuple:
        return (None, self.max_segments, len(self.feature_columns))
