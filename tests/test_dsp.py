"""The librosa-free building blocks of the feature core against librosa itself."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from featx.features import dsp
from featx.features.compute import _soft_mask
from featx.features.masking import masked_spectrum

SR = 22050


@pytest.fixture(scope="module")
def music(tone, clicks):
    """Two 3-s segments with tones, clicks and noise: every bin and frame is busy."""
    rng = np.random.default_rng(7)
    a = tone(220, 3.0, amp=0.3) + clicks(100, 3.0) + 0.01 * rng.standard_normal(3 * SR)
    b = tone(523.25, 3.0, amp=0.2) + tone(1318.5, 3.0, amp=0.1) + 0.02 * rng.standard_normal(3 * SR)
    return np.stack([a[: 3 * SR - 1], b[: 3 * SR - 1]]).astype(np.float32)


def test_stft_is_librosa_stft(music):
    import librosa

    D = dsp.stft_frames(music, n_fft=2048, hop_length=512)
    ref = librosa.stft(music, n_fft=2048, hop_length=512, center=True, pad_mode="reflect")
    assert D.dtype == np.complex64
    # the same double-precision transform, rounded to complex64: equal to rounding
    np.testing.assert_allclose(np.swapaxes(D, -1, -2), ref, rtol=1e-6, atol=1e-6 * np.abs(ref).max())


@pytest.mark.parametrize("frame_length,hop_length", [(2048, 512), (1000, 300), (512, 512)])
def test_rms_is_librosa_rms(music, frame_length, hop_length):
    import librosa

    got = dsp.frame_rms(music, frame_length=frame_length, hop_length=hop_length)
    ref = librosa.feature.rms(y=music, frame_length=frame_length, hop_length=hop_length,
                              center=True, pad_mode="reflect")[:, 0]
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-7)


def test_filter_banks_and_windows_are_librosa_s():
    import librosa
    import scipy.fft

    np.testing.assert_allclose(dsp.hann(2048), librosa.filters.get_window("hann", 2048, fftbins=True),
                               rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(dsp.fft_frequencies(sr=SR, n_fft=2048), librosa.fft_frequencies(sr=SR, n_fft=2048))
    for sr, n_fft, n_mels in [(SR, 2048, 128), (16000, 512, 40)]:
        np.testing.assert_allclose(dsp.mel_basis(sr, n_fft, n_mels),
                                   librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels), rtol=1e-6, atol=1e-9)
    for tuning in (0.0, -0.23, 0.41):
        np.testing.assert_allclose(dsp.chroma_basis(SR, 2048, 12, tuning),
                                   librosa.filters.chroma(sr=SR, n_fft=2048, n_chroma=12, tuning=tuning),
                                   rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(dsp.window_sumsquare(n_frames=130, n_fft=2048, hop_length=512),
                               librosa.filters.window_sumsquare(window="hann", n_frames=130, n_fft=2048,
                                                                hop_length=512), rtol=1e-6)
    x = np.random.default_rng(0).standard_normal((3, 128, 40))
    np.testing.assert_allclose(dsp.dct_matrix(20, 128) @ x,
                               scipy.fft.dct(x, axis=-2, type=2, norm="ortho")[:, :20], atol=1e-12)
    for n in (1, 2, 7, 97, 687, 1025, 4097):
        assert dsp.next_fast_len(n) == scipy.fft.next_fast_len(n, real=True)


def test_pitch_tuning_is_librosa_s():
    import librosa

    rng = np.random.default_rng(1)
    for shift in (-0.3, 0.0, 0.12, 0.49):
        freqs = 440.0 * 2 ** ((rng.integers(-20, 20, 300) + shift + 0.02 * rng.standard_normal(300)) / 12)
        assert dsp.pitch_tuning(freqs, bins_per_octave=12) == pytest.approx(
            librosa.pitch_tuning(freqs, bins_per_octave=12), abs=1e-12)
    assert dsp.pitch_tuning(np.zeros(3), bins_per_octave=12) == 0.0


def test_onset_envelope_and_tempo_are_librosa_s(music):
    import librosa

    mel_db = librosa.power_to_db(librosa.feature.melspectrogram(y=music, sr=SR, pad_mode="reflect"))
    env = dsp.onset_strength_median(mel_db, n_fft=2048, hop_length=512)
    ref = librosa.onset.onset_strength(S=mel_db, sr=SR, n_fft=2048, hop_length=512, aggregate=np.median)
    np.testing.assert_allclose(env, ref, rtol=1e-6, atol=1e-6)
    tg = librosa.feature.tempogram(onset_envelope=ref, sr=SR, hop_length=512, win_length=344)
    np.testing.assert_array_equal(dsp.tempo_from_tempogram(tg, sr=SR, hop_length=512),
                                  librosa.feature.tempo(tg=tg, sr=SR, hop_length=512)[:, 0])


def test_masked_spectrum_equals_numpy_soft_mask():
    rng = np.random.default_rng(2)
    harm = rng.random((3, 50, 40), dtype=np.float32)
    perc = rng.random((3, 50, 40), dtype=np.float32)
    harm[0, :5] = perc[0, :5] = 0  # both zero: mask 0.5
    harm[1, 3] = 0
    perc[2, 7] = 1e-39  # subnormal
    D = (rng.standard_normal((3, 40, 50)) + 1j * rng.standard_normal((3, 40, 50))).astype(np.complex64)
    got = masked_spectrum(D, harm, perc)
    want = D * np.swapaxes(_soft_mask(harm, perc, power=2), -1, -2)
    assert got.dtype == np.complex64
    np.testing.assert_array_equal(got, want)  # equal values (zeros of either sign)
    with pytest.raises(ValueError, match="Received"):
        masked_spectrum(D[:, :-1], harm, perc)


def test_extracting_a_wav_does_not_import_librosa(tmp_path, write_wav, tone, clicks):
    """Start-up: a WAV file's Kaggle columns need NumPy, soundfile and the compiled kernels,
    not librosa (whose import costs more than a second)."""
    path = write_wav(tmp_path / "a.wav", tone(440, 4.0) + clicks(120, 4.0))
    code = (
        "import sys\n"
        "from featx.extract.file import extract_features\n"
        "from featx.features.settings import FeatureSettings\n"
        f"rows = extract_features({str(path)!r}, FeatureSettings(preset='gtzan'))\n"
        "assert len(rows) == 1, rows\n"
        "print(sorted(m for m in ('librosa', 'scipy.signal') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_resample_is_librosa_s():
    import librosa

    rng = np.random.default_rng(3)
    for orig, target, n in [(44100, 22050, 100001), (48000, 22050, 96000), (8000, 22050, 16001),
                            (22050, 16000, 66149), (11025, 22050, 3)]:
        y = rng.standard_normal(n).astype(np.float32)
        ours = dsp.resample(y, orig_sr=orig, target_sr=target)
        ref = librosa.resample(y, orig_sr=orig, target_sr=target, res_type="soxr_hq")
        assert ours.dtype == ref.dtype == np.float32
        np.testing.assert_array_equal(ours, ref)
