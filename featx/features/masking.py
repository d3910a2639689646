"""Harmonic soft mask applied to a spectrum in one compiled pass.

Harmonic/percussive separation needs ``D * softmask(H, P, power=2)``, where ``H`` and
``P`` are the two median-filtered magnitude spectrograms. Written with NumPy this is
seven passes over arrays of a million values per segment batch (scale, square, add,
divide, the three fixes for silent bins, then the product with ``D``) and a transposed
copy for the inverse STFT. :func:`masked_spectrum` does all of it in one loop, with the
same floating-point operations in the same order, so the result equals the NumPy form
(``featx.features.compute._soft_mask`` followed by the product) value for value; only
the sign of a zero product may differ (NumPy multiplies by ``mask + 0j``).
"""
from __future__ import annotations

import numpy as np

from .native import kernel

__all__ = ["masked_spectrum"]


def masked_spectrum(D: np.ndarray, harm: np.ndarray, perc: np.ndarray) -> np.ndarray:
    """``D * softmask(harm, perc, power=2, split_zeros=True)`` in ``D``'s layout.

    Parameters
    ----------
    D : np.ndarray [shape=(n_segments, n_frames, n_bins), dtype=complex64]
        Frame-major spectrum (:func:`featx.features.dsp.stft_frames`).
    harm, perc : np.ndarray [shape=(n_segments, n_bins, n_frames), dtype=float32]
        Non-negative magnitudes in librosa's layout; where both are zero the mask is 0.5.

    Returns
    -------
    spectrum : np.ndarray [shape=(n_segments, n_frames, n_bins), dtype=complex64]
    """
    D = np.ascontiguousarray(D, dtype=np.complex64)
    harm = np.ascontiguousarray(harm, dtype=np.float32)
    perc = np.ascontiguousarray(perc, dtype=np.float32)
    if harm.shape != perc.shape or D.shape != (harm.shape[0], harm.shape[2], harm.shape[1]):
        raise ValueError(
            f"expected D of shape (s, t, f) and masks of shape (s, f, t). Received: "
            f"D.shape={D.shape}, harm.shape={harm.shape}, perc.shape={perc.shape}"
        )
    out = np.empty_like(D)
    n_seg, n_bins, n_frames = harm.shape
    kernel("masked")(D.ctypes.data, harm.ctypes.data, perc.ctypes.data, out.ctypes.data, n_seg, n_bins, n_frames)
    return out
