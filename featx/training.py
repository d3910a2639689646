"""Training and evaluation: preprocessing, seeding, fitting, cross-validation, metrics.

The flow for ``featx train`` is :func:`cross_validate`: plan grouped folds
(:func:`featx.dataset.make_splits`), and in every fold fit the scaler on the
training rows only, fit the model (Keras with early stopping and
ReduceLROnPlateau, or a scikit-learn baseline), and predict the held-out rows.
Out-of-fold predictions give segment- and track-level metrics. Finally a model
is fitted on all rows (or, for a single split, the split's model is kept) and
returned with its preprocessing, ready for :mod:`featx.bundle`.

Keras is imported inside functions only.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .dataset import FeatureTable, SplitPlan, make_splits
from .errors import ConfigError, DataError, TrainingError
from .registry import ModelSpec, get_model
from .settings import LABEL_COLUMN

logger = logging.getLogger(__name__)

#: Added to variance columns before their logarithm (keeps zero variances finite).
LOG_EPSILON = 1e-12

METRIC_NAMES = ("accuracy", "precision_macro", "recall_macro", "f1_macro")


#: Training options a model may override in its registry entry (``train_defaults``).
TRAINING_DEFAULTS = {"epochs": 100, "valid_fraction": 0.15}


@dataclass
class TrainConfig:
    """Everything that determines a training run (saved in the bundle)."""

    model: str = "mlp"
    params: dict = field(default_factory=dict)
    epochs: int | None = None
    batch_size: int = 32
    learning_rate: float = 1e-3
    seed: int = 0
    patience: int = 15
    reduce_lr_patience: int = 5
    reduce_lr_factor: float = 0.5
    min_lr: float = 1e-5
    log_variances: bool = True
    split: str = "track"
    folds: int = 5
    valid_fraction: float | None = None
    artist_map: str | None = None
    split_dir: str | None = None
    refit: bool = True

    def validate(self) -> "TrainConfig":
        """Fill model-specific defaults, check every value, resolve hyperparameters."""
        spec = get_model(self.model)
        for name, default in TRAINING_DEFAULTS.items():
            if getattr(self, name) is None:
                setattr(self, name, spec.train_defaults.get(name, default))
        checks = (
            ("epochs", self.epochs, lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
            ("batch_size", self.batch_size, lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
            ("learning_rate", self.learning_rate, lambda v: 0 < float(v) < 10, "a number in (0, 10)"),
            ("seed", self.seed, lambda v: isinstance(v, int) and v >= 0, "an integer >= 0"),
            ("patience", self.patience, lambda v: isinstance(v, int) and v >= 0, "an integer >= 0"),
            ("folds", self.folds, lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
            ("valid_fraction", self.valid_fraction, lambda v: 0 <= float(v) < 0.9, "a number in [0, 0.9)"),
        )
        for name, value, ok, expected in checks:
            if not ok(value):
                raise ConfigError(f"{name} must be {expected}. Received: {name}={value!r}")
        if spec.kind == "sklearn":
            # no early stopping: a scikit-learn model fits the whole training part, so no
            # validation part is split off (only to be joined back)
            self.valid_fraction = 0.0
        self.params = spec.resolve(self.params)
        return self

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["params"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.params.items()}
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


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


# ---------------------------------------------------------------------------
# Keras plumbing


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and the Keras backend; make TensorFlow ops deterministic."""
    from ._keras import import_keras
    keras = import_keras()

    keras.utils.set_random_seed(int(seed))
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        try:
            tf.config.experimental.enable_op_determinism()
        except (AttributeError, RuntimeError):  # pragma: no cover - older TF
            pass


def describe_device() -> str:
    """Which backend and device Keras trains on (for logs and metadata)."""
    from ._keras import import_keras
    keras = import_keras()

    backend = keras.backend.backend()
    device = "cpu"
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            if tf.config.list_physical_devices("GPU"):
                device = "gpu"
        elif backend == "jax":
            import jax

            device = jax.default_backend()
        elif backend == "torch":
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
    except Exception:  # pragma: no cover - device probing must never break training
        pass
    return f"{backend}/{device}"


