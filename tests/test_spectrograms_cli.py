"""`featx spectrograms` and `featx plot spectrograms`: real audio in, a store and PNGs out."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

SR = 22050


def _store_content(path):
    """A store's rows and images, sorted by (track, segment): comparable across runs."""
    from featx.data.store import open_store

    store = open_store(path)
    rows = store.rows.reset_index(drop=True)
    order = np.lexsort((rows["segment"].to_numpy(), rows["track"].to_numpy()))
    images = store.read(order)
    return rows.iloc[order].reset_index(drop=True), images, store


def _kaggle_segments(y, seconds=3.0, sr=SR):
    """Independent of featx: 3-s windows every 66150 samples, 66149 samples each, full ones only."""
    hop = round(seconds * sr)
    n = (len(y) - 1) // hop
    return np.stack([y[i * hop:i * hop + hop - 1] for i in range(n)])


def test_store_holds_each_segment_as_the_core_computes_it(corpus, run_cli, tmp_path):
    import soundfile as sf

    from featx.features.spectrograms import SpectrogramSettings, segment_spectrograms

    out = tmp_path / "spectro"
    run_cli("spectrograms", corpus, "-o", out, "-j", "1", "--n-mfcc", "13", "--n-mels", "64")
    rows, images, store = _store_content(out)
    assert store.kinds == ("mel", "mfcc", "chroma")
    # 6.5-s clips: two full 3-s segments each, Kaggle's rule
    assert len(store) == 8
    assert rows.groupby("track").size().to_dict() == {
        "clicks/clicks.00000": 2, "clicks/clicks.00001": 2, "tones/tones.00000": 2, "tones/tones.00001": 2}
    assert set(zip(rows["track"], rows["label"])) == {
        ("clicks/clicks.00000", "clicks"), ("clicks/clicks.00001", "clicks"),
        ("tones/tones.00000", "tones"), ("tones/tones.00001", "tones")}
    assert list(rows["filename"][:2]) == ["clicks.00000.0.wav", "clicks.00000.1.wav"]
    assert (rows["length"] == 66149).all()
    assert store.image_shape("mel") == (64, 130)
    assert store.image_shape("mfcc") == (13, 130)
    assert store.image_shape("chroma") == (12, 130)

    settings = SpectrogramSettings(n_mfcc=13, n_mels=64)
    y, sr = sf.read(corpus / "tones" / "tones.00001.wav", dtype="float32")
    assert sr == SR
    expected = segment_spectrograms(_kaggle_segments(y), settings=settings)
    at = np.flatnonzero(rows["track"] == "tones/tones.00001")
    for kind in store.kinds:
        np.testing.assert_allclose(images[kind][at], expected[kind], rtol=1e-5, atol=1e-4)
    # the 660-Hz tone peaks in the mel band holding 660 Hz, in every frame
    import librosa

    centres = librosa.mel_frequencies(n_mels=66, fmax=8000.0)[1:-1]
    peak = images["mel"][at[0]].argmax(axis=0)
    assert (np.abs(centres[peak] - 660) < 60).all()


def test_bad_file_is_skipped_and_named(corpus, run_cli, tmp_path):
    (corpus / "tones" / "broken.wav").write_bytes(b"this is not audio")
    out = tmp_path / "spectro"
    result = run_cli("spectrograms", corpus, "-o", out, "-j", "2", "--kinds", "chroma", ok=False)
    assert result.exit_code == 1
    assert "broken.wav" in result.output and "skipped" in result.output
    errors = (tmp_path / "spectro.errors.csv").read_text().splitlines()
    assert errors[0] == "file,reason" and len(errors) == 2 and "broken.wav" in errors[1]
    rows, _, store = _store_content(out)
    assert store.kinds == ("chroma",) and len(store) == 8
    assert "tones/broken" not in set(rows["track"])
    # fixed: the rerun adds the file and removes the errors CSV it wrote
    (corpus / "tones" / "broken.wav").unlink()
    run_cli("spectrograms", corpus, "-o", out, "--kinds", "chroma")
    assert not (tmp_path / "spectro.errors.csv").exists()


