"""Spectral contrast of a batch of magnitude spectrograms, without librosa.

:func:`spectral_contrast` gives, for every segment of a batch, the values of
``librosa.feature.spectral_contrast(S=S[i], sr=sr, n_fft=n_fft, n_bands=n_bands)``
(logarithmic contrast, bin centres from the FFT), computed for all segments at once:

* the octave bands and their bins depend only on ``sr``, ``n_fft``, ``n_bands``,
  ``fmin`` and ``quantile``, so they are worked out once and cached;
* each band is sorted once for all frames and segments together (frame-major input,
  such as ``np.swapaxes(S_frames, 1, 2)``, is sorted where it lies, without a copy);
* the peak and valley means add the sorted bins one after another in the input's
  precision, as ``np.mean`` does over that axis, so the values agree with librosa's
  to the last bits;
* the decibel floor (80 dB below the largest peak, and separately below the largest
  valley) is taken per segment, as when librosa is called on one segment at a time.
"""
from __future__ import annotations

import functools

import numpy as np

from ..errors import ConfigError
from .dsp import fft_frequencies

__all__ = ["spectral_contrast"]

#: power_to_db's defaults as spectral_contrast uses them: floor of the input, dB range.
_AMIN = 1e-10
_TOP_DB = 80.0


@functools.lru_cache(maxsize=32)
def _band_plan(sr: float, n_fft: int, n_bands: int, fmin: float, quantile: float) -> tuple[tuple[int, int, int], ...]:
    """Bins and quantile count of each band: ``(start, stop, q)`` per band.

    Band 0 covers ``[0, fmin]``, band ``k`` covers ``[fmin * 2**(k-1), fmin * 2**k]``
    and the last band runs on to the Nyquist bin. Each band after the first also takes
    the bin just below its lower edge; each band but the last leaves out its highest
    bin. ``q`` (at least 1) is ``quantile`` times the band's bin count before that bin
    is left out, rounded half to even.
    """
    freq = fft_frequencies(sr=sr, n_fft=n_fft)
    edges = np.zeros(n_bands + 2)
    edges[1:] = fmin * (2.0 ** np.arange(0, n_bands + 1))
    if np.any(edges[:-1] >= 0.5 * sr):
        raise ConfigError(
            f"the spectral contrast bands reach the Nyquist frequency {0.5 * sr:g} Hz; "
            f"expected fmin * 2**(n_bands - 1) < sr / 2, so lower fmin or n_bands. "
            f"Received: fmin={fmin!r}, n_bands={n_bands!r}, sr={sr!r}"
        )
    plan = []
    for k in range(n_bands + 1):
        inside = np.flatnonzero((freq >= edges[k]) & (freq <= edges[k + 1]))
        if inside.size == 0:
            raise ConfigError(
                f"spectral contrast band {k} ({edges[k]:g}-{edges[k + 1]:g} Hz) holds no "
                f"FFT bin; expected a finer frequency grid, so raise n_fft or fmin. "
                f"Received: n_fft={n_fft!r}, sr={sr!r}, fmin={fmin!r}"
            )
        start = int(inside[0]) - (1 if k > 0 else 0)
        stop = len(freq) if k == n_bands else int(inside[-1]) + 1
        q = max(int(np.rint(quantile * (stop - start))), 1)
        if k < n_bands:
            stop -= 1
        plan.append((start, stop, q))
    return tuple(plan)


def _check(S, sr, n_fft, n_bands, fmin, quantile) -> np.ndarray:
    """``S`` as a floating array of the expected shape; parameters checked."""
    if isinstance(n_fft, bool) or not isinstance(n_fft, (int, np.integer)) or n_fft < 2:
        raise ConfigError(f"n_fft must be an integer >= 2. Received: n_fft={n_fft!r}", param="n_fft")
    if isinstance(n_bands, bool) or not isinstance(n_bands, (int, np.integer)) or n_bands < 1:
        raise ConfigError(f"n_bands must be a positive integer. Received: n_bands={n_bands!r}", param="n_bands")
    if not (isinstance(sr, (int, float, np.integer, np.floating)) and np.isfinite(sr) and sr > 0):
        raise ConfigError(f"sr must be a positive number of Hz. Received: sr={sr!r}", param="sr")
    if not (isinstance(fmin, (int, float, np.integer, np.floating)) and np.isfinite(fmin) and fmin > 0):
        raise ConfigError(f"fmin must be a positive number of Hz. Received: fmin={fmin!r}", param="fmin")
    if not (isinstance(quantile, (int, float, np.integer, np.floating)) and 0.0 < quantile < 1.0):
        raise ConfigError(f"quantile must lie strictly between 0 and 1. Received: quantile={quantile!r}",
                          param="quantile")
    S = np.asarray(S)
    n_bins = 1 + int(n_fft) // 2
    if S.ndim != 3 or S.shape[1] != n_bins:
        raise ConfigError(
            f"expected magnitude spectrograms of shape (n_segments, {n_bins}, n_frames) "
            f"for n_fft={n_fft}. Received: shape={S.shape}", param="S"
        )
    if np.iscomplexobj(S) or not (np.issubdtype(S.dtype, np.floating) or np.issubdtype(S.dtype, np.integer)):
        raise ConfigError(f"expected real magnitudes (float32). Received: dtype={S.dtype}", param="S")
    if not np.issubdtype(S.dtype, np.floating):
        S = S.astype(np.float64)
    return S