def _epoch_bar(total: int, desc: str, progress):
    from ._keras import import_keras
    keras = import_keras()
    from tqdm.auto import tqdm

    class EpochBar(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.bar = tqdm(total=total, desc=desc, unit="epoch", leave=False,
                            disable=None if progress is None else not progress)

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            shown = {k: f"{v:.3f}" for k, v in logs.items() if k in ("loss", "val_accuracy")}
            self.bar.set_postfix(shown, refresh=False)
            self.bar.update(1)

        def on_train_end(self, logs=None):
            self.bar.close()

    return EpochBar()


def fit_estimator(estimator, X, y):
    """Fit a scikit-learn estimator (one place, used at training and at bundle loading)."""
    return estimator.fit(X, y)


#: Optimizers a Keras model can be trained with (``optimizer=`` of :func:`fit_model`).
OPTIMIZERS = ("adam", "adamw", "nadam", "rmsprop", "sgd")


def make_optimizer(name: str, learning_rate: float):
    """A Keras optimizer by name (one of :data:`OPTIMIZERS`)."""
    from ._keras import import_keras
    keras = import_keras()

    classes = {"adam": keras.optimizers.Adam, "adamw": keras.optimizers.AdamW,
               "nadam": keras.optimizers.Nadam, "rmsprop": keras.optimizers.RMSprop,
               "sgd": keras.optimizers.SGD}
    if name not in classes:
        raise ConfigError(f"unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}")
    return classes[name](learning_rate=learning_rate)


def _nan_guard():
    """A callback that stops training at the first non-finite batch loss."""
    from ._keras import import_keras
    keras = import_keras()

    class NanGuard(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            loss = (logs or {}).get("loss")
            if loss is not None and not math.isfinite(float(loss)):
                self.model.stop_training = True

    return NanGuard()


def fit_model(spec: ModelSpec, params: dict, X_train, y_train, X_valid, y_valid, *,
              num_classes: int, config: TrainConfig, seed: int, progress=None, desc: str = "epochs",
              optimizer: str = "adam"):
    """Fit one model. Returns ``(model, history)``; history maps metric -> per-epoch list.

    Raises
    ------
    TrainingError
        The training loss became NaN or infinite (training stops at once).
    """
    if spec.kind == "sklearn":
        estimator = spec.builder(seed=seed, **params)
        X_all = np.concatenate([X_train, X_valid]) if len(X_valid) else X_train
        y_all = np.concatenate([y_train, y_valid]) if len(y_valid) else y_train
        fit_estimator(estimator, X_all, y_all)
        return estimator, {}

    from ._keras import import_keras
    keras = import_keras()

    seed_everything(seed)
    model = spec.builder(tuple(X_train.shape[1:]), num_classes, **params)
    model.compile(
        optimizer=make_optimizer(optimizer, config.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    has_valid = len(X_valid) > 0
    monitor = "val_loss" if has_valid else "loss"
    callbacks = [_nan_guard(), _epoch_bar(config.epochs, desc, progress)]
    if config.patience > 0:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor=monitor, patience=config.patience, restore_best_weights=True))
    if config.reduce_lr_patience > 0:
        callbacks.append(keras.callbacks.ReduceLROnPlateau(
            monitor=monitor, factor=config.reduce_lr_factor,
            patience=config.reduce_lr_patience, min_lr=config.min_lr))
    result = model.fit(
        X_train, y_train,
        validation_data=(X_valid, y_valid) if has_valid else None,
        epochs=config.epochs, batch_size=config.batch_size,
        shuffle=True, verbose=0, callbacks=callbacks,
    )
    history = {k: [float(v) for v in vals] for k, vals in result.history.items()}
    for epoch, loss in enumerate(history.get("loss", []), start=1):
        if not math.isfinite(loss):
            raise TrainingError(
                f"training loss became {loss} in epoch {epoch}: training diverged "
                f"(learning_rate={config.learning_rate:g}, optimizer={optimizer}); "
                "lower the learning rate or the weight penalties"
            )
    return model, history


def predict_proba(model, spec: ModelSpec, X, *, num_classes: int, batch_size: int = 256) -> np.ndarray:
    """Class probabilities, shape ``(n, num_classes)``."""
    if len(X) == 0:
        return np.zeros((0, num_classes))
    if spec.kind == "sklearn":
        proba = model.predict_proba(X)
        full = np.zeros((len(X), num_classes))
        full[:, np.asarray(model.classes_, dtype=int)] = proba
        return full
    # Calling the model directly: ``model.predict`` traces a new prediction function
    # for every freshly built model, which costs more than a fold's prediction itself.
    batch = max(batch_size, 4096)
    parts = [np.asarray(model(X[i : i + batch], training=False), dtype=np.float64)
             for i in range(0, len(X), batch)]
    return np.concatenate(parts)


# ---------------------------------------------------------------------------
# Segment sequences (segment-lstm)


def segment_sequences(X, tracks, order, *, max_segments: int | None = None):
    """Stack each track's segment rows into a zero-padded sequence.

    Parameters
    ----------
    X : np.ndarray [shape=(n_rows, n_features)]
    tracks : np.ndarray [shape=(n_rows,)]
        Track id of every row.
    order : np.ndarray [shape=(n_rows,)]
        Segment index of every row (time order within a track).
    max_segments : int or None
        Sequence length; longer tracks keep their first ``max_segments`` segments.

    Returns
    -------
    sequences : np.ndarray [shape=(n_tracks, max_segments, n_features)]
    track_ids : np.ndarray [shape=(n_tracks,)]
    row_track : np.ndarray [shape=(n_rows,)]
        Index into ``track_ids`` of every row.
    """
    tracks = np.asarray(tracks, dtype=object)
    track_ids, row_track = np.unique(tracks, return_inverse=True)
    counts = np.bincount(row_track, minlength=len(track_ids))
    length = int(max_segments or counts.max())
    seqs = np.zeros((len(track_ids), length, X.shape[1]), dtype=np.float32)
    sort = np.lexsort((np.asarray(order), row_track))
    position = np.zeros(len(track_ids), dtype=int)
    for row in sort:
        t = row_track[row]
        if position[t] < length:
            seqs[t, position[t]] = X[row]
        position[t] += 1
    return seqs, track_ids, row_track


def track_labels(y, row_track, n_tracks: int, name: str = "table") -> np.ndarray:
    labels = np.full(n_tracks, -1, dtype=np.int64)
    for row, t in enumerate(row_track):
        if labels[t] == -1:
            labels[t] = y[row]
        elif labels[t] != y[row]:
            raise DataError(f"{name}: rows of one track carry different labels; expected one label per track")
    return labels


def predict_rows(model, spec: ModelSpec, X_scaled, tracks, order, *, num_classes: int,
                 max_segments: int | None = None, batch_size: int = 256) -> np.ndarray:
    """Row-level probabilities; a segment model's track output is given to each of its rows."""
    if spec.input == "segments":
        seqs, _, row_track = segment_sequences(X_scaled, tracks, order, max_segments=max_segments)
        proba = predict_proba(model, spec, seqs, num_classes=num_classes, batch_size=batch_size)
        return proba[row_track]
    return predict_proba(model, spec, X_scaled, num_classes=num_classes, batch_size=batch_size)


# ---------------------------------------------------------------------------
# Metrics


def _scores(y_true, y_pred) -> dict:
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, average="macro", zero_division=0)
    return {"accuracy": float(accuracy_score(y_true, y_pred)), "precision_macro": float(p),
            "recall_macro": float(r), "f1_macro": float(f)}


def aggregate_tracks(predictions: pd.DataFrame, classes: list[str]) -> pd.DataFrame:
    """Average segment probabilities per (fold, track): one row per track."""
    prob_cols = [f"prob_{c}" for c in classes]
    grouped = predictions.groupby(["fold", "track"], sort=False)
    tracks = grouped[prob_cols].mean().reset_index()
    if "label" in predictions.columns:
        tracks["label"] = grouped["label"].first().to_numpy()
    tracks["predicted"] = np.asarray(classes, dtype=object)[tracks[prob_cols].to_numpy().argmax(axis=1)]
    tracks["n_segments"] = grouped.size().to_numpy()
    return tracks


def _level_metrics(frame: pd.DataFrame, classes: list[str]) -> dict:
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    per_fold = []
    for fold, part in frame.groupby("fold", sort=False):
        per_fold.append({"fold": str(fold), "n": int(len(part)),
                         **_scores(part["label"].to_numpy(), part["predicted"].to_numpy())})
    out = {name: float(np.mean([f[name] for f in per_fold])) for name in METRIC_NAMES}
    out["std"] = {name: float(np.std([f[name] for f in per_fold])) for name in METRIC_NAMES}
    y_true = frame["label"].to_numpy().astype(str)
    y_pred = frame["predicted"].to_numpy().astype(str)
    out["pooled"] = _scores(y_true, y_pred)
    out["n"] = int(len(frame))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=classes, zero_division=0)
    out["per_class"] = {c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                            "support": int(s[i])} for i, c in enumerate(classes)}
    out["per_fold"] = per_fold
    out["confusion_matrix"] = confusion_matrix(y_true, y_pred, labels=classes).tolist()
    return out


