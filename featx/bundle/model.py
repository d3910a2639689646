"""A loaded bundle: the model object with its metadata, and predictions on tables, files and arrays.

:class:`Bundle` wraps the model object of any family
(:class:`~featx.models.base.ModelFamily`) with what ``metadata.json`` says about its
training run. Every prediction method returns the per-file frame
(:mod:`featx.bundle.fileframe`): one row per track (or file, or array) with ``file``,
``genre`` (a multi-label model, or ``vote``/``max`` pooling, adds ``genres``),
``confidence``, ``uncertain`` and ``distance_pct`` where the bundle recorded what they
need, then one column per class. The same per-window probabilities feed the command
line's ``--timeline`` and ``featx serve`` (:meth:`Bundle.audio_windows`).
"""
from __future__ import annotations

import json
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..runtime.progress import progress_bar
from ..data.frames import as_table
from ..data.table import track_name
from ..errors import AudioError, ConfigError, DataError
from ..extract.audio import find_audio
from ..models.base import AudioProbabilities, ModelFamily
from ..training.metrics import compute_metrics, prediction_frame
from ..io.digest import file_sha256
from .fileframe import MIN_SHARE, check_aggregate, per_file
from .multilabel import read_thresholds

logger = logging.getLogger(__name__)

__all__ = ["Bundle", "audio_files", "per_file", "WINDOWS_COLUMN"]

#: The column that gives, for a model trained on whole clips, how many windows of a
#: longer file were classified and averaged.
WINDOWS_COLUMN = "windows"


def audio_files(inputs) -> list[Path]:
    """Audio files named in ``inputs`` (files, or folders searched recursively); none: ``[]``."""
    inputs = list(inputs)
    return find_audio(inputs) if inputs else []


