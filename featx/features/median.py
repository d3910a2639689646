"""Fast exact 1-D median filtering along one axis ('reflect' edges).

:func:`median_filter_rows` returns exactly (bit for bit) what
``scipy.ndimage.median_filter(x, size=<size on axis, 1 elsewhere>, mode='reflect')``
returns, but for float32 data it runs a compiled (numba) kernel that is several
times faster than SciPy's 1-D rank filter.

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

import numba
import numpy as np

__all__ = ["median_filter_rows"]

#: Lanes (rows) filtered together; fixes the stride of the window buffers, so it
#: must be a compile-time constant for LLVM to vectorize the slot updates.
_LANES = 96
#: Largest window handled by the compiled kernel; its cost is linear in ``size``.
_MAX_SIZE = 127
#: Below this many contiguous trailing elements, rows are transposed into lanes.
_MIN_INNER = 16

_jit = numba.njit(cache=True, nogil=True)
_inline = numba.njit(inline="always")


@_inline
def _reflect(j, n):
    """Index into a row of length ``n`` of padded position ``j`` ('reflect')."""
    m = j % (2 * n)
    return m if m < n else 2 * n - 1 - m


@_inline
def _update4(src, dst, aux, g, nl):
    """Slots ``4g+1 .. 4g+4`` of the next window, for lanes ``0 .. nl-1``.

    ``src``/``dst`` are flat ``(slots, _LANES)`` windows; ``aux`` holds the rows
    ``lo``, ``hi`` and ``new``. Row views keep every index a plain loop counter,
    which lets LLVM vectorize the loop over lanes.
    """
    base = 4 * g * _LANES
    w0 = src[base:]
    w1 = src[base + _LANES :]
    w2 = src[base + 2 * _LANES :]
    w3 = src[base + 3 * _LANES :]
    w4 = src[base + 4 * _LANES :]
    w5 = src[base + 5 * _LANES :]
    d1 = dst[base + _LANES :]
    d2 = dst[base + 2 * _LANES :]
    d3 = dst[base + 3 * _LANES :]
    d4 = dst[base + 4 * _LANES :]
    lo_row = aux[:_LANES]
    hi_row = aux[_LANES:]
    new_row = aux[2 * _LANES :]
    for l in range(nl):
        lo = lo_row[l]
        hi = hi_row[l]
        v = new_row[l]
        a0 = w0[l]
        a1 = w1[l]
        a2 = w2[l]
        a3 = w3[l]
        a4 = w4[l]
        a5 = w5[l]
        t = v if v < a2 else a2
        t = a0 if a0 > t else t
        d1[l] = t if ((a1 >= lo) & (a1 <= hi)) else a1
        t = v if v < a3 else a3
        t = a1 if a1 > t else t
        d2[l] = t if ((a2 >= lo) & (a2 <= hi)) else a2
        t = v if v < a4 else a4
        t = a2 if a2 > t else t
        d3[l] = t if ((a3 >= lo) & (a3 <= hi)) else a3
        t = v if v < a5 else a5
        t = a3 if a3 > t else t
        d4[l] = t if ((a4 >= lo) & (a4 <= hi)) else a4


@_inline
def _reflected_positions(n, size):
    """Row index of each of the ``n + size - 1`` positions of a reflected row."""
    half = size // 2
    pos = np.empty(n + size - 1, np.intp)
    for j in range(n + size - 1):
        pos[j] = _reflect(j - half, n)
    return pos


@_inline
def _slide(rows, rowmap, lane0, nl, out, size, w_a, w_b, aux):
    """Filter lanes ``lane0 .. lane0+nl-1`` of ``rows`` into ``out``.

    Position ``j`` of the padded sequence (``0 <= j < n + size - 1``) is row
    ``rowmap[j]`` of the 2-D ``rows``; ``out`` is ``(n, lanes)`` and receives the
    medians at the same lanes.
    """
    half = size // 2
    n = rowmap.shape[0] - (size - 1)
    groups = (size + 3) // 4
    nslots = 4 * groups + 2
    # window: slot 0 = -inf, slots 1..4*groups data (+inf when empty), last = +inf
    for i in range(nslots * _LANES):
        w_a[i] = np.inf
        w_b[i] = np.inf
    for l in range(_LANES):
        w_a[l] = -np.inf
        w_b[l] = -np.inf
    lo_row = aux[:_LANES]
    hi_row = aux[_LANES : 2 * _LANES]
    new_row = aux[2 * _LANES :]
    src = w_a
    dst = w_b
    for j in range(n + size - 1):
        incoming = rows[rowmap[j], lane0:]
        if j >= size:
            outgoing = rows[rowmap[j - size], lane0:]
            for l in range(nl):
                v = incoming[l]
                o = outgoing[l]
                lo_row[l] = v if v < o else o
                hi_row[l] = o if v < o else v
                new_row[l] = v
            active = groups
        else:
            # filling: the value replaced is one of the +inf placeholders
            for l in range(nl):
                v = incoming[l]
                lo_row[l] = v
                hi_row[l] = np.inf
                new_row[l] = v
            active = min(groups, (j + 4) // 4)  # slots 1 .. j+1 can change
        for g in range(active):
            _update4(src, dst, aux, g, nl)
        src, dst = dst, src
        if j >= size - 1:
            med = src[(half + 1) * _LANES :]
            orow = out[j - size + 1, lane0:]
            for l in range(nl):
                orow[l] = med[l]


@_jit
def _filter(x, out, size):
    """Median along axis 1 of a C-contiguous float32 ``(A, n, B)`` array.

    With ``B > 1`` the lanes are ``B`` contiguous columns, read in place. With
    ``B == 1`` (filtering the last axis) the lanes are ``A`` rows, copied block by
    block, reflected and transposed, into a staging buffer. Both cases share one
    call of the sliding kernel, so it is compiled once.
    """
    a_len, n, b_len = x.shape
    nbuf = (4 * ((size + 3) // 4) + 2) * _LANES
    w_a = np.empty(nbuf, np.float32)
    w_b = np.empty(nbuf, np.float32)
    aux = np.empty(3 * _LANES, np.float32)
    reflected = _reflected_positions(n, size)
    transpose = b_len == 1
    if transpose:
        width = a_len
        stage = np.empty((n + size - 1, _LANES), np.float32)
        result = np.empty((n, _LANES), np.float32)
        rowmap = np.arange(n + size - 1)
    else:
        width = b_len
        stage = np.empty((0, _LANES), np.float32)
        result = stage
        rowmap = reflected
    # equal blocks of at most _LANES lanes, rounded up to whole SIMD vectors; the
    # last block is shifted back to end at the last lane (it overlaps, harmlessly)
    n_blk = (width + _LANES - 1) // _LANES
    nl = min(width, ((width + n_blk - 1) // n_blk + 7) // 8 * 8)
    for a in range(a_len if not transpose else 1):
        for start in range(0, width, nl):
            lane0 = min(start, width - nl)  # last block overlaps the previous one
            if transpose:
                for l in range(nl):
                    row = x[lane0 + l, :, 0]
                    for j in range(n + size - 1):
                        stage[j, l] = row[reflected[j]]
                rows = stage
                dest = result
                first = 0
            else:
                rows = x[a]
                dest = out[a]
                first = lane0
            _slide(rows, rowmap, first, nl, dest, size, w_a, w_b, aux)
            if transpose:
                for l in range(nl):
                    orow = out[lane0 + l, :, 0]
                    for t in range(n):
                        orow[t] = result[t, l]


@_jit
def _needs_fallback(flat_bits):
    """True if the float32 data (as uint32) holds a NaN or a negative zero."""
    bad = False
    for i in range(flat_bits.shape[0]):
        u = flat_bits[i]
        bad |= (u == np.uint32(0x80000000)) | ((u & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000))
    return bad


def _ambiguous(x: np.ndarray) -> bool:
    """True if ``x`` holds NaNs or negative zeros (see the module docstring)."""
    if x.dtype == np.float32:
        return bool(_needs_fallback(x.reshape(-1).view(np.uint32)))
    if x.dtype.kind not in "fc":
        return False
    return bool(np.isnan(x).any() or (np.signbit(x) & (x == 0)).any())


def _scipy_nd(x: np.ndarray, size: int, axis: int) -> np.ndarray:
    """The definition itself: SciPy's N-D median filter with a 1-D footprint."""
    import scipy.ndimage

    sizes = [1] * x.ndim
    sizes[axis] = size
    return scipy.ndimage.median_filter(x, size=tuple(sizes), mode="reflect")


def _scipy_rows(x: np.ndarray, size: int, axis: int) -> np.ndarray:
    """Fallback: SciPy's fast 1-D filter over all reflected rows laid end to end."""
    import scipy.ndimage

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
