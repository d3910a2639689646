"""Training configuration: defaults, metric names, optimizers and the frozen TrainConfig.

This module is the one definition of the training vocabulary: the command
line's options (defaults, choices, help), the sweep's training options and
:class:`TrainConfig` all read it.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field


from ..data.vocabulary import SPLITS
from ..errors import ConfigError

logger = logging.getLogger(__name__)

#: The scores computed for every evaluation (``metrics.json``), in report order.
METRIC_NAMES = ("accuracy", "precision_macro", "recall_macro", "f1_macro")

#: The levels metrics are computed at: whole tracks (segment probabilities averaged) or rows.
LEVELS = ("track", "segment")

#: Optimizers a Keras model can be trained with (``TrainConfig.optimizer``).
OPTIMIZERS = ("adam", "adamw", "nadam", "rmsprop", "sgd")

#: How a sweep picks its combinations: every one of a grid, or a random sample.
SEARCHES = ("grid", "random")

__all__ = ["METRIC_NAMES", "LEVELS", "OPTIMIZERS", "SEARCHES", "SPLITS", "TRAINING_DEFAULTS",
           "OPTION_HELP", "TrainConfig", "DEFAULTS"]


#: Training options a model may override in its registry entry (``train_defaults``).
TRAINING_DEFAULTS = {"epochs": 100, "valid_fraction": 0.15}


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
    "min_lr": "ReduceLROnPlateau floor.",
    "log_variances": "Log-scale the *_var columns before standardising.",
    "split": "How rows are split into train/test.",
    "folds": "K-fold cross-validation; 1: one train/validation/test split.",
    "valid_fraction": ("Share of each training part held out (by track) for early stopping and "
                       "validation curves [default: 0.15; mlp: 0, i.e. train on all training rows]."),
    "artist_map": "'file ::: artist ::: title' index for split 'artist' (e.g. GTZANindex.txt).",
    "split_dir": "Folder of train/valid/test lists for split 'fault-filtered'.",
    "refit": "After K-fold CV, fit the saved model on all rows (else keep fold 1's model).",
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
    log_variances: bool = True
    split: str = "track"
    folds: int = 5
    valid_fraction: float | None = None
    artist_map: str | None = None
    split_dir: str | None = None
    refit: bool = True

    def validate(self) -> "TrainConfig":
        """A copy with model-specific defaults filled in, every value checked, hyperparameters resolved.

        Raises
        ------
        ConfigError
            A bad value; the message names the parameter (``folds=0``) and the
            error's ``param`` attribute holds its name.
        """
        from ..models.registry import get_model

        spec = get_model(self.model)
        values = {name: spec.train_defaults.get(name, default)
                  for name, default in TRAINING_DEFAULTS.items() if getattr(self, name) is None}
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
            ("batch_size", lambda v: is_int(v) and v >= 1, "an integer >= 1"),
            ("learning_rate", in_range(0, 10), "a number in (0, 10)"),
            ("optimizer", lambda v: v in OPTIMIZERS, "one of " + ", ".join(OPTIMIZERS)),
            ("seed", lambda v: is_int(v) and v >= 0, "an integer >= 0"),
            ("patience", lambda v: is_int(v) and v >= 0, "an integer >= 0"),
            ("split", lambda v: v in SPLITS, "one of " + ", ".join(SPLITS)),
            ("folds", lambda v: is_int(v) and v >= 1, "an integer >= 1"),
            ("valid_fraction", in_range(0, 0.9, closed_low=True), "a number in [0, 0.9)"),
        )
        for name, ok, expected in checks:
            value = getattr(config, name)
            if not ok(value):
                raise ConfigError(f"{name} must be {expected}. Received: {name}={value!r}", param=name)
        updates = {"params": spec.resolve(config.params)}
        if spec.kind == "sklearn":
            # no early stopping: a scikit-learn model fits the whole training part, so no
            # validation part is split off (only to be joined back)
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
