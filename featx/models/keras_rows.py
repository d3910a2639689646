"""Keras networks on the rows of a feature table (mlp, cnn, lstm).

Each row (a segment, or a whole clip) is one example: its standardised feature
vector goes to the network, which emits one softmax (one genre) or one sigmoid per
genre (several). The network is saved as ``model.keras`` and loaded in Keras's
safe mode, so no code from a bundle ever runs.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from .base import check_finite_proba, rows_of
from .fields import corrupt, tensor_shape
from .keras_fit import KerasModel, fit_keras, load_keras, predict_batches, seed_everything
from .tables import TableFamily

logger = logging.getLogger(__name__)

__all__ = ["KerasRows", "check_keras_shapes"]


class KerasRows(KerasModel, TableFamily):
    """A Keras network on feature rows (see :class:`~featx.models.base.ModelFamily`)."""

    input = "rows"

    # -- training -------------------------------------------------------------------

    def _examples(self, table, rows, y):
        """Network inputs and targets for ``rows`` (one example per row)."""
        rows = rows_of(table, rows)
        return self._transform(table, rows), y[rows]

    def _input_shape(self, X) -> tuple:
        return tuple(X.shape[1:])

    def fit(self, table, train, valid, *, seed, progress=None, desc="epochs", on_epoch=None):
        config = self.config
        self._fit_preprocessing(table, train)
        y = self.labels.encode(table.labels)
        X_tr, y_tr = self._examples(table, train, y)
        X_va, y_va = self._examples(table, valid, y)
        seed_everything(seed)
        model = self.spec.build(self._input_shape(X_tr), self.n_classes, activation=self.labels.activation,
                                **self.params)
        self.history = fit_keras(model, X_tr, targets=y_tr, valid=X_va, valid_targets=y_va, config=config,
                                 labels=self.labels, steps_per_epoch=math.ceil(len(X_tr) / config.batch_size),
                                 progress=progress, desc=desc, on_epoch=on_epoch)
        self.estimator = model
        return self

    def predict_proba(self, table, rows=None) -> np.ndarray:
        X = self._transform(table, rows)
        proba = predict_batches(self.estimator, X, num_classes=self.n_classes)
        return check_finite_proba(proba, self.name)

    # -- persistence --------------------------------------------------------------

    @classmethod
    def load(cls, spec, directory, metadata, params):
        model = cls._read_table_record(spec, directory, metadata, params)
        model._read_sequence_length(directory, metadata)
        path = Path(directory) / cls.model_file
        model.estimator = load_keras(path)
        check_keras_shapes(path, model.estimator, model._expected_input(),
                           n_classes=len(model.preprocessing.classes))
        return model

    def _read_sequence_length(self, directory, metadata) -> None:
        """Segment models read their sequence length here; row models have none."""

    def _expected_input(self) -> tuple:
        return (None, len(self.feature_columns))


def check_keras_shapes(path: Path, model, expected_in: tuple, *, n_classes: int) -> None:
    """The Keras model has one input of shape ``expected_in`` and emits one value per class.

    Raises
    ------
    BundleError
        Another number of inputs or outputs, or other shapes (the bundle was tampered with).
    """
    inputs, outputs = list(model.inputs), list(model.outputs)
    if len(inputs) != 1 or len(outputs) != 1:
        raise corrupt(path, "model", "must have one input and one output. "
                                     f"Received: {len(inputs)} input(s), {len(outputs)} output(s)",
                      received=False)
    shape_in, shape_out = tensor_shape(inputs[0]), tensor_shape(outputs[0])
    if shape_in != tuple(expected_in):
        raise corrupt(path, "input shape", f"must be {tuple(expected_in)} (the features of metadata.json)",
                      shape_in)
    if shape_out != (None, n_classes):
        raise corrupt(path, "output shape", f"must be {(None, n_classes)} (one value per class)",
                      shape_out)
