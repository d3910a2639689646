"""featx blend: medleys and mixes of clips of different genres, their labels, lengths and levels."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from featx.extract.blend import PEAK, equal_power_fade, medley, mix, plan_pairs
from featx.errors import AudioError, ConfigError

SR = 22050


@pytest.fixture
def three_genres(tmp_path, tone, clicks, write_wav):
    """3 genres x 2 clips; each genre's clips have their own length (4.0, 4.5, 5.0 s)."""
    root = tmp_path / "audio"
    for k in range(2):
        write_wav(root / "arpeggio" / f"arpeggio.{k:05d}.wav", tone(330 + 110 * k, 4.0) * 0.6)
        write_wav(root / "beats" / f"beats.{k:05d}.wav", clicks(100 + 20 * k, 4.5) * 0.5)
        write_wav(root / "drone" / f"drone.{k:05d}.wav", tone(110 + 55 * k, 5.0) * 0.3)
    return root


LENGTH = {"arpeggio": int(4.0 * SR), "beats": int(4.5 * SR), "drone": int(5.0 * SR)}


# --------------------------------------------------------------------------- arrays


def test_medley_is_a_then_b_with_a_continuous_equal_power_fade():
    n_a, n_b, fade = 1000, 1200, 100
    a, b = np.full(n_a, 0.5), np.full(n_b, -0.5)
    y = medley(a, b, sr=1000, crossfade=fade / 1000)
    assert len(y) == min(n_a, n_b) == 1000
    start = 1000 // 2 - fade // 2
    np.testing.assert_array_equal(y[:start], np.float32(0.5))
    np.testing.assert_array_equal(y[start + fade:], np.float32(-0.5))
    # inside the fade: 0.5*cos - 0.5*sin of t in (0, 1); no step larger than the
    # steepest slope of that curve (pi/2 * 0.5 * sqrt(2) per unit t) allows
    steps = np.abs(np.diff(y[start - 1:start + fade + 1]))
    assert steps.max() <= 0.5 * np.sqrt(2) * (np.pi / 2) / fade + 1e-6
    assert steps.max() < 0.05  # a hard cut would jump by 1.0
    out_gain, in_gain = equal_power_fade(fade)
    np.testing.assert_allclose(out_gain**2 + in_gain**2, 1.0)
    np.testing.assert_allclose(y[start:start + fade], 0.5 * out_gain - 0.5 * in_gain, atol=1e-7)


def test_medley_hard_cut_and_too_short():
    y = medley(np.ones(10) * 0.1, np.ones(20) * 0.2, sr=10, crossfade=0)
    np.testing.assert_allclose(y, [0.1] * 5 + [0.2] * 5)
    with pytest.raises(AudioError, match="too short"):
        medley(np.ones(10), np.ones(10), sr=100, crossfade=0.5)
    with pytest.raises(ConfigError, match="crossfade"):
        medley(np.ones(10), np.ones(10), sr=100, crossfade=-1)


def test_mix_has_equal_loudness_parts():
    sr, n = 8000, 8000
    t = np.arange(n) / sr
    a, b = 0.8 * np.sin(2 * np.pi * 200 * t), 0.1 * np.sin(2 * np.pi * 300 * t)
    y = mix(a, b[: n - 100]).astype(np.float64)
    m = n - 100
    t = t[:m]
    # 200 Hz and 300 Hz are orthogonal over whole periods: project on each part
    whole = m - m % 80  # 80 samples = 2 periods of 200 Hz, 3 of 300 Hz
    amp_a = 2 * np.mean(y[:whole] * np.sin(2 * np.pi * 200 * t[:whole]))
    amp_b = 2 * np.mean(y[:whole] * np.sin(2 * np.pi * 300 * t[:whole]))
    assert len(y) == m
    assert amp_a == pytest.approx(amp_b, rel=1e-3)
    assert amp_a == pytest.approx(0.45, rel=1e-3)  # mean of the two levels
    with pytest.raises(AudioError, match="silent"):
        mix(a, np.zeros(n))


