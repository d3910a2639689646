"""Model builders: pure functions returning uncompiled Keras models.

Every builder takes ``input_shape`` and ``num_classes`` plus explicit keyword
hyperparameters and returns an uncompiled :class:`keras.Model` with named
layers. ``activation`` sets the output layer's activation (like the
``classifier_activation`` of :mod:`keras.applications`): ``"softmax"`` for one
genre per row, ``"sigmoid"`` for several (see :class:`featx.data.labels.LabelEncoding`). Compiling and fitting live in :mod:`featx.training`. Keras is imported
inside the builders so that importing featx stays light.

Input shapes
------------
- ``build_lstm``, ``build_mlp``, ``build_cnn``: ``(n_features,)``, one feature
  vector per row.
- ``build_segment_lstm``: ``(n_segments, n_features)``, a track's segment
  vectors in time order, zero-padded at the end (padding is masked).
"""
from __future__ import annotations

from collections.abc import Sequence

from ..runtime.keras import import_keras
from ..data.labels import ACTIVATIONS
from ..errors import ConfigError


def _check_common(input_shape, num_classes, ndim: int, builder: str) -> tuple[int, ...]:
    shape = tuple(int(d) for d in input_shape)
    if len(shape) != ndim or any(d <= 0 for d in shape):
        raise ConfigError(
            f"{builder} expects an input_shape of {ndim} positive dimension(s). "
            f"Received: input_shape={tuple(input_shape)}"
        )
    if int(num_classes) < 2:
        raise ConfigError(f"{builder} needs num_classes >= 2. Received: num_classes={num_classes}")
    return shape


def _check_activation(activation: str, builder: str) -> str:
    if activation not in ACTIVATIONS:
        raise ConfigError(
            f"{builder}: activation must be one of {', '.join(ACTIVATIONS)}. Received: activation={activation!r}",
            param="activation",
        )
    return activation


def _check_units(units: Sequence[int], builder: str) -> tuple[int, ...]:
    units = tuple(int(u) for u in units)
    if not units or any(u <= 0 for u in units):
        raise ConfigError(f"{builder} needs one or more positive layer sizes. Received: units={units}")
    return units


def _check_rate(value: float, name: str, builder: str) -> float:
    value = float(value)
    if not 0.0 <= value < 1.0:
        raise ConfigError(f"{builder}: {name} must be in [0, 1). Received: {name}={value}")
    return value


def _lstm_stack(x, units: tuple[int, ...], dropout: float):
    """LSTM layers of ``units`` in turn over the sequence ``x``, each followed by dropout;
    the last returns one vector, the others their whole sequence."""
    from keras import layers  # Keras: only when a network is built, fitted or loaded

    for i, n in enumerate(units):
        last = i == len(units) - 1
        x = layers.LSTM(n, return_sequences=not last, name=f"lstm_{i + 1}")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"dropout_{i + 1}")(x)
    return x


def build_lstm(
    input_shape: Sequence[int],
    num_classes: int,
    *,
    units: Sequence[int] = (256, 128, 64),
    dropout: float = 0.2,
    activation: str = "softmax",
):
    """Stacked LSTM reading the feature vector as a sequence of scalars.

    The GTZAN LSTM study's network: LSTM 256 -> 128 -> 64 over the
    ``n_features`` scalars, softmax output. With the default units and 10
    classes it has 511,370 parameters (independent of ``n_features``).

    Parameters
    ----------
    input_shape : (n_features,)
    num_classes : int >= 2
    units : sequence of int
        Units per LSTM layer; its length is the depth.
    dropout : float in [0, 1)
        Dropout after each LSTM layer (adds no parameters).
    activation : {'softmax', 'sigmoid'}
        Output activation: one genre per row, or several.
    """
    keras = import_keras()
    from keras import layers  # Keras: only when a network is built, fitted or loaded

    (n_features,) = _check_common(input_shape, num_classes, 1, "build_lstm")
    units = _check_units(units, "build_lstm")
    dropout = _check_rate(dropout, "dropout", "build_lstm")
    activation = _check_activation(activation, "build_lstm")
    inputs = keras.Input(shape=(n_features,), name="features")
    x = layers.Reshape((n_features, 1), name="as_sequence")(inputs)
    x = _lstm_stack(x, units, dropout)
    outputs = layers.Dense(int(num_classes), activation=activation, name="genre")(x)
    return keras.Model(inputs, outputs, name="lstm")


def build_segment_lstm(
    input_shape: Sequence[int],
    num_classes: int,
    *,
    units: Sequence[int] = (64,),
    dropout: float = 0.3,
    dense: int = 64,
    activation: str = "softmax",
):
    """LSTM over a track's sequence of segment feature vectors (one output per track).

    Parameters
    ----------
    input_shape : (n_segments, n_features)
        Shorter tracks are zero-padded at the end; all-zero steps are masked.
    units : sequence of int
        Units per LSTM layer.
    dropout : float in [0, 1)
        Dropout after each recurrent and dense layer.
    dense : int >= 0
        Width of a ReLU layer before the output (0: none).
    activation : {'softmax', 'sigmoid'}
        Output activation: one genre per track, or several.
    """
    keras = import_keras()
    from keras import layers  # Keras: only when a network is built, fitted or loaded

    n_segments, n_features = _check_common(input_shape, num_classes, 2, "build_segment_lstm")
    units = _check_units(units, "build_segment_lstm")
    dropout = _check_rate(dropout, "dropout", "build_segment_lstm")
    activation = _check_activation(activation, "build_segment_lstm")
    inputs = keras.Input(shape=(n_segments, n_features), name="segments")
    x = layers.Masking(mask_value=0.0, name="padding_mask")(inputs)
    x = _lstm_stack(x, units, dropout)
    if int(dense) > 0:
        x = layers.Dense(int(dense), activation="relu", name="dense")(x)
        if dropout:
            x = layers.Dropout(dropout, name="dropout_dense")(x)
    outputs = layers.Dense(int(num_classes), activation=activation, name="genre")(x)
    return keras.Model(inputs, outputs, name="segment_lstm")


