"""Preprocessing fitted on training rows only: log transforms and scaling."""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field

import numpy as np

from ..data.labels import LabelEncoding
from ..errors import ConfigError

logger = logging.getLogger(__name__)

#: Added to variance columns before their logarithm (keeps zero variances finite).
LOG_EPSILON = 1e-12


# ---------------------------------------------------------------------------
# Preprocessing as plain data


@dataclass
class Preprocessing:
    """The label encoding and a standard scaler, stored as plain numbers.

    ``fit`` uses scikit-learn's :class:`~sklearn.preprocessing.StandardScaler`;
    the learned mean and scale are kept as lists so a bundle never needs
    unpickling. How many labels a row has is the business of ``labels``
    (a :class:`~featx.data.labels.LabelEncoding`).
    """

    feature_columns: list[str]
    labels: LabelEncoding
    log_columns: list[str] = field(default_factory=list)
    mean_: np.ndarray | None = None
    scale_: np.ndarray | None = None

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
        if self.log_columns:
            idx = [self.feature_columns.index(c) for c in self.log_columns]
            X[:, idx] = np.log(np.maximum(X[:, idx], 0.0) + LOG_EPSILON)
        return X

    def encode(self, labels) -> np.ndarray:
        """Model targets for label strings (see :meth:`LabelEncoding.encode`)."""
        return self.labels.encode(labels)

    def fit(self, X) -> "Preprocessing":
        from sklearn.preprocessing import StandardScaler

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
        return cls(columns, encoding, logs, mean, scale)
