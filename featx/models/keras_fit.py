"""Fitting Keras models: seeding, optimizers, learning-rate schedules, guards and the fit loop.

One place decides how every Keras model of featx is compiled and fitted, whatever it
reads: the optimizer (:data:`OPTIMIZERS`), how the learning rate moves
(:data:`LR_SCHEDULES`: ``constant``, ``polynomial``: power-2 decay from
``learning_rate`` to ``min_lr`` over the planned steps, as in the multi-head study,
or ``plateau``: ReduceLROnPlateau), early stopping, the guard that stops at the first
non-finite loss, the epoch progress bar and the per-epoch hook a sweep prunes with
(:func:`fit_keras`). The table, segment and image families each bring their data feed.

A fit runs a whole epoch (at most :data:`~featx.runtime.keras.MAX_STEPS_PER_EXECUTION`
steps) per call of Keras's compiled train function and checks the loss once per
epoch (:func:`featx.runtime.keras.steps_per_execution`, :func:`~featx.runtime.keras.nan_guard`):
the same weights as one step per call with a per-batch check, without the per-step
Python and dispatch that dominated a table model's fit on the CPU.
"""
from __future__ import annotations

import logging
import math
import os
import sys
from pathlib import Path

import numpy as np

from ..io.cache import cache_root
from ..runtime.keras import enable_compile_cache, import_keras, nan_guard, steps_per_execution
from ..errors import BundleError, ConfigError, TrainingError
from ..io.archive import check_archive
from ..io.atomic import atomic_save
from ..runtime.progress import progress_bar
from .augment import AUGMENT_OPTIONS, Augmentation
from .fields import first_line

logger = logging.getLogger(__name__)

__all__ = ["OPTIMIZERS", "LR_SCHEDULES", "POLY_POWER", "check_schedule_and_augmentation",
           "resolved_schedule", "learning_rate", "schedule_callbacks", "compile_options",
           "one_hot_targets", "keras_backend", "seed_everything", "describe_device", "make_optimizer", "fit_keras",
           "predict_batches", "save_keras", "load_keras", "release_keras", "configure_keras_process",
           "KerasModel"]

#: Optimizers a Keras model can be trained with (``TrainConfig.optimizer``).
OPTIMIZERS = ("adam", "adamw", "nadam", "rmsprop", "sgd")

#: How the learning rate moves during a Keras fit: not at all, polynomial (power 2) decay to
#: ``min_lr`` over the planned steps, or ReduceLROnPlateau (``reduce_lr_*``).
LR_SCHEDULES = ("constant", "polynomial", "plateau")

#: Power of the polynomial decay (the multi-head study's quadratic decay).
POLY_POWER = 2.0


def resolved_schedule(config) -> str:
    """``config.lr_schedule``; ``None`` (a configuration saved before schedules existed): plateau."""
    return config.lr_schedule or "plateau"


def check_schedule_and_augmentation(config, spec) -> None:
    """Check the schedule and augmentation options of a configuration for model ``spec``.

    Raises
    ------
    ConfigError
        An unknown schedule; a polynomial floor (``min_lr``) not below the learning
        rate; a bad augmentation value; augmentation asked of a model that does not
        read images, or of a scikit-learn model's schedule.
    """
    schedule = config.lr_schedule
    if schedule is not None and schedule not in LR_SCHEDULES:
        raise ConfigError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}. "
                          f"Received: lr_schedule={schedule!r}", param="lr_schedule")
    try:
        min_lr = float(config.min_lr)
    except (TypeError, ValueError):
        min_lr = float("nan")
    if not 0 <= min_lr < 10:
        raise ConfigError(f"min_lr must be a number in [0, 10). Received: min_lr={config.min_lr!r}",
                          param="min_lr")
    if schedule == "polynomial" and min_lr >= float(config.learning_rate):
        raise ConfigError(
            f"the polynomial schedule decays from learning_rate to min_lr, so min_lr must be below "
            f"learning_rate={config.learning_rate:g}. Received: min_lr={min_lr:g}", param="min_lr")
    augmentation = Augmentation.from_config(config)  # validates every value
    if augmentation.active and not spec.family.augments_images:
        used = next(name for name, off in AUGMENT_OPTIONS.items()
                    if name != "mask_width" and name != "time_shift_mode" and getattr(config, name) != off)
        raise ConfigError(
            f"{used} augments spectrogram images, but model {spec.name!r} reads {spec.input} of a "
            f"feature table; use an image model (input 'images') or leave {used} off. "
            f"Received: {used}={getattr(config, used)!r}", param=used)


