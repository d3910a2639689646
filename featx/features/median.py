"""Fast exact 1-D median filtering along one axis ('reflect' edges).

:func:`median_filter_rows` returns exactly (bit for bit) what
``scipy.ndimage.median_filter(x, size=<size on axis, 1 elsewhere>, mode='reflect')``
returns, but for float32 data it runs a compiled kernel
(:func:`featx.features._kernels.median_rows`, loaded by :mod:`featx.features.native`)
that is several times faster than SciPy's 1-D rank filter.

Algorithm
---------
Many rows are filtered at once, side by side, as *lanes*: for a block of up to
``_LANES`` rows the kernel keeps one sorted window per row, stored slot-major
(``window[slot, lane]``), so each operation on a slot is one contiguous loop over
the lanes, which LLVM turns into SIMD code. When the filtered axis is not the
last one (e.g. frequency in a ``(segments, freq, time)`` spectrogram) the lanes
are simply the contiguous trailing axis; when it is the last axis, a block of
rows is first transposed into a small staging buffer.

Sliding the window by one sample replaces the value that leaves (``old``) by
the value that enters (``new``) in the sorted window ``w``. This is done without
searching or branching: with ``lo = min(old, new)`` and ``hi = max(old, new)``,
only slots whose value lies in ``[lo, hi]`` change, and each of them becomes
``clamp(new, w[i-1], w[i+1])``::

    w'[i] = max(w[i-1], min(new, w[i+1]))   if lo <= w[i] <= hi
    w'[i] = w[i]                            otherwise

(when ``new >= old`` the run of slots from ``old`` up to ``new`` shifts down by
one and ``new`` lands at its end; when ``new < old`` it is the mirror image).
Ties are harmless because equal values are interchangeable. The window has a
``-inf`` slot below and ``+inf`` slots above (the slot count is rounded up to a
multiple of 4 so that four slots are updated per pass over the lanes, and the
extra slots simply hold ``+inf``, which the update keeps in place). Every step
reads the previous window and writes the next one into a second buffer. The
window starts as all ``+inf`` and the first ``size`` samples are inserted by
replacing an ``+inf`` (only the slots that can hold data are touched); after
that every step emits the median, which is slot ``size // 2``.

The median of a window is one of its samples, so the output is bit-identical to
SciPy's whatever order the work is done in, except where equal-comparing values
have different bits: with NaNs or negative zeros (``-0.0 == 0.0``) present, which
sample SciPy returns depends on its own comparison order, so such inputs, and
even sizes (SciPy's origin convention), go to ``scipy.ndimage.median_filter``
itself. Other dtypes and sizes above ``_MAX_SIZE`` use SciPy's fast 1-D filter
over all rows, each padded with its own reflection and laid end to end.

Reflection: sample ``j`` of the padded row is ``x[r]`` with ``r = j mod 2n``
folded back (``2n - 1 - r`` when ``r >= n``), which is SciPy's 'reflect' (numpy's
'symmetric') mode, including rows shorter than the half window, where the
reflection repeats. (For rows with ``2 <= n <= size // 8`` SciPy's N-D filter
itself is not well defined: its offset table maps some far reflections to index
-1, outside the row, so its result depends on neighbouring memory. Those rows
get the periodic reflection above, as SciPy's 1-D filter on padded rows does.)
"""

from __future__ import annotations

import numpy as np

from .native import LANES as _LANES
from .native import kernel

__all__ = ["median_filter_rows"]

#: Largest window handled by the compiled kernel; its cost is linear in ``size``.
_MAX_SIZE = 127
#: Below this many contiguous trailing elements, rows are transposed into lanes.
_MIN_INNER = 16


