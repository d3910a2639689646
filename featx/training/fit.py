"""Fitting and predicting: seeding, Keras fit with guards, scikit-learn fit, segment sequences."""
from __future__ import annotations

import logging
import math

import numpy as np

from ..errors import ConfigError, TrainingError
from ..models.registry import ModelSpec

logger = logging.getLogger(__name__)
from .config import OPTIMIZERS, TrainConfig


# ---------------------------------------------------------------------------
# Keras plumbing


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and the Keras backend; make TensorFlow ops deterministic."""
    from .._keras import import_keras
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
    from .._keras import import_keras
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
    from .._keras import import_keras
    keras = import_keras()
    from .._progress import progress_bar

    class EpochBar(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.bar = progress_bar(total=total, desc=desc, unit="epoch", leave=False,
                                    progress=progress)

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            shown = {k: f"{v:.3f}" for k, v in logs.items() if k in ("loss", "val_accuracy")}
            self.bar.set_postfix(shown, refresh=False)
            self.bar.update(1)

        def on_train_end(self, logs=None):
            self.bar.close()

    return EpochBar()


def fit_estimator(estimator, X, y):
    """Fit a scikit-learn estimator (one place, used at training and at bundle loading).

    BLAS/OpenMP run on one thread (:func:`featx._threads.limited_threads`), so that
    a fit on a busy machine does not oversubscribe its cores.

    Raises
    ------
    KeyboardInterrupt
        Ctrl-C came during the fit, even where the estimator itself caught it and
        stopped early (scikit-learn's ``MLPClassifier``).
    """
    import warnings

    from .._threads import limited_threads

    # scikit-learn's MLP catches Ctrl-C inside ``fit``, warns and returns a half-trained
    # model: the interrupt is raised again here, so nothing cut short is saved or recorded
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with limited_threads():
            fitted = estimator.fit(X, y)
    interrupted = False
    for item in caught:
        if "Training interrupted by user" in str(item.message):
            interrupted = True
            continue
        warnings.warn_explicit(item.message, item.category, item.filename, item.lineno)
    if interrupted:
        raise KeyboardInterrupt
    return fitted


def _check_neighbours(params: dict, n_rows: int, desc: str) -> None:
    """Refuse ``n_neighbors`` above the number of training rows, before fitting."""
    from ..errors import ConfigError

    k = params.get("n_neighbors")
    if k is not None and k > n_rows:
        where = f" ({desc})" if desc and desc != "epochs" else ""
        raise ConfigError(
            f"n_neighbors={k} exceeds the {n_rows} training rows{where}; expected n_neighbors <= {n_rows}. "
            f"Received: n_neighbors={k}")


def build_estimator(spec: ModelSpec, params: dict, *, seed: int, multi_label: bool = False):
    """A scikit-learn model from its registry entry; ``multi_label``: one-vs-rest.

    A multi-label model is :class:`~sklearn.multiclass.OneVsRestClassifier` around the
    model: one binary classifier per genre on multi-hot targets, whose probabilities of
    the positive class are the genre probabilities (they need not sum to 1).
    """
    estimator = spec.builder(seed=seed, **params)
    if multi_label:
        from sklearn.multiclass import OneVsRestClassifier

        estimator = OneVsRestClassifier(estimator)
    return estimator


def sklearn_proba(estimator, X) -> np.ndarray:
    """``estimator.predict_proba(X)`` with BLAS/OpenMP limited like :func:`fit_estimator`."""
    from .._threads import limited_threads

    with limited_threads():
        return estimator.predict_proba(X)


def make_optimizer(name: str, learning_rate: float):
    """A Keras optimizer by name (one of :data:`OPTIMIZERS`)."""
    from .._keras import import_keras
    keras = import_keras()

    classes = {"adam": keras.optimizers.Adam, "adamw": keras.optimizers.AdamW,
               "nadam": keras.optimizers.Nadam, "rmsprop": keras.optimizers.RMSprop,
               "sgd": keras.optimizers.SGD}
    if name not in classes:
        raise ConfigError(f"unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}. "
                          f"Received: optimizer={name!r}", param="optimizer")
    return classes[name](learning_rate=learning_rate)


def _nan_guard():
    """A callback that stops training at the first non-finite batch loss."""
    from .._keras import import_keras
    keras = import_keras()

    class NanGuard(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            loss = (logs or {}).get("loss")
            if loss is not None and not math.isfinite(float(loss)):
                self.model.stop_training = True

    return NanGuard()


def fit_model(spec: ModelSpec, params: dict, X_train, y_train, X_valid, y_valid, *,
              num_classes: int, config: TrainConfig, seed: int, progress=None, desc: str = "epochs",
              labels=None):
    """Fit one model. Returns ``(model, history)``; history maps metric -> per-epoch list.

    ``labels`` (a :class:`~featx.data.labels.LabelEncoding`; default: one genre per
    row) chooses a Keras model's output activation and loss; the optimizer and
    its learning rate come from ``config``.

    Raises
    ------
    TrainingError
        The training loss became NaN or infinite (training stops at once).
    """
    if spec.kind == "sklearn":
        estimator = build_estimator(spec, params, seed=seed, multi_label=np.ndim(y_train) == 2)
        X_all = np.concatenate([X_train, X_valid]) if len(X_valid) else X_train
        y_all = np.concatenate([y_train, y_valid]) if len(y_valid) else y_train
        _check_neighbours(params, len(X_all), desc)
        fit_estimator(estimator, X_all, y_all)
        return estimator, {}

    from .._keras import import_keras
    keras = import_keras()

    from ..data.labels import LabelEncoding
    from .schedules import compile_options

    labels = labels if labels is not None else LabelEncoding()
    seed_everything(seed)
    model = spec.builder(tuple(X_train.shape[1:]), num_classes, activation=labels.activation, **params)
    has_valid = len(X_valid) > 0
    monitor = "val_loss" if has_valid else "loss"
    compile_kwargs, schedule = compile_options(config, labels, math.ceil(len(X_train) / config.batch_size),
                                               monitor)
    model.compile(**compile_kwargs)
    callbacks = [_nan_guard(), _epoch_bar(config.epochs, desc, progress)] + schedule
    if config.patience > 0:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor=monitor, patience=config.patience, restore_best_weights=True))
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
                f"(learning_rate={config.learning_rate:g}, optimizer={config.optimizer}); "
                "lower the learning rate or the weight penalties"
            )
    return model, history


def predict_proba(model, spec: ModelSpec, X, *, num_classes: int, batch_size: int = 256) -> np.ndarray:
    """Class probabilities, shape ``(n, num_classes)``."""
    if len(X) == 0:
        return np.zeros((0, num_classes))
    if spec.kind == "sklearn":
        proba = sklearn_proba(model, X)
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


def predict_rows(model, spec: ModelSpec, X_scaled, tracks, order, *, num_classes: int,
                 max_segments: int | None = None, batch_size: int = 256) -> np.ndarray:
    """Row-level probabilities; a segment model's track output is given to each of its rows."""
    if spec.input == "segments":
        seqs, _, row_track = segment_sequences(X_scaled, tracks, order, max_segments=max_segments)
        proba = predict_proba(model, spec, seqs, num_classes=num_classes, batch_size=batch_size)
        return proba[row_track]
    return predict_proba(model, spec, X_scaled, num_classes=num_classes, batch_size=batch_size)
