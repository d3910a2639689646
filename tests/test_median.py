"""Bit-exactness of featx.features.median.median_filter_rows against SciPy's N-D median filter."""

import numpy as np
import pytest
import scipy.ndimage

from featx.features.median import median_filter_rows


def scipy_reference(x, size, axis):
    sizes = [1] * x.ndim
    sizes[axis] = size
    return scipy.ndimage.median_filter(x, size=tuple(sizes), mode="reflect")


def assert_bits_equal(got, want):
    assert got.shape == want.shape and got.dtype == want.dtype
    as_bits = lambda a: np.ascontiguousarray(a).view(np.uint8)
    assert np.array_equal(as_bits(got), as_bits(want))


def spectrogram_like(rng, shape):
    """|STFT|-like data: heavy-tailed magnitudes, silent (all-zero) frames, ties."""
    x = rng.gamma(0.5, 1.0, size=shape).astype(np.float32) ** 2
    x[..., :: 7] = 0.0  # silent frames
    if x.ndim >= 2 and x.shape[-2] > 3:
        x[..., 3, :] = 1.0  # a tied bin
    return x


def data(kind, shape, seed=0):
    rng = np.random.default_rng(seed)
    if kind == "spectrum":
        return spectrogram_like(rng, shape)
    if kind == "random":
        return rng.standard_normal(shape).astype(np.float32)
    if kind == "ties":  # a handful of distinct values, mostly exact zeros
        return (rng.integers(0, 3, shape) * (rng.random(shape) < 0.4)).astype(np.float32)
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["spectrum", "random", "ties"])
@pytest.mark.parametrize("size", [3, 31])
@pytest.mark.parametrize("axis", [-1, -2])
def test_3d_spectrogram_shape(kind, size, axis):
    x = data(kind, (3, 129, 70))
    assert_bits_equal(median_filter_rows(x, size=size, axis=axis), scipy_reference(x, size, axis))


@pytest.mark.parametrize("kind", ["spectrum", "ties"])
@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("shape", [(1, 200, 40), (2, 40, 5), (40, 3, 17)])
def test_any_axis_3d(kind, axis, shape):
    x = data(kind, shape, seed=1)
    for size in (3, 31):
        n = shape[axis]
        if 2 <= n and size // 2 >= 4 * n:
            continue  # see test_rows_far_shorter_than_window
        assert_bits_equal(median_filter_rows(x, size=size, axis=axis), scipy_reference(x, size, axis))


@pytest.mark.parametrize("kind", ["random", "ties"])
@pytest.mark.parametrize("shape", [(300, 64), (7, 1), (1, 7), (100, 130), (33, 20)])
def test_2d(kind, shape):
    x = data(kind, shape, seed=2)
    for axis in (0, 1):
        for size in (3, 5, 31):
            n = shape[axis]
            if 2 <= n and size // 2 >= 4 * n:
                continue
            assert_bits_equal(median_filter_rows(x, size=size, axis=axis), scipy_reference(x, size, axis))


@pytest.mark.parametrize("n", [1, 4, 5, 15, 16, 31])
@pytest.mark.parametrize("axis", [-1, -2])
def test_short_rows(n, axis):
    """Rows shorter than the window: the reflection repeats."""
    shape = (3, 20, n) if axis == -1 else (3, n, 20)
    x = data("spectrum", shape, seed=n)
    assert_bits_equal(median_filter_rows(x, size=31, axis=axis), scipy_reference(x, 31, axis))


@pytest.mark.parametrize("n", [2, 3])
def test_rows_far_shorter_than_window(n):
    """2 <= n <= size // 8: SciPy's N-D filter reads outside the row there (its
    result changes from run to run), so the reference is the well-defined periodic
    reflection, i.e. SciPy's 1-D filter over symmetrically padded rows."""
    x = data("random", (4, n, 30), seed=3)
    got = median_filter_rows(x, size=31, axis=1)
    rows = np.moveaxis(x, 1, -1).reshape(-1, n)
    padded = np.pad(rows, ((0, 0), (15, 15)), mode="symmetric")
    want = np.stack([scipy.ndimage.median_filter(r, size=31, mode="reflect")[15:-15] for r in padded])
    want = np.moveaxis(want.reshape(4, 30, n), -1, 1)
    assert_bits_equal(got, want)


def test_whole_file_shape():
    x = data("spectrum", (1, 1025, 400), seed=4)
    for axis in (-1, -2):
        assert_bits_equal(median_filter_rows(x, size=31, axis=axis), scipy_reference(x, 31, axis))


def test_fallbacks_stay_exact():
    rng = np.random.default_rng(5)
    x = rng.random((4, 50, 20), dtype=np.float32)
    x64 = x.astype(np.float64)
    assert_bits_equal(median_filter_rows(x64, size=31, axis=1), scipy_reference(x64, 31, 1))
    assert_bits_equal(median_filter_rows(x, size=4, axis=1), scipy_reference(x, 4, 1))
    assert_bits_equal(median_filter_rows(x, size=1, axis=1), x)
    signed = x.copy()
    signed[:, ::3] = -0.0
    signed[:, 1::3] = 0.0
    assert_bits_equal(median_filter_rows(signed, size=31, axis=1), scipy_reference(signed, 31, 1))
    strided = np.asfortranarray(x)[:, ::2]
    assert_bits_equal(median_filter_rows(strided, size=31, axis=-1), scipy_reference(strided, 31, -1))
