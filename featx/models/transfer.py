"""Transfer learning: ImageNet's VGG16 convolutional base under a small genre head.

:func:`build_vgg16` is the mel-image study's transfer model: Keras's
``keras.applications.VGG16(include_top=False)`` reads the mel-spectrogram
pictures (a grayscale image is repeated to three channels inside the model), its
convolutional base is frozen, and a dense layer of 128 units with dropout 0.5
feeds the output. ``fine_tune_blocks=N`` unfreezes the last ``N`` of VGG16's five
convolution blocks; :func:`fine_tuned_layers` names them, so that the trainer
can give them a lower learning rate than the head.

Weights
-------
``weights="imagenet"`` asks Keras for the ImageNet file
(:data:`IMAGENET_FILE`, 58 MB), which it downloads once into its cache
(``~/.keras/models/``, or ``$KERAS_HOME/models/``) on a machine that is online.
When the download fails, the one-line :class:`~featx.errors.ConfigError` says
where to fetch the file on another machine and where to put it. A path loads a
local weights file of the same architecture (the ImageNet file, or one saved with
``save_weights`` from ``VGG16(include_top=False)``); ``None`` (or ``"none"``)
starts from random weights.

Images go to the base as given: the study fed 0..1 grayscale pictures, which is
the spectrogram store's ``normalisation='per-image'``.
"""
from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

from ..runtime.keras import import_keras
from ..errors import ConfigError
from .keras_spectro import _check_classes, _image_shape, _rate

__all__ = ["IMAGENET_FILE", "IMAGENET_URL", "MIN_SIZE", "build_vgg16", "fine_tuned_layers",
           "imagenet_weights"]

logger = logging.getLogger(__name__)

#: Keras's file name of VGG16's ImageNet weights without the classifier.
IMAGENET_FILE = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
#: Where Keras downloads it from.
IMAGENET_URL = ("https://storage.googleapis.com/tensorflow/keras-applications/vgg16/"
                + IMAGENET_FILE)
#: Its MD5 checksum, as Keras checks it.
IMAGENET_MD5 = "6d6bbae143d832006294945121d1f1fc"
#: VGG16's smallest input: five 2x2 max-pools leave one pixel of a 32x32 image.
MIN_SIZE = 32
#: VGG16's convolution blocks, first to last.
N_BLOCKS = 5
#: Name of the VGG16 base inside the models :func:`build_vgg16` returns.
BASE_NAME = "vgg16"


# --------------------------------------------------------------------------- weights


def _keras_cache(cache_dir) -> Path:
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    return Path(os.environ.get("KERAS_HOME") or Path("~").expanduser() / ".keras")


def imagenet_weights(*, cache_dir=None) -> Path:
    """The local path of VGG16's ImageNet weights, downloaded by Keras when not cached yet.

    Parameters
    ----------
    cache_dir : path, optional
        Keras's cache folder (``$KERAS_HOME``, else ``~/.keras``); the file is kept in
        its ``models`` sub-folder.

    Returns
    -------
    Path
        ``cache_dir/models/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5``.

    Raises
    ------
    ConfigError
        The download failed (the machine is offline, or the server refused): one line
        saying where to fetch the file elsewhere and where to put it.
    """
    keras = import_keras()
    where = _keras_cache(cache_dir) / "models"
    try:
        path = keras.utils.get_file(IMAGENET_FILE, IMAGENET_URL, cache_subdir="models",
                                    file_hash=IMAGENET_MD5,
                                    cache_dir=None if cache_dir is None else str(cache_dir))
    except Exception as exc:  # Keras raises a bare Exception for a failed fetch
        reason = " ".join(str(exc).replace(f" on {IMAGENET_URL}", "").split()) or type(exc).__name__
        raise ConfigError(
            f"weights='imagenet': cannot download VGG16's ImageNet weights ({reason}); "
            f"on a machine with internet access fetch {IMAGENET_URL} and put "
            f"{IMAGENET_FILE} in {where}{os.sep}, or pass its path as weights=PATH",
            param="weights",
        ) from None
    return Path(path)


