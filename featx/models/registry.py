"""Model registry: name -> builder and its hyperparameters.

Keras models come from :mod:`featx.nets`; the classic baselines are
scikit-learn estimators trained through the same splits and reports. An
unknown model or hyperparameter name is a :class:`ConfigError` that lists the
valid ones.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


from . import keras_tabular as nets
from ..errors import ConfigError
from .sklearn import make_ensemble, make_knn, make_random_forest, make_svm


@dataclass(frozen=True)
class Param:
    """One hyperparameter: its kind (``int``, ``float``, ``bool``, ``ints``, ``str``), default, help."""

    kind: str
    default: object
    help: str
    choices: tuple | None = None

    def parse(self, model: str, name: str, value):
        """Convert ``value`` (a string from the command line, or a Python value) to this kind."""
        try:
            if self.kind == "ints":
                if isinstance(value, str):
                    parts = [p for p in value.replace(" ", "").split(",") if p]
                else:
                    parts = list(value) if isinstance(value, (list, tuple)) else [value]
                out = tuple(int(p) for p in parts)
                if not out or any(p <= 0 for p in out):
                    raise ValueError
                return out
            if self.kind == "int":
                if isinstance(value, bool):
                    raise ValueError
                out = int(value)
                if isinstance(value, float) and value != out:
                    raise ValueError
                return out
            if self.kind == "float":
                out = float(value)
                if out != out:
                    raise ValueError
                return out
            if self.kind == "bool":
                if isinstance(value, bool):
                    return value
                text = str(value).strip().lower()
                if text in ("1", "true", "yes", "on"):
                    return True
                if text in ("0", "false", "no", "off"):
                    return False
                raise ValueError
            out = str(value)
            if self.choices and out not in self.choices:
                raise ValueError
            return out
        except (TypeError, ValueError):
            expected = {
                "ints": "comma-separated positive integers like 256,128,64",
                "int": "an integer",
                "float": "a number",
                "bool": "true or false",
                "str": "one of " + ", ".join(self.choices) if self.choices else "text",
            }[self.kind]
            raise ConfigError(
                f"model {model!r}: bad value for {name}; expected {expected}. Received: {name}={value!r}"
            ) from None


@dataclass(frozen=True)
class ModelSpec:
    """A registered model.

    Attributes
    ----------
    kind : {'keras', 'sklearn'}
    input : {'rows', 'segments'}
        ``rows``: one feature vector per row. ``segments``: one sequence of
        segment vectors per track (needs a segment table).
    builder : callable
        Keras: ``builder(input_shape, num_classes, **params)`` -> uncompiled model.
        scikit-learn: ``builder(seed=..., **params)`` -> unfitted estimator.
    """

    name: str
    kind: str
    input: str
    builder: Callable
    params: dict[str, Param] = field(default_factory=dict)
    description: str = ""
    train_defaults: dict = field(default_factory=dict)

    def resolve(self, overrides: dict | None = None) -> dict:
        """Defaults updated with ``overrides`` (validated and converted)."""
        overrides = dict(overrides or {})
        unknown = sorted(set(overrides) - set(self.params) - ({"depth"} if "units" in self.params else set()))
        if unknown:
            valid = ", ".join(sorted(list(self.params) + (["depth"] if "units" in self.params else [])))
            raise ConfigError(
                f"model {self.name!r} has no hyperparameter {unknown[0]!r}; expected one of {valid}"
            )
        params = {name: p.default for name, p in self.params.items()}
        depth = overrides.pop("depth", None)
        for name, value in overrides.items():
            params[name] = self.params[name].parse(self.name, name, value)
        if depth is not None:
            depth = Param("int", None, "").parse(self.name, "depth", depth)
            if depth <= 0:
                raise ConfigError(f"model {self.name!r}: depth must be >= 1. Received: depth={depth}")
            units = list(params["units"])
            if "units" in overrides and len(units) != depth:
                raise ConfigError(
                    f"model {self.name!r}: depth={depth} but units={tuple(units)} has {len(units)} "
                    "layer(s); give one of them, or matching values"
                )
            while len(units) < depth:
                units.append(max(1, units[-1] // 2))
            params["units"] = tuple(units[:depth])
        return params


_DROPOUT = "dropout rate after each layer, in [0, 1)"
_SVM_C = Param("float", 10.0, "SVM: inverse regularisation strength (scikit-learn's own default: 1)")
_SVM_GAMMA = Param("str", "scale", "SVM: RBF width: scale, auto or a number")

MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "lstm", "keras", "rows", nets.build_lstm,
            {"units": Param("ints", (256, 128, 64), "LSTM units per layer (depth = count)"),
             "dropout": Param("float", 0.2, _DROPOUT)},
            "stacked LSTM over the feature vector read as a sequence of scalars",
        ),
        ModelSpec(
            "segment-lstm", "keras", "segments", nets.build_segment_lstm,
            {"units": Param("ints", (64,), "LSTM units per layer"),
             "dropout": Param("float", 0.3, _DROPOUT),
             "dense": Param("int", 64, "ReLU layer width before the output (0: none)")},
            "LSTM over a track's sequence of segment vectors; one prediction per track",
        ),
        ModelSpec(
            "mlp", "keras", "rows", nets.build_mlp,
            {"units": Param("ints", (512, 256, 128), "hidden layer widths"),
             "dropout": Param("float", 0.4, _DROPOUT),
             "batch_norm": Param("bool", True, "batch normalisation in each hidden layer"),
             "l2": Param("float", 1e-4, "L2 weight penalty"),
             "noise": Param("float", 0.0, "Gaussian input noise (training only)"),
             "members": Param("int", 1, "sub-networks averaged inside the model")},
            "fully connected network on the feature vector",
            # On ~1000 rows, holding out a validation part for early stopping costs more
            # than it saves: by default the mlp trains on all training rows for 60 epochs.
            {"epochs": 60, "valid_fraction": 0.0},
        ),
        ModelSpec(
            "cnn", "keras", "rows", nets.build_cnn,
            {"filters": Param("ints", (32, 64), "filters per Conv1D block"),
             "kernel_size": Param("int", 3, "convolution width"),
             "dense": Param("int", 128, "dense layer width"),
             "dropout": Param("float", 0.3, "dropout before the output")},
            "1-D convolutional baseline over the feature vector",
        ),
        ModelSpec(
            "svm", "sklearn", "rows", make_svm,
            {"C": _SVM_C,
             "gamma": _SVM_GAMMA,
             "kernel": Param("str", "rbf", "kernel", ("rbf", "linear", "poly", "sigmoid"))},
            "scikit-learn SVC (RBF); softmax of its decision values as probabilities",
        ),
        ModelSpec(
            "ensemble", "sklearn", "rows", make_ensemble,
            {"C": _SVM_C,
             "gamma": _SVM_GAMMA,
             "nn_units": Param("ints", (256, 128), "network: hidden layer widths"),
             "nn_alpha": Param("float", 0.1, "network: L2 penalty"),
             "logistic_C": Param("float", 0.3, "logistic regression: inverse regularisation strength"),
             "svm_weight": Param("float", 1.0, "SVM's weight in the vote (0: left out)"),
             "nn_weight": Param("float", 1.0, "network's weight in the vote (0: left out)"),
             "logistic_weight": Param("float", 1.0, "logistic regression's weight in the vote (0: left out)")},
            "soft vote of svm, a scikit-learn neural network and logistic regression",
        ),
        ModelSpec(
            "knn", "sklearn", "rows", make_knn,
            {"n_neighbors": Param("int", 5, "neighbours"),
             "weights": Param("str", "uniform", "vote weights", ("uniform", "distance"))},
            "scikit-learn k-nearest neighbours",
        ),
        ModelSpec(
            "random-forest", "sklearn", "rows", make_random_forest,
            {"n_estimators": Param("int", 300, "trees"),
             "max_depth": Param("int", 0, "maximum depth (0: unlimited)"),
             "min_samples_leaf": Param("int", 1, "minimum samples per leaf")},
            "scikit-learn random forest",
        ),
    )
}


def get_model(name: str) -> ModelSpec:
    """The spec registered as ``name``; unknown names list the valid ones."""
    try:
        return MODELS[name]
    except KeyError:
        raise ConfigError(
            f"unknown model {name!r}; expected one of {', '.join(MODELS)}"
        ) from None


def model_names() -> list[str]:
    return list(MODELS)
