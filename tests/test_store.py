"""The spectrogram store: round trip, resume, a real kill -9, settings mismatch, bad locations."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

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


@pytest.mark.slow
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


# ---------------------------------------------------------------------------
# Integrity: every image read is checked; damage is one line naming file and segment

FILES = [(1, 3), (2, 2), (3, 20)]  # 25 rows: shard 0 holds rows 0-15, shard 1 rows 16-24


@pytest.fixture
def store_path(tmp_path):
    path = tmp_path / "store"
    with StoreWriter(path, SETTINGS) as writer:
        for file_no, n in FILES:
            _add(writer, file_no, n)
    return path


def _splice(shard, j, image):
    """Replace image ``j`` of a shard file by a well-formed chunk of ``image``."""
    from featx.io.chunks import SHARD_ROWS, encode_chunk, shard_bytes

    data = shard.read_bytes()
    index = np.frombuffer(data[-16 * SHARD_ROWS:], "<u8").reshape(-1, 2)
    chunks = [data[o:o + n] for o, n in index.tolist() if o != (1 << 64) - 1]
    chunks[j] = encode_chunk(image)
    shard.write_bytes(shard_bytes(chunks))


def _flip_bit(shard, j):
    from featx.io.chunks import SHARD_ROWS

    data = bytearray(shard.read_bytes())
    offset, length = np.frombuffer(bytes(data[-16 * SHARD_ROWS:]), "<u8").reshape(-1, 2)[j].tolist()
    data[offset + length // 2] ^= 0x10
    shard.write_bytes(bytes(data))


def _fifo(shard):
    shard.unlink()
    os.mkfifo(shard)


def _swap(a, b):
    tmp = a.with_name("tmp")
    a.rename(tmp)
    b.rename(a)
    tmp.rename(b)


DAMAGE = {
    "deleted": lambda p: (p / "mel" / "c.0.0.0").unlink(),
    "folder in its place": lambda p: ((p / "mel" / "c.0.0.0").unlink(), (p / "mel" / "c.0.0.0").mkdir()),
    "one bit flipped": lambda p: _flip_bit(p / "mel" / "c.0.0.0", 4),
    "pixels shifted by 8 dB": lambda p: _splice(p / "mel" / "c.0.0.0", 4, _images(2, 2)["mel"][1] + np.float32(8.0)),
    "NaN image": lambda p: _splice(p / "mel" / "c.0.0.0", 4, np.full((16, 20), np.nan, np.float32)),
    "truncated": lambda p: (p / "mel" / "c.0.0.0").write_bytes((p / "mel" / "c.0.0.0").read_bytes()[:300]),
    "link to a system file": lambda p: ((p / "mel" / "c.0.0.0").unlink(),
                                        (p / "mel" / "c.0.0.0").symlink_to("/etc/passwd")),
    "link to /dev/zero": lambda p: ((p / "mel" / "c.0.0.0").unlink(), (p / "mel" / "c.0.0.0").symlink_to("/dev/zero")),
    "FIFO": lambda p: _fifo(p / "mel" / "c.0.0.0"),
    "shards swapped": lambda p: _swap(p / "mel" / "c.0.0.0", p / "mel" / "c.1.0.0"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_images_are_one_line_naming_file_and_segment(store_path, damage):
    DAMAGE[damage](store_path)
    store = open_store(store_path)  # the row table and metadata are intact
    with pytest.raises(DataError) as info:
        store.read(slice(None))
    message = str(info.value)
    assert "\n" not in message and str(store_path) in message and "mel/c." in message
    assert re.search(r"the mel image of segment \d+ of rock\.\d{5} \(rock\.\d{5}\.\d+\.wav, row \d+\)", message)
    assert "expected the finite image featx wrote" in message
    if damage != "shards swapped":  # rows of the other shard and of the other kind are still read
        np.testing.assert_array_equal(store.read(range(16, 25), "mel")["mel"],
                                      _images(3, 20)["mel"][11:])
    np.testing.assert_array_equal(store.read(range(5), "chroma")["chroma"][3:], _images(2, 2)["chroma"])


def test_the_damaged_segment_is_the_one_named(store_path):
    _splice(store_path / "mel" / "c.0.0.0", 4, _images(2, 2)["mel"][1] + np.float32(8.0))
    store = open_store(store_path)
    with pytest.raises(DataError, match=r"segment 1 of rock\.00002 \(rock\.00002\.1\.wav, row 4\)"):
        store.get(4)
    for i in (0, 1, 2, 3, 5, 6):  # its neighbours in the same shard are fine
        store.get(i)


def test_reading_verified_images_costs_little(store_path):
    """Not a timing: the check reads each image once and fails on a changed one only."""
    store = open_store(store_path)
    both = store.read(slice(None))
    unchecked = store._read(slice(None), None, verify=False)
    for kind in store.kinds:
        np.testing.assert_array_equal(both[kind], unchecked[kind])


def _rows_lines(path):
    return (path / "rows.jsonl").read_text().splitlines()


def _edit_rows(path, edit):
    lines = _rows_lines(path)
    edit(lines)
    (path / "rows.jsonl").write_text("\n".join(lines) + "\n")


def _edit_json(path, edit):
    import json

    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def _record(line):
    import json

    return json.loads(line)


def _dump(record):
    import json

    return json.dumps(record)


TAMPERED = {
    "a list where a record belongs": (lambda p: _edit_rows(p, lambda ls: ls.__setitem__(2, "[1, 2]")),
                                      r"rows\.jsonl: line 3: holds a JSON list; expected a record object"),
    "a row that is a string": (lambda p: _edit_rows(p, lambda ls: ls.__setitem__(1, _dump(
        {**_record(ls[1]), "rows": ["rock.00001.0.wav"] + _record(ls[1])["rows"][1:]}))),
        r"line 2: row 0 of 'audio/rock/rock\.00001\.wav' is 'rock\.00001\.0\.wav'; expected \[track"),
    "a record without key": (lambda p: _edit_rows(p, lambda ls: ls.__setitem__(2, _dump(
        {k: v for k, v in _record(ls[2]).items() if k != "key"}))), r"line 3: the record's key is None"),
    "a record without checksums": (lambda p: _edit_rows(p, lambda ls: ls.__setitem__(2, _dump(
        {k: v for k, v in _record(ls[2]).items() if k != "crc32c"}))), r"lacks the checksums of its images"),
    "a record that does not follow": (lambda p: _edit_rows(p, lambda ls: ls.__delitem__(2)),
                                      r"starts at row 3, expected 3|starts at row 5, expected 3"),
    "a line that is not JSON": (lambda p: _edit_rows(p, lambda ls: ls.__setitem__(2, "{oops")),
                                r"line 3 is not JSON"),
    "a damaged header": (lambda p: _edit_rows(p, lambda ls: ls.__setitem__(0, "[]")),
                         r"line 1 is not featx's row-table header"),
    "settings: 5": (lambda p: _edit_json(p / "zarr.json", lambda d: d["attributes"]["featx"].__setitem__("settings", 5)),
                    r"zarr\.json: the store's settings are 5; expected the settings record"),
    "settings with a bad value": (lambda p: _edit_json(p / "zarr.json", lambda d: d["attributes"]["featx"]["settings"]
                                                       .__setitem__("n_fft", -1)), r"settings are not valid .*n_fft"),
    "a newer format": (lambda p: _edit_json(p / "zarr.json", lambda d: d["attributes"]["featx"].__setitem__("version", 9)),
                       r"format version 9; this featx reads versions 1, 2"),
    "another dtype": (lambda p: _edit_json(p / "mel" / "zarr.json", lambda d: d.__setitem__("data_type", "float64")),
                      r"mel/zarr\.json: says data_type 'float64'; expected 'float32'"),
    "another shape": (lambda p: _edit_json(p / "mel" / "zarr.json", lambda d: d.__setitem__("shape", [25, 16, 21])),
                      r"mel/zarr\.json: says shape \[25, 16, 21\]; expected \[n, 16, 20\]"),
    "fewer images than rows": (lambda p: _edit_json(p / "mel" / "zarr.json", lambda d: d.__setitem__("shape", [7, 16, 20])),
                               r"the mel array holds 7 images, the row table 25"),
    "garbage metadata": (lambda p: (p / "mel" / "zarr.json").write_bytes(b"\x89PNG\r\n"),
                         r"mel/zarr\.json: is not a JSON document"),
    "a deleted array": (lambda p: __import__("shutil").rmtree(p / "chroma"),
                        r"chroma: is missing; expected the chroma array of this store"),
    "a linked array": (lambda p: ((p / "chroma").rename(p.parent / "elsewhere"), (p / "chroma").symlink_to(p.parent / "elsewhere")),
                       r"chroma: is a symbolic link, not a folder featx wrote"),
}


@pytest.mark.parametrize("tamper", list(TAMPERED))
def test_tampered_stores_are_one_line_naming_the_file_and_what_was_expected(store_path, tamper, run_cli, tmp_path):
    change, pattern = TAMPERED[tamper]
    change(store_path)
    with pytest.raises(DataError, match=pattern) as info:
        open_store(store_path)
    assert "\n" not in str(info.value) and str(store_path) in str(info.value)
    result = run_cli("plot", "spectrograms", store_path, "-o", tmp_path / "figs", ok=False)
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
    assert re.search(pattern, result.output)


def test_zarr_and_dask_read_the_store(store_path):
    import dask.array
    import zarr

    store = open_store(store_path)
    images = store.read(slice(None))
    group = zarr.open_group(str(store_path), mode="r")
    for kind in store.kinds:
        np.testing.assert_array_equal(group[kind][:], images[kind])
        np.testing.assert_array_equal(dask.array.from_zarr(str(store_path), component=kind)[:len(store)].compute(),
                                      images[kind])


# ---------------------------------------------------------------------------
# A store written by featx 0.1.0 (tests/data/stores_0.1.0)

LEGACY = Path(__file__).parent / "data" / "stores_0.1.0" / "mel40"


def test_a_store_of_featx_0_1_0_is_read_unverified_with_one_warning():
    import warnings

    import zarr

    from featx.data import store as store_module

    store_module._WARNED.discard(str(LEGACY))
    with pytest.warns(UserWarning, match="written by an earlier featx without image checksums.*--overwrite") as caught:
        store = open_store(LEGACY)
    assert len(caught) == 1 and store.version == 1 and len(store) == 5
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once per store and process
        again = open_store(LEGACY)
    group = zarr.open_group(str(LEGACY), mode="r")
    images = again.read(slice(None))
    for kind in ("mel", "mfcc", "chroma"):
        np.testing.assert_array_equal(images[kind], group[kind][:5])
    assert not (LEGACY / "chroma" / "c" / "2").exists() and (images["chroma"][2] == 0).all()  # silence
    assert again.rows["track"].tolist()[2] == "silence/silence.00000"


def test_a_store_of_featx_0_1_0_is_not_added_to_but_rewritten(tmp_path, run_cli, tone, write_wav):
    import shutil

    path = tmp_path / "old"
    shutil.copytree(LEGACY, path)
    settings = SpectrogramSettings(n_mels=40, n_mfcc=13)
    with pytest.raises(OutputError, match=r"earlier featx \(store format 1.*rewrite it with "
                                          r"overwrite=True") as info:
        StoreWriter(path, settings).open()
    assert "\n" not in str(info.value)
    write_wav(tmp_path / "audio" / "tones" / "tones.00009.wav", tone(550, 3.5))
    result = run_cli("spectrograms", tmp_path / "audio", "-o", path, "-j", "1", "--n-mels", "40", "--n-mfcc", "13",
                     ok=False)
    assert result.exit_code == 1 and result.output.strip().endswith("rewrite it with --overwrite")
    assert (path / "rows.jsonl").read_bytes() == (LEGACY / "rows.jsonl").read_bytes()
    with StoreWriter(path, settings, overwrite=True) as writer:
        writer.append({k: np.ones((1, *settings.image_shape(k)), np.float32) for k in settings.kinds},
                      key="a", filename="a.wav", label="x", length=66149)
    store = open_store(path)
    assert store.version == 2 and len(store) == 1 and not (path / "mel" / "c").exists()
    assert (store.get(0)["mel"] == 1).all()


@pytest.mark.slow
def test_a_damaged_image_stops_training_evaluation_and_prediction_in_one_line(corpus, run_cli, tmp_path, keras):
    """A NaN image is never scored: each command stops, naming the file and segment."""
    import shutil

    store = tmp_path / "store"
    run_cli("spectrograms", corpus, "-o", store, "-j", "1", "--n-mels", "32", "--n-mfcc", "13")
    bundle = tmp_path / "bundle"
    tiny = ("-m", "cnn2d", "--folds", "2", "--no-refit", "--epochs", "1", "--batch-size", "4",
            "--valid-fraction", "0", "-p", "filters=4,4", "-p", "dense=8")
    run_cli("train", store, "-o", bundle, *tiny)
    bad = tmp_path / "bad"
    shutil.copytree(store, bad)
    _splice(bad / "mel" / "c.0.0.0", 5, np.full((32, 130), np.nan, np.float32))
    name = open_store(bad).rows["filename"].iat[5]
    for args in (("evaluate", bundle, bad, "-o", tmp_path / "evaluation"),
                 ("predict", bundle, bad, "-f", "csv"),
                 ("train", bad, "-o", tmp_path / "bundle2", *tiny)):
        result = run_cli(*args, ok=False)
        assert result.exit_code == 1, (args[0], result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and f"({name}, row 5)" in lines[0], (args[0], result.output)
    assert not (tmp_path / "evaluation" / "metrics.json").exists() and not (tmp_path / "bundle2").exists()
