"""Decoding, downmixing, resampling and segmenting real audio files."""
from __future__ import annotations

import re
import time

import numpy as np
import pandas as pd
import pytest

from featx.extract.audio import find_audio, load, segment
from featx.errors import AudioError, ConfigError
from featx.extract.file import extract_features
from featx.features.settings import FeatureSettings

SR = 22050


def test_stereo_is_downmixed_to_the_same_features_as_mono(tmp_path, tone, write_wav):
    y = tone(440, 3.5)
    mono = write_wav(tmp_path / "mono.wav", y)
    stereo = write_wav(tmp_path / "stereo.wav", np.stack([y, y], axis=1))
    a = extract_features(mono, FeatureSettings())
    b = extract_features(stereo, FeatureSettings())
    np.testing.assert_allclose(a.iloc[:, 2:].to_numpy(), b.iloc[:, 2:].to_numpy(), rtol=1e-5, atol=1e-9)


def test_stereo_channels_are_averaged(tmp_path, tone, write_wav):
    left, right = tone(440, 1.0), tone(660, 1.0, amp=0.25)
    path = write_wav(tmp_path / "s.wav", np.stack([left, right], axis=1), subtype="FLOAT")
    np.testing.assert_allclose(load(path, sr=SR), (left + right) / 2, atol=1e-6)


@pytest.mark.parametrize("native_sr", [8000, 44100, 48000])
def test_other_sample_rates_are_resampled(tmp_path, native_sr, tone, write_wav):
    path = write_wav(tmp_path / f"t{native_sr}.wav", tone(1000, 4.0, sr=native_sr), sr=native_sr)
    rows = extract_features(path, FeatureSettings())
    assert len(rows) == 1 and rows["length"].iloc[0] == 66149
    assert rows["spectral_centroid_mean"].iloc[0] == pytest.approx(1000, rel=0.03)


@pytest.mark.parametrize("ext,fmt", [(".flac", "FLAC"), (".ogg", "OGG"), (".au", "AU")])
def test_formats(tmp_path, ext, fmt, tone):
    import soundfile as sf

    path = tmp_path / f"clip{ext}"
    sf.write(path, tone(500, 3.5), SR, format=fmt)
    rows = extract_features(path, FeatureSettings())
    assert rows["filename"].tolist() == [f"clip.0{ext}"]
    assert rows["spectral_centroid_mean"].iloc[0] == pytest.approx(500, rel=0.05)


def test_mp3(tmp_path, tone):
    import soundfile as sf

    if "MP3" not in sf.available_formats():
        pytest.skip("this libsndfile build has no MP3 support")
    path = tmp_path / "clip.mp3"
    sf.write(path, tone(500, 3.5), SR, format="MP3")
    rows = extract_features(path, FeatureSettings())
    assert rows["spectral_centroid_mean"].iloc[0] == pytest.approx(500, rel=0.05)


def test_segmenting_follows_the_kaggle_rule():
    y = np.arange(661794, dtype=np.float32)
    segs = segment(y, hop=66150)
    assert segs.shape == (10, 66149)
    assert segs[3, 0] == 3 * 66150 and segs[3, -1] == 3 * 66150 + 66148
    # a clip of exactly ten windows gives nine segments, as in the Kaggle table
    assert segment(y[:661500], hop=66150).shape[0] == 9
    assert segment(y[:66150], hop=66150).shape[0] == 0
    assert segment(y, hop=None).shape == (1, 661794)


def test_filenames_are_kaggle_style(tmp_path, tone, write_wav):
    path = write_wav(tmp_path / "blues.00000.wav", tone(300, 6.5))
    rows = extract_features(path, FeatureSettings())
    assert rows["filename"].tolist() == ["blues.00000.0.wav", "blues.00000.1.wav"]
    whole = extract_features(path, FeatureSettings(segment_seconds=None))
    assert whole["filename"].tolist() == ["blues.00000.wav"]
    assert whole["length"].tolist() == [int(6.5 * SR)]


def test_bad_files_raise_audio_error(tmp_path, tone, write_wav):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(256)) * 4)
    text = tmp_path / "notes.mp3"
    text.write_text("this is not audio\n" * 100)
    for path, words in [(empty, "empty"), (junk, "cannot be decoded"), (text, "cannot be decoded")]:
        with pytest.raises(AudioError, match=words) as info:
            load(path, sr=SR)
        assert str(path) in str(info.value)
    short = write_wav(tmp_path / "short.wav", tone(440, 1.0))
    with pytest.raises(AudioError, match="shorter than one 3 s segment"):
        extract_features(short, FeatureSettings())


