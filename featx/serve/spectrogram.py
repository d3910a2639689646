"""The mel spectrogram the page shows: a whole file's, in bounded memory, a bounded width.

:func:`mel_overview` computes the frames ``librosa.feature.melspectrogram`` gives for the
whole signal (centred Hann frames, zero padding, Slaney mel bands), a block of frames at
a time, from featx's own STFT (:func:`featx.features.spectrograms.power_spectrogram`)
and mel filter bank (:func:`featx.features.dsp.mel_basis`). Neighbouring frames are
averaged (in power) into at most ``width`` columns, then taken to dB as
``librosa.power_to_db(S, ref=1.0, top_db=80)`` does. :func:`encode_overview` packs it
for JSON: one byte per cell, base64.
"""
from __future__ import annotations

import base64
import math

import numpy as np

from ..features import dsp
from ..features.spectrograms import TOP_DB, SpectrogramSettings, power_spectrogram

__all__ = ["MAX_COLUMNS", "mel_overview", "encode_overview", "overview_settings"]

#: Most columns (time steps) of the page's spectrogram.
MAX_COLUMNS = 1200
#: STFT frames computed at a time (about 8 MiB of float32 power for n_fft = 2048).
BLOCK_FRAMES = 2048
#: Smallest power taken to dB (``librosa.power_to_db``'s ``amin``).
AMIN = 1e-10


def overview_settings(spectrogram_settings: SpectrogramSettings | None, sr: int) -> SpectrogramSettings:
    """The settings of the page's mel image: an image model's own, else featx's defaults at ``sr``
    (the mel bands' top at most ``sr / 2``)."""
    if spectrogram_settings is not None:
        return spectrogram_settings
    default = SpectrogramSettings()
    return SpectrogramSettings(kinds=("mel",), sr=int(sr), fmax=min(default.fmax, sr / 2))


def mel_overview(y: np.ndarray, *, settings: SpectrogramSettings, width: int = MAX_COLUMNS) -> tuple[np.ndarray, int]:
    """The mel power spectrogram of a whole signal in dB, averaged down to at most ``width`` columns.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Mono samples at ``settings.sr``.
    settings : SpectrogramSettings
        ``sr``, ``n_fft``, ``hop_length``, ``n_mels`` and ``fmax`` are used.
    width : int > 0
        Most columns; each column averages the power of ``frames_per_column``
        consecutive STFT frames (the last column may average fewer).

    Returns
    -------
    mel_db : np.ndarray [shape=(n_mels, n_columns), dtype=float32]
        Row 0 is the lowest band. With ``frames_per_column == 1`` this is
        ``librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sr, n_fft=n_fft,
        hop_length=hop_length, n_mels=n_mels, fmax=fmax), top_db=80)``.
    frames_per_column : int
    """
    y = np.ascontiguousarray(y, dtype=np.float32)
    n_fft, hop = settings.n_fft, settings.hop_length
    n_frames = 1 + len(y) // hop
    per_column = max(1, math.ceil(n_frames / max(1, int(width))))
    n_columns = math.ceil(n_frames / per_column)
    bank = dsp.mel_basis(settings.sr, n_fft, settings.n_mels, settings.fmax)
    sums = np.zeros((settings.n_mels, n_columns), dtype=np.float64)
    # frames either side of a block whose windows reach into it: computed, then dropped
    margin = math.ceil((n_fft // 2) / hop)
    block = per_column * max(1, BLOCK_FRAMES // per_column)  # whole columns per block
    for t0 in range(0, n_frames, block):
        t1 = min(t0 + block, n_frames)
        first = max(t0 - margin, 0)
        # every frame in [t0, t1) sees the samples it sees in the whole signal (or its zero padding)
        part = y[first * hop:min(len(y), (t1 - 1 + margin) * hop)]
        power = power_spectrogram(part[None, :], n_fft=n_fft, hop_length=hop)[0, :, t0 - first:t1 - first]
        mel = np.matmul(bank, power)
        # t0 starts a column: each column's frames are a run of this block's
        sums[:, t0 // per_column:math.ceil(t1 / per_column)] += np.add.reduceat(
            mel.astype(np.float64), np.arange(0, t1 - t0, per_column), axis=1)
    counts = np.bincount(np.arange(n_frames) // per_column, minlength=n_columns)
    mean = (sums / counts).astype(np.float32)
    db = 10.0 * np.log10(np.maximum(AMIN, mean))
    return np.maximum(db, db.max() - TOP_DB).astype(np.float32), per_column


def encode_overview(mel_db: np.ndarray, *, settings: SpectrogramSettings, frames_per_column: int) -> dict:
    """``mel_db`` for JSON: each cell one byte (0 = the lowest dB, 255 = the highest), base64.

    Returns
    -------
    dict
        ``n_mels``, ``columns``, ``seconds_per_column``, ``fmax`` (Hz), ``db_min`` and
        ``db_max`` (what 0 and 255 stand for), and ``data``: the bytes row by row, the
        lowest band first.
    """
    lo, hi = float(mel_db.min()), float(mel_db.max())
    scaled = np.zeros(mel_db.shape, dtype=np.uint8) if hi <= lo else \
        np.rint((mel_db - lo) * (255.0 / (hi - lo))).astype(np.uint8)
    return {"n_mels": int(mel_db.shape[0]), "columns": int(mel_db.shape[1]),
            "seconds_per_column": frames_per_column * settings.hop_length / settings.sr,
            "fmax": float(settings.fmax), "db_min": round(lo, 3), "db_max": round(hi, 3),
            "data": base64.b64encode(np.ascontiguousarray(scaled).tobytes()).decode("ascii")}