def learning_rate(config, steps_per_epoch: int):
    """The optimizer's ``learning_rate``: a number, or a ``PolynomialDecay`` over the planned steps.

    Parameters
    ----------
    config : TrainConfig
    steps_per_epoch : int
        Batches per epoch; the decay spans ``epochs * steps_per_epoch`` steps and then
        stays at ``min_lr``.
    """
    if resolved_schedule(config) != "polynomial":
        return float(config.learning_rate)
    keras = import_keras()

    steps = max(1, int(config.epochs) * max(1, int(steps_per_epoch)))
    return keras.optimizers.schedules.PolynomialDecay(
        initial_learning_rate=float(config.learning_rate), decay_steps=steps,
        end_learning_rate=float(config.min_lr), power=POLY_POWER)


def schedule_callbacks(config, monitor: str) -> list:
    """Callbacks the schedule needs: ReduceLROnPlateau for ``plateau`` (patience > 0), else none."""
    if resolved_schedule(config) != "plateau" or config.reduce_lr_patience <= 0:
        return []
    keras = import_keras()

    return [keras.callbacks.ReduceLROnPlateau(monitor=monitor, factor=config.reduce_lr_factor,
                                              patience=config.reduce_lr_patience, min_lr=config.min_lr)]


def compile_options(config, labels, steps_per_epoch: int, monitor: str) -> tuple[dict, list]:
    """``(compile keyword arguments, schedule callbacks)`` for a Keras model.

    The optimizer follows ``config.optimizer`` and the schedule; the loss is the label
    encoding's, except that mixup of one-genre targets trains on blended one-hot
    vectors (categorical cross-entropy; see :func:`one_hot_targets`).
    """
    loss = labels.loss
    if Augmentation.from_config(config).mixup > 0 and not labels.multi_label:
        loss = "categorical_crossentropy"
    optimizer = make_optimizer(config.optimizer, learning_rate(config, steps_per_epoch))
    return ({"optimizer": optimizer, "loss": loss, "metrics": ["accuracy"]},
            schedule_callbacks(config, monitor))


def one_hot_targets(config, labels, y, num_classes: int):
    """``y`` as the compiled loss expects it: one-hot when mixup blends one-genre targets."""
    y = np.asarray(y)
    if Augmentation.from_config(config).mixup > 0 and not labels.multi_label and y.ndim == 1:
        return np.eye(int(num_classes), dtype=np.float32)[y.astype(np.int64)]
    return y


# ---------------------------------------------------------------------------
# Seeding, devices, optimizers and guards


