"""Model registry: name -> builder and its hyperparameters.

Keras models come from :mod:`featx.nets`; the classic baselines are
scikit-learn estimators trained through the same splits and reports. An
unknown model or hyperparameter name is a :class:`ConfigError` that lists the
valid ones.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field


from . import keras_spectro as spectro
from . import keras_tabular as nets
from ..errors import ConfigError
from .sklearn import make_ensemble, make_knn, make_random_forest, make_svm
from .pretrained import MUSICNN_FINE_TUNE, MUSICNN_WEIGHTS, musicnn_model, vgg16_model


#: Most layers a model built from ``units`` (or ``filters``) may have.
MAX_LAYERS = 16
#: Widest layer (units or filters) accepted.
MAX_WIDTH = 8192


@dataclass(frozen=True)
class Param:
    """One hyperparameter: its kind, default, help, and the values it accepts.

    Parameters
    ----------
    kind : {'int', 'float', 'bool', 'ints', 'str'}
    default : object
    help : str
    choices : tuple of str, optional
        The words a ``str`` parameter accepts.
    low, high : float, optional
        Bounds of a number (of each item of ``ints``; of a numeric ``str`` value,
        which is then accepted besides ``choices``). Every number must be finite.
    open_low, open_high : bool
        Exclude the bound itself.
    max_len : int, optional
        Most items of an ``ints`` value.
    """

    kind: str
    default: object
    help: str
    choices: tuple | None = None
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    max_len: int | None = None

    def _in_bounds(self, x) -> bool:
        if not math.isfinite(x):
            return False
        if self.low is not None and (x <= self.low if self.open_low else x < self.low):
            return False
        if self.high is not None and (x >= self.high if self.open_high else x > self.high):
            return False
        return True

    def expected(self) -> str:
        """What this parameter accepts, in words (for error messages)."""
        if self.low is None and self.high is None:
            bounds = ""
        elif self.high is None:
            bounds = f" {'>' if self.open_low else '>='} {self.low:g}"
        elif self.low is None:
            bounds = f" {'<' if self.open_high else '<='} {self.high:g}"
        else:
            bounds = (f" in {'(' if self.open_low else '['}{self.low:g}, {self.high:g}"
                      f"{')' if self.open_high else ']'}")
        if self.kind == "ints":
            limits = [f"each <= {self.high:g}"] if self.high is not None else []
            limits += [f"at most {self.max_len} of them"] if self.max_len else []
            more = f" ({', '.join(limits)})" if limits else ""
            return f"comma-separated positive integers like 256,128,64{more}"
        if self.kind == "str" and self.choices:
            numbers = f" or a number{bounds}" if bounds else ""
            return "one of " + ", ".join(self.choices) + numbers
        return {"int": "an integer", "float": "a finite number", "bool": "true or false",
                "str": "text"}[self.kind] + bounds

    def parse(self, model: str, name: str, value):
        """Convert ``value`` (a string from the command line, or a Python value) to this kind.

        Raises
        ------
        ConfigError
            ``value`` is not of this kind, not finite, or out of bounds.
        """
        try:
            if self.kind == "ints":
                if isinstance(value, str):
                    parts = [p for p in value.replace(" ", "").split(",") if p]
                else:
                    parts = list(value) if isinstance(value, (list, tuple)) else [value]
                if any(isinstance(p, bool) or (isinstance(p, float) and p != int(p)) for p in parts):
                    raise ValueError
                out = tuple(int(p) for p in parts)
                if not out or any(p <= 0 or not self._in_bounds(p) for p in out):
                    raise ValueError
                if self.max_len is not None and len(out) > self.max_len:
                    raise ValueError
                return out
            if self.kind == "int":
                if isinstance(value, bool):
                    raise ValueError
                out = int(value)
                if isinstance(value, float) and value != out:
                    raise ValueError
                if not self._in_bounds(out):
                    raise ValueError
                return out
            if self.kind == "float":
                if isinstance(value, bool):
                    raise ValueError
                out = float(value)
                if not self._in_bounds(out):
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
                if self.low is None and self.high is None:
                    raise ValueError
                if not self._in_bounds(float(out)):  # a number where numbers are allowed
                    raise ValueError
            return out
        except (TypeError, ValueError, OverflowError):
            raise ConfigError(
                f"model {model!r}: bad value for {name}; expected {self.expected()}. "
                f"Received: {name}={value!r}"
            ) from None


@dataclass(frozen=True)
class ModelSpec:
    """A registered model.

    Attributes
    ----------
    kind : {'keras', 'sklearn'}
    input : {'rows', 'segments', 'images'}
        ``rows``: one feature vector per row. ``segments``: one sequence of
        segment vectors per track (needs a segment table). ``images``: the images
        of ``kinds`` of each segment, read from a spectrogram store.
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
    #: Image kinds an ``images`` model reads (a ``kind`` hyperparameter picks one instead).
    kinds: tuple = ()

    def image_kinds(self, params: dict | None = None) -> tuple[str, ...]:
        """The store kinds the model reads with ``params``; ``()`` for table models."""
        if self.input != "images":
            return ()
        kind = (params or {}).get("kind")
        return (str(kind),) if kind else tuple(self.kinds)

    def build(self, input_shape, num_classes: int, *, activation: str = "softmax", **params):
        """The builder called with ``params`` less those that choose the input (``kind``)."""
        params = {k: v for k, v in params.items() if k != "kind"}
        return self.builder(input_shape, num_classes, activation=activation, **params)

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
            depth = DEPTH.parse(self.name, "depth", depth)
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


