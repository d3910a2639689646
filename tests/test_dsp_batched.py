"""The batched tempo, tuning, onset and zero-crossing arithmetic against librosa and NumPy.

Each of these computes a whole batch of segments in one pass (a mean tempogram from
averaged power spectra, medians without full sorts, one histogram for all segments);
the results must be what the per-segment librosa/NumPy calls give, to rounding.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from featx.features import dsp
from featx.features.compute import _estimate_tuning, _group_medians, _tempogram, _zero_crossing_rate

SR = 22050


@pytest.fixture(scope="module")
def music(tone, clicks):
    """Three 3-s segments: a detuned chord with clicks, a tone with noise, silence."""
    rng = np.random.default_rng(11)
    n = 3 * SR
    a = tone(440 * 2 ** (0.3 / 12), 3.0, amp=0.3) + tone(660 * 2 ** (0.3 / 12), 3.0, amp=0.2) + clicks(96, 3.0)
    b = tone(523.25, 3.0, amp=0.2) + 0.02 * rng.standard_normal(n)
    return np.stack([a[:n], b[:n], np.zeros(n)]).astype(np.float32)


def _envelopes():
    """Onset-like envelopes: busy, with a long silent stretch, and all zero."""
    rng = np.random.default_rng(5)
    env = np.maximum(0.0, rng.standard_normal((3, 400)) * 3).astype(np.float32)
    env[1, 120:260] = 0.0  # frames of a short window inside it are all zero
    env[2] = 0.0
    return env


@pytest.mark.parametrize("win_length", [8, 16, 101, 344])  # FFT lengths 15, 32, 216, 720
def test_mean_tempogram_is_librosas_tempogram_averaged(win_length):
    import librosa

    env = _envelopes()
    tg = librosa.feature.tempogram(onset_envelope=env, sr=SR, hop_length=512, win_length=win_length)
    assert not np.any(np.isnan(tg))
    mean = _tempogram(env, win_length=win_length)
    assert mean.shape == (3, win_length)
    np.testing.assert_allclose(mean, tg.mean(axis=-1), rtol=1e-12, atol=1e-13)
    np.testing.assert_array_equal(mean[2], 0.0)
    # the tempo read from it is librosa's, exactly
    np.testing.assert_array_equal(dsp.tempo_from_mean_tempogram(mean[:2], sr=SR, hop_length=512),
                                  librosa.feature.tempo(tg=tg[:2], sr=SR, hop_length=512)[:, 0])


@pytest.mark.parametrize("n_bands", [128, 127, 2, 1])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_onset_envelope_median_is_numpys_median(n_bands, dtype):
    """Rows with more, exactly as many and fewer zeros than half, all zeros, a NaN."""
    rng = np.random.default_rng(n_bands)
    S_db = (rng.standard_normal((3, n_bands, 60)) * 10).astype(dtype)
    S_db[0, :, 10:20] = -80.0  # a silent stretch: zero flux
    S_db[1, : n_bands // 2, 30] = S_db[1, : n_bands // 2, 29] - 1  # half the bands fall
    S_db[2, :, 40] = S_db[2, :, 39]  # no change at all
    flux = np.maximum(0.0, S_db[..., 1:] - S_db[..., :-1])
    want = np.zeros((3, 60), dtype=dtype)
    want[:, 3:] = np.median(flux, axis=-2)[:, :57]
    got = dsp.onset_strength_median(S_db, n_fft=2048, hop_length=512)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, want)
    S_db[1, 0, 50] = np.nan
    flux = np.maximum(0.0, S_db[..., 1:] - S_db[..., :-1])
    want[:, 3:] = np.median(flux, axis=-2)[:, :57]
    got = dsp.onset_strength_median(S_db, n_fft=2048, hop_length=512)
    np.testing.assert_array_equal(got, want)
    assert np.isnan(got[1, 52]) and np.isnan(got[1, 53])


def test_group_medians_are_numpys_medians():
    rng = np.random.default_rng(4)
    sizes = [0, 1, 2, 3, 10, 11, 0, 200]
    groups = np.repeat(np.arange(len(sizes)), sizes)
    values = rng.exponential(size=len(groups)).astype(np.float32)
    values[groups == 4] = np.float32(2.5)  # ties
    got = _group_medians(values, groups, n_groups=len(sizes))
    assert got.dtype == np.float32
    want = [np.median(values[groups == g]) if n else 0.0 for g, n in enumerate(sizes)]
    np.testing.assert_array_equal(got, np.array(want, dtype=np.float32))
    values[np.flatnonzero(groups == 5)[3]] = np.nan
    got = _group_medians(values, groups, n_groups=len(sizes))
    assert np.isnan(got[5]) and not np.isnan(got[[1, 2, 3, 4, 7]]).any()


def test_pitch_tunings_are_librosas_pitch_tuning_per_group():
    import librosa

    rng = np.random.default_rng(8)
    freqs, groups = [], []
    for g, shift in enumerate([-0.3, 0.0, 0.12, 0.49, None, -0.5]):
        if shift is None:  # no positive frequency
            f = np.array([0.0, -5.0])
        else:
            f = 440.0 * 2 ** ((rng.integers(-20, 20, 150) + shift + 0.02 * rng.standard_normal(150)) / 12)
        if shift == 0.0:
            f[:40] = 440.0 * 2.0 ** rng.integers(-3, 3, 40)  # deviations exactly on a bin edge
        freqs.append(f.astype(np.float32))
        groups.append(np.full(len(f), g))
    got = dsp.pitch_tunings(np.concatenate(freqs), np.concatenate(groups), n_groups=len(freqs) + 1,
                            bins_per_octave=12)
    for g, f in enumerate(freqs):
        want = librosa.pitch_tuning(f, bins_per_octave=12) if (f > 0).any() else 0.0
        assert got[g] == want, g
        assert dsp.pitch_tuning(f, bins_per_octave=12) == want
    assert got[-1] == 0.0  # an empty group


def test_tuning_estimate_is_librosas_per_segment(music):
    import librosa

    D = dsp.stft_frames(music, n_fft=2048, hop_length=512)
    power = np.ascontiguousarray(np.swapaxes(np.abs(D) ** 2, -1, -2))
    got = _estimate_tuning(power, sr=SR, n_fft=2048, bins_per_octave=12)
    with warnings.catch_warnings():  # librosa warns of the silent segment's empty pitch set
        warnings.simplefilter("ignore", UserWarning)
        want = [librosa.estimate_tuning(S=p, sr=SR, n_fft=2048, bins_per_octave=12) for p in power]
    assert got == pytest.approx(want, abs=1e-12)
    assert got[0] == pytest.approx(0.3, abs=0.05) and got[2] == 0.0


@pytest.mark.parametrize("frame_length,hop_length", [(2048, 512), (1000, 300), (512, 512), (2047, 100)])
def test_zero_crossing_rate_is_librosas(music, frame_length, hop_length):
    import librosa

    y = music.copy()
    y[1, 1000:1010] = [1e-11, -1e-11, -0.0, 0.0, -2e-10, 2e-10, -1e-11, 0.1, -0.1, 0.0]
    y[0, :700] = -0.25  # a constant start: the edge padding adds no crossing
    for part in (y, y[:, :700], y[:, :3000]):  # shorter than one frame, a few frames
        got = _zero_crossing_rate(part, frame_length=frame_length, hop_length=hop_length)
        want = librosa.feature.zero_crossing_rate(part, frame_length=frame_length, hop_length=hop_length,
                                                  center=True)[:, 0]
        np.testing.assert_array_equal(got, want)