def keras_backend():
    """Keras, with JAX's compilation cache in featx's cache folder (``xla/``) under the JAX backend.

    Called before anything is built or loaded, so that JAX, which decides at its first
    compilation whether to use the cache, finds it set: the next fold, trial or run of
    the same network then skips XLA's compilation (see
    :func:`featx.runtime.keras.enable_compile_cache`).
    """
    keras = import_keras()
    if keras.backend.backend() == "jax":
        enable_compile_cache(cache_root() / "xla")
    return keras


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and the Keras backend; make TensorFlow ops deterministic."""
    keras = keras_backend()

    keras.utils.set_random_seed(int(seed))
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf  # TensorFlow: only under its backend

        try:
            tf.config.experimental.enable_op_determinism()
        except (AttributeError, RuntimeError):  # pragma: no cover - older TF
            pass


def describe_device() -> str:
    """Which backend and device Keras trains on (for logs and metadata)."""
    keras = import_keras()

    backend = keras.backend.backend()
    device = "cpu"
    try:
        if backend == "tensorflow":
            import tensorflow as tf  # TensorFlow: only under its backend

            if tf.config.list_physical_devices("GPU"):
                device = "gpu"
        elif backend == "jax":
            import jax  # JAX: only under its backend

            device = jax.default_backend()
        elif backend == "torch":
            import torch  # PyTorch: only under its backend

            device = "cuda" if torch.cuda.is_available() else "cpu"
    except Exception:  # pragma: no cover - device probing must never break training
        pass
    return f"{backend}/{device}"


def _epoch_bar(total: int, desc: str, progress):
    keras = import_keras()

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


def make_optimizer(name: str, learning_rate: float):
    """A Keras optimizer by name (one of :data:`OPTIMIZERS`)."""
    keras = import_keras()

    classes = {"adam": keras.optimizers.Adam, "adamw": keras.optimizers.AdamW,
               "nadam": keras.optimizers.Nadam, "rmsprop": keras.optimizers.RMSprop,
               "sgd": keras.optimizers.SGD}
    if name not in classes:
        raise ConfigError(f"unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}. "
                          f"Received: optimizer={name!r}", param="optimizer")
    return classes[name](learning_rate=learning_rate)


def _epoch_hook(on_epoch):
    """A callback that hands every finished epoch's metrics to ``on_epoch(epoch, logs)``."""
    keras = import_keras()

    class EpochHook(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            on_epoch(int(epoch), {k: float(v) for k, v in (logs or {}).items()})

    return EpochHook()


def fit_keras(model, data, *, config, labels, steps_per_epoch: int, valid=None, targets=None,
              valid_targets=None, progress=None, desc: str = "epochs", on_epoch=None,
              optimizer_hook=None) -> dict:
    """Compile ``model`` as ``config`` says and fit it; returns the per-epoch history.

    Parameters
    ----------
    model : keras.Model
        Uncompiled.
    data : np.ndarray or keras.utils.PyDataset
        Training inputs (with ``targets``), or a dataset of ``(inputs, targets)`` batches.
    config : TrainConfig
        Epochs, batch size, optimizer, learning rate and its schedule, patience.
    labels : LabelEncoding
        Chooses the loss (one genre: sparse categorical cross-entropy; several: binary).
    steps_per_epoch : int
        Batches per epoch: the polynomial schedule decays over ``epochs * steps_per_epoch``,
        and each call of the compiled train function runs
        :func:`~featx.runtime.keras.steps_per_execution` of them.
    valid : np.ndarray or keras.utils.PyDataset, optional
        Validation inputs (with ``valid_targets``) or batches: early stopping and
        learning-rate plateaus watch their loss; without them, the training loss.
    progress, desc
        The epoch progress bar.
    on_epoch : callable, optional
        ``on_epoch(epoch, logs)`` after every epoch; an exception it raises stops the fit.
    optimizer_hook : callable, optional
        ``optimizer_hook(model, optimizer) -> optimizer`` before compiling (a pretrained
        network's fine-tuned blocks learn at their own rate).

    Raises
    ------
    TrainingError
        The training loss became NaN or infinite (training stops at the end of that epoch).
    """
    keras = import_keras()

    has_valid = valid is not None and len(valid) > 0
    monitor = "val_loss" if has_valid else "loss"
    compile_kwargs, schedule = compile_options(config, labels, steps_per_epoch, monitor)
    if optimizer_hook is not None:
        compile_kwargs["optimizer"] = optimizer_hook(model, compile_kwargs["optimizer"])
    model.compile(**compile_kwargs, steps_per_execution=steps_per_execution(steps_per_epoch))
    callbacks = [nan_guard(), _epoch_bar(config.epochs, desc, progress)] + schedule
    if config.patience > 0:
        callbacks.append(keras.callbacks.EarlyStopping(monitor=monitor, patience=config.patience,
                                                       restore_best_weights=True))
    if on_epoch is not None:
        callbacks.append(_epoch_hook(on_epoch))
    if targets is None:  # a dataset of batches
        result = model.fit(data, validation_data=valid if has_valid else None, epochs=config.epochs,
                           verbose=0, callbacks=callbacks)
    else:
        result = model.fit(data, targets, validation_data=(valid, valid_targets) if has_valid else None,
                           epochs=config.epochs, batch_size=config.batch_size, shuffle=True, verbose=0,
                           callbacks=callbacks)
    history = {k: [float(v) for v in vals] for k, vals in result.history.items()}
    for epoch, loss in enumerate(history.get("loss", []), start=1):
        if not math.isfinite(loss):
            raise TrainingError(
                f"training loss became {loss} in epoch {epoch}: training diverged "
                f"(learning_rate={config.learning_rate:g}, optimizer={config.optimizer}); "
                "lower the learning rate or the weight penalties")
    return history


#: Rows a network is called on at a time when predicting (calling the model directly:
#: ``model.predict`` traces a new function for every freshly built model, which costs
#: more than a fold's prediction itself).
PREDICT_BATCH = 4096


def predict_batches(model, inputs, *, num_classes: int) -> np.ndarray:
    """Probabilities of ``inputs`` (an array, or a sequence of batches), shape ``(n, num_classes)``."""
    if isinstance(inputs, np.ndarray):
        if len(inputs) == 0:
            return np.zeros((0, num_classes))
        parts = [np.asarray(model(inputs[i:i + PREDICT_BATCH], training=False), dtype=np.float64)
                 for i in range(0, len(inputs), PREDICT_BATCH)]
    else:
        parts = [np.asarray(model(inputs[i], training=False), dtype=np.float64) for i in range(len(inputs))]
        if not parts:
            return np.zeros((0, num_classes))
    return np.concatenate(parts)


def save_keras(model, path) -> None:
    """Write a Keras model to ``path`` atomically (``.keras`` format)."""
    atomic_save(path, lambda tmp: model.save(tmp))


def load_keras(path):
    """A Keras model from a bundle, in safe mode (no code from the file runs).

    Raises
    ------
    BundleError
        The file is missing or cannot be loaded.
    """
    if not path.is_file():
        raise BundleError(f"{path}: missing; expected the saved Keras model")
    check_archive(path)
    keras = keras_backend()

    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:
        raise BundleError(f"{path}: cannot load the Keras model ({first_line(exc)})") from None


def release_keras() -> None:
    """Free Keras's global graph state between fits (no-op when Keras was never imported)."""
    if "keras" in sys.modules:
        import_keras().backend.clear_session()


#: Whether this process's Keras backend has been configured (:func:`configure_keras_process`).
_CONFIGURED: dict = {}


def configure_keras_process(threads: int | None = None) -> None:
    """Once per process: cap TensorFlow's threads (``threads``), let processes share a GPU."""
    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    if _CONFIGURED.get("done"):
        return
    _CONFIGURED["done"] = True
    keras = import_keras()

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf  # TensorFlow: only under its backend

        try:
            if threads:
                tf.config.threading.set_intra_op_parallelism_threads(threads)
                tf.config.threading.set_inter_op_parallelism_threads(threads)
            for gpu in tf.config.list_physical_devices("GPU"):
                tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialised in this process
            pass


class KerasModel:
    """What every Keras family shares: the ``model.keras`` file, the device, the session."""

    library = "keras"
    model_file = "model.keras"

    def save(self, directory) -> list[str]:
        save_keras(self.estimator, Path(directory) / self.model_file)
        return [self.model_file, self.save_preprocessing(directory)]

    @classmethod
    def device(cls) -> str:
        return describe_device()

    @classmethod
    def release(cls) -> None:
        release_keras()

    @classmethod
    def prepare_process(cls, threads=None) -> None:
        configure_keras_process(threads)
