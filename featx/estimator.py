"""A scikit-learn estimator for every featx model: :class:`GenreClassifier`.

``GenreClassifier(model="svm", C=3)`` follows scikit-learn's estimator contract:
its hyperparameters and training options are parameters (``get_params`` /
``set_params``, so ``clone``, ``GridSearchCV``, ``cross_val_score`` and ``Pipeline``
work with it), ``fit(X, y, groups=None)`` fits one model on a matrix or a DataFrame
of feature rows without writing anything, learned state ends in ``_``, and
``predict``, ``predict_proba``, ``classes_`` and ``score`` are scikit-learn's.
``save(directory)`` writes a normal bundle that ``featx predict`` and ``featx
evaluate`` read; :func:`featx.load_bundle` gives an estimator back.

Inside, it is the same model object (:mod:`featx.models`) that ``featx train``
cross-validates: the preprocessing is fitted on the rows given to ``fit`` only.
Use :class:`featx.GroupedSplit` as ``cv=`` so that scikit-learn's tools split by
track or artist as featx does.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import numpy as np

# scikit-learn's bases, at import: featx imports this module only when GenreClassifier is used
from sklearn.base import BaseEstimator, ClassifierMixin

from .bundle import Bundle, check_output_dir, prepare_output_dir, write_bundle
from .bundle import load_bundle as _load_bundle
from .bundle.multilabel import read_thresholds
from .data.frames import as_table, table_from_arrays
from .data.labels import SEPARATOR
from .data.splits import inner_split
from .errors import ConfigError, DataError
from .models.params import DEPTH
from .models.registry import get_model
from .training.config import TrainConfig
from .training.cv import fold_design, tuning_rows
from .training.multilabel_eval import fold_thresholds

logger = logging.getLogger(__name__)

__all__ = ["GenreClassifier", "TRAINING_OPTIONS"]

#: The training options a :class:`GenreClassifier` takes (those of ``featx train`` that apply
#: to one fit: how rows are split into folds is the business of scikit-learn's ``cv``).
TRAINING_OPTIONS = tuple(f.name for f in dataclasses.fields(TrainConfig)
                         if f.name not in ("model", "params", "split", "folds", "artist_map", "split_dir",
                                           "refit"))



class GenreClassifier(ClassifierMixin, BaseEstimator):
    """A featx model as a scikit-learn classifier.

    Parameters
    ----------
    model : str
        A registered model (``featx models`` lists them): ``svm``, ``knn``,
        ``random-forest``, ``ensemble``, ``mlp``, ``cnn``, ``lstm``, ``segment-lstm``.
        Image models read spectrogram stores; train them with :func:`featx.train`.
    epochs, batch_size, learning_rate, optimizer, seed, patience, reduce_lr_patience, \
