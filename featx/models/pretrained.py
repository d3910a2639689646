"""Pretrained networks as registry models: ``vgg16`` on mel images of a spectrogram store,
``musicnn`` on its own log-mel patches (store kind ``musicnn``).

:func:`vgg16_model` is the registry's builder: :func:`featx.models.transfer.build_vgg16`
(ImageNet's VGG16 base, frozen, under dense 128 + dropout 0.5, as the mel-image study)
with the training option ``fine_tune_lr_factor``. :func:`fine_tuning_optimizer` gives
the unfrozen VGG16 blocks (``fine_tune_blocks=N``) that fraction of the learning rate,
while the new head learns at the full rate: the usual way of adapting pretrained
filters without wiping them out in the first epochs.

:func:`musicnn_model` is the ``musicnn`` builder: the Keras port of a pretrained musicnn
network (:mod:`featx.extract.musicnn`) with its checkpoint's weights, cut at its
penultimate layer (dense 200 + batch norm), under a new ``genre`` head (dropout, then
dense with softmax or sigmoid per the label encoding) in place of the 50 tag outputs.

Keras 3 optimizers take one learning rate; the optimizer is therefore rebuilt as a
subclass of its own class whose update step multiplies the rate of the chosen
variables by the factor (every optimizer featx offers updates each variable in
``update_step``). A model saved after training keeps only its weights: bundles load
without the optimizer.
"""
from __future__ import annotations

from collections.abc import Sequence

from ..runtime.keras import import_keras
from ..errors import ConfigError
from ..extract.musicnn import assign_weights, build_musicnn, checkpoint_variables
from .transfer import BASE_NAME, build_vgg16, fine_tuned_layers

__all__ = ["DEFAULT_LR_FACTOR", "MUSICNN_FINE_TUNE", "MUSICNN_WEIGHTS", "fine_tuning_optimizer",
           "musicnn_model", "vgg16_model"]

#: Learning-rate factor of the fine-tuned VGG16 blocks, relative to the head's.
DEFAULT_LR_FACTOR = 0.1
#: The pretrained musicnn networks the ``musicnn`` model starts from.
MUSICNN_WEIGHTS = ("MSD_musicnn", "MTT_musicnn")
#: What of the musicnn network trains: nothing (only the new head), its back end, or all.
MUSICNN_FINE_TUNE = ("none", "backend", "all")
#: Layers of the musicnn back end (after the time pooling), trained with ``fine_tune='backend'``.
_MUSICNN_BACKEND = ("pool_bn", "penultimate_dense", "penultimate")


def vgg16_model(input_shape: Sequence[int], num_classes: int, *, activation: str = "softmax",
                weights="imagenet", fine_tune_blocks: int = 0, fine_tune_lr_factor: float = DEFAULT_LR_FACTOR,
                dense_units: int = 128, dropout: float = 0.5):
    """The ``vgg16`` registry model (see :func:`featx.models.transfer.build_vgg16`).

    Parameters
    ----------
    input_shape : (height, width) or (height, width, channels)
        A store's mel images, each side at least 32 pixels.
    num_classes : int >= 2
    activation : {'softmax', 'sigmoid'}
    weights : 'imagenet', path or 'none'
        The base's starting weights.
    fine_tune_blocks : int in [0, 5]
        VGG16's last blocks left trainable.
    fine_tune_lr_factor : float in (0, 1]
        Their learning rate relative to the head's; used by the trainer
        (:func:`fine_tuning_optimizer`), not by the network.
    dense_units : int > 0
    dropout : float in [0, 1)

    Returns
    -------
    keras.Model
        Uncompiled.
    """
    _check_factor(fine_tune_lr_factor)

    return build_vgg16(input_shape, num_classes, activation=activation, weights=weights,
                       fine_tune_blocks=fine_tune_blocks, dense_units=dense_units, dropout=dropout)


