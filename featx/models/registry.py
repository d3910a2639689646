"""Model registry: name -> family, builder, hyperparameters and training defaults.

Every model featx trains is one entry here (a :class:`ModelSpec`): the family
that trains, saves and loads it (:mod:`featx.models.base`), the builder that
makes the network or estimator, its hyperparameters (:class:`~featx.models.params.Param`)
and the training options it changes. :func:`create` hands out a family object
for a validated training configuration; nothing outside :mod:`featx.models`
needs to know which family a model belongs to. An unknown model or
hyperparameter name is a :class:`~featx.errors.ConfigError` that lists the
valid ones.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field

from . import keras_spectro as spectro
from . import keras_tabular as nets
from ..errors import ConfigError
from .params import DEPTH, KERNEL, MAX_WIDTH, SVM_C, SVM_GAMMA, Param, dropout, units
from .pretrained import MUSICNN_FINE_TUNE, MUSICNN_WEIGHTS, musicnn_model, vgg16_model
from .sklearn import make_ensemble, make_knn, make_random_forest, make_svm

__all__ = ["ModelSpec", "MODELS", "get_model", "model_names", "create"]


@dataclass(frozen=True)
class ModelSpec:
    """A registered model.

    Attributes
    ----------
    name : str
    family_name : str
        The adapter class that builds, fits, predicts, saves and loads the model, and
        knows what it reads (:attr:`input`), as ``module:Class`` in :mod:`featx.models`;
        :attr:`family` imports it (a family's module pulls in pandas and the data layer,
        which listing the models or parsing a search space does not need).
    builder : callable
        Keras: ``builder(input_shape, num_classes, **params)`` -> uncompiled model.
        scikit-learn: ``builder(seed=..., **params)`` -> unfitted estimator.
    params : dict of str -> Param
    description : str
    train_defaults : dict
        Training options this model changes from featx's defaults.
    kinds : tuple of str
        Image kinds an image model reads (a ``kind`` hyperparameter picks one instead).
    """

    name: str
    family_name: str
    builder: Callable
    params: dict[str, Param] = field(default_factory=dict)
    description: str = ""
    train_defaults: dict = field(default_factory=dict)
    kinds: tuple = ()

    @property
    def family(self) -> type:
        """The model's family: a subclass of :class:`~featx.models.base.ModelFamily`."""
        module, _, name = self.family_name.partition(":")
        return getattr(importlib.import_module(f"{__package__}.{module}"), name)

    @property
    def kind(self) -> str:
        """The library that trains the model: ``'keras'`` or ``'sklearn'`` (recorded in bundles)."""
        return self.family.library

    @property
    def input(self) -> str:
        """What the model reads: ``'rows'``, ``'segments'`` (a track's rows) or ``'images'``."""
        return self.family.input

    def image_kinds(self, params: dict | None = None) -> tuple[str, ...]:
        """The store kinds the model reads with ``params``; ``()`` for table models."""
        return self.family.image_kinds(self, params or {})

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
            units_ = list(params["units"])
            if "units" in overrides and len(units_) != depth:
                raise ConfigError(
                    f"model {self.name!r}: depth={depth} but units={tuple(units_)} has {len(units_)} "
                    "layer(s); give one of them, or matching values"
                )
            while len(units_) < depth:
                units_.append(max(1, units_[-1] // 2))
            params["units"] = tuple(units_[:depth])
        return params


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "lstm", "keras_rows:KerasRows", nets.build_lstm,
            {"units": units((256, 128, 64), "LSTM units per layer (depth = count)"),
             "dropout": dropout(0.2)},
            "stacked LSTM over the feature vector read as a sequence of scalars",
        ),
        ModelSpec(
            "segment-lstm", "keras_segments:KerasSegments", nets.build_segment_lstm,
            {"units": units((64,), "LSTM units per layer"),
             "dropout": dropout(0.3),
             "dense": Param("int", 64, "ReLU layer width before the output (0: none)",
                            low=0, high=MAX_WIDTH)},
            "LSTM over a track's sequence of segment vectors; one prediction per track",
        ),
        ModelSpec(
            "mlp", "keras_rows:KerasRows", nets.build_mlp,
            {"units": units((512, 256, 128), "hidden layer widths"),
             "dropout": dropout(0.4),
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
            "cnn", "keras_rows:KerasRows", nets.build_cnn,
            {"filters": units((32, 64), "filters per Conv1D block"),
             "kernel_size": Param("int", 3, "convolution width", low=1, high=1024),
             "dense": Param("int", 128, "dense layer width", low=1, high=MAX_WIDTH),
             "dropout": dropout(0.3, "dropout before the output")},
            "1-D convolutional baseline over the feature vector",
        ),
        ModelSpec(
            "svm", "sklearn_rows:SklearnRows", make_svm,
            {"C": SVM_C,
             "gamma": SVM_GAMMA,
             "kernel": Param("str", "rbf", "kernel", ("rbf", "linear", "poly", "sigmoid"))},
            "scikit-learn SVC (RBF), one per genre; calibrated probabilities (temperature scaling)",
        ),
        ModelSpec(
            "ensemble", "sklearn_rows:SklearnRows", make_ensemble,
            {"C": SVM_C,
             "gamma": SVM_GAMMA,
             "nn_units": units((256, 128), "network: hidden layer widths"),
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
            "knn", "sklearn_rows:SklearnRows", make_knn,
            {"n_neighbors": Param("int", 5, "neighbours", low=1, high=100_000),
             "weights": Param("str", "uniform", "vote weights", ("uniform", "distance"))},
            "scikit-learn k-nearest neighbours",
        ),
        ModelSpec(
            "random-forest", "sklearn_rows:SklearnRows", make_random_forest,
            {"n_estimators": Param("int", 300, "trees", low=1, high=10_000),
             "max_depth": Param("int", 0, "maximum depth (0: unlimited)", low=0, high=10_000),
             "min_samples_leaf": Param("int", 1, "minimum samples per leaf", low=1, high=1_000_000)},
            "scikit-learn random forest",
        ),
        ModelSpec(
            "cnn2d", "keras_images:KerasImages", spectro.build_cnn2d,
            {"kind": Param("str", "mel", "image kind the network reads", ("mel", "mfcc")),
             "filters": units((16, 32, 64, 128, 64), "filters per convolution (depth = count)"),
             "kernel_size": KERNEL,
             "dropout": dropout(0.25, "dropout after each pooling"),
             "dense": Param("int", 32, "dense layer width", low=1, high=MAX_WIDTH)},
            "2-D CNN over mel (or MFCC) images: conv 3x3 + max-pool blocks, dense 32",
            {"lr_schedule": "constant"},
            kinds=("mel",),
        ),
        ModelSpec(
            "cnn2d-base", "keras_images:KerasImages", spectro.build_cnn2d_base,
            {"filters": units((32, 64, 128), "filters per conv block (blocks = count)"),
             "kernel_size": KERNEL,
             "dropout": dropout(0.25, "dropout after each block"),
             "dense": Param("int", 128, "dense layer width", low=1, high=MAX_WIDTH),
             "dense_dropout": dropout(0.5, "dropout after the dense layer")},
            "mel-image base CNN: three conv blocks, dense 128 (50 epochs, patience 10, LR x0.1 on plateaus)",
            {"epochs": 50, "patience": 10, "reduce_lr_factor": 0.1, "lr_schedule": "plateau"},
            kinds=("mel",),
        ),
        ModelSpec(
            "mfcc-cnn", "keras_images:KerasImages", spectro.build_mfcc_cnn,
            {"filters": units((32, 64, 128), "filters per conv/batch-norm/pool block"),
             "kernel_size": KERNEL,
             "dense": Param("int", 64, "dense layer width", low=1, high=MAX_WIDTH),
             "dropout": dropout(0.3, "dropout after the dense layer")},
            "CNN over MFCC frames: conv, batch normalisation, ReLU, max-pool blocks",
            {"lr_schedule": "constant"},
            kinds=("mfcc",),
        ),
        ModelSpec(
            "multihead", "keras_images:KerasImages", spectro.build_multihead,
            {"filters": units((16, 32, 64, 128, 128), "filters per convolution of each head"),
             "kernel_size": KERNEL,
             "dense": units((256, 128), "fully connected widths after the heads"),
             "dropout": dropout(0.3, "dropout after each fully connected layer")},
            "one VGG-style head per kind (chroma, mel, MFCC), concatenated, dense layers "
            "(polynomial learning-rate decay)",
            {"lr_schedule": "polynomial"},
            kinds=("chroma", "mel", "mfcc"),
        ),
        ModelSpec(
            "vgg16", "keras_images:KerasImages", vgg16_model,
            {"weights": Param("str", "imagenet", "VGG16 base weights: imagenet (downloaded by Keras "
                              "when online), a local weights file, or none (random)"),
             "fine_tune_blocks": Param("int", 0, "last VGG16 blocks trained (0: base frozen)", low=0, high=5),
             "fine_tune_lr_factor": Param("float", 0.1, "learning rate of the fine-tuned blocks, as a "
                                          "share of the head's", low=0, high=1, open_low=True),
             "dense_units": Param("int", 128, "dense layer width of the head", low=1, high=MAX_WIDTH),
             "dropout": dropout(0.5, "dropout after the dense layer")},
            "ImageNet VGG16 base (frozen; -p fine_tune_blocks=N trains its last N blocks at "
            "fine_tune_lr_factor x the rate) under dense 128 + dropout 0.5, on mel images",
            kinds=("mel",),
        ),
        ModelSpec(
            "musicnn", "keras_images:KerasImages", musicnn_model,
            {"weights": Param("str", "MSD_musicnn", "pretrained musicnn network (from the musicnn package)",
                              choices=MUSICNN_WEIGHTS),
             "fine_tune": Param("str", "none", "what of the network trains besides the genre head: none, "
                                "backend (dense 200 and the batch norms around it) or all", choices=MUSICNN_FINE_TUNE),
             "dropout": dropout(0.5, "dropout before the genre head")},
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
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown model {name!r}; expected one of {', '.join(MODELS)}"
        ) from None


def model_names() -> list[str]:
    """Every registered model's name, in registry order."""
    return list(MODELS)


def create(config, labels, *, table=None):
    """A new, unfitted model object for a validated configuration.

    Parameters
    ----------
    config : TrainConfig
        A validated training configuration (:meth:`featx.training.config.TrainConfig.validate`):
        its ``model`` names the registry entry, its ``params`` the hyperparameters.
    labels : LabelEncoding
        The fitted label encoding (one genre per row, or several).
    table : FeatureTable or StoreTable, optional
        The whole table the model will be trained and evaluated on. Some families take
        table-wide facts from it (the longest track's segment count, the image shapes),
        so that every fold builds the same network.

    Returns
    -------
    ModelFamily
        A new instance of the model's family.
    """
    spec = get_model(config.model)
    return spec.family(spec, config.params, labels, config=config, table=table)
