"""What a trained bundle offers the Python API: predictions on tables, files and arrays.

:class:`featx.bundle.Bundle` inherits these methods; they live here so that the
bundle's storage code stays short. Each returns a DataFrame with one row per
track (or file, or array): ``file``, ``genre``, then one probability column per class.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import BundleError


class BundleAPI:
    """Prediction methods of :class:`featx.bundle.Bundle` (a mixin: it needs the bundle's attributes)."""

    @property
    def metrics(self) -> dict | None:
        """The cross-validated evaluation saved at training time (``metrics.json``), or ``None``."""
        path = None if self.path is None else Path(self.path) / "metrics.json"
        return json.loads(path.read_text()) if path is not None and path.is_file() else None

    @property
    def multi_label(self) -> bool:
        """Whether the model predicts several genres per file (one sigmoid per genre)."""
        return bool(self.preprocessing.labels.multi_label)

    @property
    def thresholds(self) -> np.ndarray | None:
        """A multi-label model's per-genre decision thresholds (``None`` for a single-label one)."""
        if not self.multi_label:
            return None
        from .bundle_multilabel import read_thresholds

        return read_thresholds(self.metadata, self.classes, where=f"{self.name}/metadata.json")

    def predict(self, data) -> pd.DataFrame:
        """Classify feature rows: one row per track, with its genre and class probabilities.

        Parameters
        ----------
        data : pandas.DataFrame, str, os.PathLike or FeatureTable
            Rows with the model's feature columns (``label`` and ``length`` are
            ignored): a DataFrame as :func:`featx.extract_features` returns, or the
            path of a feature CSV.

        Returns
        -------
        predictions : pandas.DataFrame
            ``file`` (the track), ``genre``, then one probability column per class;
            the probabilities of a track's segments are averaged.

        Raises
        ------
        DataError
            Other feature columns, or features made with other extraction settings
            than the model's training data (where both are known).

        Examples
        --------
        >>> rows = featx.extract_features("song.wav", settings=bundle.settings)  # doctest: +SKIP
        >>> bundle.predict(rows)["genre"].tolist()  # doctest: +SKIP
        ['jazz']
        """
        from .data.frames import as_table

        return self.classify_table(as_table(data, require_label=False))

    def predict_audio(self, audio, *, sr: int | None = None, name: str = "array.wav",
                      progress: bool | None = False) -> pd.DataFrame:
        """Classify audio, featurised exactly as the model's training data was.

        Parameters
        ----------
        audio : str, os.PathLike, iterable of those, or np.ndarray [shape=(n,) or (channels, n)]
            Audio files or folders (searched recursively), or samples in memory.
        sr : int, optional
            The sample rate of an array, in Hz (required for one; not for paths).
        name : str
            The ``file`` an array's prediction is reported under.
        progress : bool or None
            A progress bar over files; ``None``: only on a terminal.

        Returns
        -------
        predictions : pandas.DataFrame
            One row per file (or array): ``file``, ``genre``, then one probability
            column per class, averaged over the file's segments (a model trained on
            whole clips adds ``windows``, see :meth:`classify_audio`).

        Raises
        ------
        BundleError
            The model's extraction settings are unknown.
        AudioError
            An array that is empty, not finite or shorter than one segment.
        ConfigError
            An array without ``sr``, ``sr`` with paths, or an input that does not exist.

        Warns
        -----
        UserWarning
            For each file that cannot be analysed; it is left out of the result.

        Examples
        --------
        >>> bundle.predict_audio(["song.wav", "more_songs/"])  # doctest: +SKIP
        >>> bundle.predict_audio(y, sr=44100)  # doctest: +SKIP
        """
        import os

        from .errors import ConfigError

        if isinstance(audio, np.ndarray):
            if sr is None:
                raise ConfigError("sr is required with an array: the sample rate of its samples, in Hz. "
                                  "Received: sr=None", param="sr")
            return self._classify_array(audio, sr=sr, name=name)
        if sr is not None:
            raise ConfigError(f"sr is for an array; files give their own sample rate. Received: sr={sr!r}",
                              param="sr")
        paths = [audio] if isinstance(audio, (str, os.PathLike)) else list(audio)
        from .bundle import audio_files

        out, skipped = self.classify_audio(audio_files(paths), progress=progress)
        for file, reason in skipped:
            warnings.warn(f"skipped {file}: {reason}", UserWarning, stacklevel=2)
        return out

    def _classify_array(self, y, *, sr: int, name: str) -> pd.DataFrame:
        if self.spec.input == "images":  # the bundle's own images, from its recorded settings
            from .bundle_images import classify_array_images

            return classify_array_images(self, y, sr=sr, name=name)
        from .bundle import _per_file
        from .data.table import FeatureTable
        from .extract.file import extract_array_features

        settings = self.settings
        if settings is None:
            raise BundleError(f"{self.name}: the model's training features have no known extraction "
                              "settings, so audio cannot be featurised to match; classify feature rows instead")
        whole_file = settings.segment_seconds is None
        rows = extract_array_features(y, sr=sr, settings=settings, name=name,
                                      window=self.clip_samples if whole_file else None)
        table = FeatureTable(rows, None, self.feature_columns, settings, not whole_file, "extracted")
        part = pd.DataFrame(self.predict_table(table), columns=self.classes)
        part.insert(0, "file", name)
        out = _per_file(part, self.preprocessing.labels, self.thresholds)
        if whole_file:
            out.insert(2, "windows", [len(rows)])
        return out