def test_find_audio(tmp_path, tone, write_wav):
    write_wav(tmp_path / "b" / "x.wav", tone(440, 0.1))
    write_wav(tmp_path / "a" / "y.flac", tone(440, 0.1))
    (tmp_path / "a" / "readme.txt").write_text("no")
    found = find_audio([tmp_path])
    assert [p.name for p in found] == ["y.flac", "x.wav"]
    with pytest.raises(ConfigError, match="not found"):
        find_audio([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no audio files found"):
        find_audio([tmp_path / "empty"])


def _special(tmp_path, kind):
    """A path of ``kind`` that is not a regular file, named like audio; and what featx calls it."""
    import os
    import socket

    path = tmp_path / f"{kind}.wav"
    if kind == "fifo":
        os.mkfifo(path)
        return path, "a FIFO (named pipe)"
    if kind == "device":
        path.symlink_to("/dev/zero")  # a link to a character device that never ends
        return path, "a character device"
    if kind == "socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(path))
        return path, "a socket"
    if kind == "dangling":
        path.symlink_to(tmp_path / "gone.wav")
        return path, "a symbolic link to a missing file"
    path.mkdir()
    return path, "a folder"


@pytest.mark.parametrize("kind", ["fifo", "device", "socket", "dangling", "folder"])
def test_files_that_are_not_regular_are_named_as_what_they_are(tmp_path, kind):
    path, name = _special(tmp_path, kind)
    import re

    with pytest.raises(AudioError, match=rf"is {re.escape(name)}.*, not a regular file; expected an audio file"):
        load(path, sr=22050)  # at once: nothing is opened


def test_extract_names_fifos_and_devices_among_real_files(tmp_path, tone, write_wav, invoke):
    """/dev/zero and FIFOs were reported as 'empty file (0 bytes)'; a FIFO in a folder was passed over."""
    folder = tmp_path / "audio" / "tones"
    write_wav(folder / "a.wav", tone(440, 6.5))
    names = {kind: _special(folder, kind)[1] for kind in ("fifo", "device", "socket", "dangling")}
    out = tmp_path / "f.csv"
    done = invoke("extract", tmp_path / "audio", "/dev/zero", "-o", out, "-j", "1")
    assert done.exit_code == 1, done.stderr
    for kind, name in names.items():
        assert f"skipped {folder / (kind + '.wav')}: is {name}" in done.stderr
    assert "skipped /dev/zero: is a character device, not a regular file" in done.stderr
    assert "empty file" not in done.stderr and "5 file(s) skipped" in done.stderr
    assert len(out.read_text().splitlines()) == 1 + 2  # the real clip's two segments


def test_absurd_sample_rate_is_named(tmp_path):
    import struct

    sr = 4_000_000_000
    data = (np.sin(np.arange(22050) / 10) * 10000).astype("<i2").tobytes()
    header = (b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE" + b"fmt "
              + struct.pack("<IHHIIHH", 16, 1, 1, sr, (sr * 2) & 0xFFFFFFFF, 2, 16)
              + b"data" + struct.pack("<I", len(data)))
    (tmp_path / "rate.wav").write_bytes(header + data)
    from featx.errors import AudioError
    from featx.extract.audio import load

    with pytest.raises(AudioError, match="sample rate 4,000,000,000 Hz is above"):
        load(tmp_path / "rate.wav", sr=22050)


def test_files_that_are_not_audio_are_skipped_with_what_is_wrong(corpus, tmp_path, invoke):
    (corpus / "tones" / "notes.wav").write_text("these are my notes, not audio\n")
    (corpus / "tones" / "noise.flac").write_bytes(bytes(range(200, 256)) * 8)
    out = tmp_path / "f.csv"
    result = invoke("extract", corpus, "-o", out, "-j", "1")
    assert result.exit_code == 1
    text = result.stderr
    assert re.search(r"skipped \S*notes\.wav: cannot be decoded as audio: not a WAV file: no RIFF header \(starts with text\)", text), text
    assert re.search(r"skipped \S*noise\.flac: cannot be decoded as audio: not a FLAC file: no fLaC header \(starts with bytes c8 c9 ca cb\)",
                     text), text
    assert "NoBackendError" not in text and "Traceback" not in text
    assert len(pd.read_csv(out)) == 4 * 2  # the four real clips still give their rows


def test_unknown_and_damaged_files_say_so(tmp_path, tone, write_wav):
    from featx.errors import AudioError
    from featx.extract.audio import load

    odd = tmp_path / "clip.bin"
    odd.write_bytes(b"\x00\x01\x02\x03" * 64)
    with pytest.raises(AudioError, match=r"clip\.bin: cannot be decoded as audio: unknown format \(starts with bytes "
                                         r"00 01 02 03\); expected WAV, FLAC"):
        load(odd, sr=22050)
    good = write_wav(tmp_path / "good.wav", tone(440, 1.0))
    damaged = tmp_path / "damaged.wav"
    damaged.write_bytes(good.read_bytes()[:12] + b"\xff" * 40)
    with pytest.raises(AudioError, match=r"damaged\.wav: cannot be decoded as audio: corrupt WAV file"):
        load(damaged, sr=22050)


def test_load_refuses_a_low_rate_before_decoding(tmp_path, write_stdlib_wav):
    from featx.extract.audio import load

    path = write_stdlib_wav(tmp_path / "one_hz.wav", rate=1, frames=10)
    with pytest.raises(AudioError, match=r"one_hz\.wav: sample rate 1 Hz is below the 1000 Hz"):
        load(path, sr=22050)


def test_load_refuses_a_file_longer_than_the_sample_bound_after_resampling(tmp_path, write_stdlib_wav):
    from featx.extract.audio import MAX_SAMPLES, load

    # 6 minutes at 1000 Hz: small on disk, but more than MAX_SAMPLES at 384 kHz
    path = write_stdlib_wav(tmp_path / "long.wav", rate=1000, frames=360_000)
    assert 360_000 * 384_000 // 1000 > MAX_SAMPLES
    started = time.perf_counter()
    with pytest.raises(AudioError, match=r"long\.wav: 6\.0 min long .* at most 134,217,728 samples"):
        load(path, sr=384_000)
    assert time.perf_counter() - started < 5  # refused from the header, nothing resampled
    assert load(path, sr=22050).shape == (7_938_000,)  # the same file at a sane rate is fine