@pytest.mark.slow
def test_resume_after_kill_9_loses_and_repeats_nothing(tmp_path, write_wav, tone):
    rng = np.random.default_rng(3)
    audio = tmp_path / "audio"
    for i in range(16):
        genre = ("noise", "tone")[i % 2]
        y = (0.1 * rng.standard_normal(30 * SR)).astype(np.float32) if genre == "noise" \
            else tone(220.0 * (1 + i), 30.0)
        write_wav(audio / genre / f"{genre}.{i:05d}.wav", y)
    out = tmp_path / "killed"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "featx", "-q", "spectrograms", str(audio), "-o", str(out), "-j", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    rows_file = out / "rows.jsonl"
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if rows_file.exists() and rows_file.read_bytes().count(b"\n") >= 3:  # header + 2 files
                break
            time.sleep(0.01)
        assert proc.poll() is None, "the run ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    committed = rows_file.read_bytes().count(b"\n") - 1
    assert 2 <= committed < 16

    # the rerun and an uninterrupted run, each in a fresh process as a user would start them
    for target, jobs in ((out, "2"), (tmp_path / "whole-run", "1")):
        done = subprocess.run([sys.executable, "-m", "featx", "-q", "spectrograms", str(audio),
                               "-o", str(target), "-j", jobs], capture_output=True, text=True, env=env,
                              check=False)
        assert done.returncode == 0, done.stderr
    rows_a, images_a, store_a = _store_content(out)
    rows_b, images_b, _ = _store_content(tmp_path / "whole-run")
    assert len(rows_a) == 16 * 9  # exactly 30 s: nine full segments (Kaggle rule)
    assert not rows_a.duplicated(["track", "segment"]).any()
    assert len(set(store_a.keys)) == len(store_a.keys) == 16
    assert rows_a.equals(rows_b)
    for kind in ("mel", "mfcc", "chroma"):
        np.testing.assert_array_equal(images_a[kind], images_b[kind])


def test_other_settings_are_refused_naming_the_setting(corpus, run_cli, tmp_path):
    out = tmp_path / "spectro"
    run_cli("spectrograms", corpus, "-o", out, "-j", "1", "--kinds", "mfcc")
    before = (out / "rows.jsonl").read_bytes()
    result = run_cli("spectrograms", corpus, "-o", out, "--kinds", "mfcc", "--n-mfcc", "26", ok=False)
    assert "n_mfcc: 20 there, 26 now" in result.output
    assert (out / "rows.jsonl").read_bytes() == before
    # labels from another source are refused too, naming the track and both labels
    labels = tmp_path / "labels.csv"
    labels.write_text("file,label\n" + "".join(
        f"{p.relative_to(corpus).as_posix()},other\n" for p in sorted(corpus.rglob("*.wav"))))
    result = run_cli("spectrograms", corpus, "-o", out, "--kinds", "mfcc", "--labels", labels, ok=False)
    assert "label" in result.output and "'other'" in result.output
    # --overwrite replaces featx's own store
    run_cli("spectrograms", corpus, "-o", out, "--kinds", "mfcc", "--n-mfcc", "26", "--overwrite")
    _, images, store = _store_content(out)
    assert store.settings.n_mfcc == 26 and images["mfcc"].shape == (8, 26, 130)