def musicnn_model(input_shape: Sequence[int], num_classes: int, *, activation: str = "softmax",
                  weights: str = "MSD_musicnn", fine_tune: str = "none", dropout: float = 0.5):
    """The ``musicnn`` registry model: a pretrained musicnn network under a new genre head.

    Parameters
    ----------
    input_shape : (96, frames)
        A store's ``musicnn`` images (mel bands x frames; 96 x 187 for 3-s segments).
    num_classes : int >= 2
    activation : {'softmax', 'sigmoid'}
    weights : {'MSD_musicnn', 'MTT_musicnn'}
        The checkpoint the network starts from (from the installed musicnn package).
    fine_tune : {'none', 'backend', 'all'}
        ``'none'``: the whole pretrained network is frozen (its batch norms keep their
        statistics) and only the genre head trains; ``'backend'``: the back end (batch
        norm of the pooled features, dense 200 and its batch norm) trains too;
        ``'all'``: every layer trains.
    dropout : float in [0, 1)
        Before the genre head's dense layer.

    Returns
    -------
    keras.Model
        Uncompiled; its nested ``musicnn_base`` model holds the pretrained layers.

    Raises
    ------
    ConfigError
        Images that are not 96 mel bands high, or an unknown ``weights`` or ``fine_tune``.
    featx.extract.musicnn.MusicnnUnavailableError
        The musicnn package is not installed (the message gives the install command).
    """
    shape = tuple(int(d) for d in input_shape)
    if len(shape) != 2 or shape[0] != 96:
        raise ConfigError(f"the musicnn model reads musicnn images of 96 mel bands x frames (make the store "
                          f"with kinds=musicnn). Received: input_shape={shape}", param="input_shape")
    if weights not in MUSICNN_WEIGHTS:
        raise ConfigError(f"weights must be one of {', '.join(MUSICNN_WEIGHTS)}. Received: weights={weights!r}",
                          param="weights")
    if fine_tune not in MUSICNN_FINE_TUNE:
        raise ConfigError(f"fine_tune must be one of {', '.join(MUSICNN_FINE_TUNE)}. "
                          f"Received: fine_tune={fine_tune!r}", param="fine_tune")
    keras = import_keras()
    net = build_musicnn(model=weights, n_frames=shape[1])
    assign_weights(net, checkpoint_variables(weights), model=weights)
    base = keras.Model(net.inputs, net.get_layer("penultimate").output, name="musicnn_base")
    for layer in base.layers:
        layer.trainable = fine_tune == "all" or (fine_tune == "backend" and layer.name in _MUSICNN_BACKEND)
    inputs = keras.Input(shape=shape, name="musicnn")
    x = keras.layers.Permute((2, 1), name="frames_first")(inputs)  # the network reads (frames, bands)
    x = base(x)
    x = keras.layers.Dropout(dropout, name="genre_dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation=activation, name="genre")(x)
    return keras.Model(inputs, outputs, name="musicnn")


def _check_factor(factor) -> float:
    try:
        value = float(factor)
    except (TypeError, ValueError):
        value = float("nan")
    if isinstance(factor, bool) or not 0 < value <= 1:
        raise ConfigError(f"fine_tune_lr_factor must be a number in (0, 1]. "
                          f"Received: fine_tune_lr_factor={factor!r}", param="fine_tune_lr_factor")
    return value


def fine_tuning_optimizer(model, optimizer, params: dict | None = None):
    """``optimizer``, or a copy that trains the fine-tuned VGG16 blocks of ``model`` slower.

    Parameters
    ----------
    model : keras.Model
        Any model; only one with fine-tuned VGG16 blocks (see
        :func:`featx.models.transfer.fine_tuned_layers`) gets another optimizer.
    optimizer : keras.optimizers.Optimizer
        Not yet built (as made for ``compile``).
    params : dict, optional
        The model's hyperparameters; ``fine_tune_lr_factor`` (default
        :data:`DEFAULT_LR_FACTOR`) is the fine-tuned blocks' share of the rate.

    Returns
    -------
    keras.optimizers.Optimizer
        Of a subclass of ``optimizer``'s class, with the same configuration (learning
        rate or schedule included); ``optimizer`` itself when nothing is fine-tuned or
        the factor is 1.
    """
    factor = _check_factor((params or {}).get("fine_tune_lr_factor", DEFAULT_LR_FACTOR))
    try:
        model.get_layer(BASE_NAME)
    except ValueError:
        return optimizer
    slow = {v.path for layer in fine_tuned_layers(model) for v in layer.trainable_weights}
    if not slow or factor == 1:
        return optimizer
    cls = type(optimizer)

    class SlowerFineTuning(cls):
        def build(self, variables):
            super().build(variables)
            self._featx_slow = {self._var_key(v) for v in variables if v.path in slow}

        def update_step(self, gradient, variable, learning_rate):
            if self._var_key(variable) in self._featx_slow:
                learning_rate = learning_rate * factor
            return super().update_step(gradient, variable, learning_rate)

    SlowerFineTuning.__name__ = SlowerFineTuning.__qualname__ = f"SlowerFineTuning{cls.__name__}"
    return SlowerFineTuning.from_config(optimizer.get_config())