def compute_metrics(predictions: pd.DataFrame, classes: list[str]) -> dict:
    """Segment- and track-level metrics from labelled row predictions.

    ``predictions`` has columns ``fold``, ``track``, ``label``, ``predicted``
    and ``prob_<class>``. Headline figures are means over folds; ``pooled``
    holds the figures over all rows at once, ``per_class`` and
    ``confusion_matrix`` are pooled.
    """
    tracks = aggregate_tracks(predictions, classes)
    return {"classes": list(classes),
            "segment": _level_metrics(predictions, classes),
            "track": _level_metrics(tracks, classes)}


def prediction_frame(table: FeatureTable, rows: np.ndarray, proba: np.ndarray, classes: list[str],
                     fold: str) -> pd.DataFrame:
    frame = pd.DataFrame({
        "filename": table.filenames[rows],
        "track": table.tracks[rows],
        "fold": fold,
    })
    if table.labelled:
        frame["label"] = table.labels[rows]
    frame["predicted"] = np.asarray(classes, dtype=object)[proba.argmax(axis=1)] if len(rows) else []
    for i, c in enumerate(classes):
        frame[f"prob_{c}"] = proba[:, i]
    return frame


# ---------------------------------------------------------------------------
# Cross-validation


@dataclass
class TrainResult:
    """What :func:`cross_validate` produced."""

    config: TrainConfig
    spec: ModelSpec
    preprocessing: Preprocessing
    model: object
    plan: SplitPlan
    predictions: pd.DataFrame
    metrics: dict
    histories: list[dict]
    max_segments: int | None
    final_fit: dict
    device: str
    seconds: float


