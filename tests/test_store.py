"""The spectrogram store: round trip, resume, a real kill -9, settings mismatch, bad locations."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from featx.data.store import ROW_COLUMNS, StoreWriter, open_store
from featx.errors import ConfigError, DataError, OutputError
from featx.features.spectrograms import SpectrogramSettings

SETTINGS = SpectrogramSettings(kinds="mel,chroma", image_size=(16, 20))


def _images(file_no: int, n: int, settings=SETTINGS) -> dict:
    """Images whose every pixel tells which file, segment and kind it belongs to."""
    out = {}
    for k, kind in enumerate(settings.kinds):
        h, w = settings.image_shape(kind)
        base = file_no * 100 + np.arange(n, dtype=np.float32)[:, None, None] + 1000 * k
        out[kind] = (base + np.linspace(0, 0.5, h * w, dtype=np.float32).reshape(h, w)).astype(np.float32)
    return out


def _add(store, file_no: int, n: int, label="rock"):
    store.append(_images(file_no, n), key=f"audio/{label}/{label}.{file_no:05d}.wav",
                 filename=f"{label}.{file_no:05d}.wav", label=label, length=66149)


def _check_contents(store, files):
    """``files``: [(file_no, n_segments)] in store order."""
    assert len(store) == sum(n for _, n in files)
    row = 0
    for file_no, n in files:
        expected = _images(file_no, n)
        for i in range(n):
            got = store.get(row)
            for kind in SETTINGS.kinds:
                np.testing.assert_array_equal(got[kind], expected[kind][i])
            row += 1


def test_round_trip(tmp_path):
    path = tmp_path / "store"
    with StoreWriter(path, SETTINGS) as writer:
        _add(writer, 1, 3)
        _add(writer, 2, 2, label="jazz")
        assert len(writer) == 5
    store = open_store(path)
    assert store.settings == SETTINGS and store.kinds == ("mel", "chroma")
    assert store.image_shape("mel") == (16, 20)
    assert list(store.rows.columns) == list(ROW_COLUMNS)
    assert store.rows.iloc[4].tolist() == ["jazz.00002", 1, "jazz.00002.1.wav", "jazz", 66149]
    assert store.rows["track"].tolist() == ["rock.00001"] * 3 + ["jazz.00002"] * 2
    _check_contents(store, [(1, 3), (2, 2)])
    batch = store.read([4, 0, 4, 2], kinds=["chroma"])
    assert list(batch) == ["chroma"] and batch["chroma"].shape == (4, 16, 20)
    np.testing.assert_array_equal(batch["chroma"][0], store.get(4)["chroma"])
    np.testing.assert_array_equal(batch["chroma"][1], store.get(0)["chroma"])
    np.testing.assert_array_equal(store.read(slice(1, 3))["mel"], _images(1, 3)["mel"][1:3])
    # a cleanly closed store's arrays hold exactly its rows (what Dask users read)
    import zarr

    assert zarr.open_group(str(path), mode="r")["mel"].shape == (5, 16, 20)
    with pytest.raises(DataError, match="mfcc"):
        store.get(0, kinds="mfcc")
    with pytest.raises(IndexError):
        store.get(5)


def test_images_from_audio_round_trip(tmp_path, tone):
    from featx.features.spectrograms import segment_spectrograms

    settings = SpectrogramSettings(segment_seconds=1.0)
    y = tone(440.0, 3.5)
    segs = np.stack([y[i * 22050 : i * 22050 + settings.segment_samples] for i in range(3)])
    images = segment_spectrograms(segs, settings=settings)
    with StoreWriter(tmp_path / "s", settings) as writer:
        writer.append(images, key="a", filename="tone.wav", label=None, length=settings.segment_samples)
    store = open_store(tmp_path / "s")
    for kind in ("mel", "mfcc", "chroma"):
        np.testing.assert_array_equal(store.read([0, 1, 2])[kind], images[kind])
    assert store.rows["label"].isna().all()


def test_append_across_two_sessions(tmp_path):
    path = tmp_path / "store"
    with StoreWriter(path, SETTINGS) as writer:
        _add(writer, 1, 3)
    with StoreWriter(path, SETTINGS) as writer:
        assert writer.done == {"audio/rock/rock.00001.wav"} and len(writer) == 3
        with pytest.raises(OutputError, match="already in the store"):
            _add(writer, 1, 3)
        _add(writer, 7, 4)
    store = open_store(path)
    _check_contents(store, [(1, 3), (7, 4)])
    assert store.keys == ["audio/rock/rock.00001.wav", "audio/rock/rock.00007.wav"]


def test_readers_see_committed_rows_while_a_writer_works(tmp_path):
    path = tmp_path / "store"
    with StoreWriter(path, SETTINGS) as writer:
        _add(writer, 1, 2)
        early = open_store(path)
        _add(writer, 2, 3)
        late = open_store(path)
        assert len(early) == 2 and len(late) == 5
        _check_contents(late, [(1, 2), (2, 3)])
        with pytest.raises(OutputError, match="another featx run"):
            StoreWriter(path, SETTINGS).open()


_WRITER = """
import sys
import numpy as np
from featx.data.store import StoreWriter
from featx.features.spectrograms import SpectrogramSettings

