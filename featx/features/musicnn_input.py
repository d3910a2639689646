"""The input representation of the pretrained musicnn networks.

The networks of the ``musicnn`` package (Pons and Serra, 2019) were trained on, and
are run on, a log-compressed 96-band mel spectrogram of 16 kHz audio (512-sample FFT,
256-sample hop), cut into 187-frame (3-s) patches that do not overlap. This module
computes that representation exactly as the package's own extractor does:

1. the waveform at 16 kHz (other rates resampled with librosa's default
   high-quality resampler, as ``librosa.load(path, sr=16000)`` does);
2. ``librosa.feature.melspectrogram`` with librosa's defaults otherwise (power 2,
   centred frames, Slaney mel scale and area normalisation);
3. the spectrogram rounded to float16 (the original stores it so), then
   ``log10(10000 * S + 1)`` in float16 arithmetic. In float16, ``10000 * S``
   overflows to infinity once ``S`` exceeds about 6.55: the loud low-frequency bins
   of most popular music (about 2000 of the 1870 x 96 values of a GTZAN rock clip).
   Infinite inputs drive the networks' activations to infinity and NaN; run today,
   the original then returns one and the same taggram for every such patch, whatever
   the music. By default (``overflow="float32"``) featx computes just those bins in
   float32: every other value is the original's to the bit, and all are finite.
   ``overflow="inf"`` keeps the original's infinities;
4. patches of 187 frames starting every 187 frames; a last partial patch is dropped.
"""
from __future__ import annotations

import ast
import importlib.util
import numbers
import os
from pathlib import Path

import numpy as np

from ..errors import AudioError, ConfigError, FeatxError

#: Sample rate the networks expect (Hz).
SR = 16000
#: FFT length (samples at :data:`SR`).
N_FFT = 512
#: Hop between frames (samples at :data:`SR`).
HOP_LENGTH = 256
#: Mel bands.
N_MELS = 96
#: Frames per patch: ``librosa.time_to_frames(3, sr=16000, n_fft=512, hop_length=256) + 1``.
N_FRAMES = 187
#: The fewest samples at :data:`SR` that give one whole patch (centred frames).
MIN_SAMPLES = (N_FRAMES - 1) * HOP_LENGTH
#: What the log compression does where float16 overflows (see the module docstring).
OVERFLOW_MODES = ("float32", "inf")


def to_musicnn_rate(y: np.ndarray, *, sr: int) -> np.ndarray:
    """Mono float32 audio at :data:`SR`, resampled as ``librosa.load`` resamples.

    Parameters
    ----------
    y : np.ndarray [shape=(n,) or (channels, n)]
        The waveform; several channels are averaged.
    sr : int
        Its sample rate.

    Returns
    -------
    np.ndarray [shape=(m,), dtype=float32]
    """
    import librosa  # librosa is heavy: only on this path

    if isinstance(sr, bool) or not isinstance(sr, numbers.Integral) or sr <= 0:
        raise ConfigError(f"sr must be a positive whole number of Hz. Received: sr={sr!r}")
    y = np.asarray(y, dtype=np.float32)
    if y.ndim == 2:
        y = y.mean(axis=0)
    if y.ndim != 1:
        raise AudioError(f"expected a waveform of shape (n,) or (channels, n). Received: shape={y.shape}")
    if not np.all(np.isfinite(y)):
        raise AudioError("the waveform contains NaN or infinity; expected finite samples")
    if sr != SR:
        y = librosa.resample(y, orig_sr=int(sr), target_sr=SR, res_type="soxr_hq")
    return np.ascontiguousarray(y, dtype=np.float32)


def musicnn_logmel(y: np.ndarray, *, sr: int, overflow: str = "float32") -> np.ndarray:
    """The log-compressed mel spectrogram the musicnn networks read.

    Parameters
    ----------
    y : np.ndarray [shape=(n,) or (channels, n)]
        The waveform at ``sr`` Hz.
    sr : int
        Its sample rate; other rates than 16000 are resampled.
    overflow : {"float32", "inf"}
        Where ``10000 * S`` overflows float16: computed in float32 (finite), or
        infinite as in the original. Every other value is the original's.

    Returns
    -------
    np.ndarray [shape=(t, 96), dtype=float32]
        Frames first, as the networks take them.
    """
    import librosa  # librosa is heavy: only on this path

    if overflow not in OVERFLOW_MODES:
        raise ConfigError(f"overflow must be one of {', '.join(OVERFLOW_MODES)}. "
                          f"Received: overflow={overflow!r}", param="overflow")
    y = to_musicnn_rate(y, sr=sr)
    if y.shape[-1] < MIN_SAMPLES:
        raise AudioError(
            f"the audio is too short for musicnn: {y.shape[-1] / SR:.3f} s at {SR} Hz; "
            f"expected at least {MIN_SAMPLES / SR:.3f} s (one {N_FRAMES}-frame patch)"
        )
    mel = librosa.feature.melspectrogram(y=y, sr=SR, hop_length=HOP_LENGTH, n_fft=N_FFT, n_mels=N_MELS).T
    mel = mel.astype(np.float16)
    with np.errstate(over="ignore"):
        scaled = np.float16(10000) * mel  # float16 arithmetic, as the original
    logmel = np.log10(scaled + np.float16(1)).astype(np.float32)
    if overflow == "float32":
        over = ~np.isfinite(scaled)
        logmel[over] = np.log10(np.float32(10000) * mel[over].astype(np.float32) + np.float32(1))
    return logmel


