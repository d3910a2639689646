"""Training configuration: defaults, metric names, optimizers and the frozen TrainConfig.

This module is the one definition of the training vocabulary: the command
line's options (defaults, choices, help), the sweep's training options and
:class:`TrainConfig` all read it.
"""
from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field

from ..data.vocabulary import SPLITS
from ..errors import ConfigError
from ..models.keras_fit import LR_SCHEDULES, OPTIMIZERS, check_schedule_and_augmentation
from ..models.registry import get_model

logger = logging.getLogger(__name__)

#: The scores computed for every evaluation (``metrics.json``), in report order.
METRIC_NAMES = ("accuracy", "precision_macro", "recall_macro", "f1_macro")

#: The scores of a multi-label run (several genres per row), in report order.
MULTILABEL_METRIC_NAMES = ("f1_micro", "f1_macro", "subset_accuracy", "hamming_loss",
                           "average_precision_macro", "roc_auc_macro")

#: Every metric a sweep may rank by (single-label ones, then multi-label ones).
SWEEP_METRICS = METRIC_NAMES + tuple(m for m in MULTILABEL_METRIC_NAMES if m not in METRIC_NAMES)

#: Metrics for which lower is better (everything else: higher is better).
LOWER_IS_BETTER = ("hamming_loss",)

#: The decision threshold of a multi-label model: one number in (0, 1) for every genre
#: (the mel-image study used 0.2), or ``"tuned"``: per-genre thresholds chosen on
#: validation predictions only.
DEFAULT_THRESHOLD = 0.2
TUNED = "tuned"

#: The levels metrics are computed at: whole tracks (segment probabilities averaged) or rows.
LEVELS = ("track", "segment")

#: How a sweep picks its combinations: every one of a grid, a random sample, or Optuna's
#: tree-structured Parzen estimator (each trial sampled from the results so far).
SEARCHES = ("grid", "random", "tpe")

#: How a sweep stops unpromising trials early: never, below the median of earlier trials at
#: the same epoch or fold, or by successive halving (Hyperband).
PRUNERS = ("none", "median", "hyperband")

#: What a table model does with the level of the audio (see :mod:`featx.features.gain`):
#: ``normalise`` brings every row to one reference level before scaling, so that louder or
#: quieter audio gives the same prediction; ``as-recorded`` keeps the level as a feature;
#: ``auto`` normalises when the table's columns follow the gain law (they hold ``rms_mean``).
LOUDNESS = ("auto", "normalise", "as-recorded")

#: How prediction pools a file's windows (segments) into one row (see
#: :mod:`featx.bundle.fileframe`): mean probabilities, the share of windows each genre
#: wins, or each genre's highest probability in any window.
AGGREGATES = ("mean", "vote", "max")
#: The share of a file's windows a genre needs to be listed in ``genres`` under ``vote``.
MIN_SHARE = 0.25

__all__ = ["METRIC_NAMES", "MULTILABEL_METRIC_NAMES", "SWEEP_METRICS", "LOWER_IS_BETTER",
           "DEFAULT_THRESHOLD", "TUNED", "LOUDNESS", "AGGREGATES", "MIN_SHARE", "metric_names", "parse_threshold",
           "LEVELS", "OPTIMIZERS", "SEARCHES", "PRUNERS", "SPLITS", "TRAINING_DEFAULTS",
           "OPTION_HELP", "TrainConfig", "DEFAULTS", "LR_SCHEDULES"]


def metric_names(multi_label: bool) -> tuple[str, ...]:
    """The headline metrics of a run: :data:`METRIC_NAMES` or :data:`MULTILABEL_METRIC_NAMES`."""
    return MULTILABEL_METRIC_NAMES if multi_label else METRIC_NAMES


def parse_threshold(value):
    """A decision threshold: ``"tuned"`` or a number strictly between 0 and 1.

    Raises
    ------
    ConfigError
        Anything else (one line naming the value).
    """
    if isinstance(value, str):
        text = value.strip().lower()
        if text == TUNED:
            return TUNED
        try:
            value = float(text)
        except ValueError:
            value = text
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
          and math.isfinite(float(value)) and 0.0 < float(value) < 1.0)
    if not ok:
        raise ConfigError(f"threshold must be a number strictly between 0 and 1 (e.g. 0.2) or "
                          f"'{TUNED}'. Received: threshold={value!r}", param="threshold")
    return float(value)