def _reflected_positions(n: int, size: int) -> np.ndarray:
    """Row index of each of the ``n + size - 1`` positions of a reflected row."""
    r = (np.arange(n + size - 1, dtype=np.int64) - size // 2) % (2 * n)
    return np.where(r < n, r, 2 * n - 1 - r)


def _filter(x: np.ndarray, out: np.ndarray, size: int) -> None:
    """Median along axis 1 of a C-contiguous float32 ``(A, n, B)`` array, into ``out``.

    Runs :func:`featx.features._kernels.median_rows` with scratch buffers made here.
    """
    a_len, n, b_len = x.shape
    m = n + size - 1
    reflected = _reflected_positions(n, size)
    identity = np.arange(m, dtype=np.int64)
    window = np.empty((2 * (4 * ((size + 3) // 4) + 2) + 3) * _LANES, np.float32)
    staged = b_len == 1
    stage = np.empty(m * _LANES if staged else 1, np.float32)
    result = np.empty(n * _LANES if staged else 1, np.float32)
    kernel("median_rows")(x.ctypes.data, out.ctypes.data, a_len, n, b_len, size, reflected.ctypes.data,
                          identity.ctypes.data, window.ctypes.data, stage.ctypes.data, result.ctypes.data)


def _ambiguous(x: np.ndarray) -> bool:
    """True if ``x`` holds NaNs or negative zeros (see the module docstring)."""
    if x.dtype == np.float32:
        bits = np.ascontiguousarray(x).reshape(-1).view(np.uint32)
        return bool(kernel("nan_or_negative_zero")(bits.ctypes.data, bits.size))
    if x.dtype.kind not in "fc":
        return False
    return bool(np.isnan(x).any() or (np.signbit(x) & (x == 0)).any())


def _scipy_nd(x: np.ndarray, size: int, axis: int) -> np.ndarray:
    """The definition itself: SciPy's N-D median filter with a 1-D footprint."""
    import scipy.ndimage  # SciPy is heavy: only on this path

    sizes = [1] * x.ndim
    sizes[axis] = size
    return scipy.ndimage.median_filter(x, size=tuple(sizes), mode="reflect")


def _scipy_rows(x: np.ndarray, size: int, axis: int) -> np.ndarray:
    """Fallback: SciPy's fast 1-D filter over all reflected rows laid end to end."""
    import scipy.ndimage  # SciPy is heavy: only on this path

    half = size // 2
    moved = np.moveaxis(x, axis, -1)
    rows = moved.reshape(-1, moved.shape[-1])
    n = rows.shape[-1]
    cols = np.arange(-half, n + half) % (2 * n)
    cols = np.where(cols < n, cols, 2 * n - 1 - cols)
    padded = np.ascontiguousarray(rows[:, cols])
    line = scipy.ndimage.median_filter(padded.ravel(), size=size, mode="reflect")
    filtered = line.reshape(padded.shape)[:, half : half + n]
    return np.moveaxis(filtered.reshape(moved.shape), -1, axis)


def median_filter_rows(x: np.ndarray, *, size: int, axis: int) -> np.ndarray:
    """Exact median filter of width ``size`` along one axis, with 'reflect' edges.

    Equal, bit for bit, to ``scipy.ndimage.median_filter(x, size=<size on axis, 1
    elsewhere>, mode='reflect')`` for any number of dimensions and any axis (and
    any memory layout). Odd ``size`` up to 127 on float32 data without NaNs or
    negative zeros takes the compiled lane-parallel sorted-window kernel (see the
    module docstring); other inputs fall back to SciPy. Returns a new array of
    the same shape and dtype.
    """
    x = np.asarray(x)
    if x.ndim == 0:
        raise ValueError("median_filter_rows needs at least one dimension")
    axis = axis % x.ndim
    size = int(size)
    if size < 1:
        raise ValueError("size must be at least 1")
    if x.size == 0 or size == 1:
        return x.copy()
    n = x.shape[axis]
    if size % 2 == 0:
        return _scipy_nd(x, size, axis)  # SciPy's origin convention for even sizes
    xc = np.ascontiguousarray(x)
    if _ambiguous(xc):
        return _scipy_nd(x, size, axis)  # NaN / -0.0: only SciPy's own order decides
    if x.dtype != np.float32 or size > _MAX_SIZE:
        return _scipy_rows(x, size, axis)
    outer = int(np.prod(x.shape[:axis], dtype=np.int64))
    inner = int(np.prod(x.shape[axis + 1 :], dtype=np.int64))
    if inner >= _MIN_INNER or inner == 1:
        out = np.empty_like(xc)
        _filter(xc.reshape(outer, n, inner), out.reshape(outer, n, inner), size)
        return out
    # a few trailing elements: make the filtered axis the last one
    moved = np.ascontiguousarray(np.moveaxis(xc, axis, -1))
    out = np.empty_like(moved)
    _filter(moved.reshape(-1, n, 1), out.reshape(-1, n, 1), size)
    return np.ascontiguousarray(np.moveaxis(out, -1, axis))
