"""The model object: one adapter per model family, and what every family shares.

featx trains four families of models: scikit-learn estimators on the rows of a
feature table (:class:`~featx.models.sklearn_rows.SklearnRows`), Keras networks on
those rows (:class:`~featx.models.keras_rows.KerasRows`), Keras networks on the
sequence of a track's segment rows (:class:`~featx.models.keras_segments.KerasSegments`)
and Keras networks on the images of a spectrogram store
(:class:`~featx.models.keras_images.KerasImages`). Each family is one class with
the methods below; cross-validation, bundles, sweeps, the estimator and the command
line call them and never ask which family they hold.

Life of a model object::

    model = registry.create(config, labels, table=table)  # unfitted
    model.check_input(table); model.check_split(split)     # before anything is trained
    model.fit(table, train_rows, valid_rows, seed=0, on_epoch=callback)
    proba = model.predict_proba(table, test_rows)          # (n_rows, n_classes)
    model.save(folder)                                     # model file + preprocessing.json
    model = Family.load(spec, folder, metadata)            # every value checked; no refit
    model.predict_audio("song.wav")                        # windows of one file, streamed

Probabilities are always row-level: one row per table row (a segment model gives
each of a track's rows the track's probabilities), so metrics, reports and
per-file averages are the same for every family.
"""
from __future__ import annotations

import importlib.metadata
import json
import logging
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from ..runtime.keras import import_keras
from .._version import __version__
from ..data.labels import LabelEncoding
from ..errors import AudioError, BundleError, DataError, TrainingError
from ..io.atomic import atomic_write

logger = logging.getLogger(__name__)

__all__ = ["ModelFamily", "AudioProbabilities", "rows_of", "check_finite_proba", "library_versions"]

#: Bundle file of a model's preprocessing (feature columns or image kinds, scaler, labels).
PREPROCESSING = "preprocessing.json"


@dataclass
class AudioProbabilities:
    """Row-level probabilities of one audio file (or array), window by window.

    Attributes
    ----------
    name : str
        The file (or the name an array is reported under).
    proba : np.ndarray [shape=(n_windows, n_classes)]
        The model's probabilities for each segment, or each window of a model
        trained on whole clips (a segment-sequence model gives every segment the
        track's probabilities).
    starts : np.ndarray [shape=(n_windows,)]
        Where each window starts, in seconds.
    window_seconds : float
        The length of each window, in seconds.
    duration : float
        The length of the audio, in seconds (after resampling to the model's rate).
    distances : np.ndarray [shape=(n_windows,)] or None
        How far each window's features lie from the training rows
        (:meth:`ModelFamily.distances`); ``None`` for a model that keeps no reference.
    """

    name: str
    proba: np.ndarray
    starts: np.ndarray
    window_seconds: float
    duration: float
    distances: np.ndarray | None = None


def rows_of(table, rows) -> np.ndarray:
    """``rows`` as an index array; ``None`` means every row of ``table``."""
    if rows is None:
        return np.arange(table.n_rows)
    return np.asarray(rows, dtype=np.int64)


def check_finite_proba(proba: np.ndarray, desc: str) -> np.ndarray:
    """Raise :class:`TrainingError` when a model's probabilities are not all finite."""
    if not np.all(np.isfinite(proba)):
        raise TrainingError(f"{desc}: the model predicts non-finite probabilities; training diverged")
    return proba


