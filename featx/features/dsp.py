"""Signal-processing building blocks of the feature core, in NumPy and ``scipy.fft``.

Each function computes what the librosa function named in its docstring computes,
for the settings featx uses, batched over segments. They exist so that extraction
never imports librosa: importing it (and the compiled kernels it loads) costs well
over a second per process, several times the analysis of a 30-second clip. The test
suite checks every function here against librosa itself.

Shapes follow librosa: ``y`` is ``(n_segments, n)``, spectra are ``(n_segments,
1 + n_fft // 2, n_frames)`` unless a docstring says frame-major.
"""
from __future__ import annotations

import functools

import numpy as np

__all__ = [
    "hann",
    "fft_frequencies",
    "next_fast_len",
    "dct_matrix",
    "stft_frames",
    "frame_rms",
    "window_sumsquare",
    "mel_basis",
    "resample",
    "chroma_basis",
    "pitch_tuning",
    "pitch_tunings",
    "onset_strength_median",
    "tempo_frequencies",
    "tempo_from_tempogram",
    "tempo_from_mean_tempogram",
]


#: Frames transformed per FFT call: a 3-s segment (130 frames at hop 512) in one call,
#: a longer input in pieces whose double-precision frames stay in cache.
FRAME_CHUNK = 160


@functools.lru_cache(maxsize=16)
def hann(n: int) -> np.ndarray:
    """Periodic Hann window of ``n`` samples, float64 (``get_window('hann', n, fftbins=True)``)."""
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)
    window.setflags(write=False)
    return window


def fft_frequencies(*, sr: int, n_fft: int) -> np.ndarray:
    """Centre frequency of each STFT bin (``librosa.fft_frequencies``)."""
    return np.fft.rfftfreq(n=n_fft, d=1.0 / sr)


def next_fast_len(n: int) -> int:
    """Smallest ``2**a * 3**b * 5**c >= n``: an FFT length without large prime factors."""
    best = 1 << max(0, (int(n) - 1).bit_length())
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


@functools.lru_cache(maxsize=8)
def dct_matrix(n_out: int, n: int) -> np.ndarray:
    """The first ``n_out`` rows of the orthonormal DCT-II of length ``n``, float64.

    ``dct_matrix(k, n) @ x`` is ``scipy.fft.dct(x, type=2, norm='ortho', axis=-2)[..., :k, :]``.
    """
    k = np.arange(n_out)[:, np.newaxis]
    basis = np.cos(np.pi * k * (2 * np.arange(n) + 1) / (2 * n)) * np.sqrt(2.0 / n)
    basis[0] /= np.sqrt(2.0)
    basis.setflags(write=False)
    return basis