def musicnn_patches(logmel: np.ndarray, *, n_frames: int = N_FRAMES, hop: int | None = None) -> np.ndarray:
    """Cut a log-mel spectrogram into patches for the networks.

    Parameters
    ----------
    logmel : np.ndarray [shape=(t, 96)]
        From :func:`musicnn_logmel`.
    n_frames : int
        Frames per patch (187: the 3 s the networks were trained on).
    hop : int, optional
        Frames between patch starts; ``n_frames`` (no overlap) when not given.

    Returns
    -------
    np.ndarray [shape=(patches, n_frames, 96), dtype=float32]
        Patch ``i`` starts at frame ``i * hop`` (at ``i * hop * 256 / 16000`` s).
    """
    hop = n_frames if hop is None else hop
    for name, value in (("n_frames", n_frames), ("hop", hop)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ConfigError(f"{name} must be a positive whole number of frames. Received: {name}={value!r}")
    logmel = np.asarray(logmel, dtype=np.float32)
    if logmel.ndim != 2 or logmel.shape[1] != N_MELS:
        raise ConfigError(f"expected a log-mel spectrogram of shape (frames, {N_MELS}). Received: shape={logmel.shape}")
    if logmel.shape[0] < n_frames:
        raise AudioError(f"the spectrogram has {logmel.shape[0]} frames; expected at least n_frames={n_frames}")
    starts = range(0, logmel.shape[0] - n_frames + 1, hop)
    return np.stack([logmel[s:s + n_frames] for s in starts])


# ---------------------------------------------------------------------------
# The musicnn package: where its checkpoints are, and the networks' tag names

#: The networks the musicnn package ships.
MODELS = ("MTT_musicnn", "MSD_musicnn", "MTT_vgg", "MSD_vgg")
#: How to install the package that holds the weights.
INSTALL_COMMAND = "pip install --no-deps musicnn==0.1.0"
class MusicnnUnavailableError(FeatxError):
    """The musicnn package, whose files hold the pretrained weights, is not installed."""


def check_model(model) -> str:
    """``model`` when it is one of :data:`MODELS`, else one ConfigError line."""
    if model not in MODELS:
        raise ConfigError(f"model must be one of {', '.join(MODELS)}. Received: model={model!r}", param="model")
    return model


def architecture(model: str) -> str:
    """``"musicnn"`` or ``"vgg"``: the architecture of one of :data:`MODELS`."""
    return "vgg" if check_model(model).endswith("_vgg") else "musicnn"


def package_dir() -> Path:
    """The folder of the installed musicnn package, found without importing it.

    Raises
    ------
    MusicnnUnavailableError
        The package is not installed.
    """
    spec = importlib.util.find_spec("musicnn")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise MusicnnUnavailableError(
            f"the pretrained musicnn weights come from the musicnn package: {INSTALL_COMMAND}")
    return Path(locations[0])


def checkpoint_prefix(model: str = "MTT_musicnn") -> str:
    """The TensorFlow checkpoint prefix of ``model`` inside the musicnn package.

    The package saves each checkpoint with an empty file name, so the prefix is the
    folder itself (``.../musicnn/MTT_musicnn/`` holds ``.index`` and ``.data-*``).
    """
    folder = package_dir() / check_model(model)
    if not (folder / ".index").is_file():
        raise MusicnnUnavailableError(
            f"{folder}: the musicnn package has no {model} checkpoint (.index missing); "
            f"reinstall it: {INSTALL_COMMAND}")
    return str(folder) + os.sep


def tag_names(model: str = "MTT_musicnn") -> tuple[str, ...]:
    """The 50 tags of ``model``, in output order, from the package's ``configuration.py``.

    The file is parsed, not imported (the package's modules import TensorFlow 1 code).
    """
    key = "MTT_LABELS" if check_model(model).startswith("MTT") else "MSD_LABELS"
    path = package_dir() / "configuration.py"
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (OSError, SyntaxError, UnicodeDecodeError) as exc:
        raise MusicnnUnavailableError(f"{path}: cannot be read ({exc}); reinstall it: {INSTALL_COMMAND}") from None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == key for t in node.targets):
            tags = ast.literal_eval(node.value)
            return tuple(str(t) for t in tags)
    raise MusicnnUnavailableError(f"{path}: no {key} list; reinstall the package: {INSTALL_COMMAND}")