settings = SpectrogramSettings(kinds="mel,chroma", image_size=(64, 64))
with StoreWriter(sys.argv[1], settings) as writer:
    for f in range(10_000):
        n = 1 + f % 4
        images = {kind: np.full((n, 64, 64), f * 10 + k, np.float32)
                  for k, kind in enumerate(settings.kinds)}
        for i in range(n):
            for kind in images:
                images[kind][i] += i / 100
        writer.append(images, key=str(f), filename=f"t.{f:05d}.wav", label="x", length=1)
        print(f, flush=True)
"""


def test_kill_9_mid_write_leaves_only_whole_files(tmp_path):
    path = tmp_path / "store"
    script = tmp_path / "writer.py"
    script.write_text(textwrap.dedent(_WRITER))
    proc = subprocess.Popen([sys.executable, str(script), str(path)], stdout=subprocess.PIPE, text=True)
    try:
        for _ in range(6):  # six files committed; the writer is busy with the next ones
            assert proc.stdout.readline(), "the writer ended early"
        time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL

    def check(store):
        files = [int(k) for k in store.keys]
        assert files == list(range(len(files))) and len(files) >= 6
        assert len(store) == sum(1 + f % 4 for f in files)
        row = 0
        for f in files:
            n = 1 + f % 4
            got = store.read(range(row, row + n))
            for k, kind in enumerate(store.kinds):
                expected = f * 10 + k + np.arange(n, dtype=np.float32)[:, None, None] / 100
                np.testing.assert_array_equal(got[kind], np.broadcast_to(expected, (n, 64, 64)))
            assert store.rows["segment"].iloc[row : row + n].tolist() == list(range(n))
            row += n
        return files

    files = check(open_store(path))
    settings = SpectrogramSettings(kinds="mel,chroma", image_size=(64, 64))
    with StoreWriter(path, settings) as writer:  # resume: the lock was freed with the process
        assert writer.done == {str(f) for f in files}
        nxt = len(files)
        n = 1 + nxt % 4
        images = {kind: np.full((n, 64, 64), nxt * 10 + k, np.float32) for k, kind in enumerate(settings.kinds)}
        for i in range(n):
            for kind in images:
                images[kind][i] += i / 100
        writer.append(images, key=str(nxt), filename=f"t.{nxt:05d}.wav", label="x", length=1)
    assert check(open_store(path)) == files + [nxt]


def test_other_settings_refused_naming_them(tmp_path):
    path = tmp_path / "store"
    with StoreWriter(path, SETTINGS) as writer:
        _add(writer, 1, 2)
    other = SpectrogramSettings(kinds="mel,chroma", image_size=(16, 20), n_mels=64)
    with pytest.raises(OutputError, match="n_mels: 128 there, 64 now") as info:
        StoreWriter(path, other).open()
    assert "\n" not in str(info.value) and "overwrite=True" in str(info.value)
    assert len(open_store(path)) == 2  # untouched
    with StoreWriter(path, other, overwrite=True) as writer:
        assert len(writer) == 0
    store = open_store(path)
    assert len(store) == 0 and store.settings == other


def test_bad_locations_and_inputs(tmp_path):
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "cat.jpg").write_bytes(b"x")
    with pytest.raises(OutputError, match="did not make"):
        StoreWriter(foreign, SETTINGS, overwrite=True).open()
    assert (foreign / "cat.jpg").read_bytes() == b"x"
    target = tmp_path / "real"
    target.mkdir()
    (tmp_path / "link").symlink_to(target)
    with pytest.raises(OutputError, match="symbolic link"):
        StoreWriter(tmp_path / "link", SETTINGS).open()
    assert not any(target.iterdir())
    with pytest.raises(DataError, match="not a spectrogram store"):
        open_store(foreign)
    with pytest.raises(ConfigError, match="image_size"):
        StoreWriter(tmp_path / "w", SpectrogramSettings(segment_seconds=None))
    with StoreWriter(tmp_path / "s", SETTINGS) as writer:
        with pytest.raises(DataError, match="chroma"):
            writer.append({"mel": np.zeros((1, 16, 20), np.float32)}, key="a", filename="a.wav", length=1)
        with pytest.raises(DataError, match="16x20"):
            writer.append({k: np.zeros((1, 8, 8), np.float32) for k in SETTINGS.kinds},
                          key="a", filename="a.wav", length=1)
        assert len(writer) == 0


def test_whole_file_images_resized_into_a_store(tmp_path, tone):
    from featx.features.spectrograms import segment_spectrograms

    settings = SpectrogramSettings(segment_seconds=None, image_size="32x48", kinds="mel,mfcc")
    images = segment_spectrograms(tone(440.0, 5.0), settings=settings)
    assert images["mel"].shape == (1, 32, 48) and images["mfcc"].shape == (1, 32, 48)
    with StoreWriter(tmp_path / "s", settings) as writer:
        writer.append(images, key="x", filename="drone.00003.wav", label="drone", length=5 * 22050)
    store = open_store(tmp_path / "s")
    assert store.rows.iloc[0].tolist() == ["drone.00003", 0, "drone.00003.wav", "drone", 110250]
    np.testing.assert_array_equal(store.get(0)["mfcc"], images["mfcc"][0])
