"""Learning-rate schedules and the training-batch options of every Keras fit.

One place decides how the learning rate of a Keras model moves (``constant``,
``polynomial``: power-2 decay from ``learning_rate`` to ``min_lr`` over the
planned steps, as in the multi-head study, or ``plateau``: ReduceLROnPlateau)
and which augmentation a model's training batches get; table models
(:mod:`featx.training.fit`) and image models (:mod:`featx.training.images`)
both compile through :func:`compile_options`.
"""
from __future__ import annotations

import logging

from ..errors import ConfigError
from .augment import AUGMENT_OPTIONS, Augmentation
from .config import LR_SCHEDULES

logger = logging.getLogger(__name__)

__all__ = ["POLY_POWER", "check_schedule_and_augmentation", "resolved_schedule", "learning_rate",
           "schedule_callbacks", "compile_options"]

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
    if augmentation.active and spec.input != "images":
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
    from .._keras import import_keras
    keras = import_keras()

    steps = max(1, int(config.epochs) * max(1, int(steps_per_epoch)))
    return keras.optimizers.schedules.PolynomialDecay(
        initial_learning_rate=float(config.learning_rate), decay_steps=steps,
        end_learning_rate=float(config.min_lr), power=POLY_POWER)


def schedule_callbacks(config, monitor: str) -> list:
    """Callbacks the schedule needs: ReduceLROnPlateau for ``plateau`` (patience > 0), else none."""
    if resolved_schedule(config) != "plateau" or config.reduce_lr_patience <= 0:
        return []
    from .._keras import import_keras
    keras = import_keras()

    return [keras.callbacks.ReduceLROnPlateau(monitor=monitor, factor=config.reduce_lr_factor,
                                              patience=config.reduce_lr_patience, min_lr=config.min_lr)]


def compile_options(config, labels, steps_per_epoch: int, monitor: str) -> tuple[dict, list]:
    """``(compile keyword arguments, schedule callbacks)`` for a Keras model.

    The optimizer follows ``config.optimizer`` and the schedule; the loss is the label
    encoding's, except that mixup of one-genre targets trains on blended one-hot
    vectors (categorical cross-entropy; see :func:`one_hot_targets`).
    """
    from .fit import make_optimizer

    loss = labels.loss
    if Augmentation.from_config(config).mixup > 0 and not labels.multi_label:
        loss = "categorical_crossentropy"
    optimizer = make_optimizer(config.optimizer, learning_rate(config, steps_per_epoch))
    return ({"optimizer": optimizer, "loss": loss, "metrics": ["accuracy"]},
            schedule_callbacks(config, monitor))


def one_hot_targets(config, labels, y, num_classes: int):
    """``y`` as the compiled loss expects it: one-hot when mixup blends one-genre targets."""
    import numpy as np

    y = np.asarray(y)
    if Augmentation.from_config(config).mixup > 0 and not labels.multi_label and y.ndim == 1:
        return np.eye(int(num_classes), dtype=np.float32)[y.astype(np.int64)]
    return y