def build_mlp(
    input_shape: Sequence[int],
    num_classes: int,
    *,
    units: Sequence[int] = (512, 256, 128),
    dropout: float = 0.4,
    batch_norm: bool = True,
    l2: float = 1e-4,
    noise: float = 0.0,
    members: int = 1,
    activation: str = "softmax",
):
    """Fully connected network on the standardised feature vector.

    Parameters
    ----------
    input_shape : (n_features,)
    units : sequence of int
        Width of each hidden layer (ReLU).
    dropout : float in [0, 1)
        Dropout after each hidden layer.
    batch_norm : bool
        Batch normalisation before each activation.
    l2 : float >= 0
        L2 weight penalty on the hidden layers.
    noise : float >= 0
        Standard deviation of Gaussian noise added to the (standardised) input
        during training only.
    members : int >= 1
        Independent sub-networks trained jointly whose outputs are averaged
        (an ensemble inside one model).
    activation : {'softmax', 'sigmoid'}
        Output activation: one genre per row, or several.
    """
    keras = import_keras()
    from keras import layers  # Keras: only when a network is built, fitted or loaded

    (n_features,) = _check_common(input_shape, num_classes, 1, "build_mlp")
    units = _check_units(units, "build_mlp")
    dropout = _check_rate(dropout, "dropout", "build_mlp")
    activation = _check_activation(activation, "build_mlp")
    if float(l2) < 0 or float(noise) < 0 or int(members) < 1:
        raise ConfigError(
            f"build_mlp: l2 and noise must be >= 0 and members >= 1. "
            f"Received: l2={l2}, noise={noise}, members={members}"
        )
    reg = keras.regularizers.L2(float(l2)) if l2 else None
    inputs = keras.Input(shape=(n_features,), name="features")
    x0 = layers.GaussianNoise(float(noise), name="input_noise")(inputs) if noise else inputs
    outputs = []
    for m in range(int(members)):
        tag = f"m{m + 1}_" if members > 1 else ""
        x = x0
        for i, n in enumerate(units):
            x = layers.Dense(n, use_bias=not batch_norm, kernel_regularizer=reg, name=f"{tag}dense_{i + 1}")(x)
            if batch_norm:
                x = layers.BatchNormalization(name=f"{tag}batch_norm_{i + 1}")(x)
            x = layers.Activation("relu", name=f"{tag}relu_{i + 1}")(x)
            if dropout:
                x = layers.Dropout(dropout, name=f"{tag}dropout_{i + 1}")(x)
        outputs.append(layers.Dense(int(num_classes), activation=activation,
                                    name=f"{tag}genre" if members > 1 else "genre")(x))
    if members > 1:
        outputs = [layers.Average(name="genre")(outputs)]
    return keras.Model(inputs, outputs[0], name="mlp")


def build_cnn(
    input_shape: Sequence[int],
    num_classes: int,
    *,
    filters: Sequence[int] = (32, 64),
    kernel_size: int = 3,
    dense: int = 128,
    dropout: float = 0.3,
    activation: str = "softmax",
):
    """1-D convolutional baseline over the feature vector read as a 1-channel signal.

    Parameters
    ----------
    input_shape : (n_features,)
    filters : sequence of int
        Filters per Conv1D block (conv, batch norm, ReLU, max-pool by 2).
    kernel_size : int
        Convolution width.
    dense : int > 0
        Width of the ReLU layer after the flattened feature maps (position
        matters: each position of the vector is a different feature).
    dropout : float in [0, 1)
        Dropout before the output.
    activation : {'softmax', 'sigmoid'}
        Output activation: one genre per row, or several.
    """
    keras = import_keras()
    from keras import layers  # Keras: only when a network is built, fitted or loaded

    (n_features,) = _check_common(input_shape, num_classes, 1, "build_cnn")
    filters = _check_units(filters, "build_cnn")
    dropout = _check_rate(dropout, "dropout", "build_cnn")
    activation = _check_activation(activation, "build_cnn")
    if int(kernel_size) <= 0 or int(dense) <= 0:
        raise ConfigError(
            f"build_cnn: kernel_size and dense must be positive. "
            f"Received: kernel_size={kernel_size}, dense={dense}"
        )
    inputs = keras.Input(shape=(n_features,), name="features")
    x = layers.Reshape((n_features, 1), name="as_signal")(inputs)
    for i, n in enumerate(filters):
        x = layers.Conv1D(n, int(kernel_size), padding="same", use_bias=False, name=f"conv_{i + 1}")(x)
        x = layers.BatchNormalization(name=f"batch_norm_{i + 1}")(x)
        x = layers.Activation("relu", name=f"relu_{i + 1}")(x)
        if x.shape[1] >= 2:
            x = layers.MaxPooling1D(2, name=f"pool_{i + 1}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(int(dense), activation="relu", name="dense")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(int(num_classes), activation=activation, name="genre")(x)
    return keras.Model(inputs, outputs, name="cnn")
