"""A spectrogram store seen through the feature table's row interface.

Splits, cross-validation, metrics, bundles and reports read a table's rows through
a few attributes: ``name``, ``path``, ``n_rows``, ``labelled``, ``labels``,
``filenames``, ``tracks``, ``segment_indices`` and ``segmented``.
:class:`~featx.data.table.FeatureTable` has them, and :class:`StoreTable` gives
them to a :class:`~featx.data.store.SpectrogramStore`, whose images stay on disk
(they are read per batch by :mod:`featx.training.images`). :func:`read_table`
opens either from a path, and :func:`check_input` says when a model is given the
wrong kind of input.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from ..features.settings import LABEL_COLUMN

__all__ = ["StoreTable", "is_store", "read_table", "check_input"]


def is_store(path) -> bool:
    """Whether ``path`` is a folder holding a featx spectrogram store."""
    from .store import _read_marker

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
        from .store import SpectrogramStore, open_store

        self.store = store if isinstance(store, SpectrogramStore) else open_store(store)
        self.path = self.store.path
        self.frame = self.store.rows
        self.spectrogram_settings = self.store.settings
        if len(self.frame) == 0:
            raise DataError(f"{self.path}: the store has no rows; expected a store with finished files")
        self._tracks = self.frame["track"].astype(str).to_numpy(dtype=object)
        if self.labelled:
            from .table import _check_track_labels

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
    from .table import read_feature_csv

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


def check_input(spec, table, params: dict | None = None) -> None:
    """Raise unless model ``spec`` (with hyperparameters ``params``) can read ``table``.

    Raises
    ------
    DataError
        A feature table for an image model, a store for a table model, or a store
        without a kind the model reads; the message names the model's input.
    """
    is_images = isinstance(table, StoreTable)
    if spec.input == "images" and not is_images:
        kinds = ", ".join(spec.image_kinds(params))
        raise DataError(
            f"{table.name}: model {spec.name!r} reads {kinds} images from a spectrogram store "
            "(featx spectrograms); this is a feature table. Give a STORE folder, or use a "
            "table model (featx models)"
        )
    if spec.input != "images" and is_images:
        raise DataError(
            f"{table.name}: model {spec.name!r} reads {spec.input} of a feature table (a CSV from "
            "featx extract); this is a spectrogram store. Give a feature CSV, or use an image "
            "model (cnn2d, cnn2d-base, mfcc-cnn, multihead)"
        )
    if is_images:
        missing = [k for k in spec.image_kinds(params) if k not in table.kinds]
        if missing:
            raise DataError(
                f"{table.name}: model {spec.name!r} needs {', '.join(spec.image_kinds(params))} images; "
                f"the store holds no {', '.join(missing)} images (it holds {', '.join(table.kinds)}). "
                f"Make the store with kinds={','.join(spec.image_kinds(params))}"
            )