def test_overwrite_never_replaces_a_folder_featx_did_not_make(corpus, run_cli, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    result = run_cli("spectrograms", corpus, "-o", mine, "--overwrite", ok=False)
    assert "featx did not make" in result.output
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
    assert (mine / "notes.txt").read_text() == "keep me"


def test_whole_file_needs_an_image_size(corpus, run_cli, tmp_path):
    result = run_cli("spectrograms", corpus, "-o", tmp_path / "s", "--whole-file", ok=False)
    assert "--image-size" in result.output
    run_cli("spectrograms", corpus, "-o", tmp_path / "s", "--whole-file", "--image-size", "32x40",
            "--normalise", "per-image", "-j", "1")
    _, images, store = _store_content(tmp_path / "s")
    assert len(store) == 4 and list(store.rows["segment"]) == [0, 0, 0, 0]
    for kind in store.kinds:
        assert images[kind].shape == (4, 32, 40)
        assert images[kind].min() >= 0 and images[kind].max() <= 1


def test_plot_spectrograms_grids_and_pngs(corpus, run_cli, tmp_path):
    from PIL import Image

    store = tmp_path / "spectro"
    run_cli("spectrograms", corpus, "-o", store, "-j", "1", "--image-size", "48x64")
    figs = tmp_path / "figs"
    result = run_cli("plot", "spectrograms", store, "-o", figs, "-n", "3", "--png", tmp_path / "png")
    grids = sorted(p.name for p in figs.glob("*.png"))
    assert grids == ["spectrograms_chroma.png", "spectrograms_mel.png", "spectrograms_mfcc.png"]
    with Image.open(figs / "spectrograms_mel.png") as im:
        title = im.info.get("Title", "")
        assert im.size[0] > 400 and im.size[1] > 300
    assert "spectro: mel (48x64), 3 per genre" in title
    pngs = sorted((tmp_path / "png").rglob("*.png"))
    assert len(pngs) == 8 * 3  # every segment of every kind
    assert "24 PNG(s)" in result.output
    names = {p.relative_to(tmp_path / "png").as_posix() for p in pngs}
    assert "mel/tones/tones_tones.00000.1.png" in names
    for p in pngs:
        with Image.open(p) as im:
            assert im.mode == "L" and im.size == (64, 48)  # (width, height)
            pixels = np.asarray(im)
        assert pixels.min() == 0 and pixels.max() == 255
    # the PNG folder is guarded: a folder featx did not write is refused
    other = tmp_path / "other"
    other.mkdir()
    (other / "x.txt").write_text("x")
    run_cli("plot", "spectrograms", store, "-o", figs, "--png", other, ok=False)
    assert sorted(p.name for p in other.iterdir()) == ["x.txt"]


def test_grayscale_puts_the_lowest_band_at_the_bottom():
    from featx.reporting.spectro_images import grayscale

    image = np.zeros((4, 3), np.float32)
    image[0] = 2.0  # lowest band loudest
    gray = grayscale(image)
    assert gray.dtype == np.uint8
    assert (gray[-1] == 255).all() and (gray[:-1] == 0).all()
    assert (grayscale(np.full((2, 2), 7.0)) == 0).all()


def test_choose_examples_spreads_over_tracks():
    import pandas as pd

    from featx.reporting.spectro_images import choose_examples

    rows = pd.DataFrame({"track": ["a"] * 4 + ["b"] * 4 + ["c"] * 2,
                         "segment": [0, 1, 2, 3, 0, 1, 2, 3, 0, 1],
                         "label": ["x"] * 8 + [None] * 2})
    chosen = choose_examples(rows, 3)
    assert chosen == {"unlabelled": [9, 8], "x": [2, 6, 3]}


@pytest.mark.slow
def test_gtzan_clips_give_kaggle_segment_counts(gtzan_dir, run_cli, tmp_path):
    clips = [gtzan_dir / "audio" / "jazz" / "jazz.00000.wav", gtzan_dir / "audio" / "rock" / "rock.00000.wav"]
    for clip in clips:
        if not clip.exists():
            pytest.skip(f"{clip} not found")
    out = tmp_path / "gtzan"
    run_cli("spectrograms", *clips, "-o", out, "--labels", "none", "-j", "1", "--kinds", "mel")
    kaggle = {}
    import pandas as pd

    table = pd.read_csv(gtzan_dir / "features_3_sec.classical_jazz_rock.csv", usecols=["filename"])
    for name in table["filename"]:
        track = name.rsplit(".", 2)[0]
        kaggle[track] = kaggle.get(track, 0) + 1
    rows, images, _ = _store_content(out)
    counts = rows.groupby("track").size().to_dict()
    assert counts == {"jazz.00000": kaggle["jazz.00000"], "rock.00000": kaggle["rock.00000"]}
    assert rows["label"].isna().all()
    assert images["mel"].shape[1:] == (128, 130)
    assert json.loads((out / "zarr.json").read_text())["attributes"]["featx"]["settings"]["fmax"] == 8000.0


def test_run_spectrograms_is_exported_with_numpydoc():
    import re

    import featx

    doc = featx.run_spectrograms.__doc__ or ""
    for section in ("Parameters", "Returns", "Examples"):
        assert re.search(rf"^\s*{section}\n\s*-{{{len(section)}}}$", doc, re.MULTILINE), section


def test_library_refuses_bad_jobs_before_touching_the_output(corpus, tmp_path):
    from featx.errors import ConfigError
    from featx.extract.spectro_runner import run_spectrograms

    with pytest.raises(ConfigError, match="jobs=0"):
        run_spectrograms([corpus], tmp_path / "s", jobs=0)
    assert not (tmp_path / "s").exists()


def test_replaced_audio_is_refused_by_name_until_overwrite(corpus, run_cli, tmp_path, tone, write_wav):
    out = tmp_path / "spectro"
    run_cli("spectrograms", corpus, "-o", out, "-j", "1", "--kinds", "mfcc")
    rows_before = (out / "rows.jsonl").read_bytes()
    # same name, same length (so the same size), other content and a later modification time
    replaced = corpus / "tones" / "tones.00001.wav"
    stat = replaced.stat()
    write_wav(replaced, tone(1320, 6.5))
    os.utime(replaced, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))
    assert replaced.stat().st_size == stat.st_size
    result = run_cli("spectrograms", corpus, "-o", out, "-j", "1", "--kinds", "mfcc", ok=False)
    assert result.exit_code != 0 and "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "tones.00001.wav" in lines[0] and "--overwrite" in lines[0]
    assert (out / "rows.jsonl").read_bytes() == rows_before  # nothing added or changed

    # --overwrite rebuilds the store from the new file: its images are the new tone's
    run_cli("spectrograms", corpus, "-o", out, "-j", "1", "--kinds", "mfcc", "--overwrite")
    fresh = tmp_path / "fresh"
    run_cli("spectrograms", corpus, "-o", fresh, "-j", "1", "--kinds", "mfcc")
    rows_a, images_a, _ = _store_content(out)
    rows_b, images_b, _ = _store_content(fresh)
    assert rows_a.equals(rows_b)
    np.testing.assert_array_equal(images_a["mfcc"], images_b["mfcc"])
    # and a rerun with nothing changed has nothing to do
    result = run_cli("spectrograms", corpus, "-o", out, "-j", "1", "--kinds", "mfcc")
    assert result.exit_code == 0