def stft_frames(y: np.ndarray, *, n_fft: int, hop_length: int) -> np.ndarray:
    """Centred, reflect-padded, Hann-windowed STFT of each segment, frame-major.

    The same frames as ``librosa.stft(y, n_fft=, hop_length=, center=True,
    pad_mode='reflect')``. Each segment's frames go through real FFT calls of at most :data:`FRAME_CHUNK`
    frames, which keeps the double-precision frames (2 MB for a 3-s segment) in
    cache: about 1.6 times faster than one call over all segments, and for a whole
    30-s clip than one call over its 1,293 frames. As in librosa, the windowed frames are transformed in double precision and the
    result rounded to complex64: a single-precision transform would add a noise floor
    near 1e-7 of each frame's peak, which moves the bandwidth of tonal frames by about
    0.1%.

    Parameters
    ----------
    y : np.ndarray [shape=(n_segments, n), dtype=float32]

    Returns
    -------
    D : np.ndarray [shape=(n_segments, n_frames, 1 + n_fft // 2), dtype=complex64]
        Frame-major: ``np.swapaxes(D, -1, -2)`` is librosa's layout.
    """
    half = n_fft // 2
    padded = np.pad(y, ((0, 0), (half, half)), mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft, axis=-1)[:, ::hop_length]
    window = hann(n_fft)
    out = np.empty(frames.shape[:2] + (1 + n_fft // 2,), dtype=np.result_type(y.dtype, np.complex64))
    for i in range(len(frames)):
        for t0 in range(0, frames.shape[1], FRAME_CHUNK):
            chunk = frames[i, t0 : t0 + FRAME_CHUNK]
            out[i, t0 : t0 + FRAME_CHUNK] = np.fft.rfft(chunk * window, axis=-1)
    return out


def frame_rms(y: np.ndarray, *, frame_length: int, hop_length: int) -> np.ndarray:
    """Root-mean-square of each centred, reflect-padded frame (``librosa.feature.rms(y=...)``).

    Squares are summed per hop (in float64); when the frame is a whole number of
    hops, as in every preset, each frame's power is the sum of its hops' sums,
    otherwise a running sum over the padded signal serves every frame.

    Returns
    -------
    rms : np.ndarray [shape=(n_segments, n_frames)]
    """
    half = frame_length // 2
    padded = np.pad(y, ((0, 0), (half, half)), mode="reflect")
    n_frames = 1 + (padded.shape[1] - frame_length) // hop_length
    ratio = frame_length // hop_length
    if ratio * hop_length == frame_length:
        n_hops = n_frames + ratio - 1
        square = np.square(padded[:, : n_hops * hop_length])
        hops = square.reshape(len(y), n_hops, hop_length).sum(axis=-1, dtype=np.float64)
        power = hops[:, :n_frames].copy()
        for k in range(1, ratio):
            power += hops[:, k : k + n_frames]
    else:
        padded = padded.astype(np.float64)
        total = np.zeros((len(y), padded.shape[1] + 1))
        np.cumsum(padded * padded, axis=1, out=total[:, 1:])
        starts = np.arange(n_frames) * hop_length
        power = total[:, starts + frame_length] - total[:, starts]
    return np.sqrt(np.maximum(power / frame_length, 0.0))


def window_sumsquare(*, n_frames: int, n_fft: int, hop_length: int) -> np.ndarray:
    """Sum of the squared Hann windows of ``n_frames`` overlapping frames (``librosa.filters.window_sumsquare``)."""
    n = n_fft + hop_length * (n_frames - 1)
    total = np.zeros(n)
    square = hann(n_fft) ** 2
    for i in range(n_frames):
        start = i * hop_length
        total[start : start + n_fft] += square[: max(0, min(n_fft, n - start))]
    return total


def resample(y: np.ndarray, *, orig_sr: int, target_sr: int) -> np.ndarray:
    """``librosa.resample(y, orig_sr=, target_sr=, res_type='soxr_hq')`` of a mono signal.

    soxr's high-quality resampler, called as librosa calls it, and the result cut or
    zero-padded to ``ceil(n * target_sr / orig_sr)`` samples, as librosa fixes its length.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]

    Returns
    -------
    np.ndarray [shape=(ceil(n * target_sr / orig_sr),)], of ``y``'s dtype
    """
    import soxr  # deferred: only audio at another rate than the analysis rate needs it

    size = int(np.ceil(y.shape[-1] * (float(target_sr) / orig_sr)))
    out = soxr.resample(y, orig_sr, target_sr, quality="soxr_hq")
    if out.shape[-1] > size:
        out = out[:size]
    elif out.shape[-1] < size:
        out = np.pad(out, (0, size - out.shape[-1]))
    return np.asarray(out, dtype=y.dtype)


def _hz_to_mel(f):
    """Slaney mel scale (``librosa.hz_to_mel(f, htk=False)``)."""
    f = np.asanyarray(f, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    mels = f / f_sp
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, min_log_hz) / min_log_hz) / logstep, mels)


def _mel_to_hz(mels):
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(mels >= min_log_mel, min_log_hz * np.exp(logstep * (mels - min_log_mel)), f_sp * mels)


@functools.lru_cache(maxsize=8)
def mel_basis(sr: int, n_fft: int, n_mels: int, fmax: float | None = None) -> np.ndarray:
    """Slaney-normalised mel filter bank, float32 (``librosa.filters.mel(sr=, n_fft=, n_mels=, fmax=)``).

    ``fmax`` is the highest band edge in Hz, ``sr / 2`` by default.

    Returns
    -------
    weights : np.ndarray [shape=(n_mels, 1 + n_fft // 2), dtype=float32], read-only
    """
    fftfreqs = fft_frequencies(sr=sr, n_fft=n_fft)
    top = sr / 2.0 if fmax is None else float(fmax)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(top), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    weights = np.zeros((n_mels, len(fftfreqs)), dtype=np.float32)
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, np.newaxis]
    weights.setflags(write=False)
    return weights


def _hz_to_octs(f, *, tuning: float, bins_per_octave: int):
    a440 = 440.0 * 2.0 ** (tuning / bins_per_octave)
    return np.log2(f / (float(a440) / 16))


