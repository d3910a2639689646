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
  slides many rows' sorted windows at once (:func:`featx.features.median.median_filter_rows`),
  over 50 times faster than ``scipy.ndimage.median_filter`` and bit-identical to it;
  the soft mask and its product with the spectrum are one compiled pass
  (:mod:`featx.features.masking`);
* chroma's tuning estimate looks only at the band where pitches can be found;
* librosa is not imported for the Kaggle columns: the STFT, RMS, filter banks, onset
  envelope and tempo come from :mod:`featx.features.dsp` (the same arithmetic, checked
  against librosa by the tests), which saves more than a second of start-up per
  process; the large transforms run a segment at a time so that their
  double-precision frames stay in cache.

The settings reproduce the Kaggle GTZAN tables, which were made with an older librosa
whose defaults differ from today's; see :data:`GTZAN_COMPAT`.
"""
from __future__ import annotations

import functools

import numpy as np

from . import dsp
from .masking import masked_spectrum
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
    y = np.ascontiguousarray(np.atleast_2d(y), dtype=np.float32)
    n_fft = settings.n_fft
    hop_length = settings.hop_length
    c = GTZAN_COMPAT
    out: dict[str, np.ndarray] = {}

    # frame-major STFT (n_segments, n_frames, bins); S and power in librosa's layout
    D = dsp.stft_frames(y, n_fft=n_fft, hop_length=hop_length)
    S_frames = np.abs(D)
    S = np.ascontiguousarray(np.swapaxes(S_frames, -1, -2))
    power = S * S

    # chroma_stft: tuning estimated per segment from the power spectrogram
    chroma = _chroma(power, sr=sr, n_fft=n_fft, n_chroma=c["n_chroma"])
    _put(out, "chroma_stft", chroma)

    _put(out, "rms", dsp.frame_rms(y, frame_length=n_fft, hop_length=hop_length))

    centroid, bandwidth, rolloff = _spectral_shape(S, S_frames, freqs=dsp.fft_frequencies(sr=sr, n_fft=n_fft))
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

    mel = np.matmul(_mel_basis(sr, n_fft, c["n_mels"]), power)
    mel_db = _power_to_db(mel, top_db=c["top_db"])
    out["tempo"] = _tempo(mel_db, sr=sr, hop_length=hop_length, n_fft=n_fft)

    # scipy.fft.dct(mel_db, axis=-2, type=2, norm="ortho")[:, :n_mfcc], as a product
    mfcc = dsp.dct_matrix(settings.n_mfcc, mel_db.shape[-2]) @ mel_db.astype(np.float64)
    for i in range(settings.n_mfcc):
        _put(out, f"mfcc{i + 1}", mfcc[:, i])

    if settings.preset == "default":
        import librosa

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
    if power == 2:
        spectrum = masked_spectrum(D, harm, perc)  # one compiled pass, same bits
    else:
        spectrum = D * np.swapaxes(_soft_mask(harm, perc, power=power), -1, -2)
    covered = _istft(spectrum, hop_length=hop_length, n_fft=n_fft)
    m = covered.shape[-1]
    harmonic = np.zeros_like(y)
    percussive = np.zeros_like(y)
    harmonic[:, :m] = covered
    percussive[:, :m] = y[:, :m] - covered
    return harmonic, percussive


def _istft(spectrum, *, hop_length, n_fft):
    """``librosa.istft(spectrum, hop_length=, n_fft=, dtype=float32)`` (centred, no ``length``).

    ``spectrum`` is frame-major, as :func:`featx.features.dsp.stft_frames` returns it:
    ``(n_segments, n_frames, bins)``. Each segment's frames are inverted in one
    single-precision call over contiguous memory (a segment at a time, so that they
    stay in cache); they are then overlap-added ``n_fft // hop_length`` phases at a
    time (whole-array additions) rather than frame by frame, and divided by the cached
    squared-window sum.
    """
    n_seg, n_frames, n_bins = spectrum.shape
    window, norm = _istft_window(n_fft, hop_length, n_frames)
    ratio = n_fft // hop_length
    y = np.zeros((n_seg, n_fft + hop_length * (n_frames - 1)), dtype=np.float32)
    for i in range(n_seg):
        frames = np.fft.irfft(spectrum[i], n=n_fft, axis=-1).astype(np.float32, copy=False)
        frames *= window  # (n_frames, n_fft)
        if ratio * hop_length == n_fft:
            blocks = frames.reshape(n_frames, ratio, hop_length)
            phases = y[i].reshape(n_frames + ratio - 1, hop_length)
            for k in range(ratio):
                phases[k : k + n_frames] += blocks[:, k]
        else:
            for t in range(n_frames):
                y[i, t * hop_length : t * hop_length + n_fft] += frames[t]
    y = y[:, n_fft // 2 : n_fft // 2 + hop_length * (n_frames - 1)]
    return y / norm


@functools.lru_cache(maxsize=16)
def _istft_window(n_fft: int, hop_length: int, n_frames: int):
    window = dsp.hann(n_fft).astype(np.float32)
    total = dsp.window_sumsquare(n_frames=n_frames, n_fft=n_fft, hop_length=hop_length).astype(np.float32)
    total = total[n_fft // 2 : n_fft // 2 + hop_length * (n_frames - 1)]
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


def _spectral_shape(S, S_frames, *, freqs):
    """Spectral centroid, bandwidth (p=2) and 85% roll-off of each frame.

    Same definitions as librosa's ``spectral_centroid``, ``spectral_bandwidth`` and
    ``spectral_rolloff`` on a magnitude spectrogram; the first two use frequency
    moments (one matrix product gives the total and both moments of every frame).

    S : np.ndarray [shape=(n_segments, 1 + n_fft // 2, n_frames)]
    S_frames : np.ndarray [shape=(n_segments, n_frames, 1 + n_fft // 2)]
        The same magnitudes, frame-major.
    """
    weights = np.stack([np.ones_like(freqs), freqs, freqs**2])
    moments = np.empty((S.shape[0], 3, S.shape[-1]))
    rolloff_bin = np.empty(S_frames.shape[:2], dtype=np.intp)
    for i in range(len(S)):  # a segment at a time: the float64 copy stays in cache
        moments[i] = weights @ S[i].astype(np.float64)
        # roll-off: the first bin whose cumulative magnitude reaches 85% of the total,
        # in S's own precision, as librosa compares it (summed over contiguous memory)
        cumulative = np.cumsum(S_frames[i], axis=-1)
        rolloff_bin[i] = np.argmax(cumulative >= 0.85 * cumulative[:, -1:], axis=-1)
    total, w1, w2 = np.moveaxis(moments, -2, 0)
    safe = np.where(total > 0, total, 1.0)
    m1 = w1 / safe
    m2 = w2 / safe
    bandwidth = np.sqrt(np.maximum(m2 - m1**2, 0.0))
    return m1, bandwidth, freqs[rolloff_bin]


_mel_basis = dsp.mel_basis
_chroma_basis = dsp.chroma_basis


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
    freqs = dsp.fft_frequencies(sr=sr, n_fft=n_fft)
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
            tunings.append(dsp.pitch_tuning(chosen, bins_per_octave=bins_per_octave))
    return tunings


def _tempogram(onset_env, *, win_length):
    """``librosa.feature.tempogram(onset_envelope=..., win_length=...)``, batched.

    The same centred, Hann-windowed autocorrelation of the onset envelope, computed
    with an FFT of a fast length (librosa pads to ``2 * win_length - 1``, 687 for the
    8-s window: 3 x 229, a slow length) over frames laid out contiguously, a segment
    at a time (so that they stay in cache).
    """
    n = onset_env.shape[-1]
    half = win_length // 2
    padded = np.pad(onset_env, ((0, 0), (half, half)), mode="linear_ramp", end_values=[0, 0])
    frames = np.lib.stride_tricks.sliding_window_view(padded, win_length, axis=-1)[:, :n]
    window = dsp.hann(win_length)
    n_fft = dsp.next_fast_len(2 * win_length - 1)
    autocorr = np.empty(frames.shape, dtype=np.result_type(frames.dtype, np.float64))
    for i in range(len(frames)):
        spectrum = np.fft.rfft(frames[i] * window, n=n_fft, axis=-1)
        power = spectrum.real**2 + spectrum.imag**2
        autocorr[i] = np.fft.irfft(power, n=n_fft, axis=-1)[..., :win_length]
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
    # the onset envelope of librosa.beat.beat_track: median over mel bands
    onset_env = dsp.onset_strength_median(mel_db, n_fft=n_fft, hop_length=hop_length)
    win_length = int(8.0 * sr) // hop_length  # librosa.time_to_frames(8.0)
    tg = _tempogram(onset_env, win_length=win_length)
    tempo = dsp.tempo_from_tempogram(tg, sr=sr, hop_length=hop_length).astype(np.float64)
    # no onsets at all (silence, a steady tone): beat_track reports a tempo of 0
    tempo[~onset_env.any(axis=-1)] = 0.0
    return tempo
