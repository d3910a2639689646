"""How far new feature rows lie from a model's training rows, as a percentile.

A classifier gives every input a genre, however unlike its training data the input
is: a sine tone or an orchestral game soundtrack still comes out as "classical"
or "jazz", sometimes with a high probability. :class:`TrainingDistance` measures
what the probabilities cannot: the mean Euclidean distance of a row, in the
model's standardised feature space, to its :data:`K` nearest training rows.

The distance is read as a percentile of the same distance for the training rows
themselves, each measured as if its track were new: to the nearest rows of *other*
tracks only (a track's own segments are left out, as a new track's would be absent).
A new row of the same kind as the training data then lands anywhere between 0 and
100, evenly; a percentile of 99 and above means the row is farther from the
training data than 99% of the training tracks are from the rest.

Everything prediction needs is kept in the bundle (``distance.npz``): the reference
rows (the standardised training rows, at most :data:`MAX_ROWS` of them, drawn with
the model's seed) and the sorted reference distances. Prediction needs no training
data and no refit.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import BundleError
from ..io.atomic import atomic_open
from .fields import corrupt, read_npz

logger = logging.getLogger(__name__)

__all__ = ["DISTANCE_FILE", "K", "MAX_ROWS", "TrainingDistance", "reference_sample"]

#: The bundle file that holds the reference rows and distances.
DISTANCE_FILE = "distance.npz"
#: Neighbours whose mean distance is a row's distance.
K = 5
#: Most training rows kept as the reference (a random sample beyond that).
MAX_ROWS = 20000
#: Rows compared with the reference at a time (bounds the distance matrix in memory).
BLOCK = 256


def reference_sample(n_rows: int, *, seed: int, limit: int = MAX_ROWS) -> np.ndarray:
    """Indices of the training rows kept as the reference: all of them, or ``limit`` drawn with ``seed``."""
    if n_rows <= limit:
        return np.arange(n_rows)
    return np.sort(np.random.default_rng(seed).choice(n_rows, size=limit, replace=False))


def _neighbour_distances(queries: np.ndarray, reference: np.ndarray, *, exclude=None, k: int = K) -> np.ndarray:
    """Mean distance of each query row to its ``k`` nearest reference rows.

    ``exclude`` (optional): ``(query_groups, reference_groups)``; reference rows of a
    query's own group are left out (a training track's own segments).
    """
    reference = np.asarray(reference, dtype=np.float64)
    squared_ref = np.einsum("ij,ij->i", reference, reference)
    out = np.empty(len(queries))
    k = min(k, len(reference))
    for start in range(0, len(queries), BLOCK):
        block = np.asarray(queries[start:start + BLOCK], dtype=np.float64)
        d2 = (np.einsum("ij,ij->i", block, block)[:, None] + squared_ref[None, :]
              - 2.0 * block @ reference.T)
        np.maximum(d2, 0.0, out=d2)
        if exclude is not None:
            mine, theirs = exclude
            d2[np.asarray(mine[start:start + BLOCK])[:, None] == np.asarray(theirs)[None, :]] = np.inf
        nearest = np.partition(d2, k - 1, axis=1)[:, :k] if k < d2.shape[1] else d2
        with np.errstate(invalid="ignore"):
            out[start:start + len(block)] = np.sqrt(nearest).mean(axis=1)
    return out


@dataclass
class TrainingDistance:
    """Distances of new rows to the training rows, and their percentiles.

    Attributes
    ----------
    rows : np.ndarray [shape=(n, d), dtype=float32]
        The reference: standardised training rows.
    reference : np.ndarray [shape=(m,)]
        The sorted distances of the training rows to the reference rows of other tracks.
    """

    rows: np.ndarray
    reference: np.ndarray

    @classmethod
    def fit(cls, rows, tracks) -> "TrainingDistance":
        """The reference of standardised training ``rows`` of ``tracks`` (one track id per row).

        Each row's own distance is measured to the rows of other tracks only. Rows of a
        table with a single track (nothing to compare with) give no reference distances.
        """
        rows = np.asarray(rows, dtype=np.float32)
        tracks = np.asarray(tracks).astype(str)
        codes = np.unique(tracks, return_inverse=True)[1]
        own = _neighbour_distances(rows, rows, exclude=(codes, codes))
        return cls(rows, np.sort(own[np.isfinite(own)]))

    @property
    def usable(self) -> bool:
        """Whether there are reference distances to read percentiles from."""
        return len(self.reference) > 0 and len(self.rows) > 0

    def distances(self, rows) -> np.ndarray:
        """Mean distance of each standardised row to its :data:`K` nearest reference rows."""
        return _neighbour_distances(np.asarray(rows, dtype=np.float32), self.rows)

    def percentile(self, distances) -> np.ndarray:
        """Percent of the training rows' own distances at or below each of ``distances`` (0 to 100)."""
        distances = np.asarray(distances, dtype=np.float64)
        return 100.0 * np.searchsorted(self.reference, distances, side="right") / len(self.reference)

    # -- the bundle file ------------------------------------------------------------------

    def save(self, directory) -> str:
        """Write :data:`DISTANCE_FILE` into ``directory`` (atomically); returns its name."""
        with atomic_open(Path(directory) / DISTANCE_FILE) as fh:
            np.savez_compressed(fh, rows=self.rows, reference=self.reference)
        return DISTANCE_FILE

    @classmethod
    def load(cls, directory, n_features: int) -> "TrainingDistance | None":
        """The reference a bundle holds, every array checked; ``None`` for a bundle without one.

        Raises
        ------
        BundleError
            The file cannot be read, or its arrays are not finite rows of ``n_features``
            columns and sorted non-negative distances.
        """
        path = Path(directory) / DISTANCE_FILE
        if not path.exists() and not path.is_symlink():
            return None
        if path.is_symlink() or not path.is_file():
            raise BundleError(f"corrupt bundle: {path}: expected a file featx wrote (the training rows' "
                              "distances), found a link or something else")
        arrays = read_npz(path, "the training rows' distances", ("rows", "reference"))
        rows, reference = arrays["rows"], arrays["reference"]
        if (rows.ndim != 2 or rows.shape[1] != n_features or len(rows) < 1 or rows.dtype.kind != "f"
                or not np.isfinite(rows).all()):
            raise corrupt(path, "rows", f"must be finite rows of {n_features} columns (the feature columns)",
                          rows.shape)
        if (reference.ndim != 1 or reference.dtype.kind != "f" or not np.isfinite(reference).all()
                or (reference < 0).any() or (np.diff(reference) < 0).any()):
            raise corrupt(path, "reference", "must be sorted, finite distances >= 0", received=False)
        return cls(rows.astype(np.float32), reference.astype(np.float64))
