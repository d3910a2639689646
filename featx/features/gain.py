"""How each feature column moves when the audio is made louder or quieter.

Scaling a waveform by a gain ``g`` (``20 * log10(g)`` decibels) changes the Kaggle
GTZAN columns in a way that can be written down exactly:

* ``rms_mean``, ``harmony_mean`` and ``perceptr_mean`` are means of amplitudes, so they
  scale with ``g``; ``rms_var``, ``harmony_var`` and ``perceptr_var`` scale with ``g**2``;
* ``mfcc1_mean`` moves by ``sqrt(n_mels) * dB``: the mel power spectrogram in decibels
  shifts by ``dB`` in every band (its floor, ``top_db`` below the peak, moves with it),
  and the orthonormal DCT puts the whole of a constant shift in the first coefficient;
* every other column (chroma, spectral centroid, bandwidth, roll-off and contrast,
  zero-crossing rate, tempo, the other MFCCs, every ``_var`` of those) does not move:
  each is a ratio of powers, a normalised shape, a sign count or a difference of
  decibels.

:func:`apply_gain` turns rows into the rows of the same audio at another level, and
:func:`normalise_level` brings every row to one reference level (:data:`REFERENCE_DB`
of ``rms_mean``), which makes rows of one piece of music at any level identical.
Both need no audio: they apply to the rows of the shipped Kaggle tables as well as to
rows featx extracts. The law holds to about 1e-5 relative on real clips
(``tests/test_gain.py`` extracts real GTZAN clips at several gains and compares);
it breaks only where a signal reaches a fixed floor (librosa's ``amin`` of 1e-10 in
power, far below music at any level users play).

Columns of the musicnn presets (a network's outputs) follow no such law.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["LEVEL_COLUMN", "REFERENCE_DB", "SILENCE_RMS", "gain_law", "follows_gain_law", "apply_gain",
           "level_db", "normalise_level"]

#: The column whose value gives a row's level: the mean RMS of its frames.
LEVEL_COLUMN = "rms_mean"
#: The level :func:`normalise_level` brings every row to: ``rms_mean`` of 0.1 (-20 dB re
#: full scale), about the median of the GTZAN clips.
REFERENCE_DB = -20.0
#: Rows quieter than this ``rms_mean`` (digital silence, about -160 dB) are left as they are.
SILENCE_RMS = 1e-8
#: Mel bands of the spectrum the MFCCs are taken from (as in the Kaggle tables).
N_MELS = 128

#: Columns that scale with a power of the gain: ``column -> exponent``.
_POWERS = {"rms_mean": 1, "harmony_mean": 1, "perceptr_mean": 1,
           "rms_var": 2, "harmony_var": 2, "perceptr_var": 2}
#: Columns that move by a multiple of the gain in decibels: ``column -> factor``.
_OFFSETS = {"mfcc1_mean": math.sqrt(N_MELS)}


def gain_law(columns) -> tuple[np.ndarray, np.ndarray]:
    """Per column, the exponent of the gain and the decibel factor.

    Parameters
    ----------
    columns : sequence of str
        Feature column names.

    Returns
    -------
    powers : np.ndarray [shape=(len(columns),)]
        A column's value is multiplied by ``g ** powers[j]``.
    offsets : np.ndarray [shape=(len(columns),)]
        ... and then moved by ``offsets[j] * dB``.

    Examples
    --------
    >>> powers, offsets = gain_law(["rms_var", "mfcc1_mean", "tempo"])
    >>> powers.tolist(), offsets.round(3).tolist()
    ([2.0, 0.0, 0.0], [0.0, 11.314, 0.0])
    """
    columns = [str(c) for c in columns]
    powers = np.array([_POWERS.get(c, 0) for c in columns], dtype=np.float64)
    offsets = np.array([_OFFSETS.get(c, 0.0) for c in columns], dtype=np.float64)
    return powers, offsets


def follows_gain_law(columns) -> bool:
    """Whether rows with ``columns`` can be brought to one level: they hold :data:`LEVEL_COLUMN`."""
    return LEVEL_COLUMN in [str(c) for c in columns]


def apply_gain(X, columns, db) -> np.ndarray:
    """The rows of the same audio ``db`` decibels louder (negative: quieter).

    Parameters
    ----------
    X : np.ndarray [shape=(n, len(columns))]
        Feature rows.
    columns : sequence of str
        Their column names.
    db : float or np.ndarray [shape=(n,)]
        Gain in decibels, one for all rows or one per row.

    Returns
    -------
    X_gain : np.ndarray [shape=(n, len(columns)), dtype=float64]
        A new array; ``X`` is not changed.

    Examples
    --------
    >>> X = np.array([[0.1, 0.004, -200.0, 120.0]])
    >>> quieter = apply_gain(X, ["rms_mean", "rms_var", "mfcc1_mean", "tempo"], -20.0)
    >>> quieter.round(4).tolist()  # rms_var: 0.004 * 0.1 ** 2 = 4e-05
    [[0.01, 0.0, -426.2742, 120.0]]
    """
    X = np.array(X, dtype=np.float64, ndmin=2)
    db = np.broadcast_to(np.asarray(db, dtype=np.float64), (X.shape[0],))
    powers, offsets = gain_law(columns)
    scaled = powers != 0
    if scaled.any():
        X[:, scaled] *= np.power(10.0, np.outer(db / 20.0, powers[scaled]))
    moved = offsets != 0
    if moved.any():
        X[:, moved] += np.outer(db, offsets[moved])
    return X


def level_db(X, columns) -> np.ndarray:
    """Each row's level in decibels re full scale: ``20 * log10(rms_mean)`` (``-inf`` for silence)."""
    X = np.asarray(X, dtype=np.float64)
    rms = X[:, [str(c) for c in columns].index(LEVEL_COLUMN)]
    with np.errstate(divide="ignore"):
        return 20.0 * np.log10(np.maximum(rms, 0.0))


def normalise_level(X, columns, *, reference_db: float = REFERENCE_DB) -> np.ndarray:
    """Rows brought to one level: each as if its audio had ``rms_mean`` of ``reference_db``.

    Rows of one piece of music at any gain give the same result (up to rounding);
    rows quieter than :data:`SILENCE_RMS` are returned as they are.

    Parameters
    ----------
    X : np.ndarray [shape=(n, len(columns))]
    columns : sequence of str
        Must include :data:`LEVEL_COLUMN` (:func:`follows_gain_law`).
    reference_db : float
        The level, in decibels re full scale.

    Returns
    -------
    X_normalised : np.ndarray [shape=(n, len(columns)), dtype=float64]

    Examples
    --------
    >>> cols = ["rms_mean", "rms_var", "tempo"]
    >>> quiet = np.array([[0.01, 1e-5, 99.0]])
    >>> normalise_level(quiet, cols).round(6).tolist()
    [[0.1, 0.001, 99.0]]
    >>> bool(np.allclose(normalise_level(apply_gain(quiet, cols, 12.0), cols), normalise_level(quiet, cols)))
    True
    """
    X = np.array(X, dtype=np.float64, ndmin=2)
    level = level_db(X, columns)
    audible = X[:, [str(c) for c in columns].index(LEVEL_COLUMN)] > SILENCE_RMS
    db = np.where(audible, reference_db - np.where(audible, level, 0.0), 0.0)
    return apply_gain(X, columns, db)