def test_file_replaced_after_an_interrupted_run_is_refused(corpus, run_cli, tmp_path, clicks, write_wav):
    out = tmp_path / "spectro"
    # a run that finished only the tones (as a killed run leaves a store with some files)
    run_cli("spectrograms", corpus / "tones", "-o", out, "-j", "1", "--kinds", "chroma",
            "--labels", "none")
    rows_before = (out / "rows.jsonl").read_bytes()
    write_wav(corpus / "tones" / "tones.00000.wav", clicks(140, 9.0))  # longer: another size
    result = run_cli("spectrograms", corpus / "tones", "-o", out, "-j", "1", "--kinds", "chroma",
                     "--labels", "none", ok=False)
    assert "tones.00000.wav" in result.output and "changed" in result.output
    assert (out / "rows.jsonl").read_bytes() == rows_before


def test_edited_labels_csv_is_refused_until_overwrite(corpus, run_cli, tmp_path):
    out = tmp_path / "spectro"
    labels = tmp_path / "labels.csv"
    files = sorted(p.relative_to(corpus).as_posix() for p in corpus.rglob("*.wav"))
    labels.write_text("file,label\n" + "".join(f"{f},{f.split('/')[0]}\n" for f in files))
    run_cli("spectrograms", corpus, "-o", out, "-j", "1", "--kinds", "chroma", "--labels", labels)
    rows_before = (out / "rows.jsonl").read_bytes()
    labels.write_text(labels.read_text().replace("clicks/clicks.00001.wav,clicks",
                                                 "clicks/clicks.00001.wav,beats"))
    result = run_cli("spectrograms", corpus, "-o", out, "-j", "1", "--kinds", "chroma",
                     "--labels", labels, ok=False)
    assert "clicks/clicks.00001" in result.output and "'beats'" in result.output
    assert "--overwrite" in result.output
    assert (out / "rows.jsonl").read_bytes() == rows_before
    run_cli("spectrograms", corpus, "-o", out, "-j", "1", "--kinds", "chroma", "--labels", labels,
            "--overwrite")
    rows, _, _ = _store_content(out)
    assert set(rows.loc[rows["track"] == "clicks/clicks.00001", "label"]) == {"beats"}
    assert set(rows.loc[rows["track"] == "clicks/clicks.00000", "label"]) == {"clicks"}