#: Training options a model may override in its registry entry (``train_defaults``).
#: Most epochs a Keras fit may be asked for.
MAX_EPOCHS = 100_000

TRAINING_DEFAULTS = {"epochs": 100, "valid_fraction": 0.15, "lr_schedule": "plateau"}


#: One line of help per training option, shared by the command line and the sweep.
OPTION_HELP = {
    "model": "Model name (see 'featx models').",
    "epochs": "Maximum epochs (Keras models) [default: 100; mlp: 60].",
    "batch_size": "Mini-batch size (Keras models).",
    "learning_rate": "Initial learning rate of the optimizer.",
    "optimizer": "Optimizer (Keras models).",
    "seed": "Seed for splits, weights and shuffling.",
    "patience": "Early-stopping patience in epochs (best weights restored; 0: off).",
    "reduce_lr_patience": "ReduceLROnPlateau patience (0: off).",
    "reduce_lr_factor": "ReduceLROnPlateau factor.",
    "min_lr": "Floor of the learning rate (plateau and polynomial schedules).",
    "lr_schedule": ("Learning-rate schedule (Keras models): constant, polynomial (power-2 decay to "
                    "min_lr over the planned steps) or plateau (ReduceLROnPlateau) "
                    "[default: plateau; multihead: polynomial; cnn2d, mfcc-cnn: constant]."),
    "time_masks": "Image models: SpecAugment time masks per training image (0: off).",
    "freq_masks": "Image models: SpecAugment frequency masks per training image (0: off).",
    "mask_width": "Image models: largest width of one mask, in frames or bands.",
    "time_shift": "Image models: largest random time shift of a training image, as a fraction of its width (0: off).",
    "time_shift_mode": "Image models: frames uncovered by the time shift wrap round (circular) or are zero.",
    "mixup": "Image models: mixup Beta(alpha, alpha) of training images and their targets (0: off).",
    "log_variances": "Log-scale the *_var columns before standardising.",
    "loudness": ("Table models: 'normalise' brings every row to one level (louder or quieter audio "
                 "then gets the same prediction), 'as-recorded' keeps the level as a feature, "
                 "'auto' normalises when the table holds rms_mean. The default keeps the level, "
                 "as featx always did: train with 'normalise' for music at any level."),
    "split": "How rows are split into train/test.",
    "folds": "K-fold cross-validation; 1: one train/validation/test split.",
    "valid_fraction": ("Share of each training part held out (by track) for early stopping and "
                       "validation curves [default: 0.15; mlp: 0, i.e. train on all training rows]."),
    "artist_map": "'file ::: artist ::: title' index for split 'artist' (e.g. GTZANindex.txt).",
    "split_dir": "Folder of train/valid/test lists for split 'fault-filtered'.",
    "refit": "After K-fold CV, fit the saved model on all rows (else keep fold 1's model).",
    "multi_label": ("Several genres per row: the label column may hold genres joined by ';' "
                    "(rock;blues); one sigmoid (Keras) or one-vs-rest classifier (scikit-learn) "
                    "per genre."),
    "threshold": ("Multi-label decision threshold: a number in (0, 1) for every genre, or 'tuned' "
                  "(per genre, chosen on validation predictions only)."),
}


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (saved in the bundle's metadata).

    Frozen: :meth:`validate` returns a new, resolved configuration. ``None``
    for ``epochs`` or ``valid_fraction`` means the model's own default
    (:data:`TRAINING_DEFAULTS`, overridden by its registry entry).

    Examples
    --------
    >>> config = TrainConfig(model="svm", folds=3).validate()
    >>> config.folds, config.optimizer, config.valid_fraction
    (3, 'adam', 0.0)
    """

    model: str = "mlp"
    params: dict = field(default_factory=dict)
    epochs: int | None = None
    batch_size: int = 32
    learning_rate: float = 1e-3
    optimizer: str = "adam"
    seed: int = 0
    patience: int = 15
    reduce_lr_patience: int = 5
    reduce_lr_factor: float = 0.5
    min_lr: float = 1e-5
    lr_schedule: str | None = None
    time_masks: int = 0
    freq_masks: int = 0
    mask_width: int = 8
    time_shift: float = 0.0
    time_shift_mode: str = "circular"
    mixup: float = 0.0
    log_variances: bool = True
    loudness: str = "as-recorded"
    split: str = "track"
    folds: int = 5
    valid_fraction: float | None = None
    artist_map: str | None = None
    split_dir: str | None = None
    refit: bool = True
    multi_label: bool = False
    threshold: float | str = DEFAULT_THRESHOLD

    def validate(self) -> "TrainConfig":
        """A copy with model-specific defaults filled in, every value checked, hyperparameters resolved.

        Raises
        ------
        ConfigError
            A bad value; the message names the parameter (``folds=0``) and the
            error's ``param`` attribute holds its name.
        """
        # the registry imports every family's module (pandas, the store, the builders):
        # only when a configuration is validated, so that `featx --help` stays light

        spec = get_model(self.model)
        values = {name: spec.train_defaults.get(name, default)
                  for name, default in TRAINING_DEFAULTS.items() if getattr(self, name) is None}
        # a model's own defaults for other options (cnn2d-base: patience 10, ...) replace
        # featx's general ones where the configuration kept those
        fields = {f.name: f.default for f in dataclasses.fields(self)}
        values.update({name: value for name, value in spec.train_defaults.items()
                       if name not in TRAINING_DEFAULTS and name in fields
                       and getattr(self, name) == fields[name]})
        config = dataclasses.replace(self, **values)

        def is_int(v):
            return isinstance(v, int) and not isinstance(v, bool)

        def in_range(low, high, *, closed_low=False):
            def check(v):
                try:
                    v = float(v)
                except (TypeError, ValueError):
                    return False
                return (low <= v if closed_low else low < v) and v < high
            return check

        checks = (
            ("epochs", lambda v: is_int(v) and v >= 1, "an integer >= 1"),
            ("epochs", lambda v: v <= MAX_EPOCHS, f"at most {MAX_EPOCHS}"),
            ("batch_size", lambda v: is_int(v) and v >= 1, "an integer >= 1"),
            ("learning_rate", in_range(0, 10), "a number in (0, 10)"),
            ("optimizer", lambda v: v in OPTIMIZERS, "one of " + ", ".join(OPTIMIZERS)),
            ("seed", lambda v: is_int(v) and v >= 0, "an integer >= 0"),
            ("patience", lambda v: is_int(v) and v >= 0, "an integer >= 0"),
            ("split", lambda v: v in SPLITS, "one of " + ", ".join(SPLITS)),
            ("folds", lambda v: is_int(v) and v >= 1, "an integer >= 1"),
            ("valid_fraction", in_range(0, 0.9, closed_low=True), "a number in [0, 0.9)"),
            ("loudness", lambda v: v in LOUDNESS, "one of " + ", ".join(LOUDNESS)),
        )
        for name, ok, expected in checks:
            value = getattr(config, name)
            if not ok(value):
                raise ConfigError(f"{name} must be {expected}. Received: {name}={value!r}", param=name)
        if not isinstance(config.multi_label, bool):
            raise ConfigError(f"multi_label must be True or False. Received: multi_label={config.multi_label!r}",
                              param="multi_label")
        check_schedule_and_augmentation(config, spec)
        updates = {"params": spec.resolve(config.params), "threshold": parse_threshold(config.threshold)}
        if not spec.family.uses_validation:
            # no early stopping: the model fits its whole training part, so no validation
            # part is split off (only to be joined back)
            updates["valid_fraction"] = 0.0
        return dataclasses.replace(config, **updates)

    def to_dict(self) -> dict:
        """Plain data (tuples as lists) for JSON; :meth:`from_dict` reads it back."""
        data = dataclasses.asdict(self)
        data["params"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.params.items()}
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        """The configuration :meth:`to_dict` wrote (unknown keys are ignored)."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


#: The defaults of every training option (``DEFAULTS.batch_size``); not validated, so
#: ``epochs`` and ``valid_fraction`` are ``None`` (the model's own default).
DEFAULTS = TrainConfig()