def _sequential_mean(x: np.ndarray) -> np.ndarray:
    """Mean over axis 1, adding the rows in order in ``x``'s precision, as ``np.mean`` does there."""
    q = x.shape[1]
    acc = x[:, 0].copy()
    for j in range(1, q):
        acc += x[:, j]
    acc /= x.dtype.type(q)
    return acc


def _to_db(x: np.ndarray) -> np.ndarray:
    """``librosa.power_to_db(x[i])`` for each segment ``i`` (ref 1, top_db 80), in float64."""
    db = 10.0 * np.log10(np.maximum(_AMIN, x))
    floor = db.max(axis=(1, 2), keepdims=True) - _TOP_DB
    return np.maximum(db, floor)


def spectral_contrast(
    S: np.ndarray,
    *,
    sr: float,
    n_fft: int,
    n_bands: int = 6,
    fmin: float = 200.0,
    quantile: float = 0.02,
) -> np.ndarray:
    """Spectral contrast of each segment's magnitude spectrogram.

    For every frame, each octave band's peak (the mean of its loudest ``quantile`` of
    bins) and valley (the mean of its quietest) are converted to decibels and their
    difference returned. The values are those of
    ``librosa.feature.spectral_contrast(S=S[i], sr=sr, n_fft=n_fft, n_bands=n_bands,
    fmin=fmin, quantile=quantile)`` for each segment ``i``, including its decibel
    floor (80 dB below the segment's largest peak, and separately below its largest
    valley), which depends on the whole segment.

    Parameters
    ----------
    S : np.ndarray [shape=(n_segments, 1 + n_fft // 2, n_frames), dtype=float32]
        Magnitude spectrograms, librosa's layout (bins, then frames). float64 input
        is worked on in float64, as librosa would. A frame-major array seen through
        ``np.swapaxes(S_frames, 1, 2)`` is the fastest input: its bins are sorted
        where they lie.
    sr : number > 0
        Sample rate of the analysed audio, in Hz.
    n_fft : int >= 2
        FFT length that made ``S``; the bin centres are ``featx.features.dsp.fft_frequencies``.
    n_bands : int >= 1
        Number of octave bands above the first band ``[0, fmin]``.
    fmin : float > 0
        Upper edge of the first band, in Hz; band ``k`` ends at ``fmin * 2**k``.
    quantile : float in (0, 1)
        Share of a band's bins averaged for its peak and for its valley (at least one).

    Returns
    -------
    contrast : np.ndarray [shape=(n_segments, n_bands + 1, n_frames), dtype=float64]

    Raises
    ------
    ConfigError
        ``S`` has the wrong shape or type, a parameter is out of range, a band reaches
        the Nyquist frequency, or a band holds no FFT bin.

    Examples
    --------
    >>> import numpy as np
    >>> from featx.features.contrast import spectral_contrast
    >>> S = np.ones((2, 1025, 5), dtype=np.float32)
    >>> spectral_contrast(S, sr=22050, n_fft=2048).shape
    (2, 7, 5)
    """
    S = _check(S, sr, n_fft, n_bands, fmin, quantile)
    plan = _band_plan(float(sr), int(n_fft), int(n_bands), float(fmin), float(quantile))
    n_segments, _, n_frames = S.shape
    if n_segments == 0 or n_frames == 0:
        return np.zeros((n_segments, n_bands + 1, n_frames), dtype=np.float64)

    # Sorting along the bins runs fastest where they are adjacent in memory: a view of
    # frame-major data (np.swapaxes(S_frames, 1, 2)) is sorted in that layout, uncopied.
    peak = np.empty((n_segments, n_bands + 1, n_frames), dtype=np.float64)
    valley = np.empty_like(peak)
    for k, (start, stop, q) in enumerate(plan):
        ordered = np.sort(S[:, start:stop], axis=1)
        valley[:, k] = _sequential_mean(ordered[:, :q])
        peak[:, k] = _sequential_mean(ordered[:, stop - start - q:])
    return _to_db(peak) - _to_db(valley)