def test_png_folders_keep_distinct_genres_apart(tmp_path):
    """Genres that a careless name mapping merges ('..', '.', '~', non-ASCII, 'a/b' and 'a\\b')
    each get their own folder, inside the PNG folder."""
    from featx.data.store import StoreWriter, open_store
    from featx.features.spectrograms import SpectrogramSettings
    from featx.reporting.spectro_images import export_segment_pngs

    labels = ["..", ".", "~", "électro", "日本", "a/b", "a\\b", "a_b", "Rock", "rock", "%7E"]
    settings = SpectrogramSettings(kinds="chroma", image_size=(4, 5))
    with StoreWriter(tmp_path / "store", settings) as writer:
        for i, label in enumerate(labels):
            writer.append({"chroma": np.full((1, 4, 5), i, np.float32) + np.eye(4, 5, dtype=np.float32)},
                          key=f"k{i}", filename=f"t.{i:05d}.wav", label=label, length=66149)
    out = tmp_path / "png"
    written = export_segment_pngs(open_store(tmp_path / "store"), out)
    assert len(written) == len(labels)
    folders = {p.parent.name for p in written}
    assert len(folders) == len(labels)  # one folder per genre
    assert {p.parent.parent for p in written} == {out / "chroma"}  # none outside, none nested
    assert {"%2E.", "%2E", "%7E", "%C3%A9lectro", "%E6%97%A5%E6%9C%AC", "a%2Fb", "a%5Cb", "a_b", "%257E"} <= folders
    assert {"Rock", "rock-2"} <= folders  # told apart on file systems that ignore case too
    assert len({f.lower() for f in folders}) == len(labels)


def test_escaped_names_are_distinct_and_safe():
    from featx.io.names import escaped_name

    texts = ["..", ".", "~", "", "%", "%25", "a/b", "a\\b", "a b", "a%20b", "x" * 300, "x" * 299 + "y",
             "é", "e\u0301", ".hidden", "-", "CON"]
    names = [escaped_name(t) for t in texts]
    assert len(set(names)) == len(texts)
    for name in names:
        assert name and name not in (".", "..") and not name.startswith(".")
        assert "/" not in name and "\\" not in name and len(name) <= 120
        assert all(c.isascii() and c.isprintable() for c in name)


def test_a_spectrograms_run_imports_no_librosa_scipy_pandas_numba_or_zarr(corpus, tmp_path):
    """The libraries whose imports dominated a short run stay out of `featx spectrograms`."""
    code = ("import json, sys\n"
            "from featx.cli import main\n"
            "main(sys.argv[1:], prog_name='featx', standalone_mode=False)\n"
            "print('MODULES ' + json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n")
    args = ["-q", "spectrograms", str(corpus), "-o", str(tmp_path / "store"), "-j", "1"]
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout.rpartition("MODULES ")[2]))
    heavy = {"librosa", "scipy", "pandas", "numba", "zarr", "sklearn", "tensorflow", "keras", "joblib"}
    assert sorted(loaded & heavy) == []
    from featx.data.store import open_store

    assert len(open_store(tmp_path / "store")) == 8
