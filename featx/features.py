"""The feature catalogue: every column computed from spectra shared across features.

The numeric core of featx. It takes a batch of equal-length segments and returns one
value per segment and column; it does no file I/O.

Each segment is analysed on its own, exactly as if the librosa feature functions were
called on that segment's waveform, but the work is shared:

* one STFT per segment serves chroma, centroid, bandwidth, roll-off, contrast,
  harmonic/percussive separation, the mel spectrogram (MFCC) and the onset envelope
  (tempo), where a straightforward implementation recomputes it for each feature;
* all segments of a file go through each step together as one batch;
* the median filters of harmonic/percussive separation, which dominate the cost,
  run as a single 1-D pass over all rows laid end to end (see :func:`median_filter_rows`),
  which SciPy computes with its fast exact 1-D rank filter.

The settings reproduce the Kaggle GTZAN tables, which were made with an older librosa
whose defaults differ from today's; see :data:`GTZAN_COMPAT`.
"""
from __future__ import annotations

import functools

import numpy as np
import scipy.fft
import scipy.ndimage

from .settings import FeatureSettings

__all__ = [
    "GTZAN_COMPAT",
    "segment_features",
    "median_filter_rows",
    "frames_to_stats",
]

#: Settings of the older librosa that made the Kaggle tables, where today's differ.
GTZAN_COMPAT = {
    # STFTs (and so every spectral feature) were centred with reflect padding;
    # librosa >= 0.10 pads with zeros by default.
    "stft_pad_mode": "reflect",
    # rms(y=...) framed the reflect-padded signal.
    "rms_pad_mode": "reflect",
    # Harmonic/percussive separation: median-filter kernel and soft-mask power.
    "hpss_kernel_size": 31,
    "hpss_power": 2.0,
    "n_mels": 128,
    "n_chroma": 12,
    "top_db": 80.0,
}


def segment_features(y: np.ndarray, *, sr: int, settings: FeatureSettings) -> dict[str, np.ndarray]:
    """Compute every feature column for a batch of segments.

    Parameters
    ----------
    y : np.ndarray [shape=(n_segments, n), dtype=float32]
        Mono waveforms, all of the same length.
    sr : int > 0
        Sample rate of ``y``.
    settings : FeatureSettings
        Which columns and with what analysis parameters.

    Returns
    -------
    features : dict
        ``column -> np.ndarray [shape=(n_segments,), dtype=float64]`` for every name
        in ``settings.feature_columns()``, all finite.
    """
    import librosa

    y = np.ascontiguousarray(np.atleast_2d(y), dtype=np.float32)
    n_fft = settings.n_fft
    hop_length = settings.hop_length
    c = GTZAN_COMPAT
    out: dict[str, np.ndarray] = {}

    D = librosa.stft(y, n_fft=n_fft, hop_length=hop_length, center=True, pad_mode=c["stft_pad_mode"])
    S = np.abs(D)
    power = S**2

    # chroma_stft: tuning estimated per segment from the power spectrogram
    chroma = _chroma(power, sr=sr, n_fft=n_fft, n_chroma=c["n_chroma"])
    _put(out, "chroma_stft", chroma)

    rms = librosa.feature.rms(
        y=y, frame_length=n_fft, hop_length=hop_length, center=True, pad_mode=c["rms_pad_mode"]
    )
    _put(out, "rms", rms[:, 0])

    centroid, bandwidth, rolloff = _spectral_shape(S, freqs=librosa.fft_frequencies(sr=sr, n_fft=n_fft))
    _put(out, "spectral_centroid", centroid)
    _put(out, "spectral_bandwidth", bandwidth)
    _put(out, "rolloff", rolloff)
    zcr = librosa.feature.zero_crossing_rate(y, frame_length=n_fft, hop_length=hop_length, center=True)
    _put(out, "zero_crossing_rate", zcr[:, 0])

    harmonic, percussive = _hpss_waveforms(
        D, S, n=y.shape[-1], hop_length=hop_length, n_fft=n_fft,
        kernel_size=c["hpss_kernel_size"], power=c["hpss_power"],
    )
    out["harmony_mean"], out["harmony_var"] = frames_to_stats(harmonic)
    out["perceptr_mean"], out["perceptr_var"] = frames_to_stats(percussive)

    mel = np.einsum("mf,sft->smt", _mel_basis(sr, n_fft, c["n_mels"]), power, optimize=True)
    mel_db = _power_to_db(mel, top_db=c["top_db"])
    out["tempo"] = _tempo(mel_db, sr=sr, hop_length=hop_length, n_fft=n_fft)

    mfcc = scipy.fft.dct(mel_db, axis=-2, type=2, norm="ortho")[:, : settings.n_mfcc]
    for i in range(settings.n_mfcc):
        _put(out, f"mfcc{i + 1}", mfcc[:, i])

    if settings.preset == "default":
        # per segment: spectral_contrast's decibel floor depends on the whole input
        contrast = np.stack([
            librosa.feature.spectral_contrast(S=s, sr=sr, n_fft=n_fft, n_bands=settings.n_bands)
            for s in S
        ])
        for i in range(settings.n_bands + 1):
            _put(out, f"spectral_contrast{i + 1}", contrast[:, i])

    cols = settings.feature_columns()
    return {name: np.nan_to_num(out[name], nan=0.0, posinf=0.0, neginf=0.0) for name in cols}