@dataclass
class Bundle:
    """A trained model with everything needed to use it on new data.

    Attributes
    ----------
    path : Path or None
        The bundle folder (``None`` for a model not saved yet).
    model : ModelFamily
        The fitted model object (its network or estimator, preprocessing and labels).
    metadata : dict
        ``metadata.json``: versions, hyperparameters, training data, the split...
    """

    path: Path | None
    model: ModelFamily
    metadata: dict

    # -- what the model is ------------------------------------------------------------

    @property
    def spec(self):
        """The registry entry of the model (:class:`~featx.models.registry.ModelSpec`)."""
        return self.model.spec

    @property
    def preprocessing(self):
        return self.model.preprocessing

    @property
    def classes(self) -> list[str]:
        return self.model.classes

    @property
    def feature_columns(self) -> list[str]:
        """The feature columns the model reads (the image kinds of an image model)."""
        return list(self.preprocessing.feature_columns)

    @property
    def settings(self):
        """The extraction settings of the training features (``None`` when unknown, or for an image model)."""
        return getattr(self.model, "settings", None)

    @property
    def spectrogram_settings(self):
        """The settings of an image model's spectrograms (``None`` for a model on feature rows)."""
        return getattr(self.model, "spectrogram_settings", None)

    @property
    def sample_rate(self) -> int | None:
        """The rate audio is resampled to before the model sees it, in Hz (``None`` when unknown)."""
        settings = self.settings or self.spectrogram_settings
        return None if settings is None else int(settings.sr)

    @property
    def max_segments(self) -> int | None:
        return getattr(self.model, "max_segments", None)

    @property
    def clip_samples(self) -> int | None:
        """Length of the whole clips a whole-file model was trained on, in samples (else ``None``)."""
        return getattr(self.model, "clip_samples", None)

    @property
    def clip_seconds(self) -> float | None:
        """:attr:`clip_samples` in seconds."""
        samples = self.clip_samples
        return samples / self.settings.sr if samples is not None and self.settings is not None else None

    @property
    def whole_clips(self) -> bool:
        """Whether the model was trained on whole clips (one row per file): longer audio is
        then classified window by window and the file's row says how many windows."""
        settings = self.settings
        return settings is not None and settings.segment_seconds is None

    @property
    def name(self) -> str:
        return str(self.path) if self.path is not None else "bundle"

    @property
    def metrics(self) -> dict | None:
        """The cross-validated evaluation saved at training time (``metrics.json``), or ``None``."""
        path = None if self.path is None else Path(self.path) / "metrics.json"
        return json.loads(path.read_text()) if path is not None and path.is_file() else None

    @property
    def multi_label(self) -> bool:
        """Whether the model predicts several genres per file (one sigmoid per genre)."""
        return self.model.multi_label

    @property
    def thresholds(self) -> np.ndarray | None:
        """A multi-label model's per-genre decision thresholds (``None`` for a single-label one)."""
        if not self.multi_label:
            return None
        return read_thresholds(self.metadata, self.classes, where=f"{self.name}/metadata.json")

    # -- tables -----------------------------------------------------------------------

    def check_table(self, table):
        """Check ``table`` has the model's feature columns and extraction settings (or, for an
        image model, that the store's images were made with the training images' settings)."""
        return self.model.check_table(table)

    def predict_table(self, table) -> np.ndarray:
        """Row-level class probabilities for a feature table (or, for an image model, a
        spectrogram store's :class:`~featx.data.store_table.StoreTable`), shape ``(n_rows, n_classes)``."""
        self.model.check_table(table)
        return self.model.predict_proba(table)

    @property
    def confidence(self) -> dict | None:
        """The calibration and ``uncertain`` threshold recorded at training time (``None``: none)."""
        return self.metadata.get("confidence")

    def per_file(self, frame: pd.DataFrame, *, aggregate: str = "mean", min_share: float = MIN_SHARE):
        """Pool window rows (``file``, class columns, optionally ``distance``) into the per-file
        frame (:func:`featx.bundle.fileframe.per_file`) with this bundle's records."""
        return per_file(frame, self.model.labels, self.thresholds, aggregate=aggregate, min_share=min_share,
                        confidence=self.confidence, percentile=self.model.distance_percentile)

    def classify_table(self, table, *, aggregate: str = "mean", min_share: float = MIN_SHARE) -> pd.DataFrame:
        """One row per track: ``file``, ``genre``, [``genres``], the confidence columns, then
        one column per class (see :mod:`featx.bundle.fileframe`; ``aggregate`` pools a
        track's rows: ``mean``, ``vote`` or ``max``)."""
        check_aggregate(aggregate, min_share)
        proba = self.predict_table(table)
        frame = pd.DataFrame(proba, columns=self.classes)
        frame.insert(0, "file", [track_name(f, segmented=table.segmented) for f in table.filenames])
        distances = self.model.distances(table)
        if distances is not None:
            frame["distance"] = distances
        return self.per_file(frame, aggregate=aggregate, min_share=min_share)

    def evaluate(self, table) -> tuple[dict, pd.DataFrame]:
        """Metrics and row predictions of the model on a labelled table.

        Warns
        -----
        UserWarning
            When ``table`` holds tracks the saved model was fitted on (``metrics['training_overlap']``).
        """
        encoding = self.model.labels
        try:
            encoding.encode(table.labels)
        except DataError as exc:
            raise DataError(f"{table.name}: {exc}") from None
        proba = self.predict_table(table)
        thresholds = self.thresholds
        predictions = prediction_frame(table, np.arange(table.n_rows), proba, encoding, "evaluate",
                                       thresholds=thresholds)
        metrics = compute_metrics(predictions, encoding, thresholds=thresholds)
        metrics.update(split="none (external evaluation data)", leaky=False, folds=1, model=self.spec.name,
                       data=str(Path(table.path).resolve()) if table.path is not None else None)
        seen = self.training_overlap(table)
        if seen is not None:
            metrics["training_overlap"] = seen
        message = self.overlap_message([table], [])
        if message:
            warnings.warn(message, UserWarning, stacklevel=2)
        return metrics, predictions

    # -- what the model has seen --------------------------------------------------------

    def training_overlap(self, table) -> dict | None:
        """How many of ``table``'s tracks the saved model was fitted on.

        ``{"tracks": n, "of": total, "example": name, "source": csv, "at_most": bool}``,
        or ``None`` when it cannot be told (a bundle without its track list, and a
        different file). ``at_most``: an older bundle whose final fit used only part
        of its training file, which is recognised by checksum: ``n`` is an upper bound.
        """
        final = self.metadata.get("final_fit") or {}
        tracks = sorted({str(t) for t in table.tracks})
        at_most = False
        if "tracks" in final:
            seen = sorted(set(tracks) & {str(t) for t in final["tracks"]})
        else:
            data = self.metadata.get("training_data") or {}
            trained = data.get("sha256")
            same = bool(trained and table.path and Path(table.path).is_file()
                        and file_sha256(table.path) == trained)
            if not same:
                return None
            seen = tracks
            used = int(final.get("n_train", 0)) + int(final.get("n_valid", 0))
            at_most = used < int(data.get("rows") or 0)
        return {"tracks": len(seen), "of": len(tracks), "example": seen[0] if seen else None,
                "source": Path(table.name).name, "at_most": at_most}

    def seen_tracks(self, paths) -> list[str]:
        """The audio files among ``paths`` whose track the saved model was fitted on.

        A file matches a training track id when the id is the file's path without
        extension, or a trailing part of it (``rock.00001`` or ``rock/rock.00001``
        for ``/data/rock/rock.00001.wav``). Empty for a bundle without its track list.
        """
        trained = {str(t) for t in (self.metadata.get("final_fit") or {}).get("tracks", [])}
        seen = []
        for path in paths if trained else []:
            parts = Path(path).with_suffix("").as_posix().split("/")
            if any("/".join(parts[i:]) in trained for i in range(len(parts))):
                seen.append(str(path))
        return seen

    def overlap_message(self, tables, audio) -> str | None:
        """The warning for inputs that are tracks the model was trained on, or ``None``.

        ``tables`` are feature tables or stores, ``audio`` audio file paths; the command
        line prints this line and the Python API warns with it.
        """
        seen, total, example = 0, 0, None
        for table in tables:
            overlap = self.training_overlap(table) or {}
            seen += int(overlap.get("tracks") or 0)
            total += len(set(table.tracks))
            example = example or overlap.get("example")
        trained = self.seen_tracks(audio)
        seen, total = seen + len(trained), total + len(audio)
        example = example or (trained[0] if trained else None)
        if not seen:
            return None
        return (f"WARNING: {seen} of {total} input tracks (e.g. {example}) were used to train this "
                "model: its predictions for them do not show how it does on new music")

    # -- audio --------------------------------------------------------------------------

    def audio_windows(self, audio, *, sr: int | None = None, name: str | None = None) -> AudioProbabilities:
        """The model's probabilities for every window (segment) of one file or array.

        Parameters
        ----------
        audio : str, os.PathLike or np.ndarray [shape=(n,) or (channels, n)]
            An audio file, or samples in memory (with ``sr``).
        sr : int, optional
            The sample rate of an array, in Hz.
        name : str, optional
            What an array's windows are reported under (default ``'array.wav'``).

        Returns
        -------
        AudioProbabilities
            ``proba`` per window, ``starts`` in seconds, ``window_seconds``, ``duration``.

        Raises
        ------
        AudioError
            The file cannot be decoded, or is too short for the model.
        """
        if isinstance(audio, np.ndarray):
            if sr is None:
                raise ConfigError("sr is required with an array: the sample rate of its samples, in Hz. "
                                  "Received: sr=None", param="sr")
            return self.model.predict_audio(name or "array.wav", y=audio, sr=sr)
        if sr is not None:
            raise ConfigError(f"sr is for an array; files give their own sample rate. Received: sr={sr!r}",
                              param="sr")
        return self.model.predict_audio(audio)

    def file_frame(self, windows: AudioProbabilities, *, aggregate: str = "mean",
                   min_share: float = MIN_SHARE) -> pd.DataFrame:
        """The one-row per-file frame of :meth:`classify_audio` for one file's ``windows``
        (from :meth:`audio_windows`): ``file``, ``genre``, [``genres``], [``windows``], the
        confidence columns where the bundle records them, then one probability column per class."""
        check_aggregate(aggregate, min_share)
        return self._file_frame(windows, aggregate=aggregate, min_share=min_share)

    def _file_frame(self, windows: AudioProbabilities, *, aggregate: str = "mean",
                    min_share: float = MIN_SHARE) -> pd.DataFrame:
        part = pd.DataFrame(windows.proba, columns=self.classes)
        part.insert(0, "file", windows.name)
        if windows.distances is not None:
            part["distance"] = windows.distances
        out = self.per_file(part, aggregate=aggregate, min_share=min_share)
        if self.whole_clips:
            out.insert(2, WINDOWS_COLUMN, [len(windows.proba)])
        return out

    def empty_frame(self, *, aggregate: str = "mean") -> pd.DataFrame:
        """The per-file frame with no rows: the columns a prediction of this bundle has."""
        probe = pd.DataFrame({"file": pd.Series(dtype=object),
                              **{c: pd.Series(dtype=float) for c in self.classes}})
        if self.model.distance_percentile(np.zeros(0)) is not None:
            probe["distance"] = pd.Series(dtype=float)
        out = self.per_file(probe, aggregate=aggregate)
        if self.whole_clips:
            out.insert(2, WINDOWS_COLUMN, pd.Series(dtype="Int64"))
        return out

    def classify_audio(self, paths, *, progress=None, aggregate: str = "mean",
                       min_share: float = MIN_SHARE, on_windows=None) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
        """Classify audio files, each featurised exactly as the model's training data was.

        Returns the per-file predictions and ``(file, reason)`` for every file that could
        not be analysed (undecodable, too short for the model); those are skipped.

        Each file is classified segment by segment (image models: a bounded block of
        segments at a time, whatever the file's length) and the windows are pooled per
        file (``aggregate``: ``mean``, ``vote`` or ``max``, see
        :mod:`featx.bundle.fileframe`). A model trained on whole clips (one row per file) is
        served audio in windows of its training clips' length (:attr:`clip_samples`); the
        column ``windows`` then gives the number of windows per file. ``on_windows``, if
        given, is called with each analysed file's :class:`~featx.models.base.AudioProbabilities`
        (``featx predict --timeline`` writes them).
        """
        check_aggregate(aggregate, min_share)
        frames, skipped = [], []
        for path in progress_bar(list(paths), desc="predict", unit="file", progress=progress):
            try:
                windows = self.model.predict_audio(path)
            except AudioError as exc:
                skipped.append((str(path), str(exc).removeprefix(f"{path}: ")))
                continue
            if on_windows is not None:
                on_windows(windows)
            frames.append(self._file_frame(windows, aggregate=aggregate, min_share=min_share))
        if not frames:
            return self.empty_frame(aggregate=aggregate), skipped
        return pd.concat(frames, ignore_index=True), skipped

    # -- the Python API ------------------------------------------------------------------

    def predict(self, data, *, aggregate: str = "mean", min_share: float = MIN_SHARE) -> pd.DataFrame:
        """Classify feature rows: one row per track, with its genre and class probabilities.

        Parameters
        ----------
        data : pandas.DataFrame, str, os.PathLike or FeatureTable
            Rows with the model's feature columns (``label`` and ``length`` are
            ignored): a DataFrame as :func:`featx.extract_features` returns, or the
            path of a feature CSV.
        aggregate : {'mean', 'vote', 'max'}
            How a track's rows are pooled (:data:`featx.training.config.AGGREGATES`).
        min_share : float in (0, 1]
            ``vote``: the share of rows a genre needs to be listed in ``genres``.

        Returns
        -------
        predictions : pandas.DataFrame
            ``file`` (the track), ``genre``, [``genres``], ``confidence``, ``uncertain``,
            ``distance_pct`` (where the bundle recorded them), then one column per class:
            the probabilities of a track's segments averaged (or pooled by ``aggregate``).

        Raises
        ------
        DataError
            Other feature columns, or features made with other extraction settings
            than the model's training data (where both are known).

        Warns
        -----
        UserWarning
            When the rows hold tracks the saved model was trained on.

        Examples
        --------
        >>> rows = featx.extract_features("song.wav", settings=bundle.settings)  # doctest: +SKIP
        >>> bundle.predict(rows)["genre"].tolist()  # doctest: +SKIP
        ['jazz']
        """
        table = as_table(data, require_label=False)
        out = self.classify_table(table, aggregate=aggregate, min_share=min_share)
        message = self.overlap_message([table], [])
        if message:
            warnings.warn(message, UserWarning, stacklevel=2)
        return out

    def predict_audio(self, audio, *, sr: int | None = None, name: str = "array.wav",
                      progress: bool | None = False, aggregate: str = "mean",
                      min_share: float = MIN_SHARE) -> pd.DataFrame:
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
        aggregate : {'mean', 'vote', 'max'}
            How a file's segments are pooled (:data:`featx.training.config.AGGREGATES`).
        min_share : float in (0, 1]
            ``vote``: the share of segments a genre needs to be listed in ``genres``.

        Returns
        -------
        predictions : pandas.DataFrame
            One row per file (or array): ``file``, ``genre``, [``genres``], ``confidence``,
            ``uncertain``, ``distance_pct`` (where the bundle recorded them), then one
            column per class, averaged over the file's segments or pooled by
            ``aggregate`` (a model trained on whole clips adds ``windows``, see
            :meth:`classify_audio`).

        Raises
        ------
        BundleError
            The model's extraction settings are unknown.
        AudioError
            An array that is empty, not finite or too short for the model.
        ConfigError
            An array without ``sr``, ``sr`` with paths, or an input that does not exist.

        Warns
        -----
        UserWarning
            For each file that cannot be analysed (it is left out of the result), and when
            the files are tracks the saved model was trained on.

        Examples
        --------
        >>> bundle.predict_audio(["song.wav", "more_songs/"])  # doctest: +SKIP
        >>> bundle.predict_audio(y, sr=44100)  # doctest: +SKIP
        """
        check_aggregate(aggregate, min_share)
        if isinstance(audio, np.ndarray):
            return self._file_frame(self.audio_windows(audio, sr=sr, name=name), aggregate=aggregate,
                                    min_share=min_share)
        if sr is not None:
            raise ConfigError(f"sr is for an array; files give their own sample rate. Received: sr={sr!r}",
                              param="sr")
        paths = audio_files([audio] if isinstance(audio, (str, os.PathLike)) else list(audio))
        message = self.overlap_message([], paths)
        if message:
            warnings.warn(message, UserWarning, stacklevel=2)
        out, skipped = self.classify_audio(paths, progress=progress, aggregate=aggregate, min_share=min_share)
        for file, reason in skipped:
            warnings.warn(f"skipped {file}: {reason}", UserWarning, stacklevel=2)
        return out