def _fold_arrays(table, spec, prep, rows, y, max_segments):
    """Model inputs and targets for ``rows``."""
    X = prep.transform(table.X[rows])
    if spec.input == "segments":
        seqs, _, row_track = segment_sequences(
            X, table.tracks[rows], table.segment_indices[rows], max_segments=max_segments)
        return seqs, track_labels(y[rows], row_track, len(seqs), table.name)
    return X, y[rows]


def label_setup(table: FeatureTable, spec: ModelSpec, config: TrainConfig):
    """``(prep0, y, max_segments)``: label encoding and unfitted preprocessing for ``table``."""
    prep0 = Preprocessing.for_labels(table.feature_columns, table.labels, log_variances=config.log_variances)
    y = prep0.encode(table.labels)
    max_segments = int(pd.Series(table.tracks).value_counts().max()) if spec.input == "segments" else None
    return prep0, y, max_segments


def fit_and_predict(table: FeatureTable, spec: ModelSpec, config: TrainConfig, prep0: Preprocessing, y,
                    train, valid, test, *, seed: int, max_segments, progress=None, desc: str = "epochs",
                    optimizer: str = "adam"):
    """One fold: fit the scaler and the model on ``train`` (``valid``: early stopping), predict ``test``.

    Returns ``(model, prep, history, proba)``; ``proba`` is ``None`` when ``test`` is.

    Raises
    ------
    TrainingError
        The loss, or the predicted probabilities, became non-finite.
    """
    n_classes = len(prep0.classes)
    prep = prep0.fit(table.X[train])
    X_tr, y_tr = _fold_arrays(table, spec, prep, train, y, max_segments)
    X_va, y_va = _fold_arrays(table, spec, prep, valid, y, max_segments)
    model, history = fit_model(spec, config.params, X_tr, y_tr, X_va, y_va, num_classes=n_classes,
                               config=config, seed=seed, progress=progress, desc=desc, optimizer=optimizer)
    if test is None:
        return model, prep, history, None
    proba = predict_rows(model, spec, prep.transform(table.X[test]), table.tracks[test],
                         table.segment_indices[test], num_classes=n_classes, max_segments=max_segments)
    if not np.all(np.isfinite(proba)):
        raise TrainingError(f"{desc}: the model predicts non-finite probabilities; training diverged")
    return model, prep, history, proba


