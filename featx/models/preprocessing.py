"""Preprocessing fitted on training rows only, saved as plain numbers.

:class:`Preprocessing` standardises the feature columns of a table (with every row
first brought to one loudness, when asked, and the ``*_var`` columns log-scaled);
:class:`ImagePreprocessing` standardises each
image kind of a spectrogram store by one mean and deviation. Both carry the
label encoding, write themselves to a bundle's ``preprocessing.json`` and are
read back from it with every value checked (:func:`read_preprocessing`,
:func:`read_image_preprocessing`).
"""
from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.labels import LabelEncoding
from ..errors import BundleError, ConfigError
from ..features.gain import follows_gain_law, normalise_level
from ..features.spectrograms import KINDS
from .fields import check_int, check_names, check_numbers, corrupt, first_line, is_number

logger = logging.getLogger(__name__)

__all__ = ["LOG_EPSILON", "LEVELS", "Preprocessing", "ImagePreprocessing", "read_preprocessing",
           "read_image_preprocessing"]

#: Added to variance columns before their logarithm (keeps zero variances finite).
LOG_EPSILON = 1e-12

#: What a fitted scaler can hold: a scale of 1e-300 or a mean of 1e308 overflows float64
#: on the first row (no feature table featx reads needs anything near these bounds).
MAX_SCALE, MIN_SCALE, MAX_MEAN = 1e12, 1e-12, 1e12

#: Rows read at a time while fitting the per-kind image statistics.
READ_ROWS = 256

#: What :class:`Preprocessing` does with a row's level: ``normalised`` (every row brought to
#: :data:`featx.features.gain.REFERENCE_DB` by the gain law before anything else) or
#: ``as-recorded`` (the level kept; every bundle written before this choice existed).
LEVELS = ("normalised", "as-recorded")


