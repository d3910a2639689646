"""File-level extraction: one audio file or array to rows of features."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import AudioError, AudioValueError, ConfigError
from ..features.compute import segment_features
from ..features.settings import MUSICNN_PRESETS, FeatureSettings
from ..runtime.threads import limited_threads
from .audio import MAX_SAMPLES, MIN_NATIVE_SR, load, segment
from .embeddings import musicnn_segment_values

logger = logging.getLogger(__name__)

#: Bounds the memory of one file's analysis: segments are analysed this many at a time.
SEGMENT_BATCH = 16


def row_names(path, n_segments: int, *, whole_file: bool) -> list[str]:
    """Kaggle-style ``filename`` values: ``<stem>.<segment><ext>``, or the file name."""
    path = Path(path)
    if whole_file:
        return [path.name]
    return [f"{path.stem}.{i}{path.suffix}" for i in range(n_segments)]


def extract_features(path, settings: FeatureSettings, *, window: int | None = None):
    """Feature rows of one audio file.

    Parameters
    ----------
    path : str or Path
    settings : FeatureSettings
    window : int or None
        Whole-file settings only: audio holding at least two windows of this many
        samples (at ``settings.sr``) is cut into consecutive windows, one row each
        (a trailing part shorter than a window is left out); shorter audio stays
        one row. This serves long audio to a model trained on clips of that length.

    Returns
    -------
    rows : pandas.DataFrame
        Columns ``filename``, ``length``, then ``settings.feature_columns()``; one row
        per full segment (or window, or one for the whole file).

    Raises
    ------
    AudioError
        The file cannot be decoded, or is shorter than one segment.
    """
    # one BLAS thread, as in `featx extract`: the same audio gives the very same numbers
    with limited_threads():
        names, length, values = _extract_arrays(path, settings, window=window)
    return _rows_frame(names, length, values, settings)


def _rows_frame(names, length, values, settings: FeatureSettings):
    import pandas as pd  # pandas: kept off featx extract's path

    frame = pd.DataFrame(values, columns=settings.feature_columns())
    frame.insert(0, "length", length)
    frame.insert(0, "filename", names)
    return frame


def _extract_arrays(path, settings: FeatureSettings, *, window: int | None = None, y=None):
    y = load(path, sr=settings.sr) if y is None else y
    seg_len = settings.segment_samples
    segments = segment(y, hop=settings.segment_hop, length=seg_len)
    n_windows = len(y) // int(window) if window and seg_len is None else 0
    if n_windows >= 2:
        segments = y[: n_windows * int(window)].reshape(n_windows, int(window))
    if len(segments) == 0:
        raise AudioError(
            f"{path}: {len(y) / settings.sr:.2f} s long, shorter than one "
            f"{settings.segment_seconds:g} s segment ({seg_len} samples at {settings.sr} Hz)"
        )
    if seg_len is None and len(y) < settings.n_fft:  # the least a whole clip's row may hold
        raise AudioError(
            f"{path}: {len(y)} samples ({len(y) / settings.sr:.3f} s) long, shorter than one STFT frame "
            f"(n_fft={settings.n_fft} samples at {settings.sr} Hz)"
        )
    cols = settings.feature_columns()
    if settings.preset in MUSICNN_PRESETS:  # a pretrained network's outputs (Keras loads here only)

        try:
            values = musicnn_segment_values(segments, settings=settings)
        except AudioError as exc:
            raise AudioError(f"{path}: {exc}") from None
        names = row_names(path, len(segments), whole_file=seg_len is None and len(segments) == 1)
        return names, segments.shape[1], values
    values = np.empty((len(segments), len(cols)), dtype=np.float64)
    for start in range(0, len(segments), SEGMENT_BATCH):
        batch = segments[start : start + SEGMENT_BATCH]
        feats = segment_features(batch, sr=settings.sr, settings=settings)
        for j, name in enumerate(cols):
            values[start : start + len(batch), j] = feats[name]
    names = row_names(path, len(segments), whole_file=seg_len is None and len(segments) == 1)
    return names, segments.shape[1], values


def samples_features(y: np.ndarray, settings: FeatureSettings, *, name: str = "audio.wav",
                     window: int | None = None):
    """Feature rows of decoded mono samples already at ``settings.sr``.

    The analysis :func:`extract_features` runs after decoding a file (rows named after
    ``name``); use :func:`prepare_array` first for samples at another rate.

    Returns
    -------
    rows : pandas.DataFrame
        As :func:`extract_features` returns.
    """
    with limited_threads():
        names, length, values = _extract_arrays(name, settings, window=window, y=y)
    return _rows_frame(names, length, values, settings)


def extract_array_features(y, *, sr: int, settings: FeatureSettings, name: str = "array.wav",
                           window: int | None = None):
    """Feature rows of a waveform in memory, computed as for a file holding it.

    The samples are taken as float32, channels (the first axis of a 2-D array) are
    averaged, and audio at another rate than ``settings.sr`` is resampled to it with
    the resampler :func:`featx.extract.audio.load` uses; then the analysis is the one
    :func:`extract_features` runs on a decoded file.

    Parameters
    ----------
    y : np.ndarray [shape=(n,) or (channels, n)]
    sr : int >= 1000
        The sample rate of ``y``, in Hz.
    settings : FeatureSettings
    name : str
        The file name the rows are named after (``<stem>.<segment><ext>``).
    window : int or None
        As for :func:`extract_features`.

    Returns
    -------
    rows : pandas.DataFrame
        As :func:`extract_features` returns.

    Raises
    ------
    AudioError
        ``y`` is empty, not numeric, holds NaN or infinity, has more than two axes or
        more samples than a file may hold, or is shorter than one segment.
    ConfigError
        ``sr`` is not an integer of at least 1000.
    """
    y = prepare_array(y, sr=sr, target_sr=settings.sr, name=name)
    with limited_threads():
        names, length, values = _extract_arrays(name, settings, window=window, y=y)
    return _rows_frame(names, length, values, settings)


def prepare_array(y, *, sr, target_sr: int, name: str) -> np.ndarray:
    """Samples in memory as featx analyses them: float32, mono, at ``target_sr``.

    Raises
    ------
    AudioError
        ``y`` is empty, not numeric, not finite, has more than two axes or more
        samples than a file may hold (one line naming ``name``).
    ConfigError
        ``sr`` is not an integer of at least 1000.
    """
    if not isinstance(sr, (int, np.integer)) or isinstance(sr, bool) or sr < MIN_NATIVE_SR:
        raise ConfigError(f"sr must be the sample rate of the array, an integer >= {MIN_NATIVE_SR} Hz. "
                          f"Received: sr={sr!r}", param="sr")
    try:
        y = np.asarray(y, dtype=np.float32)
    except (TypeError, ValueError):
        raise AudioValueError(f"{name}: expected a numeric array of samples. Received: {type(y).__name__}") from None
    if y.ndim == 2:
        y = y.mean(axis=0, dtype=np.float32)
    if y.ndim != 1:
        raise AudioValueError(f"{name}: expected samples of shape (n,) or (channels, n). Received: shape={y.shape}")
    if y.size == 0:
        raise AudioValueError(f"{name}: the array holds no samples")
    if max(y.size, int(np.ceil(y.size * target_sr / int(sr)))) > MAX_SAMPLES:
        raise AudioValueError(f"{name}: {y.size:,} samples at {int(sr)} Hz; featx analyses at most "
                              f"{MAX_SAMPLES:,} samples per file: cut it into shorter pieces")
    if not np.all(np.isfinite(y)):
        raise AudioValueError(f"{name}: samples contain NaN or infinity")
    if int(sr) != target_sr:
        import librosa  # librosa is heavy: only on this path

        y = librosa.resample(y, orig_sr=int(sr), target_sr=target_sr, res_type="soxr_hq")
    return y