def test_mix_is_peak_limited():
    t = np.arange(4000) / 4000
    loud = 0.95 * np.sin(2 * np.pi * 50 * t)
    y = mix(loud, loud)  # in phase: the sum would peak at 1.9
    assert np.max(np.abs(y)) == pytest.approx(PEAK, abs=1e-6)
    np.testing.assert_allclose(y, PEAK * loud / 0.95, atol=1e-6)


def test_plan_pairs_different_genres_balanced_and_seeded():
    genres = ["a"] * 3 + ["b"] * 3 + ["c"] * 3
    plan = plan_pairs(genres, 12, kinds=("medley",), seed=1)
    assert len(plan) == 12
    assert all(genres[p.first] != genres[p.second] for p in plan)
    combos = pd.Series([(genres[p.first], genres[p.second]) for p in plan]).value_counts()
    assert len(combos) == 6 and set(combos) == {2}  # every ordered genre pair twice
    assert len({(p.first, p.second) for p in plan}) == 12
    assert plan == plan_pairs(genres, 12, kinds=("medley",), seed=1)
    assert plan != plan_pairs(genres, 12, kinds=("medley",), seed=2)
    # only 2 ordered pairs of distinct clips exist here: fewer come back
    assert len(plan_pairs(["a", "b"], 5, kinds=("mix",))) == 2


# --------------------------------------------------------------------------- command line


def test_blend_cli_labels_lengths_and_format(three_genres, tmp_path, run_cli):
    out = tmp_path / "blends"
    run_cli("blend", three_genres, "-o", out, "--pairs", "6", "--seed", "3")
    table = pd.read_csv(out / "labels.csv")
    assert list(table.columns) == ["file", "label", "kind", "first", "second"]
    assert sorted(table["kind"].value_counts().items()) == [("medley", 6), ("mix", 6)]
    for row in table.itertuples():
        first, second = row.first.split("/")[0], row.second.split("/")[0]
        assert first != second
        assert row.label == f"{first};{second}"
        info = sf.info(str(out / row.file))
        assert (info.samplerate, info.channels, info.subtype) == (SR, 1, "PCM_16")
        assert info.frames == min(LENGTH[first], LENGTH[second])
    # a medley holds the first clip's first half and the second clip's second half
    row = table[table["kind"] == "medley"].iloc[0]
    y, _ = sf.read(str(out / row["file"]))
    a, _ = sf.read(str(three_genres / row["first"]))
    b, _ = sf.read(str(three_genres / row["second"]))
    n, fade = len(y), int(0.5 * SR)
    start = n // 2 - fade // 2
    np.testing.assert_allclose(y[:start], a[:start], atol=2 / 32768)
    np.testing.assert_allclose(y[start + fade:], b[start + fade:n], atol=2 / 32768)


def test_blends_feed_featx_extract(three_genres, tmp_path, run_cli):
    out = tmp_path / "blends"
    run_cli("blend", three_genres, "-o", out, "--pairs", "2", "--kind", "mix")
    csv = tmp_path / "blends.csv"
    run_cli("extract", out, "-o", csv, "--labels", out / "labels.csv", "-j", "1")
    features = pd.read_csv(csv)
    labels = pd.read_csv(out / "labels.csv")
    assert set(features["label"]) == set(labels["label"])
    assert all(";" in label for label in features["label"])


def test_one_genre_is_refused(tmp_path, tone, write_wav, run_cli):
    for k in range(3):
        write_wav(tmp_path / "audio" / "rock" / f"rock.{k}.wav", tone(200 + 50 * k, 2.0))
    result = run_cli("blend", tmp_path / "audio", "-o", tmp_path / "out", ok=False)
    assert "all 3 clip(s) are of genre 'rock'" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_different_sample_rates_are_resampled(tmp_path, tone, write_wav, run_cli):
    root = tmp_path / "audio"
    write_wav(root / "a" / "a.0.wav", tone(440, 3.0, sr=22050), sr=22050)
    write_wav(root / "b" / "b.0.wav", tone(300, 3.0, sr=16000), sr=16000)
    run_cli("blend", root, "-o", tmp_path / "first", "--pairs", "1", "--kind", "medley")
    (name,) = pd.read_csv(tmp_path / "first" / "labels.csv")["file"]
    info = sf.info(str(tmp_path / "first" / name))
    assert (info.samplerate, info.frames) == (22050, 3 * 22050)  # the first clip's rate
    run_cli("blend", root, "-o", tmp_path / "at16k", "--pairs", "1", "--kind", "mix", "--sr", "16000")
    (name,) = pd.read_csv(tmp_path / "at16k" / "labels.csv")["file"]
    y, sr = sf.read(str(tmp_path / "at16k" / name))
    assert (sr, len(y)) == (16000, 3 * 16000)
    # both tones are in the mix at equal level: 440 Hz and 300 Hz peaks of one height
    spectrum = np.abs(np.fft.rfft(y)) / len(y)
    freqs = np.fft.rfftfreq(len(y), 1 / sr)
    peak = {f: spectrum[np.argmin(np.abs(freqs - f))] for f in (300, 440)}
    assert peak[300] == pytest.approx(peak[440], rel=0.02)


