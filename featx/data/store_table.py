"""A spectrogram store seen through the feature table's row interface.

Splits, cross-validation, metrics, bundles and reports read a table's rows through
a few attributes: ``name``, ``path``, ``n_rows``, ``labelled``, ``labels``,
``filenames``, ``tracks``, ``segment_indices`` and ``segmented``.
:class:`~featx.data.table.FeatureTable` has them, and :class:`StoreTable` gives
them to a :class:`~featx.data.store.SpectrogramStore`, whose images stay on disk
(they are read per batch by :mod:`featx.models.keras_images`). :func:`read_table`
opens either from a path; a model says itself when it is given the wrong kind of
input (:meth:`featx.models.base.ModelFamily.check_input`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from ..features.settings import LABEL_COLUMN

__all__ = ["StoreTable", "is_store", "read_table"]


def is_store(path) -> bool:
    """Whether ``path`` is a folder holding a featx spectrogram store."""
    from .store import _read_marker  # pulls in the store's checksums: only on this path

    path = Path(path)
    return path.is_dir() and not path.is_symlink() and _read_marker(path) is not None


class StoreTable:
    """The rows of a spectrogram store, with the identities a feature table's rows have.

    Parameters
    ----------
    store : SpectrogramStore or path

    Attributes
    ----------
    store : SpectrogramStore
    frame : pandas.DataFrame
        The row table (track, segment, filename, label, length), in store order.
    spectrogram_settings : SpectrogramSettings
        How the store's images were made.
    settings : None
        No feature-extraction settings: the rows hold images, not feature columns.
    """

    settings = None
    settings_source = "store"

    def __init__(self, store):
        from .store import (  # pulls in the store's checksums: only on this path
            SpectrogramStore,
            open_store,
        )

        self.store = store if isinstance(store, SpectrogramStore) else open_store(store)
        self.path = self.store.path
        self.frame = self.store.rows
        self.spectrogram_settings = self.store.settings
        if len(self.frame) == 0:
            raise DataError(f"{self.path}: the store has no rows; expected a store with finished files")
        self._tracks = self.frame["track"].astype(str).to_numpy(dtype=object)
        if self.labelled:
            from .table import _check_track_labels  # pulls in pandas: only on this path

            _check_track_labels(self)

    @property
    def name(self) -> str:
        return str(self.path)

    @property
    def n_rows(self) -> int:
        return len(self.frame)

    @property
    def kinds(self) -> tuple[str, ...]:
        return self.store.kinds

    @property
    def feature_columns(self) -> list[str]:
        """The image kinds of the store (in the place of a table's feature columns)."""
        return list(self.store.kinds)

    @property
    def segmented(self) -> bool:
        return self.spectrogram_settings.segment_seconds is not None

    @property
    def labelled(self) -> bool:
        labels = self.frame[LABEL_COLUMN]
        return bool(len(labels)) and not labels.isna().any() and not (labels.astype(str) == "").any()

    @property
    def labels(self) -> np.ndarray:
        if not self.labelled:
            missing = self.frame[LABEL_COLUMN].isna() | (self.frame[LABEL_COLUMN].astype(str) == "")
            row = int(np.flatnonzero(missing.to_numpy())[0])
            raise DataError(
                f"{self.name}: segment {self.frame['filename'].iloc[row]!r} has no label; expected a "
                "labelled store (made with labels='folder' or a labels CSV)"
            )
        return self.frame[LABEL_COLUMN].astype(str).to_numpy()

    @property
    def filenames(self) -> np.ndarray:
        return self.frame["filename"].astype(str).to_numpy()

    @property
    def tracks(self) -> np.ndarray:
        """Track id of every row."""
        return self._tracks

    @property
    def segment_indices(self) -> np.ndarray:
        """Segment index of every row within its file."""
        return self.frame["segment"].to_numpy(dtype=int)

    def image_shapes(self, kinds) -> dict[str, tuple[int, int]]:
        """``kind -> (height, width)`` for ``kinds`` (a missing kind is a DataError naming it)."""
        return {kind: self.store.image_shape(kind) for kind in kinds}


def read_table(path, *, require_label: bool = True):
    """A :class:`StoreTable` for a store folder, a :class:`FeatureTable` for a feature CSV.

    Raises
    ------
    DataError
        ``path`` is neither, or what it holds is invalid.
    """
    from .table import read_feature_csv  # pulls in pandas: only on this path

    path = Path(path)
    if path.is_dir():
        if not is_store(path):
            raise DataError(
                f"{path} is a folder but not a spectrogram store; expected a feature CSV or a "
                "store made by featx spectrograms"
            )
        table = StoreTable(path)
        if require_label:
            _ = table.labels
        return table
    return read_feature_csv(path, require_label=require_label)

