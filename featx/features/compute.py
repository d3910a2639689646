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
* chroma's tuning estimate looks only at the band where pitches can be found, and
  takes every segment's medians and histogram in one pass;
* tempo needs only the tempogram's mean over frames: it is one inverse FFT of the
  frames' averaged, normalised power spectra, not an inverse FFT per frame;
* librosa is not imported: the STFT, RMS, filter banks, onset envelope and tempo
  come from :mod:`featx.features.dsp`, spectral contrast from
  :mod:`featx.features.contrast` (the same arithmetic, checked against librosa by
  the tests), which saves more than a second of start-up per process; the large
  transforms run a segment at a time so that their double-precision frames stay
  in cache;
* the compiled kernels (median filters, soft mask, magnitudes and roll-off) are
  loaded as stored machine code (:mod:`featx.features.native`), without numba.

The settings reproduce the Kaggle GTZAN tables, which were made with an older librosa
whose defaults differ from today's; see :data:`GTZAN_COMPAT`.
"""
from __future__ import annotations

import functools

import numpy as np

from . import dsp
from .contrast import spectral_contrast
from .masking import masked_spectrum
from .median import median_filter_rows
from .native import BLOCK, kernel
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
    S, power, rolloff_bin = _magnitudes(D, roll_percent=0.85)

    # chroma_stft: tuning estimated per segment from the power spectrogram
    chroma = _chroma(power, sr=sr, n_fft=n_fft, n_chroma=c["n_chroma"])
    _put(out, "chroma_stft", chroma)

    _put(out, "rms", dsp.frame_rms(y, frame_length=n_fft, hop_length=hop_length))

    centroid, bandwidth, rolloff = _spectral_shape(S, rolloff_bin, freqs=dsp.fft_frequencies(sr=sr, n_fft=n_fft))
    _put(out, "spectral_centroid", centroid)
    _put(out, "spectral_bandwidth", bandwidth)
    _put(out, "rolloff", rolloff)
    _put(out, "zero_crossing_rate", _zero_crossing_rate(y, frame_length=n_fft, hop_length=hop_length))

    covered = _hpss_harmonic(
        D, S, hop_length=hop_length, n_fft=n_fft,
        kernel_size=c["hpss_kernel_size"], power=c["hpss_power"],
    )
    m = covered.shape[-1]
    # harmonic: the covered part, zeros after it; percussive: y less the harmonic part
    # there, zeros after it (the tail is never materialised)
    out["harmony_mean"], out["harmony_var"] = _zero_padded_stats(covered, y.shape[-1])
    out["perceptr_mean"], out["perceptr_var"] = _zero_padded_stats(y[:, :m] - covered, y.shape[-1])

    mel = _filter_bank_product(_mel_basis(sr, n_fft, c["n_mels"]), power)
    mel_db = _power_to_db(mel, top_db=c["top_db"])
    out["tempo"] = _tempo(mel_db, sr=sr, hop_length=hop_length, n_fft=n_fft)

    # scipy.fft.dct(mel_db, axis=-2, type=2, norm="ortho")[:, :n_mfcc], as a product
    mfcc = dsp.dct_matrix(settings.n_mfcc, mel_db.shape[-2]) @ mel_db.astype(np.float64)
    for i in range(settings.n_mfcc):
        _put(out, f"mfcc{i + 1}", mfcc[:, i])

    if settings.preset == "default":
        # librosa.feature.spectral_contrast of each segment (its decibel floor is per input)
        contrast = spectral_contrast(S, sr=sr, n_fft=n_fft, n_bands=settings.n_bands)
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


def _hpss_harmonic(D, S, *, hop_length, n_fft, kernel_size, power):
    """The harmonic waveform of each segment (librosa.effects.hpss), where frames cover it.

    As the older librosa did, the inverse STFT runs without ``length=``: the waveform
    ends at the last full hop and its tail is zero (the caller's
    :func:`_zero_padded_stats` counts it). The two masks sum to one, and the inverse
    STFT is linear and reconstructs ``y`` exactly where frames cover it, so the
    percussive part is ``y`` minus the harmonic part there: one inverse STFT instead
    of two. The mask is applied and inverted a segment at a time, while that
    segment's masked spectrum is still in cache.

    Returns
    -------
    covered : np.ndarray [shape=(n_segments, hop_length * (n_frames - 1)), dtype=float32]
    """
    harm = median_filter_rows(S, size=kernel_size, axis=-1)
    perc = median_filter_rows(S, size=kernel_size, axis=-2)
    n_seg, n_frames = D.shape[0], D.shape[1]
    covered = np.empty((n_seg, hop_length * (n_frames - 1)), dtype=np.float32)
    for i in range(n_seg):
        if power == 2:
            spectrum = masked_spectrum(D[i : i + 1], harm[i : i + 1], perc[i : i + 1])  # one compiled pass
        else:
            spectrum = D[i : i + 1] * np.swapaxes(_soft_mask(harm[i : i + 1], perc[i : i + 1], power=power), -1, -2)
        covered[i] = _istft(spectrum, hop_length=hop_length, n_fft=n_fft)[0]
    return covered


def _zero_padded_stats(x, n):
    """Mean and population variance (float64) of each row of ``x`` followed by zeros to length ``n``.

    The same values as :func:`frames_to_stats` of the zero-padded rows, up to the
    order of float64 summation.
    """
    x = np.asarray(x, dtype=np.float64)
    zeros = n - x.shape[-1]
    mean = x.sum(axis=-1) / n
    deviation = x - mean[:, np.newaxis]
    np.square(deviation, out=deviation)
    var = (deviation.sum(axis=-1) + zeros * mean * mean) / n
    return mean, var


def _istft(spectrum, *, hop_length, n_fft):
    """``librosa.istft(spectrum, hop_length=, n_fft=, dtype=float32)`` (centred, no ``length``).

    ``spectrum`` is frame-major, as :func:`featx.features.dsp.stft_frames` returns it:
    ``(n_segments, n_frames, bins)``. Each segment's frames are inverted in one
    single-precision call over contiguous memory, at most
    :data:`featx.features.dsp.FRAME_CHUNK` frames at a time (so that they stay in
    cache); they are then overlap-added ``n_fft // hop_length`` phases at a time
    (whole-array additions) rather than frame by frame, and divided by the cached
    squared-window sum.
    """
    n_seg, n_frames, n_bins = spectrum.shape
    window, norm = _istft_window(n_fft, hop_length, n_frames)
    ratio = n_fft // hop_length
    y = np.zeros((n_seg, n_fft + hop_length * (n_frames - 1)), dtype=np.float32)
    # frames a chunk at a time, last chunk first: every output sample then receives its
    # frames in the same order (latest frame first) as in one pass over all frames
    starts = list(range(0, n_frames, dsp.FRAME_CHUNK))[::-1]
    for i in range(n_seg):
        for t0 in starts:
            t1 = min(t0 + dsp.FRAME_CHUNK, n_frames)
            frames = np.fft.irfft(spectrum[i, t0:t1], n=n_fft, axis=-1).astype(np.float32, copy=False)
            frames *= window  # (t1 - t0, n_fft)
            if ratio * hop_length == n_fft:
                blocks = frames.reshape(t1 - t0, ratio, hop_length)
                phases = y[i, t0 * hop_length : (t1 - 1) * hop_length + n_fft].reshape(t1 - t0 + ratio - 1, hop_length)
                for k in range(ratio):
                    phases[k : k + t1 - t0] += blocks[:, k]
            else:
                for t in range(t0, t1):
                    y[i, t * hop_length : t * hop_length + n_fft] += frames[t - t0]
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
    count as positive, so a sample is negative when it is below ``-threshold``) are
    counted once for the whole signal; each frame's count is then a difference of
    the running total, instead of a count over 2048 samples for every frame. The
    edge padding repeats the end samples, which adds no change, so the signal is
    not padded: frames reaching past an end are clipped to it.
    """
    n = y.shape[-1]
    half = frame_length // 2
    negative = y < -threshold
    changes = negative[:, 1:] != negative[:, :-1]
    # total[:, j]: changes between samples before j (a 4-byte count where it fits)
    total = np.zeros((len(y), n), dtype=np.int32 if n < 2**31 else np.int64)
    np.cumsum(changes, axis=1, out=total[:, 1:])
    n_frames = 1 + (n + 2 * half - frame_length) // hop_length
    starts = np.arange(n_frames) * hop_length - half  # in y's samples
    # a frame's first sample has no left neighbour inside the frame
    first = np.clip(starts, 0, n - 1)
    last = np.clip(starts + frame_length - 1, 0, n - 1)
    counts = total[:, last] - total[:, first]
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