def test_labels_csv_input_and_multi_genre_labels_refused(three_genres, tmp_path, run_cli):
    files = sorted(three_genres.rglob("*.wav"))
    csv = tmp_path / "labels.csv"
    pd.DataFrame({"file": [f.name for f in files],
                  "label": ["x" if "beats" in f.name else "y" for f in files]}).to_csv(csv, index=False)
    out = tmp_path / "out"
    run_cli("blend", three_genres, "-o", out, "--labels", csv, "--pairs", "3", "--kind", "mix")
    assert set(pd.read_csv(out / "labels.csv")["label"]) <= {"x;y", "y;x"}
    pd.DataFrame({"file": [f.name for f in files], "label": ["x;y"] * len(files)}).to_csv(csv, index=False)
    result = run_cli("blend", three_genres, "-o", tmp_path / "out2", "--labels", csv, ok=False)
    assert "several genres" in result.output


def test_output_folder_is_guarded(three_genres, tmp_path, run_cli):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    result = run_cli("blend", three_genres, "-o", foreign, ok=False)
    assert "not written by featx" in result.output
    assert (foreign / "notes.txt").read_text() == "keep"
    result = run_cli("blend", three_genres, "-o", three_genres / "blends", ok=False)
    assert "inside the input folder" in result.output
    assert not (three_genres / "blends").exists()
    # a rerun replaces an earlier blend output, dropping blends it no longer makes
    out = tmp_path / "blends"
    run_cli("blend", three_genres, "-o", out, "--pairs", "4")
    run_cli("blend", three_genres, "-o", out, "--pairs", "1", "--kind", "mix")
    wavs = sorted(p.name for p in out.glob("*.wav"))
    assert wavs == list(pd.read_csv(out / "labels.csv")["file"]) and len(wavs) == 1


def _tree(root):
    """Every path under ``root`` with its size (links not followed): what a refused run must not change."""
    return sorted((str(p.relative_to(root)), p.lstat().st_size) for p in root.rglob("*"))


@pytest.mark.parametrize("shape", ["link to the input", "through a linked parent", "dot-dot", "linked input",
                                   "linked folder inside the input", "relative link"])
def test_output_reaching_an_input_folder_through_links_is_refused(three_genres, tmp_path, run_cli, shape,
                                                                  monkeypatch):
    inputs = [three_genres]
    if shape == "link to the input":  # -o is the input folder itself, by another name
        (tmp_path / "alias").symlink_to(three_genres)
        out = tmp_path / "alias"
    elif shape == "through a linked parent":
        (tmp_path / "alias").symlink_to(three_genres)
        out = tmp_path / "alias" / "blends"
    elif shape == "dot-dot":
        out = three_genres / "beats" / ".." / "blends"
    elif shape == "linked input":  # the input named through a link, -o inside its real folder
        (tmp_path / "alias").symlink_to(three_genres)
        inputs, out = [tmp_path / "alias"], three_genres / "drone" / "blends"
    elif shape == "linked folder inside the input":  # a later run enters the link and finds the blends
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        (three_genres / "more").symlink_to(elsewhere)
        out = elsewhere / "blends"
    else:  # a relative link, from another working folder
        monkeypatch.chdir(tmp_path)
        (tmp_path / "rel").symlink_to("audio/beats")
        out = tmp_path / "rel" / "new"
    before = _tree(tmp_path)
    result = run_cli("blend", *inputs, "-o", out, "--pairs", "2", ok=False)
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
    assert "the input folder" in result.output or "a folder searched for the inputs" in result.output
    assert _tree(tmp_path) == before  # nothing written anywhere


