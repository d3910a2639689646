"""The compiled kernels of the feature core, as C-callable numba functions.

This module is imported only to *build* the kernels: :mod:`featx.features.native`
compiles the functions listed in :data:`KERNELS` once per machine, stores their
machine code in featx's cache, and every later process loads that code directly,
without importing numba (whose start-up costs more than half a second).

So that the stored code is self-contained, every kernel takes C pointers and sizes
and works only in memory its caller passes in: nothing is allocated, no Python
object is touched, and arithmetic does not raise (``error_model='numpy'``). The
callers check sizes first: a kernel given sizes its docstring excludes (no lanes,
no bins) may reach one of numba's error paths, which stops the process with a
message rather than return wrong numbers. The algorithms are
described in :mod:`featx.features.median` and :mod:`featx.features.masking`.
"""
from __future__ import annotations

import numba
import numpy as np
from numba import carray, types

#: Lanes (rows) filtered together; fixes the stride of the window buffers, so it
#: must be a compile-time constant for LLVM to vectorize the slot updates.
from .kernel_layout import LANES

_inline = numba.njit(inline="always", error_model="numpy")


def _cfunc(signature):
    return numba.cfunc(signature, nopython=True, error_model="numpy")


@_inline
def _update4(src, dst, aux, g, nl):
    """Slots ``4g+1 .. 4g+4`` of the next window, for lanes ``0 .. nl-1``.

    ``src``/``dst`` are flat ``(slots, LANES)`` windows; ``aux`` holds the rows
    ``lo``, ``hi`` and ``new``. Row views keep every index a plain loop counter,
    which lets LLVM vectorize the loop over lanes.
    """
    base = 4 * g * LANES
    w0 = src[base:]
    w1 = src[base + LANES :]
    w2 = src[base + 2 * LANES :]
    w3 = src[base + 3 * LANES :]
    w4 = src[base + 4 * LANES :]
    w5 = src[base + 5 * LANES :]
    d1 = dst[base + LANES :]
    d2 = dst[base + 2 * LANES :]
    d3 = dst[base + 3 * LANES :]
    d4 = dst[base + 4 * LANES :]
    lo_row = aux[:LANES]
    hi_row = aux[LANES:]
    new_row = aux[2 * LANES :]
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
    for i in range(nslots * LANES):
        w_a[i] = np.inf
        w_b[i] = np.inf
    for l in range(LANES):
        w_a[l] = -np.inf
        w_b[l] = -np.inf
    lo_row = aux[:LANES]
    hi_row = aux[LANES : 2 * LANES]
    new_row = aux[2 * LANES :]
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
            med = src[(half + 1) * LANES :]
            orow = out[j - size + 1, lane0:]
            for l in range(nl):
                orow[l] = med[l]


_f32p = types.CPointer(types.float32)
_i64p = types.CPointer(types.int64)
_i64 = types.int64


