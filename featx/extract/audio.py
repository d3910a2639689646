"""Audio input: finding, decoding, resampling, downmixing and segmenting.

Everything that can go wrong with an audio file is raised here as
:class:`featx.errors.AudioError`, with a message that says what is wrong with it.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from ..errors import AudioError, ConfigError

#: File extensions treated as audio when searching folders (lower case).
AUDIO_EXTENSIONS = (".wav", ".au", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".m4a", ".opus")


def find_audio(inputs) -> list[Path]:
    """Audio files named by ``inputs``: files as given, folders searched recursively.

    Folder contents are sorted so that the order, and so the output, is reproducible.
    A file named explicitly is taken whatever its extension.

    Raises
    ------
    ConfigError
        If an input does not exist, or no audio file is found at all.
    """
    files: list[Path] = []
    seen: set[Path] = set()
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*")
                if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file()
            )
        elif path.exists():
            found = [path]
        else:
            raise ConfigError(f"input not found: {str(path)!r}; expected an audio file or a folder")
        for p in found:
            key = p.resolve()
            if key not in seen:
                seen.add(key)
                files.append(p)
    if not files:
        names = ", ".join(repr(str(i)) for i in inputs) or "(none)"
        raise ConfigError(
            f"no audio files found in {names}; expected files with one of the extensions "
            + " ".join(AUDIO_EXTENSIONS)
        )
    return files


def load(path, *, sr: int) -> np.ndarray:
    """Decode ``path`` to a mono float32 waveform at ``sr`` Hz.

    Multi-channel audio is downmixed by averaging the channels; other rates are
    resampled (librosa's default high-quality resampler).

    Returns
    -------
    y : np.ndarray [shape=(n,), dtype=float32]

    Raises
    ------
    AudioError
        The file is unreadable, not audio, corrupt, empty, or holds non-finite samples.
    """
    import librosa

    path = Path(path)
    if not os.access(path, os.R_OK):
        raise AudioError(f"{path}: cannot be read (missing or no read permission)")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            # librosa warns before falling back to audioread; the outcome is what counts
            warnings.simplefilter("ignore")
            y, _ = librosa.load(path, sr=sr, mono=True, dtype=np.float32)
    except Exception as exc:  # decoders raise many unrelated types
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AudioError(f"{path}: cannot be decoded as audio ({reason})") from None
    if y.size == 0:
        raise AudioError(f"{path}: decodes to no samples")
    if not np.all(np.isfinite(y)):
        raise AudioError(f"{path}: decoded samples contain NaN or infinity")
    return y


def segment(y: np.ndarray, *, hop: int | None, length: int | None = None) -> np.ndarray:
    """Cut ``y`` into segments starting every ``hop`` samples, ``length`` samples each.

    ``length`` defaults to ``hop - 1``, the rule of the Kaggle GTZAN 3-second table:
    each 3-s window keeps all but its last sample, and a window counts only while its
    end lies strictly inside the signal (so a trailing partial window is dropped,
    and a clip of exactly ten windows yields nine segments).

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
    hop : int > 1 or None
        ``None`` gives the whole signal as a single segment.

    Returns
    -------
    segments : np.ndarray [shape=(n_segments, length)]
        A strided view into ``y``; ``n_segments`` may be 0.
    """
    if hop is None:
        return y[np.newaxis, :]
    length = hop - 1 if length is None else length
    n_segments = max(0, (len(y) - 1) // hop)
    if n_segments == 0:
        return np.empty((0, length), dtype=y.dtype)
    return np.lib.stride_tricks.as_strided(
        y, shape=(n_segments, length), strides=(hop * y.strides[0], y.strides[0]), writeable=False
    )