def _magnitudes(D, *, roll_percent):
    """``|D|`` and ``|D|**2`` in librosa's layout, and each frame's roll-off bin, in one pass.

    ``D`` is frame-major ``(n_segments, n_frames, bins)`` complex64. The magnitudes
    are correctly rounded (computed in double precision), where ``np.abs`` may be
    one unit in the last place off; the roll-off bin is the first whose running
    float32 sum of magnitudes reaches ``roll_percent`` of the frame's total, as
    librosa's ``spectral_rolloff`` finds it. See :func:`featx.features._kernels.magnitudes`.
    """
    D = np.ascontiguousarray(D, dtype=np.complex64)
    n_seg, n_frames, n_bins = D.shape
    S = np.empty((n_seg, n_bins, n_frames), dtype=np.float32)
    power = np.empty_like(S)
    rolloff_bin = np.zeros((n_seg, n_frames), dtype=np.int64)
    if S.size == 0:
        return S, power, rolloff_bin
    scratch = np.zeros(2 * n_bins * BLOCK, dtype=np.float32)
    kernel("magnitudes")(D.ctypes.data, S.ctypes.data, power.ctypes.data, rolloff_bin.ctypes.data,
                         scratch.ctypes.data, n_seg, n_frames, n_bins, np.float32(roll_percent))
    return S, power, rolloff_bin