def test_output_holding_an_input_is_refused(three_genres, tmp_path, run_cli):
    out = tmp_path / "blends"
    run_cli("blend", three_genres, "-o", out, "--pairs", "1", "--kind", "mix")
    # an earlier blend output that now holds the clips to blend, or the labels file
    (out / "audio").symlink_to(three_genres)  # a link inside is not followed by the guard...
    nested = out / "clips"
    nested.mkdir()
    (nested / "beats").mkdir()
    (nested / "drone").mkdir()
    sf.write(nested / "beats" / "b.wav", np.zeros(SR * 5, np.float32) + 0.1, SR)
    sf.write(nested / "drone" / "d.wav", np.zeros(SR * 5, np.float32) + 0.2, SR)
    before = _tree(tmp_path)
    result = run_cli("blend", nested, "-o", out, ok=False)
    assert f"{out}: holds the input {nested}" in result.output
    labels = out / "my_labels.csv"
    labels.write_text("file,label\nb.wav,beats\n")
    result = run_cli("blend", three_genres, "-o", out, "--labels", labels, ok=False)
    assert f"{out}: holds the input {labels}" in result.output
    labels.unlink()
    assert _tree(tmp_path) == before


@pytest.mark.parametrize("seed", ["-5", "-1", str(-2**70)])
def test_negative_seed_is_one_line(three_genres, tmp_path, run_cli, seed):
    result = run_cli("blend", three_genres, "-o", tmp_path / "out", "--seed", seed, ok=False)
    assert result.output == f"Error: --seed must be an integer >= 0. Received: --seed {seed}\n"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("seed", [-5, 1.5, True, "3", None])
def test_library_refuses_bad_seeds(three_genres, tmp_path, seed):
    from featx.extract.blend import blend_corpus

    with pytest.raises(ConfigError, match=r"seed must be an integer >= 0. Received: seed="):
        blend_corpus([three_genres], tmp_path / "out", seed=seed)
    with pytest.raises(ConfigError, match=r"seed must be an integer >= 0"):
        plan_pairs(["a", "b"], 2, seed=seed)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_blend_real_gtzan_clips(gtzan_dir, tmp_path, run_cli):
    audio = gtzan_dir / "audio"
    if not audio.is_dir():
        pytest.skip(f"no GTZAN audio at {audio}")
    out = tmp_path / "gtzan_blends"
    run_cli("blend", audio, "-o", out, "--pairs", "4", "--seed", "1")
    table = pd.read_csv(out / "labels.csv")
    assert len(table) == 8
    for row in table.itertuples():
        a_genre, b_genre = row.label.split(";")
        assert a_genre != b_genre
        assert row.first.startswith(f"{a_genre}/") and row.second.startswith(f"{b_genre}/")
        info = sf.info(str(out / row.file))
        n = min(sf.info(str(audio / row.first)).frames, sf.info(str(audio / row.second)).frames)
        assert (info.samplerate, info.frames) == (22050, n)
        y, _ = sf.read(str(out / row.file))
        assert 0 < np.max(np.abs(y)) <= PEAK + 1e-4


@pytest.mark.slow
def test_output_reaching_the_input_through_a_second_mount_is_refused(three_genres, tmp_path, run_cli):
    """The same folder mounted twice has two paths that share no prefix; folders are compared
    by device and inode."""
    import subprocess

    mount = tmp_path / "mounted"
    mount.mkdir()
    done = subprocess.run(["mount", "--bind", str(three_genres), str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot bind-mount here ({done.stderr.strip() or 'mount failed'}); needs root")
    try:
        before = _tree(three_genres)
        result = run_cli("blend", three_genres, "-o", mount / "blends", "--pairs", "1", ok=False)
        assert f"{mount / 'blends'}: lies inside the input folder {three_genres}" in result.output
        assert _tree(three_genres) == before
    finally:
        subprocess.run(["umount", str(mount)], check=True)