def _weights_path(weights) -> Path | None:
    """``None`` for random weights, else the local file to load (downloaded for 'imagenet')."""
    if weights is None or (isinstance(weights, str) and weights.lower() == "none"):
        return None
    if isinstance(weights, str) and weights.lower() == "imagenet":
        return imagenet_weights()
    if not isinstance(weights, (str, os.PathLike)):
        raise ConfigError("build_vgg16: weights must be 'imagenet', a file path or None. "
                          f"Received: weights={weights!r}", param="weights")
    path = Path(weights).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"{path}: VGG16 weights file not found; expected a file saved from "
            f"VGG16(include_top=False) such as {IMAGENET_FILE}, 'imagenet' or 'none'",
            param="weights",
        )
    return path


def _load_base_weights(base, path: Path) -> None:
    """Load ``path`` into ``base``; refuse a file that leaves any convolution as initialised.

    Keras skips the parts of a ``.weights.h5`` file it cannot match, with a warning: a
    file of another architecture can load "successfully" and change nothing. Every
    convolution kernel must therefore differ from its random initialisation afterwards.
    """
    import numpy as np  # numpy: not needed to import this module

    convs = [layer for layer in base.layers if layer.weights]
    before = [layer.get_weights()[0] for layer in convs]

    def refuse(reason: str):
        return ConfigError(
            f"{path}: cannot be loaded as VGG16 convolutional weights ({reason}); expected a file "
            f"saved from VGG16(include_top=False), like {IMAGENET_FILE}",
            param="weights",
        )

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # what was skipped is checked below
            base.load_weights(str(path))
    except Exception as exc:  # h5py and Keras raise several types for a mismatched file
        raise refuse(" ".join(str(exc).split())[:300] or type(exc).__name__) from None
    missed = [layer.name for layer, old in zip(convs, before)
              if np.array_equal(layer.get_weights()[0], old)]
    if missed:
        raise refuse(f"no weights for {len(missed)} of {len(convs)} convolutions, e.g. {missed[0]}")


# --------------------------------------------------------------------------- checks


def _shape(input_shape) -> tuple[int, int, int]:
    shape = _image_shape(input_shape, "build_vgg16")
    if shape[2] not in (1, 3):
        raise ConfigError(
            "build_vgg16 expects an image input_shape (height, width), (height, width, 1) or "
            f"(height, width, 3) of positive sizes. Received: input_shape={input_shape!r}"
        )
    return shape


def _image_size(image_size, shape) -> tuple[int, int]:
    if image_size is None:
        size = shape[:2]
        if min(size) < MIN_SIZE:
            raise ConfigError(
                f"build_vgg16 needs images of at least {MIN_SIZE}x{MIN_SIZE} (VGG16's minimum); "
                f"resize them, or pass image_size=({max(size[0], MIN_SIZE)}, {max(size[1], MIN_SIZE)}) "
                f"to resize inside the model. Received: input_shape={tuple(shape[:2])}"
            )
        return tuple(size)
    try:
        size = tuple(int(d) for d in image_size)
    except (TypeError, ValueError):
        size = ()
    if len(size) != 2 or min(size) < MIN_SIZE:
        raise ConfigError(
            f"build_vgg16: image_size must be (height, width), each at least {MIN_SIZE} "
            f"(VGG16's minimum). Received: image_size={image_size!r}"
        )
    return size


def _check_args(num_classes, activation, fine_tune_blocks, dense_units, dropout):
    builder = "build_vgg16"
    num_classes, activation = _check_classes(num_classes, activation, builder)
    if isinstance(fine_tune_blocks, bool) or not isinstance(fine_tune_blocks, int) \
            or not 0 <= fine_tune_blocks <= N_BLOCKS:
        raise ConfigError(f"{builder}: fine_tune_blocks must be an integer from 0 to {N_BLOCKS} "
                          f"(VGG16's blocks). Received: fine_tune_blocks={fine_tune_blocks!r}")
    if isinstance(dense_units, bool) or not isinstance(dense_units, int) or dense_units <= 0:
        raise ConfigError(f"{builder} needs a positive integer for dense_units. "
                          f"Received: dense_units={dense_units!r}")
    return num_classes, _rate(dropout, "dropout", builder)


# --------------------------------------------------------------------------- builder


