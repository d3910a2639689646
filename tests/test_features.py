"""The feature engine against analytic inputs, and batch == item by item."""
from __future__ import annotations

import numpy as np
import pytest

from featx.features.median import median_filter_rows
from featx.features.compute import segment_features
from featx.features.settings import FeatureSettings, contrast_columns, kaggle_feature_columns
from featx.errors import ConfigError

SR = 22050
SETTINGS = FeatureSettings(preset="default")
SEG = SETTINGS.segment_samples


def features(y, settings=SETTINGS):
    return segment_features(np.atleast_2d(y), sr=SR, settings=settings)


def test_columns_are_kaggle_order_then_contrast():
    cols = SETTINGS.feature_columns()
    assert cols[:4] == ["chroma_stft_mean", "chroma_stft_var", "rms_mean", "rms_var"]
    assert cols[14:17] == ["perceptr_mean", "perceptr_var", "tempo"]
    assert cols[-2:] == ["spectral_contrast7_mean", "spectral_contrast7_var"]
    assert cols == kaggle_feature_columns() + contrast_columns()
    assert FeatureSettings(preset="gtzan").feature_columns() == kaggle_feature_columns()
    assert len(kaggle_feature_columns()) == 57


@pytest.mark.parametrize("freq", [440.0, 1000.0, 3000.0])
def test_pure_tone_centroid_is_its_frequency(freq, tone):
    f = features(tone(freq, 3.0)[:SEG])
    assert f["spectral_centroid_mean"][0] == pytest.approx(freq, rel=0.02)
    # a pure tone's energy is in one place: narrow band, roll-off just above it
    assert f["spectral_bandwidth_mean"][0] < 0.2 * freq + 60
    assert freq <= f["rolloff_mean"][0] < freq + 60
    # rms of a sine of amplitude 0.5 is 0.5 / sqrt(2)
    assert f["rms_mean"][0] == pytest.approx(0.5 / np.sqrt(2), rel=0.02)
    # zero-crossing rate: 2 crossings per period
    assert f["zero_crossing_rate_mean"][0] == pytest.approx(2 * freq / SR, rel=0.05)


def test_tone_is_harmonic_and_clicks_are_percussive(tone, clicks):
    t = features(tone(440, 3.0)[:SEG])
    c = features(clicks(120, 3.0)[:SEG])
    assert t["harmony_var"][0] > 100 * t["perceptr_var"][0]
    assert c["perceptr_var"][0] > c["harmony_var"][0]


def test_chroma_of_a440_peaks_at_a(tone):
    import librosa

    y = tone(440, 3.0)[:SEG]
    # the chroma mean alone says little; check the underlying profile directly
    S = np.abs(librosa.stft(y, pad_mode="reflect")) ** 2
    chroma = librosa.feature.chroma_stft(S=S, sr=SR)
    assert int(np.argmax(chroma.mean(axis=1))) == 9  # C, C#, ..., A
    f = features(y)
    assert 0 < f["chroma_stft_mean"][0] < 0.5


@pytest.mark.parametrize("bpm", [100.0, 120.0, 150.0])
def test_clicks_at_known_tempo(bpm, clicks):
    settings = FeatureSettings(segment_seconds=10)
    y = clicks(bpm, 10.0)[: settings.segment_samples]
    tempo = features(y, settings)["tempo"][0]
    # tempo is read from autocorrelation lags: within one lag step (~3%)
    assert tempo == pytest.approx(bpm, rel=0.04)


@pytest.mark.parametrize("amp", [0.0, 1e-9])
def test_silence_and_near_silence_are_finite(amp):
    rng = np.random.default_rng(1)
    y = (amp * rng.standard_normal(SEG)).astype(np.float32)
    f = features(y)
    values = np.array([f[c][0] for c in SETTINGS.feature_columns()])
    assert np.all(np.isfinite(values))
    if amp == 0:
        assert f["rms_mean"][0] == 0 and f["spectral_centroid_mean"][0] == 0


def test_batch_equals_item_by_item(tone, clicks):
    rng = np.random.default_rng(2)
    batch = np.stack([
        tone(330, 3.0)[:SEG],
        clicks(90, 3.0)[:SEG],
        (0.1 * rng.standard_normal(SEG)).astype(np.float32),
        np.zeros(SEG, np.float32),
    ])
    together = features(batch)
    for i, y in enumerate(batch):
        alone = features(y)
        for col in SETTINGS.feature_columns():
            np.testing.assert_allclose(together[col][i], alone[col][0], rtol=1e-6, atol=1e-12, err_msg=col)


def test_matches_straightforward_librosa_calls(tone, clicks):
    """Shared spectra give the numbers each librosa feature function gives on its own."""
    import librosa

    y = (clicks(110, 3.0) + tone(220, 3.0, amp=0.2))[:SEG]
    f = features(y)
    kw = dict(sr=SR, pad_mode="reflect")
    direct = {
        "chroma_stft_mean": np.mean(librosa.feature.chroma_stft(y=y, **kw)),
        "spectral_centroid_var": np.var(librosa.feature.spectral_centroid(y=y, **kw)),
        "spectral_bandwidth_mean": np.mean(librosa.feature.spectral_bandwidth(y=y, **kw)),
        "rolloff_mean": np.mean(librosa.feature.spectral_rolloff(y=y, **kw)),
        "mfcc3_var": np.var(librosa.feature.mfcc(y=y, n_mfcc=20, **kw)[2]),
        "spectral_contrast2_mean": np.mean(librosa.feature.spectral_contrast(y=y, **kw)[1]),
    }
    for col, value in direct.items():
        assert f[col][0] == pytest.approx(value, rel=1e-5), col


@pytest.mark.parametrize("axis", [-1, -2])
def test_median_filter_rows_is_scipy_median_filter(axis):
    import scipy.ndimage

    rng = np.random.default_rng(3)
    x = rng.random((3, 40, 25)).astype(np.float32)
    x[:, :5] = 0  # ties
    size = [1, 1, 1]
    size[axis] = 7
    expected = scipy.ndimage.median_filter(x, size=size, mode="reflect")
    np.testing.assert_array_equal(median_filter_rows(x, size=7, axis=axis), expected)


def test_the_extraction_bounds_are_inclusive():
    from featx.features.settings import FeatureSettings

    assert FeatureSettings(preset="gtzan", sr=1000).sr == 1000
    assert FeatureSettings(sr=384000).sr == 384000
    assert FeatureSettings(sr=16000).sr == 16000  # the default preset's bands fit below 8 kHz
    assert FeatureSettings(segment_seconds=2049 / 22050).segment_samples == 2048
    for bad in ({"n_fft": 10**7}, {"hop_length": 4096}, {"n_mfcc": 500}, {"n_bands": 40}):
        with pytest.raises(ConfigError, match=f"{next(iter(bad))} must be between"):
            FeatureSettings(segment_seconds=None, **bad)