def final_fit_record(rows: str, train, valid, seed: int, spec: ModelSpec, prep: Preprocessing,
                     table: FeatureTable, y) -> dict:
    """What the saved model was fitted on (a scikit-learn model also keeps its rows)."""
    record = {"rows": rows, "train": train, "valid": valid, "seed": seed}
    if spec.kind == "sklearn":
        both = np.concatenate([train, valid])
        record["X"] = prep.transform(table.X[both])
        record["y"] = y[both]
    return record


def cross_validate(table: FeatureTable, config: TrainConfig, *, progress=None) -> TrainResult:
    """Cross-validate ``config.model`` on ``table`` and fit the model to keep.

    Parameters
    ----------
    table : FeatureTable
        A labelled feature table.
    config : TrainConfig
    progress : bool or None
        ``False`` hides progress bars; ``None`` shows them on a terminal.
    """
    from tqdm.auto import tqdm

    start = time.perf_counter()
    config.validate()
    spec = get_model(config.model)
    if spec.input == "segments" and not table.segmented:
        raise DataError(
            f"{table.name}: model {spec.name!r} needs segment rows (filenames like "
            "rock.00001.7.wav); this table has one row per file. Use a segmented table "
            "(featx extract --segment-seconds 3) or a row model (mlp, lstm, cnn)"
        )
    if spec.input == "segments" and config.split == "random":
        raise ConfigError(
            f"model {spec.name!r} predicts whole tracks; --split random would cut tracks apart. "
            "Expected --split track, artist or fault-filtered"
        )
    prep0, y, max_segments = label_setup(table, spec, config)
    classes = prep0.classes
    if len(classes) < 2:
        raise DataError(
            f"{table.name}: only one class ({classes[0]!r}) in column '{LABEL_COLUMN}'; "
            "expected at least two genres to classify"
        )
    plan = make_splits(table, split=config.split, folds=config.folds, seed=config.seed,
                       valid_fraction=config.valid_fraction, artist_map=config.artist_map,
                       split_dir=config.split_dir)
    device = describe_device() if spec.kind == "keras" else "cpu (scikit-learn)"
    logger.info("training %s on %s: %s; %s", spec.name, table.name, plan.description, device)

    frames, histories = [], []
    models = []
    bar = tqdm(plan.folds, desc="folds", unit="fold", disable=None if progress is None else not progress)
    for k, fold in enumerate(bar):
        model, prep, history, proba = fit_and_predict(
            table, spec, config, prep0, y, fold.train, fold.valid, fold.test, seed=config.seed + k,
            max_segments=max_segments, progress=progress, desc=fold.name)
        frames.append(prediction_frame(table, fold.test, proba, classes, fold.name))
        histories.append({"fold": fold.name, **history})
        models.append((model, prep, fold))
        logger.info("%s: test accuracy %.4f (%d rows)", fold.name,
                    float((frames[-1]["label"] == frames[-1]["predicted"]).mean()), len(fold.test))
    bar.close()
    predictions = pd.concat(frames, ignore_index=True)
    metrics = compute_metrics(predictions, classes)
    metrics.update(split=plan.split, split_description=plan.description, leaky=plan.leaky,
                   folds=len(plan.folds), model=spec.name)

    if len(plan.folds) == 1 or not config.refit:
        model, prep, fold = models[0]
        final_fit = final_fit_record(f"train part of {fold.name}", fold.train, fold.valid, config.seed,
                                     spec, prep, table, y)
    else:
        from .dataset import _inner_valid

        everything = np.arange(table.n_rows)
        grouped = plan.split != "random"
        train, valid = _inner_valid(everything, y, plan.groups, config.valid_fraction, config.seed, grouped)
        seed = config.seed + len(plan.folds)
        model, prep, history, _ = fit_and_predict(table, spec, config, prep0, y, train, valid, None,
                                                  seed=seed, max_segments=max_segments,
                                                  progress=progress, desc="final")
        histories.append({"fold": "final", **history})
        rows = "all rows" + (" (a validation part for early stopping)" if len(valid) else "")
        final_fit = final_fit_record(rows, train, valid, seed, spec, prep, table, y)
    return TrainResult(config, spec, prep, model, plan, predictions, metrics, histories,
                       max_segments, final_fit, device, time.perf_counter() - start)