@functools.lru_cache(maxsize=256)
def chroma_basis(sr: int, n_fft: int, n_chroma: int, tuning: float) -> np.ndarray:
    """Chroma filter bank (``librosa.filters.chroma(sr=, n_fft=, n_chroma=, tuning=)``).

    Gaussian bumps per chroma bin, each column scaled to unit length, weighted by a
    Gaussian over octaves centred on octave 5 (two octaves wide), rows from C.

    Returns
    -------
    weights : np.ndarray [shape=(n_chroma, 1 + n_fft // 2), dtype=float32], read-only
    """
    frequencies = np.linspace(0, sr, n_fft, endpoint=False)[1:]
    frqbins = n_chroma * _hz_to_octs(frequencies, tuning=tuning, bins_per_octave=n_chroma)
    frqbins = np.concatenate(([frqbins[0] - 1.5 * n_chroma], frqbins))
    binwidthbins = np.concatenate((np.maximum(frqbins[1:] - frqbins[:-1], 1.0), [1]))
    # every step below works column by column (one FFT bin each), so only the
    # columns that are kept are computed, as contiguous rows
    keep = int(1 + n_fft / 2)
    frqbins, binwidthbins = frqbins[:keep], binwidthbins[:keep]
    D = frqbins[np.newaxis, :] - np.arange(0, n_chroma, dtype="d")[:, np.newaxis]
    n_chroma2 = np.round(float(n_chroma) / 2)
    D += n_chroma2 + 10 * n_chroma
    # fmod is remainder for values >= 0 (both are exact); it is several times faster
    D = (np.fmod(D, n_chroma) if D.min() >= 0 else np.remainder(D, n_chroma)) - n_chroma2
    wts = np.exp(-0.5 * (2 * D / binwidthbins) ** 2)
    length = np.sqrt(np.sum(wts**2, axis=0, keepdims=True))
    length[length < np.finfo(wts.dtype).tiny] = 1.0
    wts = wts / length
    wts *= np.exp(-0.5 * (((frqbins / n_chroma - 5.0) / 2.0) ** 2))
    wts = np.roll(wts, -3 * (n_chroma // 12), axis=0)
    wts = np.ascontiguousarray(wts, dtype=np.float32)
    wts.setflags(write=False)
    return wts


def pitch_tuning(frequencies: np.ndarray, *, bins_per_octave: int, resolution: float = 0.01) -> float:
    """Most common deviation from the equal-tempered scale, in bins (``librosa.pitch_tuning``).

    Returns 0.0 when no frequency is positive.
    """
    frequencies = np.ravel(frequencies)
    groups = np.zeros(frequencies.shape, dtype=np.intp)
    return float(pitch_tunings(frequencies, groups, n_groups=1, bins_per_octave=bins_per_octave,
                               resolution=resolution)[0])


def pitch_tunings(frequencies: np.ndarray, groups: np.ndarray, *, n_groups: int, bins_per_octave: int,
                  resolution: float = 0.01) -> np.ndarray:
    """:func:`pitch_tuning` of each group of frequencies, in one pass.

    The histogram of deviations is ``np.histogram``'s (bins closed on the left, the
    last one on both sides), counted for all groups at once.

    Parameters
    ----------
    frequencies : np.ndarray [shape=(n,)]
    groups : np.ndarray [shape=(n,), dtype=int]
        The group, ``0 <= g < n_groups``, of each frequency.
    n_groups : int >= 0

    Returns
    -------
    tunings : np.ndarray [shape=(n_groups,), dtype=float64]
        0.0 for a group without a positive frequency.
    """
    frequencies = np.ravel(frequencies)
    groups = np.ravel(groups)
    keep = frequencies > 0
    frequencies, groups = frequencies[keep], groups[keep]
    residual = np.mod(bins_per_octave * _hz_to_octs(frequencies, tuning=0.0, bins_per_octave=12), 1.0)
    residual[residual >= 0.5] -= 1.0
    edges = np.linspace(-0.5, 0.5, int(np.ceil(1.0 / resolution)) + 1)
    n_bins = len(edges) - 1
    index = np.searchsorted(edges, residual, side="right") - 1
    index[residual == edges[-1]] = n_bins - 1
    inside = (index >= 0) & (index < n_bins)
    counts = np.bincount(groups[inside] * n_bins + index[inside], minlength=n_groups * n_bins)
    counts = counts.reshape(n_groups, n_bins)
    tunings = edges[np.argmax(counts, axis=-1)]
    tunings[~counts.any(axis=-1)] = 0.0
    return tunings


def onset_strength_median(S_db: np.ndarray, *, n_fft: int, hop_length: int) -> np.ndarray:
    """Spectral-flux onset envelope, median over bands (``librosa.onset.onset_strength(S=..., aggregate=np.median)``).

    Lag one frame, no reference filtering, centred (shifted by ``n_fft // (2 *
    hop_length) + 1`` frames, zeros in front), no detrending.

    Only the flux of the frames that the shift keeps is computed, frame-major (each
    frame's bands contiguous), and its median is :func:`_median_of_rows`'s.

    Parameters
    ----------
    S_db : np.ndarray [shape=(n_segments, n_bands, n_frames), dtype=float32 or float64]

    Returns
    -------
    onset_env : np.ndarray [shape=(n_segments, n_frames)]
    """
    S_db = np.asarray(S_db)
    if S_db.dtype not in (np.float32, np.float64):
        S_db = S_db.astype(np.float64)
    n_segments, n_bands, n_frames = S_db.shape
    pad = 1 + n_fft // (2 * hop_length)
    out = np.zeros((n_segments, n_frames), dtype=S_db.dtype)
    n = min(n_frames - pad, n_frames - 1)
    if n > 0:
        bands = np.swapaxes(S_db, -1, -2)
        flux = np.empty((n_segments, n, n_bands), dtype=S_db.dtype)
        np.subtract(bands[:, 1 : n + 1], bands[:, :n], out=flux)
        np.maximum(0.0, flux, out=flux)
        out[:, pad : pad + n] = _median_of_rows(flux.reshape(-1, n_bands)).reshape(n_segments, n)
    return out


def _median_of_rows(x: np.ndarray) -> np.ndarray:
    """``np.median(x, axis=-1)`` of a 2-D array, with the same values.

    Short rows (a frame's bands) are sorted whole, which NumPy's vectorised sort does
    several times faster than the partition of ``np.median``; the middle values are
    averaged in ``x``'s own precision, as ``np.median`` does. An array holding a NaN
    goes to ``np.median`` itself.
    """
    if np.isnan(x).any():
        return np.median(x, axis=-1)
    n = x.shape[-1]
    lo, hi = (n - 1) // 2, n // 2
    ordered = np.sort(x, axis=-1)
    return ordered[:, lo] if lo == hi else (ordered[:, lo] + ordered[:, hi]) / 2


def tempo_frequencies(n_bins: int, *, hop_length: int, sr: int) -> np.ndarray:
    """Tempo (BPM) of each autocorrelation lag; lag 0 is ``inf`` (``librosa.tempo_frequencies``)."""
    bpms = np.zeros(n_bins)
    bpms[0] = np.inf
    bpms[1:] = 60.0 * sr / (hop_length * np.arange(1.0, n_bins))
    return bpms


def tempo_from_tempogram(tg: np.ndarray, *, sr: int, hop_length: int, start_bpm: float = 120.0,
                         std_bpm: float = 1.0, max_tempo: float = 320.0) -> np.ndarray:
    """Static tempo of each segment (``librosa.feature.tempo(tg=...)`` with its defaults).

    The time-averaged tempogram, weighted by a log-normal prior around ``start_bpm``
    and cut above ``max_tempo``; the tempo of the best lag.

    Parameters
    ----------
    tg : np.ndarray [shape=(n_segments, win_length, n_frames)]

    Returns
    -------
    tempo : np.ndarray [shape=(n_segments,)]
    """
    return tempo_from_mean_tempogram(tg.mean(axis=-1), sr=sr, hop_length=hop_length, start_bpm=start_bpm,
                                     std_bpm=std_bpm, max_tempo=max_tempo)


def tempo_from_mean_tempogram(mean: np.ndarray, *, sr: int, hop_length: int, start_bpm: float = 120.0,
                              std_bpm: float = 1.0, max_tempo: float = 320.0) -> np.ndarray:
    """:func:`tempo_from_tempogram` from the tempogram's mean over frames.

    Parameters
    ----------
    mean : np.ndarray [shape=(n_segments, win_length)]
        ``tg.mean(axis=-1)``.

    Returns
    -------
    tempo : np.ndarray [shape=(n_segments,)]
    """
    bpms = tempo_frequencies(mean.shape[-1], hop_length=hop_length, sr=sr)
    with np.errstate(divide="ignore"):
        logprior = -0.5 * ((np.log2(bpms) - np.log2(start_bpm)) / std_bpm) ** 2
    logprior[: int(np.argmax(bpms < max_tempo))] = -np.inf
    best = np.argmax(np.log1p(1e6 * mean) + logprior, axis=-1)
    return bpms[best]
