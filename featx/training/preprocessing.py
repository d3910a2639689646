"""Preprocessing fitted on training rows only: log transforms and scaling."""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError, DataError

logger = logging.getLogger(__name__)

#: Added to variance columns before their logarithm (keeps zero variances finite).
LOG_EPSILON = 1e-12


# ---------------------------------------------------------------------------
# Preprocessing as plain data


@dataclass
class Preprocessing:
    """Label classes and a standard scaler, stored as plain numbers.

    ``fit`` uses scikit-learn's :class:`~sklearn.preprocessing.StandardScaler`;
    the learned mean and scale are kept as lists so a bundle never needs
    unpickling.
    """

    feature_columns: list[str]
    classes: list[str]
    log_columns: list[str] = field(default_factory=list)
    mean_: np.ndarray | None = None
    scale_: np.ndarray | None = None

    @classmethod
    def for_labels(cls, feature_columns, labels, *, log_variances: bool = False) -> "Preprocessing":
        """Classes from ``labels``; with ``log_variances`` the ``*_var`` columns are log-scaled.

        Variance summaries span several orders of magnitude; their logarithm
        (a fixed, stateless transform applied before the scaler) is closer to
        normal, which the scaler and the models assume.
        """
        from sklearn.preprocessing import LabelEncoder

        encoder = LabelEncoder().fit(np.asarray(labels, dtype=str))
        logs = [c for c in feature_columns if c.endswith("_var")] if log_variances else []
        return cls(list(feature_columns), [str(c) for c in encoder.classes_], logs)

    def _prepare(self, X) -> np.ndarray:
        X = np.array(X, dtype=np.float64)
        if self.log_columns:
            idx = [self.feature_columns.index(c) for c in self.log_columns]
            X[:, idx] = np.log(np.maximum(X[:, idx], 0.0) + LOG_EPSILON)
        return X

    def encode(self, labels) -> np.ndarray:
        lookup = {c: i for i, c in enumerate(self.classes)}
        labels = np.asarray(labels, dtype=str)
        unknown = sorted(set(labels) - set(lookup))
        if unknown:
            raise DataError(
                f"label {str(unknown[0])!r} is not one of the model's classes ({', '.join(self.classes)})"
            )
        return np.array([lookup[v] for v in labels], dtype=np.int64)

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
        return cls(columns, [str(c) for c in data["classes"]], logs, mean, scale)