def _spectral_shape(S, rolloff_bin, *, freqs):
    """Spectral centroid, bandwidth (p=2) and 85% roll-off of each frame.

    Same definitions as librosa's ``spectral_centroid``, ``spectral_bandwidth`` and
    ``spectral_rolloff`` on a magnitude spectrogram; the first two use frequency
    moments (one matrix product gives the total and both moments of every frame).

    S : np.ndarray [shape=(n_segments, 1 + n_fft // 2, n_frames)]
    rolloff_bin : np.ndarray [shape=(n_segments, n_frames), dtype=int]
        The roll-off bin of each frame (:func:`_magnitudes`).
    """
    weights = np.stack([np.ones_like(freqs), freqs, freqs**2])
    moments = np.empty((S.shape[0], 3, S.shape[-1]))
    for i in range(len(S)):  # a chunk of frames at a time: the float64 copy stays in cache
        for t0 in range(0, S.shape[-1], dsp.FRAME_CHUNK):
            t1 = t0 + dsp.FRAME_CHUNK
            moments[i, :, t0:t1] = weights @ S[i, :, t0:t1].astype(np.float64)
    total, w1, w2 = np.moveaxis(moments, -2, 0)
    safe = np.where(total > 0, total, 1.0)
    m1 = w1 / safe
    m2 = w2 / safe
    bandwidth = np.sqrt(np.maximum(m2 - m1**2, 0.0))
    return m1, bandwidth, freqs[rolloff_bin]


