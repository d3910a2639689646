"""Training configuration: defaults, metric names, optimizers and the frozen TrainConfig."""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field


from ..errors import ConfigError
from ..models.registry import get_model

logger = logging.getLogger(__name__)

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


#: Optimizers a Keras model can be trained with (``optimizer=`` of :func:`fit_model`).
OPTIMIZERS = ("adam", "adamw", "nadam", "rmsprop", "sgd")