def build_vgg16(
    input_shape: Sequence[int],
    num_classes: int,
    *,
    activation: str = "softmax",
    weights="imagenet",
    fine_tune_blocks: int = 0,
    dense_units: int = 128,
    dropout: float = 0.5,
    image_size: Sequence[int] | None = None,
):
    """VGG16's convolutional base, frozen, under a dense head: the mel-image study's transfer model.

    The layers: the input image (a channel axis is added to a ``(height, width)``
    image); optionally resized to ``image_size`` (bilinear); a one-channel image
    repeated to three (``to_rgb``); the VGG16 base (a nested model named ``vgg16``
    whose layers are ``block1_conv1`` ... ``block5_pool``); global flattening;
    dense ``dense_units`` (ReLU); dropout; the output layer ``genre``.

    For a ``(128, 128)`` input and 10 classes it has 15,764,682 parameters, of which
    the head's 1,049,994 are trainable with the base frozen.

    Parameters
    ----------
    input_shape : (height, width), (height, width, 1) or (height, width, 3)
        Each side at least :data:`MIN_SIZE` (32) pixels, unless ``image_size`` is given.
    num_classes : int >= 2
    activation : {'softmax', 'sigmoid'}
        One genre per image, or several.
    weights : 'imagenet', path or None
        The base's starting weights: ImageNet's (downloaded by Keras where the machine
        is online), a local file of the same architecture, or random (``None``/``'none'``).
    fine_tune_blocks : int in [0, 5]
        How many of VGG16's last blocks are trainable (``1``: ``block5``); the others
        stay frozen. See :func:`fine_tuned_layers`.
    dense_units : int > 0
        Width of the ReLU layer of the head.
    dropout : float in [0, 1)
        Dropout after that layer.
    image_size : (height, width), optional
        Resize images to this size inside the model (each side at least 32); lets
        smaller images, like 20-band MFCC pictures, through VGG16.

    Returns
    -------
    keras.Model
        Uncompiled, named ``vgg16_transfer``.

    Raises
    ------
    ConfigError
        A bad setting, images smaller than 32x32 without ``image_size``, a weights
        file that is missing or of another architecture, or ImageNet weights that
        cannot be downloaded.

    Examples
    --------
    >>> model = build_vgg16((64, 64), 3, weights=None, fine_tune_blocks=1)  # doctest: +SKIP
    >>> [layer.name for layer in fine_tuned_layers(model)]  # doctest: +SKIP
    ['block5_conv1', 'block5_conv2', 'block5_conv3']
    """
    shape = _shape(input_shape)
    size = _image_size(image_size, shape)
    num_classes, dropout = _check_args(num_classes, activation, fine_tune_blocks, dense_units, dropout)
    path = _weights_path(weights)


    keras = import_keras()
    from keras import layers  # Keras: only when a network is built, fitted or loaded

    given = tuple(int(d) for d in input_shape)
    inputs = keras.Input(shape=given, name="image")
    x = inputs
    if len(given) == 2:
        x = layers.Reshape((*given, 1), name="as_image")(x)
    if tuple(size) != tuple(shape[:2]):
        x = layers.Resizing(*size, interpolation="bilinear", name="resize")(x)
    if shape[2] == 1:
        x = layers.Concatenate(axis=-1, name="to_rgb")([x, x, x])
    base = keras.applications.VGG16(include_top=False, weights=None, input_shape=(*size, 3),
                                    name=BASE_NAME)
    if path is not None:
        _load_base_weights(base, path)
        logger.info("VGG16 base weights loaded from %s", path)
    tuned = {f"block{b}" for b in range(N_BLOCKS - fine_tune_blocks + 1, N_BLOCKS + 1)}
    for layer in base.layers:
        layer.trainable = layer.name.split("_")[0] in tuned
    x = base(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(dense_units, activation="relu", name="dense")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation=activation, name="genre")(x)
    return keras.Model(inputs, outputs, name="vgg16_transfer")


def fine_tuned_layers(model) -> list:
    """The VGG16 layers with weights that ``model`` trains: the fine-tuned blocks.

    The trainer gives these a lower learning rate than the head. Empty when the base
    is frozen.

    Parameters
    ----------
    model : keras.Model
        A model from :func:`build_vgg16` (or one saved and loaded again).

    Raises
    ------
    ConfigError
        ``model`` has no VGG16 base.
    """
    try:
        base = model.get_layer(BASE_NAME)
    except ValueError:
        raise ConfigError(f"fine_tuned_layers expects a model from build_vgg16 with a "
                          f"'{BASE_NAME}' base. Received: model={getattr(model, 'name', model)!r}") from None
    if not base.trainable:
        return []
    return [layer for layer in base.layers if layer.trainable and layer.weights]
