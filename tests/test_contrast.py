"""Spectral contrast of a batch without librosa, against librosa itself."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from featx.errors import ConfigError, FeatxError
from featx.features import dsp
from featx.features.contrast import spectral_contrast

SR = 22050
SEGMENT = 3 * SR
# (n_fft, hop_length, n_bands): the default preset's analysis, a shorter FFT, fewer bands
GRIDS = [(2048, 512, 6), (1024, 256, 6), (2048, 512, 4), (1024, 256, 4)]


def _magnitudes(y: np.ndarray, n_fft: int, hop_length: int) -> np.ndarray:
    """(n_segments, bins, frames) float32 magnitudes, as the feature core computes them."""
    frames = np.abs(dsp.stft_frames(np.atleast_2d(y).astype(np.float32), n_fft=n_fft, hop_length=hop_length))
    return np.ascontiguousarray(np.swapaxes(frames, 1, 2))


def _librosa(S: np.ndarray, **kwargs) -> np.ndarray:
    import librosa

    return np.stack([librosa.feature.spectral_contrast(S=s, **kwargs) for s in S])


def _worst_relative(got: np.ndarray, ref: np.ndarray) -> float:
    return float(np.max(np.abs(got - ref) / np.maximum(np.abs(ref), 1e-6)))


def _check_against_librosa(S: np.ndarray, *, n_fft: int, n_bands: int) -> float:
    got = spectral_contrast(S, sr=SR, n_fft=n_fft, n_bands=n_bands)
    ref = _librosa(S, sr=SR, n_fft=n_fft, n_bands=n_bands)
    assert got.shape == ref.shape == (S.shape[0], n_bands + 1, S.shape[2])
    assert got.dtype == np.float64
    assert np.all(np.isfinite(got))
    worst = _worst_relative(got, ref)
    assert worst <= 1e-5, f"largest relative difference from librosa: {worst:.3g}"
    return worst


@pytest.fixture(scope="module")
def gtzan_segments(gtzan_dir):
    """Ten 3-s segments from each of three real clips of different genres."""
    import soundfile as sf

    out = []
    for clip in ("classical/classical.00001.wav", "jazz/jazz.00002.wav", "rock/rock.00003.wav"):
        y, sr = sf.read(gtzan_dir / "audio" / clip, dtype="float32")
        assert sr == SR
        out.extend(y[i * SEGMENT:(i + 1) * SEGMENT - 1] for i in range(10))
    return np.stack(out)


@pytest.mark.parametrize("n_fft,hop_length,n_bands", GRIDS)
def test_real_segments_match_librosa(gtzan_segments, n_fft, hop_length, n_bands):
    S = _magnitudes(gtzan_segments, n_fft, hop_length)
    _check_against_librosa(S, n_fft=n_fft, n_bands=n_bands)


def test_frame_major_view_gives_the_same_values(gtzan_segments):
    frames = np.abs(dsp.stft_frames(gtzan_segments[:5], n_fft=2048, hop_length=512))
    view = np.swapaxes(frames, 1, 2)
    assert not view.flags.c_contiguous
    got = spectral_contrast(view, sr=SR, n_fft=2048)
    np.testing.assert_array_equal(got, spectral_contrast(np.ascontiguousarray(view), sr=SR, n_fft=2048))
    np.testing.assert_array_equal(got, _librosa(np.ascontiguousarray(view), sr=SR, n_fft=2048))


@pytest.fixture(scope="module")
def synthetic(tone):
    """Silence, a pure tone, white noise and a tone in noise, 3 s each."""
    rng = np.random.default_rng(3)
    n = SEGMENT - 1
    return {
        "silence": np.zeros(n, dtype=np.float32),
        "tone": tone(1000.0, 3.0)[:n],
        "noise": (0.1 * rng.standard_normal(n)).astype(np.float32),
        "tone_in_noise": (tone(440.0, 3.0)[:n] + 0.01 * rng.standard_normal(n)).astype(np.float32),
    }


@pytest.mark.parametrize("n_fft,hop_length,n_bands", GRIDS)
@pytest.mark.parametrize("kind", ["silence", "tone", "noise", "tone_in_noise"])
def test_synthetic_signals_match_librosa(synthetic, kind, n_fft, hop_length, n_bands):
    S = _magnitudes(synthetic[kind], n_fft, hop_length)
    _check_against_librosa(S, n_fft=n_fft, n_bands=n_bands)


@pytest.mark.parametrize("n_samples", [1, 600, 1500, 3000])
@pytest.mark.parametrize("n_fft,hop_length,n_bands", GRIDS)
def test_very_short_segments_match_librosa(synthetic, n_samples, n_fft, hop_length, n_bands):
    y = np.stack([synthetic["noise"][:n_samples], synthetic["tone"][:n_samples]])
    # a 1-sample segment cannot be reflect-padded; its single frame is the sample's spectrum
    S = (np.full((2, 1 + n_fft // 2, 1), 0.25, dtype=np.float32) if n_samples == 1
         else _magnitudes(y, n_fft, hop_length))
    assert S.shape[2] <= 1 + 3000 // hop_length
    _check_against_librosa(S, n_fft=n_fft, n_bands=n_bands)


def test_silence_is_zero_contrast_not_nan(synthetic):
    S = _magnitudes(synthetic["silence"], 2048, 512)
    got = spectral_contrast(S, sr=SR, n_fft=2048)
    np.testing.assert_array_equal(got, np.zeros_like(got))


def test_a_pure_tone_stands_out_in_its_own_octave(synthetic):
    # 1 kHz lies in the band 800-1600 Hz, the fourth row for fmin=200
    got = spectral_contrast(_magnitudes(synthetic["tone"], 2048, 512), sr=SR, n_fft=2048)
    per_band = np.median(got[0], axis=-1)
    assert int(np.argmax(per_band)) == 3
    assert per_band[3] > 40.0


def test_decibel_floor_is_per_segment(synthetic):
    """A loud and a faint segment in one batch: each row is the segment analysed alone."""
    loud = synthetic["tone_in_noise"]
    # 140 dB below the loud one: together, the loud segment's floor would clip it
    faint = (1e-7 * synthetic["noise"] + 1e-7 * loud).astype(np.float32)
    S = _magnitudes(np.stack([loud, faint]), 2048, 512)
    batch = spectral_contrast(S, sr=SR, n_fft=2048)
    for i in range(2):
        np.testing.assert_array_equal(batch[i], spectral_contrast(S[i:i + 1], sr=SR, n_fft=2048)[0])
    # librosa given both at once floors them together, which is not what the columns mean
    import librosa

    together = librosa.feature.spectral_contrast(S=S, sr=SR, n_fft=2048)
    assert np.max(np.abs(together[1] - batch[1])) > 1.0
    np.testing.assert_array_equal(together[0], batch[0])


def test_float64_input_is_worked_in_float64(gtzan_segments):
    S = _magnitudes(gtzan_segments[:3], 2048, 512).astype(np.float64)
    got = spectral_contrast(S, sr=SR, n_fft=2048)
    assert _worst_relative(got, _librosa(S, sr=SR, n_fft=2048)) <= 1e-12


def test_other_fmin_and_quantile_match_librosa(synthetic):
    S = _magnitudes(np.stack([synthetic["noise"], synthetic["tone_in_noise"]]), 2048, 512)
    for fmin, quantile in [(100.0, 0.02), (300.0, 0.1), (200.0, 0.45)]:
        got = spectral_contrast(S, sr=SR, n_fft=2048, fmin=fmin, quantile=quantile)
        ref = _librosa(S, sr=SR, n_fft=2048, fmin=fmin, quantile=quantile)
        assert _worst_relative(got, ref) <= 1e-5, (fmin, quantile)


def test_empty_batches_keep_their_shape():
    assert spectral_contrast(np.zeros((0, 1025, 4), np.float32), sr=SR, n_fft=2048).shape == (0, 7, 4)
    assert spectral_contrast(np.zeros((3, 1025, 0), np.float32), sr=SR, n_fft=2048, n_bands=4).shape == (3, 5, 0)


@pytest.mark.parametrize("S,kwargs,words", [
    (np.ones((1025, 4), np.float32), {}, ["shape=(1025, 4)", "(n_segments, 1025, n_frames)"]),
    (np.ones((2, 513, 4), np.float32), {}, ["shape=(2, 513, 4)", "n_fft=2048"]),
    (np.ones((2, 1025, 4), np.complex64), {}, ["dtype=complex64"]),
    (np.ones((2, 1025, 4), np.float32), {"n_bands": 7}, ["Nyquist", "n_bands=7"]),
    (np.ones((2, 1025, 4), np.float32), {"n_bands": 0}, ["n_bands=0"]),
    (np.ones((2, 1025, 4), np.float32), {"quantile": 1.0}, ["quantile=1.0"]),
    (np.ones((2, 1025, 4), np.float32), {"fmin": -5.0}, ["fmin=-5.0"]),
    (np.ones((2, 33, 4), np.float32), {"n_fft": 64, "fmin": 20.0, "n_bands": 3}, ["holds no FFT bin", "n_fft=64"]),
])
def test_bad_input_is_one_line_naming_the_value(S, kwargs, words):
    with pytest.raises(ConfigError) as err:
        spectral_contrast(S, sr=SR, **{"n_fft": 2048, **kwargs})
    message = str(err.value)
    assert isinstance(err.value, FeatxError) and "\n" not in message
    for word in words:
        assert word in message


def test_importing_it_does_not_import_librosa():
    code = ("import sys, numpy as np; from featx.features.contrast import spectral_contrast; "
            "spectral_contrast(np.ones((1, 1025, 2), np.float32), sr=22050, n_fft=2048); "
            "print('librosa' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