def frames_to_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (population) variance of each segment's values, in float64.

    ``x`` has shape ``(n_segments, ...)``: ``(n_segments, n_frames)`` for a scalar
    feature, ``(n_segments, d, n_frames)`` for a vector one (chroma: all bins and
    frames pooled, as ``np.mean(chroma)`` does), ``(n_segments, n)`` for a waveform.
    """
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    return x.mean(axis=-1), x.var(axis=-1)


def _put(out: dict, name: str, frames: np.ndarray) -> None:
    out[f"{name}_mean"], out[f"{name}_var"] = frames_to_stats(frames)


def median_filter_rows(x: np.ndarray, *, size: int, axis: int) -> np.ndarray:
    """Exact median filter of width ``size`` along one axis, with 'reflect' edges.

    Equal to ``scipy.ndimage.median_filter(x, size=<size on axis, 1 elsewhere>,
    mode='reflect')``. Every row along ``axis`` is padded with its own reflection,
    all rows are laid end to end, and SciPy's fast 1-D rank filter runs once over
    the whole line; a window never reaches across two rows because each row carries
    its own ``size // 2`` samples of padding.
    """
    half = size // 2
    moved = np.moveaxis(x, axis, -1)
    shape = moved.shape
    rows = moved.reshape(-1, shape[-1])
    # numpy's 'symmetric' padding is scipy.ndimage's 'reflect' (edge sample repeated)
    padded = np.pad(rows, ((0, 0), (half, half)), mode="symmetric")
    line = scipy.ndimage.median_filter(padded.ravel(), size=size, mode="reflect")
    filtered = line.reshape(padded.shape)[:, half : half + shape[-1]]
    return np.moveaxis(filtered.reshape(shape), -1, axis)


def _hpss_waveforms(D, S, *, n, hop_length, n_fft, kernel_size, power):
    """Harmonic and percussive waveforms of each segment (librosa.effects.hpss)."""
    import librosa

    harm = median_filter_rows(S, size=kernel_size, axis=-1)
    perc = median_filter_rows(S, size=kernel_size, axis=-2)
    mask_h, mask_p = _soft_masks(harm, perc, power=power)
    mask_h *= D  # complex from here on
    mask_p *= D
    # As the older librosa did: invert without ``length=``, so the waveform ends at
    # the last full hop, then zero-fill the tail up to the segment's length.
    kw = dict(hop_length=hop_length, n_fft=n_fft, dtype=np.float32)
    harmonic = librosa.util.fix_length(librosa.istft(mask_h, **kw), size=n)
    percussive = librosa.util.fix_length(librosa.istft(mask_p, **kw), size=n)
    return harmonic, percussive


def _soft_masks(a, b, *, power):
    """The pair of Wiener-style masks ``a**p / (a**p + b**p)`` and its complement.

    Same arithmetic as ``librosa.util.softmask(a, b, split_zeros=True)`` and
    ``softmask(b, a, ...)``, done once for both: values are scaled by the larger of
    the two first, and bins where both are zero get 0.5 each.
    """
    z = np.maximum(a, b)
    bad = z < np.finfo(z.dtype).tiny
    z[bad] = 1
    mask_a = (a / z) ** power
    mask_b = (b / z) ** power
    total = mask_a + mask_b
    total[bad] = 1
    mask_a /= total
    mask_b /= total
    mask_a[bad] = 0.5
    mask_b[bad] = 0.5
    return mask_a.astype(np.complex64), mask_b.astype(np.complex64)


def _spectral_shape(S, *, freqs):
    """Spectral centroid, bandwidth (p=2) and 85% roll-off of each frame.

    Same definitions as librosa's ``spectral_centroid``, ``spectral_bandwidth`` and
    ``spectral_rolloff`` on a magnitude spectrogram; the first two use frequency
    moments so that one pass over ``S`` serves both.

    S : np.ndarray [shape=(n_segments, 1 + n_fft // 2, n_frames)]
    """
    S64 = S.astype(np.float64)
    total = S64.sum(axis=-2)
    safe = np.where(total > 0, total, 1.0)
    m1 = np.einsum("f,sft->st", freqs, S64) / safe
    m2 = np.einsum("f,sft->st", freqs**2, S64) / safe
    bandwidth = np.sqrt(np.maximum(m2 - m1**2, 0.0))
    # roll-off: the first bin whose cumulative magnitude reaches 85% of the total,
    # in S's own precision, as librosa compares it
    cumulative = np.cumsum(S, axis=-2)
    reached = cumulative >= 0.85 * cumulative[:, -1:, :]
    rolloff = freqs[np.argmax(reached, axis=-2)]
    return m1, bandwidth, rolloff


@functools.lru_cache(maxsize=8)
def _mel_basis(sr: int, n_fft: int, n_mels: int) -> np.ndarray:
    import librosa

    return librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels)


@functools.lru_cache(maxsize=256)
def _chroma_basis(sr: int, n_fft: int, n_chroma: int, tuning: float) -> np.ndarray:
    import librosa

    return librosa.filters.chroma(sr=sr, n_fft=n_fft, tuning=tuning, n_chroma=n_chroma)


def _chroma(power, *, sr, n_fft, n_chroma):
    """librosa.feature.chroma_stft of each segment, each with its own tuning estimate."""
    import librosa

    pitch, mag = librosa.piptrack(S=power, sr=sr, n_fft=n_fft)
    chroma = np.empty((power.shape[0], n_chroma, power.shape[-1]), dtype=power.dtype)
    for i in range(power.shape[0]):
        has_pitch = pitch[i] > 0
        threshold = np.median(mag[i][has_pitch]) if has_pitch.any() else 0.0
        selected = pitch[i][(mag[i] >= threshold) & has_pitch]
        tuning = librosa.pitch_tuning(selected, bins_per_octave=n_chroma) if selected.size else 0.0
        basis = _chroma_basis(sr, n_fft, n_chroma, float(tuning))
        chroma[i] = basis @ power[i]
    return librosa.util.normalize(chroma, norm=np.inf, axis=-2)


def _power_to_db(S, *, top_db, amin=1e-10):
    """librosa.power_to_db(S, ref=1.0) applied to each segment separately."""
    log_spec = 10.0 * np.log10(np.maximum(amin, S))
    floor = log_spec.max(axis=(-2, -1), keepdims=True) - top_db
    return np.maximum(log_spec, floor)


def _tempo(mel_db, *, sr, hop_length, n_fft):
    """Global tempo of each segment from its onset-strength envelope."""
    import librosa

    # the onset envelope of librosa.beat.beat_track: median over mel bands
    onset_env = librosa.onset.onset_strength(
        S=mel_db, sr=sr, hop_length=hop_length, n_fft=n_fft, aggregate=np.median
    )
    tempo = librosa.feature.tempo(onset_envelope=onset_env, sr=sr, hop_length=hop_length)
    return np.asarray(tempo, dtype=np.float64).reshape(mel_db.shape[0], -1)[:, 0]
