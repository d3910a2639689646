"""The pretrained musicnn networks, rebuilt in Keras 3 with their published weights.

The ``musicnn`` package (J. Pons and X. Serra, "musicnn: pre-trained convolutional
neural networks for music audio tagging", ISMIR 2019 late-breaking demo; ISC licence)
ships four networks as TensorFlow 1 checkpoints inside its wheel: ``MTT_musicnn`` and
``MTT_vgg`` trained on MagnaTagATune, ``MSD_musicnn`` and ``MSD_vgg`` trained on the
Million Song Dataset, each with 50 sigmoid tag outputs. Its metadata pins an old numpy,
so it is installed without its dependencies::

    pip install --no-deps musicnn==0.1.0

featx never imports that package (its code needs TensorFlow 1 graphs): it finds the
checkpoint files with :func:`importlib.util.find_spec`, reads the tag names from its
``configuration.py`` as text, and rebuilds the networks here from backend-neutral
Keras 3 layers. The checkpoint is read once with TensorFlow's checkpoint reader and
cached as a plain ``.npz`` file under the user's cache folder
(``$FEATX_CACHE_DIR``, else ``$XDG_CACHE_HOME/featx``, else ``~/.cache/featx``, then
``musicnn/<model>-<digest>.npz``), so later loads need no TensorFlow.

The musicnn network (``*_musicnn``)
    front end: batch norm of the log-mel patch, then two "timbral" convolutions
    (7 frames x 38 and 7 x 67 mel bands, 204 filters each) and three "temporal" ones
    (128, 64 and 32 frames x 1 band, 51 filters each), each with ReLU, batch norm and
    a max over frequency: 561 channels per frame. Mid end: three 1-D convolutions over
    time (7 frames, 64 filters, ReLU, batch norm), the second and third with residual
    connections; the front end and the three mid-end outputs are concatenated (753
    channels). Back end: max and mean over time, interleaved (1506 values), batch norm,
    dense 200 + ReLU + batch norm (the *penultimate* layer), dense 50, sigmoid.
The VGG network (``*_vgg``)
    batch norm, five 3x3 convolutions (128 filters, ReLU, batch norm, max pooling),
    flatten (256 values: ``pool5``), dense 50, sigmoid.

All batch norms use the checkpoint's moving mean and variance with epsilon 0.001 (the
TensorFlow 1 default the networks were trained with); dropout is off at inference.
"""
from __future__ import annotations

import hashlib
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..runtime.keras import import_keras
from ..errors import ConfigError, FeatxError, OutputError
from ..extract.audio import load
from ..features.musicnn_input import (  # noqa: F401  (the package's names are re-exported here)
    HOP_LENGTH,
    INSTALL_COMMAND,
    MODELS,
    N_FRAMES,
    N_MELS,
    SR,
    MusicnnUnavailableError,
    architecture,
    checkpoint_prefix,
    musicnn_logmel,
    musicnn_patches,
    package_dir,
    tag_names,
)
from ..features.musicnn_input import (
    check_model as _check_model,
)
from ..io.cache import cache_root, read_arrays, write_arrays

#: Batch-norm epsilon of ``tf.compat.v1.layers.batch_normalization`` (the networks' default).
BN_EPSILON = 1e-3
#: Checkpoint variables that are optimizer state, not part of the network.
OPTIMIZER_STATE = re.compile(r"(^|/)(Adam(_\d+)?|beta[12]_power)$")
#: The layers :func:`musicnn_embeddings` returns, per architecture (the first is ``embeddings``).
EXPOSED_LAYERS = {"musicnn": ("penultimate", "mean_pool", "max_pool"), "vgg": ("pool5",)}

_FRONT_TIMBRAL = ((74, 38), (77, 67))  # (name, mel bands): int(0.4 * 96), int(0.7 * 96)
_FRONT_TEMPORAL = (128, 64, 32)  # frames
_TIMBRAL_FILTERS, _TEMPORAL_FILTERS = 204, 51  # int(1.6 * 128), int(1.6 * 32)
_MIDEND_FILTERS, _BACKEND_UNITS, _VGG_FILTERS = 64, 200, 128