@_cfunc(types.void(_f32p, _f32p, _i64, _i64, _i64, _i64, _i64p, _i64p, _f32p, _f32p, _f32p))
def median_rows(x_p, out_p, a_len, n, b_len, size, reflected_p, identity_p, window_p, stage_p, result_p):
    """Median along axis 1 of a C-contiguous float32 ``(a_len, n, b_len)`` array.

    With ``b_len > 1`` the lanes are ``b_len`` contiguous columns, read in place.
    With ``b_len == 1`` (filtering the last axis) the lanes are ``a_len`` rows,
    copied block by block, reflected and transposed, into a staging buffer. Both
    cases share one sliding kernel.

    Scratch memory, from the caller: ``reflected`` and ``identity`` hold
    ``n + size - 1`` row indices (the reflected positions and ``0, 1, 2, ...``);
    ``window`` holds ``2 * slots * LANES + 3 * LANES`` floats (two windows and
    the ``lo``/``hi``/``new`` rows) with ``slots = 4 * ((size + 3) // 4) + 2``;
    ``stage`` ``(n + size - 1) * LANES`` and ``result`` ``n * LANES`` floats
    (used only when ``b_len == 1``).
    """
    x = carray(x_p, (a_len, n, b_len))
    out = carray(out_p, (a_len, n, b_len))
    m = n + size - 1
    reflected = carray(reflected_p, (m,))
    nbuf = (4 * ((size + 3) // 4) + 2) * LANES
    window = carray(window_p, (2 * nbuf + 3 * LANES,))
    w_a = window[:nbuf]
    w_b = window[nbuf : 2 * nbuf]
    aux = window[2 * nbuf :]
    transpose = b_len == 1
    if transpose:
        width = a_len
        stage = carray(stage_p, (m, LANES))
        result = carray(result_p, (n, LANES))
        rowmap = carray(identity_p, (m,))
    else:
        width = b_len
        stage = carray(stage_p, (0, LANES))
        result = stage
        rowmap = reflected
    # equal blocks of at most LANES lanes, rounded up to whole SIMD vectors; the
    # last block is shifted back to end at the last lane (it overlaps, harmlessly)
    n_blk = (width + LANES - 1) // LANES
    nl = min(width, ((width + n_blk - 1) // n_blk + 7) // 8 * 8)
    for a in range(a_len if not transpose else 1):
        for start in range(0, width, nl):
            lane0 = min(start, width - nl)  # last block overlaps the previous one
            if transpose:
                for l in range(nl):
                    row = x[lane0 + l, :, 0]
                    for j in range(m):
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


@_cfunc(types.int32(types.CPointer(types.uint32), _i64))
def nan_or_negative_zero(bits_p, n):
    """1 if the float32 data (read as ``n`` uint32) holds a NaN or a negative zero, else 0."""
    bits = carray(bits_p, (n,))
    bad = False
    for i in range(n):
        u = bits[i]
        bad |= (u == np.uint32(0x80000000)) | ((u & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000))
    return 1 if bad else 0


@_cfunc(types.void(types.CPointer(types.complex64), _f32p, _f32p, types.CPointer(types.complex64), _i64, _i64, _i64))
def masked(D_p, harm_p, perc_p, out_p, n_seg, n_bins, n_frames):
    """``out[s, t, f] = D[s, t, f] * h**2 / (h**2 + p**2)`` with ``h, p`` scaled by their maximum.

    ``D``/``out`` are frame-major ``(n_seg, n_frames, n_bins)`` complex64, ``harm``
    and ``perc`` are ``(n_seg, n_bins, n_frames)`` float32; where both are below
    the smallest normal float the mask is 0.5 (librosa's ``softmask`` with
    ``split_zeros=True``), with the same operations in the same order as NumPy.
    """
    D = carray(D_p, (n_seg, n_frames, n_bins))
    harm = carray(harm_p, (n_seg, n_bins, n_frames))
    perc = carray(perc_p, (n_seg, n_bins, n_frames))
    out = carray(out_p, (n_seg, n_frames, n_bins))
    tiny = np.finfo(np.float32).tiny
    for s in range(n_seg):
        # a block of frames at a time, so that the frame-major rows of D and out that
        # the loop over frames touches stay in the first-level cache
        for t0 in range(0, n_frames, 64):
            t1 = min(t0 + 64, n_frames)
            for f in range(n_bins):
                for t in range(t0, t1):
                    a = harm[s, f, t]
                    b = perc[s, f, t]
                    z = a if a >= b else b
                    if z < tiny:
                        m = np.float32(0.5)
                    else:
                        ma = a / z
                        mb = b / z
                        ma = ma * ma
                        mb = mb * mb
                        m = ma / (mb + ma)
                    d = D[s, t, f]
                    out[s, t, f] = np.complex64(complex(d.real * m, d.imag * m))


from .kernel_layout import BLOCK  # noqa: E402  (frames the magnitude kernel handles together)


@_cfunc(types.void(types.CPointer(types.complex64), _f32p, _f32p, _i64p, _f32p, _i64, _i64, _i64, types.float32))
def magnitudes(D_p, S_p, power_p, rolloff_p, scratch_p, n_seg, n_frames, n_bins, roll_percent):
    """Magnitude and power spectra in librosa's layout, and each frame's roll-off bin.

    ``D`` is frame-major ``(n_seg, n_frames, n_bins)`` complex64; ``S`` and
    ``power`` receive ``|D|`` and ``|D|**2`` as ``(n_seg, n_bins, n_frames)``
    float32 (magnitudes computed in double precision and rounded once, the
    power the float32 square of that). ``rolloff`` ``(n_seg, n_frames)``
    receives the first bin whose running sum of magnitudes (float32, summed from
    the lowest bin, as ``np.cumsum`` sums) reaches ``roll_percent`` times the
    frame's total (0 when none does). ``scratch`` holds ``2 * BLOCK * n_bins``
    floats.

    Frames are taken ``BLOCK`` at a time: their magnitudes are laid out
    bin-major in the scratch block, the running sums advance all ``BLOCK``
    frames at once, and the block is written out row by row.
    """
    D = carray(D_p, (n_seg, n_frames, n_bins))
    S = carray(S_p, (n_seg, n_bins, n_frames))
    power = carray(power_p, (n_seg, n_bins, n_frames))
    rolloff = carray(rolloff_p, (n_seg, n_frames))
    scratch = carray(scratch_p, (2, n_bins, BLOCK))
    mags = scratch[0]
    sums = scratch[1]
    for s in range(n_seg):
        for t0 in range(0, n_frames, BLOCK):
            nb = min(BLOCK, n_frames - t0)
            for k in range(nb):
                row = D[s, t0 + k]
                for f in range(n_bins):
                    re = np.float64(row[f].real)
                    im = np.float64(row[f].imag)
                    mags[f, k] = np.float32(np.sqrt(re * re + im * im))
            # running sums, every frame of the block advancing together
            first = mags[0]
            run = sums[0]
            for k in range(BLOCK):
                run[k] = first[k]
            for f in range(1, n_bins):
                prev = sums[f - 1]
                cur = sums[f]
                m = mags[f]
                for k in range(BLOCK):
                    cur[k] = prev[k] + m[k]
            last = sums[n_bins - 1]
            for k in range(nb):
                threshold = roll_percent * last[k]
                found = 0
                for f in range(n_bins):
                    if sums[f, k] >= threshold:
                        found = f
                        break
                rolloff[s, t0 + k] = found
            for f in range(n_bins):
                m = mags[f]
                out_s = S[s, f, t0:]
                out_p = power[s, f, t0:]
                for k in range(nb):
                    v = m[k]
                    out_s[k] = v
                    out_p[k] = v * v


@_cfunc(types.void(_f32p, _i64p, _i64p, _f32p, _f32p, _i64, _i64, _i64, _i64))
def banded_product(W_p, lo_p, hi_p, X_p, out_p, n_seg, n_rows, n_bins, n_frames):
    """``out[s] = W @ X[s]`` for a filter bank ``W`` whose row ``i`` is zero outside ``lo[i]:hi[i]``.

    ``W`` is ``(n_rows, n_bins)``, ``X`` ``(n_seg, n_bins, n_frames)`` and ``out``
    ``(n_seg, n_rows, n_frames)``, all float32; each output row is summed in
    float32 over its band, lowest bin first, a whole row of frames at a time.
    """
    W = carray(W_p, (n_rows, n_bins))
    lo = carray(lo_p, (n_rows,))
    hi = carray(hi_p, (n_rows,))
    X = carray(X_p, (n_seg, n_bins, n_frames))
    out = carray(out_p, (n_seg, n_rows, n_frames))
    for s in range(n_seg):
        for i in range(n_rows):
            row = out[s, i]
            for t in range(n_frames):
                row[t] = np.float32(0.0)
            for f in range(lo[i], hi[i]):
                w = W[i, f]
                x = X[s, f]
                for t in range(n_frames):
                    row[t] += w * x[t]


#: The kernels :mod:`featx.features.native` builds and loads, by name.
KERNELS = {
    "median_rows": median_rows,
    "nan_or_negative_zero": nan_or_negative_zero,
    "masked": masked,
    "magnitudes": magnitudes,
    "banded_product": banded_product,
}