class ModelFamily:
    """A model of one family: built from hyperparameters and a label encoding.

    Parameters
    ----------
    spec : ModelSpec
        The registry entry (name, builder, hyperparameters).
    params : dict
        Resolved hyperparameters (:meth:`ModelSpec.resolve`).
    labels : LabelEncoding
        The fitted label encoding: one genre per row (softmax) or several (sigmoid).
    config : TrainConfig, optional
        The validated training configuration (epochs, optimizer, schedules...); needed
        to fit, not to predict with a loaded model.
    table : FeatureTable or StoreTable, optional
        The whole table of a training run, for facts every fold must share.

    Attributes
    ----------
    preprocessing : Preprocessing or ImagePreprocessing or None
        Fitted on the training rows by :meth:`fit` (read back by :meth:`load`).
    estimator : object or None
        The fitted network or scikit-learn estimator.
    history : dict
        Per-epoch training metrics of the last :meth:`fit` (Keras families; empty otherwise).
    """

    #: What the family reads: ``'rows'``, ``'segments'`` (a track's rows) or ``'images'``.
    input: ClassVar[str] = "rows"
    #: The library that trains it (recorded in bundles): ``'keras'`` or ``'sklearn'``.
    library: ClassVar[str] = "keras"
    #: The bundle file that holds the fitted model.
    model_file: ClassVar[str] = "model.keras"
    #: The oldest bundle format that can hold this family's files.
    format_version: ClassVar[int] = 1
    #: Whether a fit holds out a validation part (early stopping, learning-rate plateaus).
    uses_validation: ClassVar[bool] = True
    #: Whether the Keras training options (epochs, batch size, optimizer, ...) apply.
    keras_training: ClassVar[bool] = True
    #: Whether the image augmentation options (masks, shifts, mixup) apply.
    augments_images: ClassVar[bool] = False

    def __init__(self, spec, params: dict, labels: LabelEncoding, *, config=None, table=None):
        self.spec = spec
        self.params = dict(params)
        self.labels = labels
        self.config = config
        self.preprocessing = None
        self.estimator = None
        self.history: dict = {}

    # -- identity ---------------------------------------------------------------

    @property
    def name(self) -> str:
        """The registry name of the model (``svm``, ``mlp``, ...)."""
        return self.spec.name

    @property
    def classes(self) -> list[str]:
        """The genre names, in the order of the model's outputs."""
        return list(self.labels.classes_)

    @property
    def n_classes(self) -> int:
        return len(self.labels.classes_)

    @property
    def multi_label(self) -> bool:
        return bool(self.labels.multi_label)

    @classmethod
    def image_kinds(cls, spec, params: dict) -> tuple[str, ...]:
        """The store kinds a model with ``params`` reads; ``()`` for table models."""
        return ()

    def __repr__(self) -> str:
        state = "fitted" if self.estimator is not None else "unfitted"
        return f"{type(self).__name__}({self.name!r}, {self.n_classes} classes, {state})"

    # -- before training ----------------------------------------------------------

    def check_input(self, table) -> None:
        """Raise :class:`~featx.errors.DataError` unless the model can read ``table``."""
        raise NotImplementedError

    def check_split(self, split: str) -> None:
        """Raise :class:`~featx.errors.ConfigError` for a split the model cannot be evaluated with."""

    def check_trainable(self, table) -> None:
        """Refuse, before anything is read or trained, what would fail only in a fold."""

    # -- training and prediction --------------------------------------------------

    def fit(self, table, train, valid, *, seed: int, progress=None, desc: str = "epochs",
            on_epoch=None) -> "ModelFamily":
        """Fit the preprocessing and the model on rows ``train`` of ``table``.

        Parameters
        ----------
        table : FeatureTable or StoreTable
        train, valid : array of int
            Row indices: the model learns from ``train``; ``valid`` (may be empty)
            drives early stopping and learning-rate plateaus.
        seed : int
            Seeds the weights, shuffling and augmentation.
        progress : bool or None
            Epoch progress bars (``None``: on a terminal).
        desc : str
            What the progress bar and error messages call this fit (``fold2``).
        on_epoch : callable, optional
            ``on_epoch(epoch, logs)`` after every epoch (Keras families): ``logs`` holds
            the epoch's metrics (``loss``, ``val_loss``, ``val_accuracy``...). An exception
            it raises stops the fit and propagates (a sweep's pruning).

        Returns
        -------
        self

        Raises
        ------
        TrainingError
            The training loss became NaN or infinite.
        """
        raise NotImplementedError

    def predict_proba(self, table, rows=None) -> np.ndarray:
        """Class probabilities of ``rows`` of ``table`` (all rows by default), shape ``(n, n_classes)``."""
        raise NotImplementedError

    # -- new data -----------------------------------------------------------------

    def check_table(self, table):
        """Raise :class:`~featx.errors.DataError` unless ``table`` holds what the model was
        trained on (its columns and extraction settings, or its store's image settings)."""
        raise NotImplementedError

    def predict_audio(self, source, *, y=None, sr: int | None = None) -> AudioProbabilities:
        """Probabilities of every window of one audio file, made as the training data was.

        Parameters
        ----------
        source : str or Path
            The file; with ``y``, the name its samples are reported under.
        y : np.ndarray [shape=(n,) or (channels, n)], optional
            Samples in memory instead of decoding ``source``.
        sr : int, optional
            The sample rate of ``y``.

        Raises
        ------
        AudioError
            The file cannot be decoded, or is too short for the model.
        """
        raise NotImplementedError

    def distances(self, table, rows=None) -> np.ndarray | None:
        """How far ``rows`` of ``table`` lie from the training rows, one number per row
        (:class:`~featx.models.distance.TrainingDistance`); ``None`` for a model without
        a reference (image models, bundles written before featx kept one)."""
        return None

    def distance_percentile(self, distances) -> np.ndarray | None:
        """``distances`` as percentiles (0-100) of the training rows' own; ``None`` without a reference."""
        return None

    # -- persistence --------------------------------------------------------------

    def record(self) -> dict:
        """``metadata.json`` entries that describe the model's input (columns, settings...)."""
        return {}

    def save_distance(self, directory) -> str | None:
        """Write the training rows' distance reference into ``directory``; its file name, or
        ``None`` for a model that keeps none."""
        return None

    def save(self, directory) -> list[str]:
        """Write the fitted model and its preprocessing into ``directory``; returns the file names."""
        raise NotImplementedError

    def save_preprocessing(self, directory) -> str:
        """Write ``preprocessing.json`` (the fitted preprocessing and the label encoding)."""
        atomic_write(Path(directory) / PREPROCESSING,
                     json.dumps(self.preprocessing.to_dict(), indent=2) + "\n")
        return PREPROCESSING

    @classmethod
    def load(cls, spec, directory: Path, metadata: dict, params: dict) -> "ModelFamily":
        """The model a bundle folder holds, every value checked first.

        Raises
        ------
        BundleError
            A file is missing, damaged or disagrees with another (one line naming it).
        """
        raise NotImplementedError

    # -- resources ----------------------------------------------------------------

    @classmethod
    def device(cls) -> str:
        """Where the family's models train (``tensorflow/cpu``, ``jax/gpu``, ``cpu (scikit-learn)``)."""
        return "cpu"

    @classmethod
    def release(cls) -> None:
        """Free what the library keeps between fits (Keras's graph state); idempotent."""

    @classmethod
    def prepare_process(cls, threads: int | None = None) -> None:
        """Configure this process once for fitting this family (thread counts, GPU memory)."""

    @classmethod
    def installed_versions(cls) -> dict:
        """The versions of the libraries this family's models depend on, as installed now."""
        return library_versions(keras_too=cls.library == "keras")