#: ``depth``: the number of layers of a model with ``units``.
DEPTH = Param("int", None, "number of layers", low=1, high=MAX_LAYERS)

_DROPOUT = "dropout rate after each layer, in [0, 1)"
_SVM_C = Param("float", 10.0, "SVM: inverse regularisation strength (scikit-learn's own default: 1)",
               low=0, high=1e6, open_low=True)
_SVM_GAMMA = Param("str", "scale", "SVM: RBF width: scale, auto or a number",
                   ("scale", "auto"), low=0, high=1e6, open_low=True)


def _units(default, help):
    return Param("ints", default, help, low=1, high=MAX_WIDTH, max_len=MAX_LAYERS)


def _dropout(default, help=_DROPOUT):
    return Param("float", default, help, low=0, high=1, open_high=True)

def _filters(default, help):
    return Param("ints", default, help, low=1, high=MAX_WIDTH, max_len=MAX_LAYERS)


_KERNEL = Param("int", 3, "convolution kernel size (square)", low=1, high=64)

MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "lstm", "keras", "rows", nets.build_lstm,
            {"units": _units((256, 128, 64), "LSTM units per layer (depth = count)"),
             "dropout": _dropout(0.2)},
            "stacked LSTM over the feature vector read as a sequence of scalars",
        ),
        ModelSpec(
            "segment-lstm", "keras", "segments", nets.build_segment_lstm,
            {"units": _units((64,), "LSTM units per layer"),
             "dropout": _dropout(0.3),
             "dense": Param("int", 64, "ReLU layer width before the output (0: none)",
                            low=0, high=MAX_WIDTH)},
            "LSTM over a track's sequence of segment vectors; one prediction per track",
        ),
        ModelSpec(
            "mlp", "keras", "rows", nets.build_mlp,
            {"units": _units((512, 256, 128), "hidden layer widths"),
             "dropout": _dropout(0.4),
             "batch_norm": Param("bool", True, "batch normalisation in each hidden layer"),
             "l2": Param("float", 1e-4, "L2 weight penalty", low=0, high=100),
             "noise": Param("float", 0.0, "Gaussian input noise (training only)", low=0, high=100),
             "members": Param("int", 1, "sub-networks averaged inside the model", low=1, high=32)},
            "fully connected network on the feature vector",
            # On ~1000 rows, holding out a validation part for early stopping costs more
            # than it saves: by default the mlp trains on all training rows for 60 epochs.
            {"epochs": 60, "valid_fraction": 0.0},
        ),
        ModelSpec(
            "cnn", "keras", "rows", nets.build_cnn,
            {"filters": _units((32, 64), "filters per Conv1D block"),
             "kernel_size": Param("int", 3, "convolution width", low=1, high=1024),
             "dense": Param("int", 128, "dense layer width", low=1, high=MAX_WIDTH),
             "dropout": _dropout(0.3, "dropout before the output")},
            "1-D convolutional baseline over the feature vector",
        ),
        ModelSpec(
            "svm", "sklearn", "rows", make_svm,
            {"C": _SVM_C,
             "gamma": _SVM_GAMMA,
             "kernel": Param("str", "rbf", "kernel", ("rbf", "linear", "poly", "sigmoid"))},
            "scikit-learn SVC (RBF), one per genre; calibrated probabilities (temperature scaling)",
        ),
        ModelSpec(
            "ensemble", "sklearn", "rows", make_ensemble,
            {"C": _SVM_C,
             "gamma": _SVM_GAMMA,
             "nn_units": _units((256, 128), "network: hidden layer widths"),
             "nn_alpha": Param("float", 0.1, "network: L2 penalty", low=0, high=1e6),
             "logistic_C": Param("float", 0.3, "logistic regression: inverse regularisation strength",
                                 low=0, high=1e6, open_low=True),
             "svm_weight": Param("float", 1.0, "SVM's weight in the vote (0: left out)", low=0, high=1e6),
             "nn_weight": Param("float", 1.0, "network's weight in the vote (0: left out)", low=0, high=1e6),
             "logistic_weight": Param("float", 1.0, "logistic regression's weight in the vote (0: left out)",
                                      low=0, high=1e6)},
            "soft vote of svm, a scikit-learn neural network and logistic regression",
        ),
        ModelSpec(
            "knn", "sklearn", "rows", make_knn,
            {"n_neighbors": Param("int", 5, "neighbours", low=1, high=100_000),
             "weights": Param("str", "uniform", "vote weights", ("uniform", "distance"))},
            "scikit-learn k-nearest neighbours",
        ),
        ModelSpec(
            "random-forest", "sklearn", "rows", make_random_forest,
            {"n_estimators": Param("int", 300, "trees", low=1, high=10_000),
             "max_depth": Param("int", 0, "maximum depth (0: unlimited)", low=0, high=10_000),
             "min_samples_leaf": Param("int", 1, "minimum samples per leaf", low=1, high=1_000_000)},
            "scikit-learn random forest",
        ),
        ModelSpec(
            "cnn2d", "keras", "images", spectro.build_cnn2d,
            {"kind": Param("str", "mel", "image kind the network reads", ("mel", "mfcc")),
             "filters": _filters((16, 32, 64, 128, 64), "filters per convolution (depth = count)"),
             "kernel_size": _KERNEL,
             "dropout": _dropout(0.25, "dropout after each pooling"),
             "dense": Param("int", 32, "dense layer width", low=1, high=MAX_WIDTH)},
            "2-D CNN over mel (or MFCC) images: conv 3x3 + max-pool blocks, dense 32",
            {"lr_schedule": "constant"},
            kinds=("mel",),
        ),
        ModelSpec(
            "cnn2d-base", "keras", "images", spectro.build_cnn2d_base,
            {"filters": _filters((32, 64, 128), "filters per conv block (blocks = count)"),
             "kernel_size": _KERNEL,
             "dropout": _dropout(0.25, "dropout after each block"),
             "dense": Param("int", 128, "dense layer width", low=1, high=MAX_WIDTH),
             "dense_dropout": _dropout(0.5, "dropout after the dense layer")},
            "mel-image base CNN: three conv blocks, dense 128 (50 epochs, patience 10, LR x0.1 on plateaus)",
            {"epochs": 50, "patience": 10, "reduce_lr_factor": 0.1, "lr_schedule": "plateau"},
            kinds=("mel",),
        ),
        ModelSpec(
            "mfcc-cnn", "keras", "images", spectro.build_mfcc_cnn,
            {"filters": _filters((32, 64, 128), "filters per conv/batch-norm/pool block"),
             "kernel_size": _KERNEL,
             "dense": Param("int", 64, "dense layer width", low=1, high=MAX_WIDTH),
             "dropout": _dropout(0.3, "dropout after the dense layer")},
            "CNN over MFCC frames: conv, batch normalisation, ReLU, max-pool blocks",
            {"lr_schedule": "constant"},
            kinds=("mfcc",),
        ),
        ModelSpec(
            "multihead", "keras", "images", spectro.build_multihead,
            {"filters": _filters((16, 32, 64, 128, 128), "filters per convolution of each head"),
             "kernel_size": _KERNEL,
             "dense": _units((256, 128), "fully connected widths after the heads"),
             "dropout": _dropout(0.3, "dropout after each fully connected layer")},
            "one VGG-style head per kind (chroma, mel, MFCC), concatenated, dense layers "
            "(polynomial learning-rate decay)",
            {"lr_schedule": "polynomial"},
            kinds=("chroma", "mel", "mfcc"),
        ),
        ModelSpec(
            "vgg16", "keras", "images", vgg16_model,
            {"weights": Param("str", "imagenet", "VGG16 base weights: imagenet (downloaded by Keras "
                              "when online), a local weights file, or none (random)"),
             "fine_tune_blocks": Param("int", 0, "last VGG16 blocks trained (0: base frozen)", low=0, high=5),
             "fine_tune_lr_factor": Param("float", 0.1, "learning rate of the fine-tuned blocks, as a "
                                          "share of the head's", low=0, high=1, open_low=True),
             "dense_units": Param("int", 128, "dense layer width of the head", low=1, high=MAX_WIDTH),
             "dropout": _dropout(0.5, "dropout after the dense layer")},
            "ImageNet VGG16 base (frozen; -p fine_tune_blocks=N trains its last N blocks at "
            "fine_tune_lr_factor x the rate) under dense 128 + dropout 0.5, on mel images",
            kinds=("mel",),
        ),
        ModelSpec(
            "musicnn", "keras", "images", musicnn_model,
            {"weights": Param("str", "MSD_musicnn", "pretrained musicnn network (from the musicnn package)",
                              choices=MUSICNN_WEIGHTS),
             "fine_tune": Param("str", "none", "what of the network trains besides the genre head: none, "
                                "backend (dense 200 and the batch norms around it) or all", choices=MUSICNN_FINE_TUNE),
             "dropout": _dropout(0.5, "dropout before the genre head")},
            "pretrained musicnn network (MSD or MTT tags; frozen, -p fine_tune=backend|all trains more) "
            "under a new genre head, on musicnn images (--kinds musicnn)",
            kinds=("musicnn",),
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