@dataclass
class Preprocessing:
    """The label encoding and a standard scaler, stored as plain numbers.

    ``fit`` uses scikit-learn's :class:`~sklearn.preprocessing.StandardScaler`;
    the learned mean and scale are kept as lists so a bundle never needs
    unpickling. How many labels a row has is the business of ``labels``
    (a :class:`~featx.data.labels.LabelEncoding`). With ``level="normalised"`` every
    row is first brought to one loudness (:func:`featx.features.gain.normalise_level`),
    so rows of the same music at any gain are standardised to the same numbers.
    """

    feature_columns: list[str]
    labels: LabelEncoding
    log_columns: list[str] = field(default_factory=list)
    mean_: np.ndarray | None = None
    scale_: np.ndarray | None = None
    level: str = "as-recorded"

    def __post_init__(self):
        if self.level not in LEVELS:
            raise ConfigError(f"level must be one of {', '.join(LEVELS)}. Received: level={self.level!r}")
        if self.level == "normalised" and not follows_gain_law(self.feature_columns):
            raise ConfigError("level 'normalised' needs the rms_mean column, which gives each row's "
                              "level; the feature columns have none")

    @property
    def classes(self) -> list[str]:
        """The genre names, in the order of the model's outputs."""
        return list(self.labels.classes_)

    @classmethod
    def for_labels(cls, feature_columns, labels, *, log_variances: bool = False,
                   multi_label: bool = False) -> "Preprocessing":
        """Classes from ``labels``; with ``log_variances`` the ``*_var`` columns are log-scaled.

        Variance summaries span several orders of magnitude; their logarithm
        (a fixed, stateless transform applied before the scaler) is closer to
        normal, which the scaler and the models assume.
        """
        encoding = LabelEncoding(multi_label=multi_label).fit(labels)
        logs = [c for c in feature_columns if c.endswith("_var")] if log_variances else []
        return cls(list(feature_columns), encoding, logs)

    def _prepare(self, X) -> np.ndarray:
        X = np.array(X, dtype=np.float64)
        if self.level == "normalised":
            X = normalise_level(X, self.feature_columns)
        if self.log_columns:
            idx = [self.feature_columns.index(c) for c in self.log_columns]
            X[:, idx] = np.log(np.maximum(X[:, idx], 0.0) + LOG_EPSILON)
        return X

    def encode(self, labels) -> np.ndarray:
        """Model targets for label strings (see :meth:`LabelEncoding.encode`)."""
        return self.labels.encode(labels)

    def fit(self, X) -> "Preprocessing":
        from sklearn.preprocessing import StandardScaler  # scikit-learn is heavy: only when fitting

        scaler = StandardScaler().fit(self._prepare(X))
        return dataclasses.replace(self, mean_=scaler.mean_.copy(), scale_=scaler.scale_.copy())

    def transform(self, X) -> np.ndarray:
        if self.mean_ is None:
            raise ConfigError("the scaler is not fitted; call fit() on training rows first")
        return ((self._prepare(X) - self.mean_) / self.scale_).astype(np.float32)

    def to_dict(self) -> dict:
        return {
            "feature_columns": list(self.feature_columns),
            "classes": list(self.classes),
            "labels": self.labels.to_dict(),
            "log_columns": list(self.log_columns),
            "log_epsilon": LOG_EPSILON,
            "scaler": {"mean": [float(v) for v in self.mean_], "scale": [float(v) for v in self.scale_]},
            "level": self.level,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Preprocessing":
        columns = [str(c) for c in data["feature_columns"]]
        mean = np.asarray(data["scaler"]["mean"], dtype=np.float64)
        scale = np.asarray(data["scaler"]["scale"], dtype=np.float64)
        if mean.shape != (len(columns),) or scale.shape != (len(columns),) or not np.all(scale > 0):
            raise ValueError("scaler mean/scale do not match the feature columns")
        logs = [str(c) for c in data.get("log_columns", [])]
        if any(c not in columns for c in logs):
            raise ValueError("log_columns name unknown feature columns")
        if "labels" in data:
            encoding = LabelEncoding.from_dict(data["labels"])
            if encoding.classes_ != [str(c) for c in data["classes"]]:
                raise ValueError("labels and classes list different genres")
        else:  # written before label encodings were stored: one genre per row
            encoding = LabelEncoding.from_dict({"classes": list(data["classes"])})
        # written before the level could be normalised: kept as recorded
        return cls(columns, encoding, logs, mean, scale, str(data.get("level", "as-recorded")))


@dataclass
class ImagePreprocessing:
    """The label encoding and per-kind standardisation of an image model, as plain numbers.

    Attributes
    ----------
    kinds : list of str
        The image kinds the model reads, in the order of its inputs.
    labels : LabelEncoding
    shapes : dict
        ``kind -> [height, width]`` of the images the model was trained on.
    mean_, std_ : dict
        ``kind -> float``: mean and standard deviation of all pixels of that kind over
        the training rows (learned by :meth:`fit`).
    """

    kinds: list[str]
    labels: LabelEncoding
    shapes: dict = field(default_factory=dict)
    mean_: dict | None = None
    std_: dict | None = None

    @property
    def classes(self) -> list[str]:
        return list(self.labels.classes_)

    @property
    def feature_columns(self) -> list[str]:
        """The kinds (a bundle lists them where a table model lists its columns)."""
        return list(self.kinds)

    def encode(self, labels) -> np.ndarray:
        return self.labels.encode(labels)

    def fit(self, store, rows) -> "ImagePreprocessing":
        """Per-kind mean and standard deviation over the images of ``rows``, read in blocks.

        ``musicnn`` images keep mean 0 and deviation 1: they go to the pretrained network
        as computed, whose own input batch norm holds the statistics it was trained with.
        """
        rows = np.sort(np.asarray(rows, dtype=np.int64))
        total = {k: 0.0 for k in self.kinds}
        squares = {k: 0.0 for k in self.kinds}
        count = {k: 0 for k in self.kinds}
        for start in range(0, len(rows), READ_ROWS):
            block = store.read(rows[start:start + READ_ROWS], self.kinds)
            for kind, images in block.items():
                values = images.astype(np.float64)
                total[kind] += float(values.sum())
                squares[kind] += float(np.square(values).sum())
                count[kind] += values.size
        mean = {k: total[k] / max(count[k], 1) for k in self.kinds}
        std = {k: float(np.sqrt(max(squares[k] / max(count[k], 1) - mean[k] ** 2, 0.0))) for k in self.kinds}
        std = {k: v if v > 1e-8 else 1.0 for k, v in std.items()}
        if "musicnn" in self.kinds:  # the pretrained network's input batch norm standardises these
            mean["musicnn"], std["musicnn"] = 0.0, 1.0
        return dataclasses.replace(self, mean_=mean, std_=std)

    def transform(self, images: dict) -> dict:
        """``kind -> float32 images``, standardised."""
        if self.mean_ is None:
            raise ConfigError("the image statistics are not fitted; call fit() on training rows first")
        return {k: ((images[k] - self.mean_[k]) / self.std_[k]).astype(np.float32) for k in self.kinds}

    def model_input(self, images: dict):
        """What the Keras model is called with: one array, or a dict of arrays per kind."""
        images = self.transform(images)
        return images[self.kinds[0]] if len(self.kinds) == 1 else images

    def to_dict(self) -> dict:
        return {
            "input": "images",
            "feature_columns": list(self.kinds),
            "classes": list(self.classes),
            "labels": self.labels.to_dict(),
            "shapes": {k: [int(d) for d in self.shapes[k]] for k in self.kinds},
            "mean": {k: float(self.mean_[k]) for k in self.kinds},
            "std": {k: float(self.std_[k]) for k in self.kinds},
        }

    @classmethod
    def from_dict(cls, data: dict) -> "ImagePreprocessing":
        kinds = [str(k) for k in data["feature_columns"]]
        labels = LabelEncoding.from_dict(data["labels"])
        shapes = {k: tuple(int(d) for d in data["shapes"][k]) for k in kinds}
        mean = {k: float(data["mean"][k]) for k in kinds}
        std = {k: float(data["std"][k]) for k in kinds}
        return cls(kinds, labels, shapes, mean, std)


def _check_preprocessing(path: Path, data: dict) -> None:
    """Check the plain data of ``preprocessing.json`` (columns, classes, scaler).

    Raises
    ------
    BundleError
        Any field missing, of the wrong type or out of range.
    """
    columns = check_names(path, "feature_columns", data.get("feature_columns"))
    check_names(path, "classes", data.get("classes"))
    logs = check_names(path, "log_columns", data.get("log_columns", []), empty=True)
    unknown = [c for c in logs if c not in columns]
    if unknown:
        raise corrupt(path, "log_columns", "must name feature columns; unknown column", unknown[0])
    level = data.get("level", "as-recorded")
    if level not in LEVELS:
        raise corrupt(path, "level", f"must be one of {', '.join(LEVELS)}", level)
    if level == "normalised" and not follows_gain_law(columns):
        raise corrupt(path, "level", "'normalised' needs the rms_mean column among feature_columns", level)
    epsilon = data.get("log_epsilon", 1e-12)
    if not is_number(epsilon) or not 0 < epsilon < 1:
        raise corrupt(path, "log_epsilon", "must be a number in (0, 1)", epsilon)
    scaler = data.get("scaler")
    if not isinstance(scaler, dict):
        raise corrupt(path, "scaler", "must be an object with 'mean' and 'scale'", scaler)
    check_numbers(path, "scaler.mean", scaler.get("mean"), len(columns), bound=(-MAX_MEAN, MAX_MEAN))
    check_numbers(path, "scaler.scale", scaler.get("scale"), len(columns), positive=True,
             bound=(MIN_SCALE, MAX_SCALE))
    labels = data.get("labels")
    if labels is None:
        raise corrupt(path, "labels", "must be present (the label encoding)", None, received=False)
    if labels is not None:
        if not isinstance(labels, dict):
            raise corrupt(path, "labels", "must be an object", labels)
        check_names(path, "labels.classes", labels.get("classes"))
        if not isinstance(labels.get("multi_label", False), bool):
            raise corrupt(path, "labels.multi_label", "must be true or false", labels.get("multi_label"))


def _check_image_preprocessing(path: Path, data: dict) -> None:
    """The plain data of an image model's ``preprocessing.json``: kinds, classes, shapes, statistics."""
    kinds = check_names(path, "feature_columns", data.get("feature_columns"))
    for kind in kinds:
        if kind not in KINDS:
            raise corrupt(path, "feature_columns", f"must list image kinds ({', '.join(KINDS)})", kind)
    check_names(path, "classes", data.get("classes"))
    labels = data.get("labels")
    if not isinstance(labels, dict):
        raise corrupt(path, "labels", "must be an object", labels)
    check_names(path, "labels.classes", labels.get("classes"))
    if not isinstance(labels.get("multi_label", False), bool):
        raise corrupt(path, "labels.multi_label", "must be true or false", labels.get("multi_label"))
    for name in ("shapes", "mean", "std"):
        if not isinstance(data.get(name), dict) or sorted(data[name]) != sorted(kinds):
            raise corrupt(path, name, f"must be an object with one entry per kind ({', '.join(kinds)})",
                          data.get(name))
    for kind in kinds:
        shape = data["shapes"][kind]
        if not isinstance(shape, list) or len(shape) != 2:
            raise corrupt(path, f"shapes.{kind}", "must be [height, width]", shape)
        for i, size in enumerate(shape):
            check_int(path, f"shapes.{kind}[{i}]", size, low=1, high=1_000_000)
        mean, std = data["mean"][kind], data["std"][kind]
        if not (is_number(mean) and math.isfinite(mean)):
            raise corrupt(path, f"mean.{kind}", "must be a finite number", mean)
        if not (is_number(std) and math.isfinite(std) and std > 0):
            raise corrupt(path, f"std.{kind}", "must be a finite number > 0", std)


def read_preprocessing(path: Path, data: dict) -> Preprocessing:
    """A table model's ``preprocessing.json`` (already parsed), every value checked.

    Raises
    ------
    BundleError
        Any field missing, of the wrong type or out of range (one line naming it).
    """
    _check_preprocessing(path, data)
    try:
        return Preprocessing.from_dict(data)
    except Exception as exc:  # checked above; anything left is corruption too
        raise BundleError(f"corrupt bundle: {path}: {first_line(exc)}") from None


def read_image_preprocessing(path: Path, data: dict) -> ImagePreprocessing:
    """An image model's ``preprocessing.json`` (already parsed), every value checked.

    Raises
    ------
    BundleError
        Any field missing, of the wrong type or out of range (one line naming it).
    """
    _check_image_preprocessing(path, data)
    try:
        prep = ImagePreprocessing.from_dict(data)
    except Exception as exc:  # checked above; anything left is corruption too
        raise BundleError(f"corrupt bundle: {path}: {first_line(exc)}") from None
    if prep.classes != [str(c) for c in data["classes"]]:
        raise BundleError(f"corrupt bundle: {path}: labels and classes list different genres")
    return prep
