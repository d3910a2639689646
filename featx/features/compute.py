"""The feature catalogue: every column computed from spectra shared across features.

The numeric core of featx. It takes a batch of equal-length segments and returns one
value per segment and column; it does no file I/O.

Each segment is analysed on its own, exactly as if the librosa feature functions were
called on that segment's waveform, but the work is shared:

* one STFT per segment serves chroma, centroid, bandwidth, roll-off, contrast,
  harmonic/percussive separation, the mel spectrogram (MFCC) and the onset envelope
  (tempo), where a straightforward implementation recomputes it for each feature;
* all segments of a file go through each step together as one batch;
* the median filters of harmonic/percussive separation, which dominate a
  straightforward implementation's time, run through an exact compiled filter that
  slides many rows' sorted windows at once (:func:`featx._median.median_filter_rows`),
  over 50 times faster than ``scipy.ndimage.median_filter`` and bit-identical to it;
* chroma's tuning estimate looks only at the band where pitches can be found.

The settings reproduce the Kaggle GTZAN tables, which were made with an older librosa
whose defaults differ from today's; see :data:`GTZAN_COMPAT`.
"""
from __future__ import annotations

import functools

import numpy as np
import scipy.fft

from .median import median_filter_rows
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
    _put(out, "zero_crossing_rate", _zero_crossing_rate(y, frame_length=n_fft, hop_length=hop_length))

    harmonic, percussive = _hpss_waveforms(
        y, D, S, hop_length=hop_length, n_fft=n_fft,
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


def _hpss_waveforms(y, D, S, *, hop_length, n_fft, kernel_size, power):
    """Harmonic and percussive waveforms of each segment (librosa.effects.hpss).

    As the older librosa did, the inverse STFT runs without ``length=``: the waveform
    ends at the last full hop and its tail is zero-filled to the segment's length.
    The two masks sum to one, and the inverse STFT is linear and reconstructs ``y``
    exactly where frames cover it, so the percussive part is ``y`` minus the
    harmonic part there: one inverse STFT instead of two.
    """

    harm = median_filter_rows(S, size=kernel_size, axis=-1)
    perc = median_filter_rows(S, size=kernel_size, axis=-2)
    mask_h = _soft_mask(harm, perc, power=power)
    covered = _istft(D, mask_h, hop_length=hop_length, n_fft=n_fft)
    m = covered.shape[-1]
    harmonic = np.zeros_like(y)
    percussive = np.zeros_like(y)
    harmonic[:, :m] = covered
    percussive[:, :m] = y[:, :m] - covered
    return harmonic, percussive


def _istft(D, mask, *, hop_length, n_fft):
    """``librosa.istft(D * mask, hop_length=, n_fft=, dtype=float32)`` (centred, no ``length``).

    The masked spectrum is written frame-major, so that all frames are inverted in one
    call over contiguous memory; they are then overlap-added ``n_fft // hop_length``
    phases at a time (whole-array additions) rather than frame by frame, and divided
    by the cached squared-window sum.
    """
    import scipy.fft

    n_seg, n_bins, n_frames = D.shape
    ratio = n_fft // hop_length
    if ratio * hop_length != n_fft:
        import librosa

        return librosa.istft(D * mask, hop_length=hop_length, n_fft=n_fft, dtype=np.float32)
    window, norm = _istft_window(n_fft, hop_length, n_frames)
    spectra = np.empty((n_seg, n_frames, n_bins), dtype=D.dtype)
    np.multiply(np.swapaxes(D, -1, -2), np.swapaxes(mask, -1, -2), out=spectra)
    frames = scipy.fft.irfft(spectra, n=n_fft, axis=-1).astype(np.float32, copy=False)
    frames *= window  # (n_seg, n_frames, n_fft)
    blocks = frames.reshape(n_seg, n_frames, ratio, hop_length)
    y = np.zeros((n_seg, n_frames + ratio - 1, hop_length), dtype=np.float32)
    for k in range(ratio):
        y[:, k : k + n_frames] += blocks[:, :, k]
    y = y.reshape(n_seg, -1)[:, n_fft // 2 : n_fft // 2 + hop_length * (n_frames - 1)]
    return y / norm


@functools.lru_cache(maxsize=16)
def _istft_window(n_fft: int, hop_length: int, n_frames: int):
    import librosa

    window = librosa.filters.get_window("hann", n_fft, fftbins=True).astype(np.float32)
    total = librosa.filters.window_sumsquare(
        window="hann", n_frames=n_frames, win_length=n_fft, n_fft=n_fft,
        hop_length=hop_length, dtype=np.float32,
    )[n_fft // 2 : n_fft // 2 + hop_length * (n_frames - 1)]
    total = np.where(total > np.finfo(np.float32).tiny, total, 1).astype(np.float32)
    return window, total


def _zero_crossing_rate(y, *, frame_length, hop_length, threshold=1e-10):
    """``librosa.feature.zero_crossing_rate(y, center=True)`` from one pass over ``y``.

    Sign changes between neighbouring samples (samples within ``threshold`` of zero
    count as positive) are counted once for the whole edge-padded signal; each
    frame's count is then a difference of the running total, instead of a count
    over 2048 samples for every frame.
    """
    half = frame_length // 2
    padded = np.pad(y, ((0, 0), (half, half)), mode="edge")
    negative = np.signbit(padded) & (np.abs(padded) > threshold)
    changes = negative[:, 1:] != negative[:, :-1]
    total = np.zeros((len(y), changes.shape[1] + 1), dtype=np.int64)
    np.cumsum(changes, axis=1, out=total[:, 1:])
    n_frames = 1 + (padded.shape[1] - frame_length) // hop_length
    starts = np.arange(n_frames) * hop_length
    # a frame's first sample has no left neighbour inside the frame
    counts = total[:, starts + frame_length - 1] - total[:, starts]
    return counts / frame_length


def _soft_mask(a, b, *, power):
    """``a**p / (a**p + b**p)``: ``librosa.util.softmask(a, b, split_zeros=True)``.

    Values are scaled by the larger of the two first; bins where both are zero get 0.5.
    """
    z = np.maximum(a, b)
    bad = z < np.finfo(z.dtype).tiny
    np.putmask(z, bad, 1)
    mask = np.divide(a, z)
    other = np.divide(b, z, out=z)  # z is not needed any more
    if power == 2:
        np.square(mask, out=mask)
        np.square(other, out=other)
    else:
        np.power(mask, power, out=mask)
        np.power(other, power, out=other)
    other += mask
    np.putmask(other, bad, 1)
    mask /= other
    np.putmask(mask, bad, 0.5)
    return mask


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

    tunings = _estimate_tuning(power, sr=sr, n_fft=n_fft, bins_per_octave=n_chroma)
    chroma = np.empty((power.shape[0], n_chroma, power.shape[-1]), dtype=power.dtype)
    for i, tuning in enumerate(tunings):
        chroma[i] = _chroma_basis(sr, n_fft, n_chroma, tuning) @ power[i]
    # librosa.util.normalize(chroma, norm=np.inf, axis=-2): all-zero frames stay zero
    peak = np.max(np.abs(chroma), axis=-2, keepdims=True)
    peak[peak < np.finfo(chroma.dtype).tiny] = 1.0
    return chroma / peak


def _estimate_tuning(S, *, sr, n_fft, bins_per_octave, fmin=150.0, fmax=4000.0, threshold=0.1):
    """``librosa.estimate_tuning(S=S[i])`` for each segment ``i``.

    Same arithmetic as librosa's ``piptrack`` followed by ``pitch_tuning``, but only
    on the bins between ``fmin`` and ``fmax`` (plus one neighbour each side), the
    only ones piptrack can report a pitch for: a sixth of the spectrum.
    """
    import librosa

    freqs = librosa.fft_frequencies(sr=sr, n_fft=n_fft)
    in_band = np.flatnonzero((fmin <= freqs) & (freqs < min(fmax, sr / 2)))
    lo, hi = int(in_band[0]), int(in_band[-1]) + 1
    assert lo >= 1 and hi < S.shape[-2]
    ref = threshold * S.max(axis=-2, keepdims=True)
    x = S[:, lo - 1 : hi + 1]
    # local maxima of the thresholded spectrum along frequency; the interpolation
    # below is evaluated at those few bins only
    gated = x * (x > ref)
    peak = (gated[:, 1:-1] > gated[:, :-2]) & (gated[:, 1:-1] >= gated[:, 2:])
    seg, k, t = np.nonzero(peak)
    up, mid, down = x[seg, k + 2, t], x[seg, k + 1, t], x[seg, k, t]
    # parabolic interpolation (numba evaluates it in float64 from float32 sums)
    a = (up + down).astype(np.float64) - 2 * mid.astype(np.float64)
    b = (up - down).astype(np.float64) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(np.abs(b) >= np.abs(a), 0.0, -b / a).astype(np.float32)
    pitch = ((k + lo + shift.astype(np.float64)) * float(sr) / n_fft).astype(np.float32)
    mag = mid + 0.5 * ((up - down) / 2.0) * shift
    bounds = np.searchsorted(seg, np.arange(S.shape[0] + 1))
    tunings = []
    for i in range(S.shape[0]):
        p_i, m_i = pitch[bounds[i] : bounds[i + 1]], mag[bounds[i] : bounds[i + 1]]
        keep = p_i > 0
        cut = np.median(m_i[keep]) if keep.any() else 0.0
        chosen = p_i[(m_i >= cut) & keep]
        if chosen.size == 0:
            tunings.append(0.0)
        else:
            tunings.append(float(librosa.pitch_tuning(chosen, bins_per_octave=bins_per_octave)))
    return tunings


def _tempogram(onset_env, *, win_length):
    """``librosa.feature.tempogram(onset_envelope=..., win_length=...)``, batched.

    The same centred, Hann-windowed autocorrelation of the onset envelope, computed
    with an FFT of a fast length (librosa pads to ``2 * win_length - 1``, 687 for the
    8-s window: 3 x 229, a slow length) over frames laid out contiguously.
    """
    import librosa
    import scipy.fft

    n = onset_env.shape[-1]
    half = win_length // 2
    padded = np.pad(onset_env, ((0, 0), (half, half)), mode="linear_ramp", end_values=[0, 0])
    frames = np.lib.stride_tricks.sliding_window_view(padded, win_length, axis=-1)[:, :n]
    frames = frames * librosa.filters.get_window("hann", win_length, fftbins=True)
    n_fft = scipy.fft.next_fast_len(2 * win_length - 1, real=True)
    power = np.abs(scipy.fft.rfft(frames, n=n_fft, axis=-1)) ** 2
    autocorr = scipy.fft.irfft(power, n=n_fft, axis=-1)[..., :win_length]
    tg = np.swapaxes(autocorr, -1, -2)  # (n_segments, lag, frame)
    peak = np.max(np.abs(tg), axis=-2, keepdims=True)
    peak[peak < np.finfo(tg.dtype).tiny] = 1.0
    return tg / peak


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
    win_length = librosa.time_to_frames(8.0, sr=sr, hop_length=hop_length).item()
    tg = _tempogram(onset_env, win_length=win_length)
    tempo = librosa.feature.tempo(tg=tg, sr=sr, hop_length=hop_length)
    tempo = np.asarray(tempo, dtype=np.float64).reshape(mel_db.shape[0], -1)[:, 0]
    # no onsets at all (silence, a steady tone): beat_track reports a tempo of 0
    tempo[~onset_env.any(axis=-1)] = 0.0
    return tempo