def _filter_bank_product(weights, x):
    """``weights @ x[s]`` for each segment, summing each filter over its non-zero band only.

    A mel filter covers a few bins (2,018 of the 131,200 weights of the 128-band,
    2048-point bank are non-zero), so the product skips the zeros instead of
    multiplying them; the sums are float32, as the dense product's are.
    """
    weights = np.ascontiguousarray(weights, dtype=np.float32)
    x = np.ascontiguousarray(x, dtype=np.float32)
    n_seg, n_bins, n_frames = x.shape
    if weights.ndim != 2 or weights.shape[1] != n_bins:
        raise ValueError(f"expected a filter bank of shape (filters, {n_bins}). Received: {weights.shape}")
    lo, hi = _bands(weights)
    out = np.empty((n_seg, weights.shape[0], n_frames), dtype=np.float32)
    kernel("banded_product")(weights.ctypes.data, lo.ctypes.data, hi.ctypes.data, x.ctypes.data, out.ctypes.data,
                             n_seg, weights.shape[0], n_bins, n_frames)
    return out


def _bands(weights):
    """First and one-past-last non-zero column of each row of a (cached, read-only) filter bank."""
    key = id(weights)
    cached = _BANDS.get(key) if not weights.flags.writeable else None  # only fixed banks are remembered
    if cached is None or cached[0] is not weights:
        if len(_BANDS) > 32:
            _BANDS.clear()
        nonzero = weights != 0
        lo = np.where(nonzero.any(axis=1), nonzero.argmax(axis=1), 0).astype(np.int64)
        hi = np.where(nonzero.any(axis=1), weights.shape[1] - nonzero[:, ::-1].argmax(axis=1), 0).astype(np.int64)
        cached = (weights, lo, hi)
        if not weights.flags.writeable:
            _BANDS[key] = cached
    return cached[1], cached[2]


_BANDS: dict = {}
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
    # local maxima along frequency of the thresholded spectrum x * (x > ref) (librosa's
    # test): as S >= 0, they are the bins above ref, above the bin below and not
    # below the bin above. The interpolation below is evaluated at those few only.
    centre = x[:, 1:-1]
    peak = centre > ref
    peak &= centre > x[:, :-2]
    peak &= centre >= x[:, 2:]
    n_bins, n_frames = peak.shape[-2:]
    seg, rest = np.divmod(np.flatnonzero(peak), n_bins * n_frames)
    k, t = np.divmod(rest, n_frames)
    up, mid, down = x[seg, k + 2, t], x[seg, k + 1, t], x[seg, k, t]
    # parabolic interpolation (numba evaluates it in float64 from float32 sums)
    a = (up + down).astype(np.float64) - 2 * mid.astype(np.float64)
    b = (up - down).astype(np.float64) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(np.abs(b) >= np.abs(a), 0.0, -b / a).astype(np.float32)
    pitch = ((k + lo + shift.astype(np.float64)) * float(sr) / n_fft).astype(np.float32)
    mag = mid + 0.5 * ((up - down) / 2.0) * shift
    # per segment: the pitches whose magnitude reaches the median of that segment's
    # magnitudes (at positive pitches), then their most common deviation
    n_segments = S.shape[0]
    keep = pitch > 0
    cut = _group_medians(mag[keep], seg[keep], n_groups=n_segments)
    chosen = keep & (mag >= cut[seg])
    return dsp.pitch_tunings(pitch[chosen], seg[chosen], n_groups=n_segments,
                             bins_per_octave=bins_per_octave).tolist()