reduce_lr_factor, min_lr, lr_schedule, log_variances, loudness, valid_fraction, multi_label, threshold
        The training options of ``featx train`` (``None``: featx's default, or the
        model's own). ``valid_fraction`` of the training tracks is held out for early
        stopping (Keras models); ``multi_label=True`` trains one sigmoid (or one
        classifier) per genre.
    **hyperparameters
        The model's hyperparameters by name (``C=3``, ``units=(64, 32)``, ``depth=2``);
        ``None`` means the model's default. :meth:`get_params` lists them all, so
        ``GridSearchCV`` can search them.

    Attributes
    ----------
    classes_ : np.ndarray
        The classes, in the order of :meth:`predict_proba`'s columns (the sorted labels
        of ``y``; for multi-hot ``y``, its column numbers).
    n_features_in_ : int
    feature_names_in_ : np.ndarray
        Only when ``X`` was a DataFrame.
    model_ : ModelFamily
        The fitted model object.
    bundle_ : Bundle
        The fitted model as a bundle (its predictions on audio files, its metadata).

    Examples
    --------
    >>> from sklearn.model_selection import GridSearchCV
    >>> clf = GridSearchCV(GenreClassifier(model="svm"), {"C": [1, 10]},
    ...                    cv=GroupedSplit(by="track", n_splits=5))  # doctest: +SKIP
    >>> clf.fit(X, y, groups=tracks).best_params_  # doctest: +SKIP
    {'C': 10}
    """

    def __init__(self, model: str = "svm", *, epochs=None, batch_size=None, learning_rate=None,
                 optimizer=None, seed=None, patience=None, reduce_lr_patience=None, reduce_lr_factor=None,
                 min_lr=None, lr_schedule=None, time_masks=None, freq_masks=None, mask_width=None,
                 time_shift=None, time_shift_mode=None, mixup=None, log_variances=None, loudness=None,
                 valid_fraction=None, multi_label=None, threshold=None, **hyperparameters):
        self.model = model
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.optimizer = optimizer
        self.seed = seed
        self.patience = patience
        self.reduce_lr_patience = reduce_lr_patience
        self.reduce_lr_factor = reduce_lr_factor
        self.min_lr = min_lr
        self.lr_schedule = lr_schedule
        self.time_masks = time_masks
        self.freq_masks = freq_masks
        self.mask_width = mask_width
        self.time_shift = time_shift
        self.time_shift_mode = time_shift_mode
        self.mixup = mixup
        self.log_variances = log_variances
        self.loudness = loudness
        self.valid_fraction = valid_fraction
        self.multi_label = multi_label
        self.threshold = threshold
        for name, value in hyperparameters.items():
            setattr(self, name, value)
        self._hyperparameters = tuple(hyperparameters)

    # -- parameters -----------------------------------------------------------------

    def _hyperparameter_names(self) -> list[str]:
        """The current model's hyperparameters, then any other set by name (refused at fit)."""
        try:
            spec = get_model(self.model)
            names = list(spec.params) + (["depth"] if "units" in spec.params else [])
        except ConfigError:
            names = []
        return names + [n for n in getattr(self, "_hyperparameters", ()) if n not in names]

    def get_params(self, deep: bool = True) -> dict:
        """The training options and the model's hyperparameters (``None``: the default)."""
        params = {"model": self.model, **{name: getattr(self, name) for name in TRAINING_OPTIONS}}
        params.update({name: getattr(self, name, None) for name in self._hyperparameter_names()})
        return params

    def set_params(self, **params) -> "GenreClassifier":
        """Set training options and hyperparameters by name (``model`` first, when given).

        Raises
        ------
        ValueError
            A name that is neither a training option nor a hyperparameter of the model.
        """
        if "model" in params:
            self.model = params.pop("model")
        valid = set(TRAINING_OPTIONS) | set(self._hyperparameter_names())
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"invalid parameter {name!r} for GenreClassifier(model={self.model!r}); "
                                 f"expected a training option or one of its hyperparameters "
                                 f"({', '.join(self._hyperparameter_names())})")
            setattr(self, name, value)
            if name not in TRAINING_OPTIONS and name not in self._hyperparameters:
                self._hyperparameters = (*self._hyperparameters, name)
        return self

    def __repr__(self, N_CHAR_MAX: int = 700) -> str:
        shown = {k: v for k, v in self.get_params().items() if v is not None and k != "model"}
        inner = ", ".join([f"model={self.model!r}"] + [f"{k}={v!r}" for k, v in shown.items()])
        return f"GenreClassifier({inner})"

    def _config(self) -> TrainConfig:
        """The validated training configuration these parameters describe."""
        spec = get_model(self.model)
        hyper = {}
        for name in self._hyperparameter_names():
            value = getattr(self, name, None)
            if value is None:
                continue
            if name not in spec.params and not (name == "depth" and "units" in spec.params):
                raise ConfigError(f"model {spec.name!r} has no hyperparameter {name!r}; expected one of "
                                  f"{', '.join(self._hyperparameter_names()[:len(spec.params)])}", param=name)
            hyper[name] = value
        if "depth" in hyper:
            DEPTH.parse(spec.name, "depth", hyper["depth"])
        options = {name: getattr(self, name) for name in TRAINING_OPTIONS if getattr(self, name) is not None}
        return TrainConfig(model=spec.name, params=hyper, **options).validate()

    # -- labels ---------------------------------------------------------------------

    def _label_strings(self, y, multi_label: bool):
        """``(label strings, classes, names)``: featx's label cells for ``y``, the classes in
        scikit-learn's order, and each class's name in featx's encoding."""
        rows = list(y) if not hasattr(y, "ndim") or np.ndim(y) != 2 else None
        numeric = np.asarray(y).dtype.kind in "biuf" if rows is None else False
        if rows is None and numeric:  # multi-hot rows: the classes are the column numbers
            hot = np.asarray(y, dtype=float)
            if not multi_label:
                raise DataError(f"y is a matrix of shape {hot.shape}; a multi-label y needs "
                                "multi_label=True (or give one label per row)")
            if not np.isin(hot, (0, 1)).all():
                raise DataError("y: expected a matrix of 0 and 1 (one column per genre)")
            width = len(str(hot.shape[1]))
            names = [f"{j:0{width}d}" for j in range(hot.shape[1])]
            cells = [SEPARATOR.join(names[j] for j in np.flatnonzero(row)) for row in hot]
            if any(not c for c in cells):
                i = next(i for i, c in enumerate(cells) if not c)
                raise DataError(f"y: row {i} has no genre; expected at least one 1 per row")
            return cells, np.arange(hot.shape[1]), names
        if rows is None:  # a 2-D array of names: each row lists its genres
            rows = [list(r) for r in np.asarray(y, dtype=object)]
        values = np.empty(len(rows), dtype=object)
        values[:] = [tuple(r) if isinstance(r, (list, tuple, set, frozenset, np.ndarray)) else r for r in rows]
        if any(isinstance(v, tuple) for v in values) and not multi_label:
            raise DataError("y lists several genres per row; train a multi-label model with multi_label=True")
        if values.ndim != 1:
            raise DataError(f"y: expected one label per row. Received: shape={values.shape}")
        if multi_label:
            cells = [SEPARATOR.join(map(str, v)) if isinstance(v, tuple) else str(v) for v in values]
            classes = np.array(sorted({g.strip() for c in cells for g in c.split(SEPARATOR) if g.strip()}),
                               dtype=object)
            return cells, classes, [str(c) for c in classes]
        kinds = {type(v) for v in values}
        classes = np.unique(np.asarray(list(values))) if len(kinds) == 1 else np.unique(values.astype(str))
        return [str(v) for v in values], classes, [str(c) for c in classes]

    # -- fitting --------------------------------------------------------------------

    def fit(self, X, y, groups=None) -> "GenreClassifier":
        """Fit the model (and its preprocessing) on all rows of ``X``.

        Parameters
        ----------
        X : pandas.DataFrame or array-like [shape=(n_rows, n_features)]
            Feature rows: a DataFrame of feature columns (a ``filename`` column, as
            :func:`featx.extract_features` gives, names the rows and their tracks) or a
            matrix.
        y : array-like [shape=(n_rows,)] or [shape=(n_rows, n_classes)]
            One label per row; with ``multi_label=True`` also lists of genres, genres
            joined by ``;``, or multi-hot rows.
        groups : array-like [shape=(n_rows,)], optional
            The track of every row (default: from the file names, or one per row):
            rows of a track are its segments; early stopping holds out whole tracks.

        Returns
        -------
        self
        """
        start = time.perf_counter()
        config = self._config()
        cells, classes, names = self._label_strings(y, config.multi_label)
        table = table_from_arrays(X, cells, groups)
        model, labels, key = fold_design(table, config)
        rows = np.arange(table.n_rows)
        train, valid = inner_split(rows, key, table.tracks, config.valid_fraction, config.seed, True)
        model.fit(table, train, valid, seed=config.seed, progress=False, desc="fit")
        thresholds = None
        if labels.multi_label:
            thresholds, _ = fold_thresholds(config, len(labels.classes_), tune=lambda: tuning_rows(
                table, config, labels, key, table.tracks, train, valid, model, seed=config.seed, grouped=True,
                desc="fit"))
        self.model_ = model
        self.classes_ = classes
        self._columns = [labels.classes_.index(n) for n in names]  # featx's order -> classes_ order
        self._names = list(names)
        self.n_features_in_ = len(table.feature_columns)
        if hasattr(X, "columns"):
            self.feature_names_in_ = np.asarray(table.feature_columns, dtype=object)
        self._fit_record = {"config": config, "table": _TrainingRows(table), "seconds": time.perf_counter() - start,
                            "final_fit": {"rows": "all rows given to GenreClassifier.fit"
                                          + (" (a validation part for early stopping)" if len(valid) else ""),
                                          "train": train, "valid": valid, "seed": config.seed},
                            "thresholds": thresholds}
        metadata = {"model": model.name, "final_fit": {"tracks": sorted({str(t) for t in table.tracks})}}
        if thresholds is not None:
            metadata["thresholds"] = {c: float(t) for c, t in zip(labels.classes_, thresholds)}
        self.bundle_ = Bundle(None, model, metadata)
        return self

    # -- predicting -----------------------------------------------------------------

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            from sklearn.exceptions import NotFittedError  # scikit-learn is heavy: imported on use

            raise NotFittedError("this GenreClassifier is not fitted yet; call fit(X, y) first, or load "
                                 "a bundle with featx.load_bundle")

    def _table(self, X):
        if not hasattr(X, "columns") and getattr(self, "feature_names_in_", None) is not None:
            import pandas as pd  # a matrix for a model fitted on named columns: name them as then

            matrix = np.asarray(X, dtype=np.float64)
            if matrix.ndim != 2 or matrix.shape[1] != len(self.feature_names_in_):
                raise DataError(f"X has {matrix.shape[-1] if matrix.ndim else 0} columns; the model was "
                                f"fitted on {len(self.feature_names_in_)}")
            X = pd.DataFrame(matrix, columns=list(self.feature_names_in_))
        return self.model_.check_table(table_from_arrays(X, None, None))

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities of every row of ``X``, shape ``(n_rows, len(classes_))``.

        A segment-sequence model gives each row its track's probabilities (the tracks
        come from a ``filename`` column of ``X``).
        """
        self._check_fitted()
        proba = self.model_.predict_proba(self._table(X))
        return proba[:, self._columns]

    def _thresholds(self) -> np.ndarray:
        """The per-genre decision thresholds, in the order of :attr:`classes_`."""
        return read_thresholds(self.bundle_.metadata, self.model_.classes)[self._columns]

    def predict(self, X) -> np.ndarray:
        """The label of every row of ``X``; multi-label: multi-hot rows (``len(classes_)`` columns,
        each genre at or above its threshold, and at least the most probable one)."""
        proba = self.predict_proba(X)
        if not self.model_.multi_label:
            return self.classes_[proba.argmax(axis=1)]
        chosen = proba >= self._thresholds()
        chosen[np.arange(len(proba)), proba.argmax(axis=1)] = True
        return chosen.astype(int)

    def score(self, X, y, sample_weight=None) -> float:
        """Accuracy of :meth:`predict` (multi-label: subset accuracy, every genre right)."""
        # scikit-learn is heavy: imported on use
        from sklearn.metrics import accuracy_score  # scikit-learn is heavy: only when scoring

        self._check_fitted()
        truth = y
        if self.model_.multi_label:  # multi-hot rows in the order of classes_
            cells, _, _ = self._label_strings(y, True)
            names = getattr(self, "_names", [str(c) for c in self.classes_])
            index = {name: j for j, name in enumerate(names)}
            truth = np.zeros((len(cells), len(self.classes_)), dtype=int)
            for i, cell in enumerate(cells):
                for genre in cell.split(SEPARATOR):
                    if genre.strip() in index:
                        truth[i, index[genre.strip()]] = 1
        return float(accuracy_score(truth, self.predict(X), sample_weight=sample_weight))

    # -- bundles --------------------------------------------------------------------

    def save(self, directory, *, overwrite: bool = False) -> Path:
        """Write the fitted model as a bundle that ``featx predict`` and ``featx evaluate`` read.

        Raises
        ------
        OutputError
            ``directory`` holds something other than a featx bundle, or a bundle
            without ``overwrite``.
        """
        self._check_fitted()
        if not hasattr(self, "_fit_record"):
            raise ConfigError("this GenreClassifier was loaded from a bundle; it is saved already at "
                              f"{self.bundle_.path}")
        record = self._fit_record
        check_output_dir(directory, overwrite=overwrite)
        directory = prepare_output_dir(directory, overwrite=overwrite)
        write_bundle(directory, self.model_, config=record["config"], table=record["table"],
                     final_fit=record["final_fit"], split="none (fitted by GenreClassifier.fit)", leaky=False,
                     device=self.model_.device(), seconds=record["seconds"], thresholds=record["thresholds"])
        self.bundle_ = _load_bundle(directory)
        return directory

    @classmethod
    def from_bundle(cls, bundle) -> "GenreClassifier":
        """A fitted estimator for a loaded :class:`~featx.bundle.Bundle` (as :func:`featx.load_bundle` gives)."""
        config = bundle.metadata.get("config") or {}
        options = {k: config.get(k) for k in TRAINING_OPTIONS if k in config}
        estimator = cls(bundle.spec.name, **options, **dict(bundle.metadata.get("params") or {}))
        estimator.model_ = bundle.model
        estimator.classes_ = np.asarray(bundle.classes, dtype=object)
        estimator._columns = list(range(len(bundle.classes)))
        estimator.n_features_in_ = len(bundle.feature_columns)
        estimator.feature_names_in_ = np.asarray(bundle.feature_columns, dtype=object)
        estimator.bundle_ = bundle
        return estimator

    # -- featx's own predictions ----------------------------------------------------

    def predict_audio(self, audio, **kwargs):
        """Classify audio files or samples as ``featx predict`` does (see
        :meth:`featx.bundle.Bundle.predict_audio`): one row per file."""
        self._check_fitted()
        return self.bundle_.predict_audio(audio, **kwargs)

    def audio_windows(self, audio, **kwargs):
        """The probabilities of every window of one file (see :meth:`featx.bundle.Bundle.audio_windows`)."""
        self._check_fitted()
        return self.bundle_.audio_windows(audio, **kwargs)

    def predict_tracks(self, data):
        """One row per track of a feature table (see :meth:`featx.bundle.Bundle.predict`)."""
        self._check_fitted()
        return self.bundle_.predict(data)

    def evaluate(self, data):
        """``(metrics, predictions)`` on a labelled feature table, as ``featx evaluate`` computes them."""
        self._check_fitted()
        return self.bundle_.evaluate(as_table(data, require_label=True))


class _TrainingRows:
    """What a bundle records of the rows a :class:`GenreClassifier` was fitted on."""

    def __init__(self, table):
        self.tracks = np.asarray(table.tracks, dtype=object)
        self.n_rows = table.n_rows
        self.path = None