def cache_dir() -> Path:
    """Where the checkpoints are cached as ``.npz`` files (see the module docstring)."""
    return cache_root() / "musicnn"


def read_checkpoint(model: str = "MTT_musicnn", *, optimizer_state: bool = False) -> dict[str, np.ndarray]:
    """Every variable of ``model``'s checkpoint, read with TensorFlow's checkpoint reader.

    Parameters
    ----------
    model : str
        One of :data:`MODELS`.
    optimizer_state : bool
        Also return the optimizer's variables (Adam moments, ``beta1_power``...).

    Returns
    -------
    dict of str to np.ndarray
        Variable name (``"conv2d_5/kernel"``) to value.
    """
    prefix = checkpoint_prefix(model)
    import_keras()  # TensorFlow's start-up chatter filtered
    import tensorflow as tf  # TensorFlow: only under its backend

    # the prefix, not the folder: the folder's "checkpoint" file names the author's paths
    reader = tf.compat.v1.train.NewCheckpointReader(prefix)
    return {name: np.asarray(reader.get_tensor(name))
            for name in sorted(reader.get_variable_to_shape_map())
            if optimizer_state or not OPTIMIZER_STATE.search(name)}


def checkpoint_variables(model: str = "MTT_musicnn", *, cache: bool = True) -> dict[str, np.ndarray]:
    """The network variables of ``model``, from the ``.npz`` cache when it is there.

    The cache file's name carries a digest of the checkpoint's files (its index and
    data) in the installed package, and the file holds a digest of that source and of
    every array it stores. A cache file whose digest does not match (cut short, a
    changed byte, empty, not a zip file, made from another release of the package) is
    said once on the log and made again from the checkpoint. When the cache cannot be
    written, a warning says so and the weights are used anyway.

    Parameters
    ----------
    model : str
        One of :data:`MODELS`.
    cache : bool
        Read and write the cache; ``False`` always reads the checkpoint.
    """
    prefix = checkpoint_prefix(model)
    source, size = _source_digest(prefix)
    path = cache_dir() / f"{model}-{source[:16]}.npz"
    if cache:
        variables = read_arrays(path, source, max_bytes=2 * size + (1 << 20), what="musicnn weights cache")
        if variables is not None:
            return variables
    variables = read_checkpoint(model)
    if cache:
        try:
            write_arrays(path, variables, source)
        except (OSError, OutputError) as exc:
            warnings.warn(f"could not cache the musicnn weights at {path}: {exc}", stacklevel=2)
    return variables


def _source_digest(prefix: str) -> tuple[str, int]:
    """SHA-256 (hex) of a checkpoint's index and data files in the package, and their total size."""
    digest, size = hashlib.sha256(), 0
    folder = Path(prefix)
    for path in sorted([folder / ".index", *folder.glob(".data-*")]):
        data = path.read_bytes()
        digest.update(path.name.encode() + b"\0" + len(data).to_bytes(8, "little") + data)
        size += len(data)
    return digest.hexdigest(), size


def _bn(layers, name):
    return layers.BatchNormalization(axis=-1, momentum=0.99, epsilon=BN_EPSILON, name=name)