def _group_medians(values, groups, *, n_groups):
    """``np.median(values[groups == g])`` for each ``g`` in ``range(n_groups)``, 0 for an empty group.

    ``groups`` is sorted (non-decreasing). Each group's values are laid out in one row
    of a table padded with ``inf``, and one sort along the rows orders them all; the
    middle values are averaged in ``values``' own precision, as ``np.median`` does,
    so each median has its bits.
    """
    counts = np.bincount(groups, minlength=n_groups)
    starts = np.cumsum(counts) - counts
    table = np.full((n_groups, max(1, int(counts.max(initial=0)))), np.inf, dtype=values.dtype)
    table[groups, np.arange(len(values)) - starts[groups]] = values
    table.sort(axis=-1)
    full = np.flatnonzero(counts)
    low = table[full, (counts[full] - 1) // 2]
    high = table[full, counts[full] // 2]
    medians = np.zeros(n_groups, dtype=values.dtype)
    medians[full] = np.where(counts[full] % 2 == 1, low, (low + high) / 2)
    # a NaN makes np.median NaN
    medians[np.bincount(groups, weights=np.isnan(values), minlength=n_groups) > 0] = np.nan
    return medians


def _tempogram(onset_env, *, win_length):
    """Time-mean of ``librosa.feature.tempogram(onset_envelope=..., win_length=...)``, batched.

    librosa's tempogram is the centred, Hann-windowed autocorrelation of each frame
    of the onset envelope, divided by its largest absolute value, which is its value
    at lag 0, the frame's energy (all-zero frames stay zero). Only its mean over
    frames is used (by the tempo estimate), and a frame's autocorrelation is the
    inverse FFT of its power spectrum, so the mean is one inverse FFT per segment:
    the power spectra of all frames (one forward FFT each, of a fast length at least
    ``2 * win_length - 1``, so that no lag wraps around) are averaged first, each
    divided by its frame's energy (read from the spectrum itself: Parseval). The
    frames are transformed at most :data:`featx.features.dsp.FRAME_CHUNK` at a time,
    so that they stay in cache.

    Returns
    -------
    mean : np.ndarray [shape=(n_segments, win_length), dtype=float64]
        Lag 0 first; the mean over frames of the normalised autocorrelation.
    """
    n = onset_env.shape[-1]
    half = win_length // 2
    padded = np.pad(onset_env, ((0, 0), (half, half)), mode="linear_ramp", end_values=[0, 0])
    frames = np.lib.stride_tricks.sliding_window_view(padded, win_length, axis=-1)[:, :n]
    window = dsp.hann(win_length)
    n_fft = dsp.next_fast_len(2 * win_length - 1)
    chunk = min(n, dsp.FRAME_CHUNK)  # frames transformed together, kept in cache
    buffer = np.zeros((chunk, n_fft))  # zero beyond win_length: the FFT's padding
    n_bins = n_fft // 2 + 1
    # a frame's energy from the squares of its spectrum's real and imaginary parts:
    # bins other than 0 and n_fft / 2 stand for two of the full spectrum's
    parseval = np.full(2 * n_bins, 2.0 / n_fft)
    parseval[:2] = 1.0 / n_fft
    if n_fft % 2 == 0:
        parseval[-2:] = 1.0 / n_fft
    power = np.empty((len(frames), n_bins))
    for i in range(len(frames)):
        total = np.zeros(2 * n_bins)
        for t0 in range(0, n, chunk):
            t1 = min(t0 + chunk, n)
            np.multiply(frames[i, t0:t1], window, out=buffer[: t1 - t0, :win_length])
            parts = np.fft.rfft(buffer[: t1 - t0], axis=-1).view(np.float64)
            np.square(parts, out=parts)
            energy = parts @ parseval
            energy[energy < np.finfo(energy.dtype).tiny] = 1.0
            total += (1.0 / energy) @ parts  # the normalised power spectra summed over frames
        power[i] = (total[0::2] + total[1::2]) / n
    return np.fft.irfft(power, n=n_fft, axis=-1)[:, :win_length]


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
    mean = _tempogram(onset_env, win_length=win_length)
    tempo = dsp.tempo_from_mean_tempogram(mean, sr=sr, hop_length=hop_length).astype(np.float64)
    # no onsets at all (silence, a steady tone): beat_track reports a tempo of 0
    tempo[~onset_env.any(axis=-1)] = 0.0
    return tempo
