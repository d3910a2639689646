"""Spectrogram model builders: 2-D convolutional networks over time-frequency images.

Every builder takes ``input_shape`` (a dict of shapes per kind for
:func:`build_multihead`), ``num_classes``, ``activation`` and explicit keyword
hyperparameters, and returns an uncompiled :class:`keras.Model` with named layers
whose output layer is called ``genre``. Compiling and fitting live in
:mod:`featx.training`. Keras is imported inside the builders, so that importing
featx stays light, and only Keras layers are used, so that any Keras 3 backend
runs them.

Input shapes
------------
An image is ``(height, width)`` (frequency bands x frames, as in a spectrogram
store; a channel axis is added) or ``(height, width, channels)``. The default
inputs quoted below are the store's images of a 3-s segment at the default
settings: mel ``(128, 130)``, MFCC ``(20, 130)``, chroma ``(12, 130)``; and the
mel-image study's ``128x128`` pictures.

Networks whose max-pooling discards the rows or columns left over at each step
need images of a minimum size; they refuse smaller ones before anything is built,
naming that size.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..runtime.keras import import_keras
from ..errors import ConfigError

__all__ = ["build_cnn2d", "build_cnn2d_base", "build_mfcc_cnn", "build_multihead", "min_image_size"]

_ACTIVATIONS = ("softmax", "sigmoid")


# --------------------------------------------------------------------------- checks


def _image_shape(input_shape, builder: str) -> tuple[int, int, int]:
    try:
        shape = tuple(int(d) for d in input_shape)
    except (TypeError, ValueError):
        shape = ()
    if len(shape) == 2:
        shape += (1,)
    if len(shape) != 3 or any(d <= 0 for d in shape):
        raise ConfigError(
            f"{builder} expects an image input_shape (height, width) or (height, width, channels) "
            f"of positive sizes. Received: input_shape={input_shape!r}"
        )
    return shape


def _check_classes(num_classes, activation, builder: str) -> tuple[int, str]:
    try:
        num_classes = int(num_classes)
    except (TypeError, ValueError):
        raise ConfigError(f"{builder} needs num_classes >= 2. Received: num_classes={num_classes!r}") from None
    if num_classes < 2:
        raise ConfigError(f"{builder} needs num_classes >= 2. Received: num_classes={num_classes}")
    if activation not in _ACTIVATIONS:
        raise ConfigError(
            f"{builder}: activation must be one of {', '.join(_ACTIVATIONS)}. Received: activation={activation!r}"
        )
    return int(num_classes), activation


def _positive_ints(values, name: str, builder: str, *, allow_empty: bool = False) -> tuple[int, ...]:
    if isinstance(values, int):
        values = (values,)
    try:
        out = tuple(int(v) for v in values)
    except (TypeError, ValueError):
        out = (0,)
    if (not out and not allow_empty) or any(v <= 0 for v in out):
        raise ConfigError(f"{builder} needs positive integer(s) for {name}. Received: {name}={values!r}")
    return out


def _kernel(kernel_size, builder: str) -> tuple[int, int]:
    k = _positive_ints(kernel_size, "kernel_size", builder)
    if len(k) == 1:
        k = k * 2
    if len(k) != 2:
        raise ConfigError(f"{builder}: kernel_size is one size or (height, width). Received: kernel_size={kernel_size!r}")
    return k


def _rate(value, name: str, builder: str) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        value = -1.0
    if not 0.0 <= value < 1.0:
        raise ConfigError(f"{builder}: {name} must be in [0, 1). Received: {name}={value}")
    return value


def min_image_size(pool_sizes: Sequence[int]) -> int:
    """Smallest height (and width) that survives max-pools of ``pool_sizes`` in turn.

    Each pool without padding keeps ``floor(n / p)`` rows, and at least one row must be
    left after the last one: the product of the pool sizes.
    """
    size = 1
    for p in pool_sizes:
        size *= int(p)
    return size


def _check_size(shape, pools: Sequence[int], builder: str, what: str) -> None:
    need = min_image_size(pools)
    if shape[0] < need or shape[1] < need:
        raise ConfigError(
            f"{builder} needs images of at least {need}x{need} ({what}); resize them "
            f"(e.g. image_size {max(need, 128)}x{max(need, 128)}). Received: input_shape={tuple(shape[:2])}"
        )


def _prepare(keras, input_shape, name: str):
    """Input layer and the 4-D tensor the convolutions read (channel axis added when absent)."""
    from keras import layers  # Keras: only when a network is built, fitted or loaded

    given = tuple(int(d) for d in input_shape)
    inputs = keras.Input(shape=given, name=name)
    if len(given) == 2:
        return inputs, layers.Reshape((*given, 1), name=f"{name}_as_image" if name != "image" else "as_image")(inputs)
    return inputs, inputs


def _checked(builder: str, input_shape, num_classes, activation, filters, kernel_size, dense):
    """The checks every single-input builder makes: ``(shape, num_classes, activation, filters, kernel, dense)``."""
    shape = _image_shape(input_shape, builder)
    num_classes, activation = _check_classes(num_classes, activation, builder)
    filters = _positive_ints(filters, "filters", builder)
    kernel = _kernel(kernel_size, builder)
    (dense,) = _positive_ints(dense, "dense", builder)
    return shape, num_classes, activation, filters, kernel, dense


def _keras_layers():
    keras = import_keras()
    from keras import layers  # Keras: only when a network is built, fitted or loaded

    return keras, layers


def _dense_head(layers, x, *, dense: int, dropout: float, dropout_name: str, num_classes: int, activation: str):
    """Flatten, a ReLU layer of ``dense`` units, dropout (when non-zero) and the ``genre`` output."""
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(dense, activation="relu", name="dense")(x)
    if dropout:
        x = layers.Dropout(dropout, name=dropout_name)(x)
    return layers.Dense(num_classes, activation=activation, name="genre")(x)


# --------------------------------------------------------------------------- builders


def build_cnn2d(
    input_shape: Sequence[int],
    num_classes: int,
    *,
    filters: Sequence[int] = (16, 32, 64, 128, 64),
    kernel_size: int | Sequence[int] = 3,
    dropout: float = 0.25,
    dense: int = 32,
    activation: str = "softmax",
):
    """The MFCC/mel-spectrogram CNN of the seed study.

    Convolutions of ``kernel_size`` with ``filters`` (16, 32, 64, 128, 64), each with
    ReLU, then max-pooling (2x2 after each but the last, 4x4 after the last) and
    dropout 0.25; flattened; dense 32 (ReLU); softmax. Convolutions keep the image
    size ('same' padding), so only the pooling limits it: images must be at least
    ``2**(len(filters) - 1) * 4`` pixels in each direction (64x64 by default).

    For the default mel input ``(128, 130)`` and 10 classes it has 179,498 parameters.

    Parameters
    ----------
    input_shape : (height, width) or (height, width, channels)
    num_classes : int >= 2
    filters : sequence of int
        Filters per convolution; its length is the depth.
    kernel_size : int or (int, int)
    dropout : float in [0, 1)
        Dropout after each pooling.
    dense : int > 0
        Width of the ReLU layer before the output.
    activation : {'softmax', 'sigmoid'}
        Output activation: one genre per image, or several.
    """
    builder = "build_cnn2d"
    shape, num_classes, activation, filters, kernel, dense = _checked(
        builder, input_shape, num_classes, activation, filters, kernel_size, dense)
    dropout = _rate(dropout, "dropout", builder)
    pools = [2] * (len(filters) - 1) + [4]
    _check_size(shape, pools, builder, f"{len(pools) - 1} max-pools of 2 and one of 4")

    keras, layers = _keras_layers()

    inputs, x = _prepare(keras, input_shape, "image")
    for i, (n, pool) in enumerate(zip(filters, pools), start=1):
        x = layers.Conv2D(n, kernel, padding="same", activation="relu", name=f"conv_{i}")(x)
        x = layers.MaxPooling2D(pool, name=f"pool_{i}")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"dropout_{i}")(x)
    outputs = _dense_head(layers, x, dense=dense, dropout=0.0, dropout_name="", num_classes=num_classes,
                          activation=activation)
    return keras.Model(inputs, outputs, name="cnn2d")


def build_cnn2d_base(
    input_shape: Sequence[int],
    num_classes: int,
    *,
    filters: Sequence[int] = (32, 64, 128),
    kernel_size: int | Sequence[int] = 3,
    dropout: float = 0.25,
    dense: int = 128,
    dense_dropout: float = 0.5,
    activation: str = "softmax",
):
    """The mel-image study's base model.

    Three blocks, each a ``kernel_size`` convolution (ReLU, 'same' padding), a 2x2
    max-pool and dropout; flattened; dense 128 (ReLU) with dropout; softmax. The study
    trained it on 128x128 grayscale mel-spectrogram pictures with Adam (1e-3), batch
    32, up to 50 epochs, early stopping (patience 10) and learning-rate reduction on
    plateaus (factor 0.1); those belong to the training settings.
    Images must be at least ``2**len(filters)`` pixels each way (8x8 by default).

    For the default input ``(128, 128)`` and 10 classes it has 4,288,394 parameters.

    Parameters
    ----------
    input_shape : (height, width) or (height, width, channels)
    num_classes : int >= 2
    filters : sequence of int
        Filters per block; its length is the number of blocks.
    kernel_size : int or (int, int)
    dropout : float in [0, 1)
        Dropout after each block.
    dense : int > 0
        Width of the ReLU layer before the output.
    dense_dropout : float in [0, 1)
        Dropout after that layer.
    activation : {'softmax', 'sigmoid'}
    """
    builder = "build_cnn2d_base"
    shape, num_classes, activation, filters, kernel, dense = _checked(
        builder, input_shape, num_classes, activation, filters, kernel_size, dense)
    dropout = _rate(dropout, "dropout", builder)
    dense_dropout = _rate(dense_dropout, "dense_dropout", builder)
    pools = [2] * len(filters)
    _check_size(shape, pools, builder, f"{len(pools)} max-pools of 2")

    keras, layers = _keras_layers()

    inputs, x = _prepare(keras, input_shape, "image")
    for i, n in enumerate(filters, start=1):
        x = layers.Conv2D(n, kernel, padding="same", activation="relu", name=f"conv_{i}")(x)
        x = layers.MaxPooling2D(2, name=f"pool_{i}")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"dropout_{i}")(x)
    outputs = _dense_head(layers, x, dense=dense, dropout=dense_dropout, dropout_name="dropout_dense",
                          num_classes=num_classes, activation=activation)
    return keras.Model(inputs, outputs, name="cnn2d_base")


def build_mfcc_cnn(
    input_shape: Sequence[int],
    num_classes: int,
    *,
    filters: Sequence[int] = (32, 64, 128),
    kernel_size: int | Sequence[int] = 3,
    dense: int = 64,
    dropout: float = 0.3,
    activation: str = "softmax",
):
    """The MFCC CNN of the lecture slides: convolution blocks over a segment's MFCC frames.

    Each block is a ``kernel_size`` convolution ('same' padding, no bias), batch
    normalisation, ReLU and a 2x2 max-pool; then flattened, dense (ReLU), dropout,
    softmax. Images must be at least ``2**len(filters)`` each way (8x8 by default:
    13 or more MFCCs).

    For the default MFCC input ``(20, 130)`` and 10 classes it has 356,202 parameters.

    Parameters
    ----------
    input_shape : (n_mfcc, n_frames) or (n_mfcc, n_frames, channels)
    num_classes : int >= 2
    filters : sequence of int
        Filters per block; its length is the number of blocks.
    kernel_size : int or (int, int)
    dense : int > 0
        Width of the ReLU layer before the output.
    dropout : float in [0, 1)
        Dropout after that layer.
    activation : {'softmax', 'sigmoid'}
    """
    builder = "build_mfcc_cnn"
    shape, num_classes, activation, filters, kernel, dense = _checked(
        builder, input_shape, num_classes, activation, filters, kernel_size, dense)
    dropout = _rate(dropout, "dropout", builder)
    pools = [2] * len(filters)
    _check_size(shape, pools, builder, f"{len(pools)} max-pools of 2")

    keras, layers = _keras_layers()

    inputs, x = _prepare(keras, input_shape, "mfcc")
    for i, n in enumerate(filters, start=1):
        x = layers.Conv2D(n, kernel, padding="same", use_bias=False, name=f"conv_{i}")(x)
        x = layers.BatchNormalization(name=f"batch_norm_{i}")(x)
        x = layers.Activation("relu", name=f"relu_{i}")(x)
        x = layers.MaxPooling2D(2, name=f"pool_{i}")(x)
    outputs = _dense_head(layers, x, dense=dense, dropout=dropout, dropout_name="dropout",
                          num_classes=num_classes, activation=activation)
    return keras.Model(inputs, outputs, name="mfcc_cnn")


#: Default inputs of :func:`build_multihead`: a 3-s segment's images at the default settings.
MULTIHEAD_DEFAULT_INPUT = {"chroma": (12, 130), "mel": (128, 130), "mfcc": (20, 130)}


def build_multihead(
    input_shape: Mapping[str, Sequence[int]],
    num_classes: int,
    *,
    filters: Sequence[int] = (16, 32, 64, 128, 128),
    kernel_size: int | Sequence[int] = 3,
    dense: Sequence[int] = (256, 128),
    dropout: float = 0.3,
    activation: str = "softmax",
):
    """The multi-head study's network: one VGG-style head per image kind of a segment.

    Each head reads one kind (its input is named after it) through five
    ``kernel_size`` convolutions with ReLU, each followed by batch normalisation and
    a 2x2 max-pool; the heads' final feature maps are flattened and concatenated,
    then fully connected ReLU layers of ``dense`` widths, each followed by dropout,
    and the output. The pools pad a leftover row or column instead of dropping it,
    so every kind keeps its own shape (12 chroma bins beside 128 mel bands) and no
    image is too small; a head's map just stops shrinking at one row.

    For the default inputs (chroma ``(12, 130)``, mel ``(128, 130)``, MFCC
    ``(20, 130)``) and 10 classes it has 1,756,106 parameters.

    Parameters
    ----------
    input_shape : dict
        ``kind -> (height, width)`` (or with channels), one head per kind, e.g.
        :data:`MULTIHEAD_DEFAULT_INPUT`. Fit it with a dict of arrays keyed by kind.
    num_classes : int >= 2
    filters : sequence of int
        Filters per convolution of each head; its length is the head's depth.
    kernel_size : int or (int, int)
    dense : sequence of int
        Widths of the fully connected layers after the concatenation.
    dropout : float in [0, 1)
        Dropout after each fully connected layer.
    activation : {'softmax', 'sigmoid'}
    """
    builder = "build_multihead"
    if not isinstance(input_shape, Mapping) or not input_shape:
        raise ConfigError(
            f"{builder} expects input_shape as a dict of image shapes per kind, e.g. "
            f"{MULTIHEAD_DEFAULT_INPUT}. Received: input_shape={input_shape!r}"
        )
    shapes = {str(kind): _image_shape(shape, builder) for kind, shape in input_shape.items()}
    num_classes, activation = _check_classes(num_classes, activation, builder)
    filters = _positive_ints(filters, "filters", builder)
    kernel = _kernel(kernel_size, builder)
    units = _positive_ints(dense, "dense", builder)
    dropout = _rate(dropout, "dropout", builder)

    keras, layers = _keras_layers()
    inputs, heads = {}, []
    for kind in shapes:
        inputs[kind], x = _prepare(keras, input_shape[kind], kind)
        for i, n in enumerate(filters, start=1):
            x = layers.Conv2D(n, kernel, padding="same", activation="relu", name=f"{kind}_conv_{i}")(x)
            x = layers.BatchNormalization(name=f"{kind}_batch_norm_{i}")(x)
            x = layers.MaxPooling2D(2, padding="same", name=f"{kind}_pool_{i}")(x)
        heads.append(layers.Flatten(name=f"{kind}_flatten")(x))
    x = heads[0] if len(heads) == 1 else layers.Concatenate(name="heads")(heads)
    for i, n in enumerate(units, start=1):
        x = layers.Dense(n, activation="relu", name=f"dense_{i}")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"dropout_{i}")(x)
    outputs = layers.Dense(num_classes, activation=activation, name="genre")(x)
    return keras.Model(inputs, outputs, name="multihead")