def _musicnn_graph(keras, x, *, num_classes: int):
    layers = keras.layers
    x = layers.Reshape((-1, N_MELS, 1), name="expand")(x)
    x = _bn(layers, "input_bn")(x)
    front = []
    for label, bands in _FRONT_TIMBRAL:
        name = f"timbral_{label}"
        y = layers.ZeroPadding2D(((3, 3), (0, 0)), name=f"{name}_pad")(x)
        y = layers.Conv2D(_TIMBRAL_FILTERS, (7, bands), activation="relu", name=f"{name}_conv")(y)
        y = _bn(layers, f"{name}_bn")(y)
        y = layers.MaxPooling2D((1, N_MELS - bands + 1), name=f"{name}_pool")(y)
        front.append(layers.Reshape((-1, _TIMBRAL_FILTERS), name=f"{name}_squeeze")(y))
    for frames in _FRONT_TEMPORAL:
        name = f"temporal_{frames}"
        # TensorFlow's "same" padding, written out so that every backend pads alike
        y = layers.ZeroPadding2D((((frames - 1) // 2, frames // 2), (0, 0)), name=f"{name}_pad")(x)
        y = layers.Conv2D(_TEMPORAL_FILTERS, (frames, 1), activation="relu", name=f"{name}_conv")(y)
        y = _bn(layers, f"{name}_bn")(y)
        y = layers.MaxPooling2D((1, N_MELS), name=f"{name}_pool")(y)
        front.append(layers.Reshape((-1, _TEMPORAL_FILTERS), name=f"{name}_squeeze")(y))
    front = layers.Concatenate(axis=-1, name="frontend")(front)
    mid, previous = [], front
    for i in (1, 2, 3):
        y = layers.ZeroPadding1D(3, name=f"midend_{i}_pad")(previous)
        y = layers.Conv1D(_MIDEND_FILTERS, 7, activation="relu", name=f"midend_{i}_conv")(y)
        y = _bn(layers, f"midend_{i}_bn")(y)
        if i > 1:
            y = layers.Add(name=f"midend_{i}_residual")([y, previous])
        mid.append(y)
        previous = y
    features = layers.Concatenate(axis=-1, name="midend")([front, *mid])
    width = features.shape[-1]
    max_pool = layers.GlobalMaxPooling1D(name="max_pool")(features)
    mean_pool = layers.GlobalAveragePooling1D(name="mean_pool")(features)
    # the original flattens [max, mean] stacked on a last axis: values interleave
    pooled = layers.Concatenate(axis=-1, name="pool_stack")([
        layers.Reshape((width, 1), name="max_pool_column")(max_pool),
        layers.Reshape((width, 1), name="mean_pool_column")(mean_pool)])
    y = layers.Flatten(name="pool_flat")(pooled)
    y = _bn(layers, "pool_bn")(y)
    y = layers.Dropout(0.5, name="pool_dropout")(y)
    y = layers.Dense(_BACKEND_UNITS, activation="relu", name="penultimate_dense")(y)
    penultimate = _bn(layers, "penultimate")(y)
    y = layers.Dropout(0.5, name="penultimate_dropout")(penultimate)
    logits = layers.Dense(num_classes, name="logits")(y)
    taggram = layers.Activation("sigmoid", name="taggram")(logits)
    return {"taggram": taggram, "penultimate": penultimate, "mean_pool": mean_pool, "max_pool": max_pool}


def _vgg_graph(keras, x, *, num_classes: int):
    layers = keras.layers
    y = layers.Reshape((-1, N_MELS, 1), name="expand")(x)
    y = _bn(layers, "input_bn")(y)
    pools = {1: ((4, 1), (2, 2)), 2: ((2, 2), (2, 2)), 3: ((2, 2), (2, 2)), 4: ((2, 2), (2, 2)), 5: ((4, 4), (4, 4))}
    for i, (size, strides) in pools.items():
        if i > 1:
            y = layers.Dropout(0.25, name=f"conv{i}_dropout")(y)
        y = layers.Conv2D(_VGG_FILTERS, (3, 3), padding="same", activation="relu", name=f"conv{i}")(y)
        y = _bn(layers, f"conv{i}_bn")(y)
        y = layers.MaxPooling2D(size, strides=strides, name=f"pool{i}")(y)
    pool5 = layers.Flatten(name="pool5_flat")(y)
    y = layers.Dropout(0.5, name="pool5_dropout")(pool5)
    logits = layers.Dense(num_classes, name="logits")(y)
    taggram = layers.Activation("sigmoid", name="taggram")(logits)
    return {"taggram": taggram, "pool5": pool5}


def build_musicnn(*, model: str = "MTT_musicnn", n_frames: int | None = N_FRAMES, num_classes: int = 50):
    """The musicnn or VGG network of ``model``, with fresh (untrained) weights.

    Parameters
    ----------
    model : str
        One of :data:`MODELS`; it picks the architecture (the weights are loaded by
        :func:`load_musicnn`).
    n_frames : int or None
        Frames per input patch; ``None`` accepts any length (the musicnn network only:
        the VGG network's dense layer needs 187).
    num_classes : int
        Sigmoid outputs (50 for the pretrained networks).

    Returns
    -------
    keras.Model
        Input ``(batch, n_frames, 96)`` log-mel patches; a dict of outputs: ``taggram``
        and the layers of :data:`EXPOSED_LAYERS`.
    """
    keras = import_keras()
    kind = architecture(model)
    if kind == "vgg" and n_frames != N_FRAMES:
        raise ConfigError(f"the VGG networks take {N_FRAMES}-frame patches only. Received: n_frames={n_frames!r}")
    inputs = keras.Input(shape=(n_frames, N_MELS), name="logmel")
    graph = _vgg_graph if kind == "vgg" else _musicnn_graph
    outputs = graph(keras, inputs, num_classes=num_classes)
    return keras.Model(inputs, outputs, name=model)


def layer_map(model: str = "MTT_musicnn") -> list[tuple[str, str, str]]:
    """Which Keras layer takes which checkpoint scope: ``(layer, scope, kind)`` rows.

    ``kind`` is ``"bn"``, ``"conv"``, ``"conv1d"`` (a checkpoint 2-D kernel of width
    one input channel, used as a 1-D kernel) or ``"dense"``. The checkpoint's scopes
    are TensorFlow 1's automatic names, numbered in the order the original code
    creates the layers.
    """
    if architecture(model) == "vgg":
        rows = [("input_bn", "batch_normalization", "bn")]
        for i in range(1, 6):
            rows += [(f"conv{i}", f"{i}CNN", "conv"), (f"conv{i}_bn", f"batch_normalization_{i}", "bn")]
        return rows + [("logits", "dense", "dense")]
    order = [f"timbral_{label}" for label, _ in _FRONT_TIMBRAL] + [f"temporal_{f}" for f in _FRONT_TEMPORAL]
    rows = [("input_bn", "batch_normalization", "bn")]
    for i, name in enumerate(order):
        rows += [(f"{name}_conv", _scope("conv2d", i), "conv"), (f"{name}_bn", _scope("batch_normalization", i + 1), "bn")]
    for i in (1, 2, 3):
        rows += [(f"midend_{i}_conv", _scope("conv2d", len(order) + i - 1), "conv1d"),
                 (f"midend_{i}_bn", _scope("batch_normalization", len(order) + i), "bn")]
    return rows + [("pool_bn", "batch_normalization_9", "bn"), ("penultimate_dense", "dense", "dense"),
                   ("penultimate", "batch_normalization_10", "bn"), ("logits", "dense_1", "dense")]


def _scope(base: str, index: int) -> str:
    return base if index == 0 else f"{base}_{index}"


_PARTS = {"bn": ("gamma", "beta", "moving_mean", "moving_variance"), "conv": ("kernel", "bias"),
          "conv1d": ("kernel", "bias"), "dense": ("kernel", "bias")}


def assign_weights(net, variables: dict[str, np.ndarray], *, model: str = "MTT_musicnn") -> dict[str, int]:
    """Set ``net``'s layers from checkpoint ``variables``, layer by layer.

    Every variable must be used exactly once and every weight of the network set.

    Returns
    -------
    dict of str to int
        How many times each variable was used (all ones).

    Raises
    ------
    FeatxError
        A variable is missing, unused, used twice or of the wrong shape.
    """
    uses = dict.fromkeys(variables, 0)
    set_layers = set()
    for layer_name, scope, kind in layer_map(model):
        values = []
        for part in _PARTS[kind]:
            name = f"{scope}/{part}"
            if name not in variables:
                raise FeatxError(f"the {model} checkpoint has no variable {name!r} for layer {layer_name!r}")
            value = np.asarray(variables[name], dtype=np.float32)
            if kind == "conv1d" and part == "kernel":
                value = value[:, :, 0, :]
            uses[name] += 1
            values.append(value)
        try:
            layer = net.get_layer(layer_name)
        except ValueError:
            raise FeatxError(f"the network {net.name!r} has no layer {layer_name!r}; "
                             f"expected one built by build_musicnn(model={model!r})") from None
        expected = [tuple(w.shape) for w in layer.weights]
        if expected != [v.shape for v in values]:
            raise FeatxError(f"layer {layer_name!r} of {model} expects weights of shapes {expected}; "
                             f"the checkpoint's {scope} has {[v.shape for v in values]}")
        layer.set_weights(values)
        set_layers.add(layer_name)
    unset = [layer.name for layer in net.layers if layer.weights and layer.name not in set_layers]
    wrong = {name: n for name, n in uses.items() if n != 1}
    if unset or wrong:
        raise FeatxError(f"the {model} checkpoint does not match the network: layers without weights {unset}, "
                         f"variables not used exactly once {sorted(wrong)}")
    return uses


_LOADED: dict[tuple[str, int | None], object] = {}


def load_musicnn(model: str = "MTT_musicnn", *, n_frames: int | None = N_FRAMES, cache: bool = True):
    """The pretrained network of ``model``, built once per process and reused.

    Parameters
    ----------
    model : str
        One of :data:`MODELS`.
    n_frames : int or None
        Frames per input patch (see :func:`build_musicnn`).
    cache : bool
        Use the ``.npz`` weights cache (see :func:`checkpoint_variables`).

    Returns
    -------
    keras.Model
        As :func:`build_musicnn`, with the checkpoint's weights.
    """
    key = (_check_model(model), n_frames)
    if key not in _LOADED:
        variables = checkpoint_variables(model, cache=cache)
        net = build_musicnn(model=model, n_frames=n_frames)
        assign_weights(net, variables, model=model)
        _LOADED[key] = net
    return _LOADED[key]


@dataclass(frozen=True)
class MusicnnOutput:
    """What :func:`musicnn_embeddings` returns for one recording.

    Attributes
    ----------
    taggram : np.ndarray [shape=(patches, 50)]
        Each patch's tag probabilities (sigmoid outputs).
    embeddings : np.ndarray [shape=(patches, d)]
        Each patch's embedding: the penultimate layer (``d = 200``: dense + ReLU +
        batch norm) of the musicnn networks, ``pool5`` (``d = 256``) of the VGG ones.
    tags : tuple of str
        The tag of each taggram column.
    starts : np.ndarray [shape=(patches,)]
        Each patch's start in seconds.
    features : dict of str to np.ndarray
        Every exposed layer (:data:`EXPOSED_LAYERS`), ``(patches, width)`` each: for
        the musicnn networks also ``mean_pool`` and ``max_pool`` (753 each: the time
        mean and max of the concatenated front-end and mid-end channels).
    model : str
        The network.
    """

    taggram: np.ndarray
    embeddings: np.ndarray
    tags: tuple[str, ...]
    starts: np.ndarray
    features: dict = field(default_factory=dict)
    model: str = "MTT_musicnn"

    def top_tags(self, k: int = 5) -> list[tuple[str, float]]:
        """The ``k`` tags of highest mean probability over the patches, highest first."""
        mean = self.taggram.mean(axis=0)
        order = np.argsort(-mean, kind="stable")[:k]
        return [(self.tags[i], float(mean[i])) for i in order]


def run_patches(patches: np.ndarray, *, model: str = "MTT_musicnn", batch_size: int = 32) -> dict[str, np.ndarray]:
    """Run the pretrained network on log-mel patches (inference mode).

    Parameters
    ----------
    patches : np.ndarray [shape=(patches, 187, 96)]
        From :func:`featx.features.musicnn_input.musicnn_patches`.
    model : str
        One of :data:`MODELS`.
    batch_size : int
        Patches per forward pass.

    Returns
    -------
    dict of str to np.ndarray
        ``taggram`` and the layers of :data:`EXPOSED_LAYERS`, one row per patch.
    """
    patches = np.asarray(patches, dtype=np.float32)
    if patches.ndim != 3 or patches.shape[2] != N_MELS:
        raise ConfigError(f"expected log-mel patches of shape (patches, frames, {N_MELS}). "
                          f"Received: shape={patches.shape}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive whole number. Received: batch_size={batch_size!r}")
    if architecture(model) == "vgg" and patches.shape[1] != N_FRAMES:
        raise ConfigError(f"the VGG networks take {N_FRAMES}-frame patches only. "
                          f"Received: n_frames={patches.shape[1]}")
    keras = import_keras()
    net = load_musicnn(model, n_frames=N_FRAMES if patches.shape[1] == N_FRAMES else None)
    parts: dict[str, list] = {}
    for start in range(0, len(patches), batch_size):
        # a plain call: a compiled predict function would be traced again for every new
        # number of patches (every clip length), which costs more than it saves
        out = net(patches[start:start + batch_size], training=False)
        for name, value in out.items():
            parts.setdefault(name, []).append(keras.ops.convert_to_numpy(value))
    return {name: np.concatenate(values) for name, values in parts.items()}


def musicnn_embeddings(y, sr: int | None = None, *, model: str = "MTT_musicnn",
                       batch_size: int = 32) -> MusicnnOutput:
    """Tag probabilities and embeddings of a recording, per 3-s patch.

    Parameters
    ----------
    y : np.ndarray [shape=(n,) or (channels, n)] or path
        The waveform, or an audio file (decoded and resampled to 16 kHz).
    sr : int
        The waveform's sample rate (any: it is resampled to 16 kHz); not used for a file.
    model : str
        ``"MTT_musicnn"`` (MagnaTagATune tags), ``"MSD_musicnn"`` (Million Song Dataset
        tags), ``"MTT_vgg"`` or ``"MSD_vgg"``.
    batch_size : int
        Patches per forward pass.

    Returns
    -------
    MusicnnOutput
        One row per non-overlapping 187-frame patch (3 s; a last partial patch is dropped).

    Raises
    ------
    MusicnnUnavailableError
        The musicnn package is not installed.
    AudioError
        The recording is shorter than one patch (2.976 s) or holds non-finite samples.

    Examples
    --------
    >>> import numpy as np
    >>> from featx.extract.musicnn import musicnn_embeddings
    >>> out = musicnn_embeddings(np.zeros(16000 * 6, dtype=np.float32), 16000)  # doctest: +SKIP
    >>> out.taggram.shape, out.embeddings.shape  # doctest: +SKIP
    ((2, 50), (2, 200))
    """
    _check_model(model)
    tags = tag_names(model)
    if isinstance(y, (str, os.PathLike)):
        y, sr = load(y, sr=SR), SR
    elif sr is None:
        raise ConfigError("sr is needed with a waveform: the sample rate of y in Hz. Received: sr=None", param="sr")
    patches = musicnn_patches(musicnn_logmel(y, sr=sr))
    out = run_patches(patches, model=model, batch_size=batch_size)
    exposed = EXPOSED_LAYERS[architecture(model)]
    starts = np.arange(len(patches)) * (N_FRAMES * HOP_LENGTH / SR)
    return MusicnnOutput(taggram=out["taggram"], embeddings=out[exposed[0]], tags=tags, starts=starts,
                         features={name: out[name] for name in exposed}, model=model)