def too_short(name, n_samples: int, sr: int, needed: int, what: str) -> AudioError:
    """The error for audio shorter than a model can analyse (``what``: ``one 3-s segment``)."""
    return AudioError(f"{name}: {n_samples / sr:.2f} s long, shorter than {what} ({needed} samples at {sr} Hz): "
                      "too short for the model")


def missing_file(path: Path, what: str) -> BundleError:
    """The error for a bundle file that is not there."""
    return BundleError(f"{path}: missing; expected {what}")


def refuse_rows(table, detail: str) -> DataError:
    """A one-line DataError naming ``table``."""
    return DataError(f"{table.name}: {detail}")


def _distribution_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - a dependency
        return None


def library_versions(*, keras_too: bool = True) -> dict:
    """Versions that matter for reproducing a saved model (recorded in bundles, compared at loading)."""
    # the installed distributions' versions: importing pandas and scikit-learn to ask costs seconds
    versions = {"featx": __version__, "python": platform.python_version(),
                "numpy": np.__version__, "pandas": _distribution_version("pandas"),
                "scikit-learn": _distribution_version("scikit-learn")}
    if keras_too:
        keras = import_keras()
        versions["keras"] = keras.__version__
        versions["keras_backend"] = backend = keras.backend.backend()
        try:
            module = __import__({"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[backend])
            versions[backend] = module.__version__
        except (KeyError, ImportError):  # pragma: no cover
            pass
    return versions
