"""StoreWriter: locked before it writes, never through a link, deletes only what featx wrote."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from featx.data.store import StoreWriter, open_store
from featx.errors import OutputError
from featx.features.spectrograms import SpectrogramSettings

SETTINGS = SpectrogramSettings(kinds="mel,chroma", image_size=(16, 20))


def _images(value: float, n: int = 3) -> dict:
    return {kind: np.full((n, *SETTINGS.image_shape(kind)), value, np.float32) for kind in SETTINGS.kinds}


def _store(path, files=2):
    with StoreWriter(path, SETTINGS) as writer:
        for f in range(files):
            writer.append(_images(f), key=f"f{f}", filename=f"t.{f:05d}.wav", label="x", length=66149)
    return path


def _snapshot(folder):
    """Every path under ``folder`` (links not followed) with its bytes or link target."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(root, name)
            rel = os.path.relpath(path, folder)
            if os.path.islink(path):
                out[rel] = ("link", os.readlink(path))
            elif os.path.isfile(path):
                with open(path, "rb") as fh:
                    out[rel] = fh.read()
            else:
                out[rel] = "dir"
    return out


def test_a_linked_array_folder_is_never_written_through(tmp_path):
    path = _store(tmp_path / "store")
    elsewhere = tmp_path / "elsewhere"
    (path / "mel").rename(elsewhere)
    (path / "mel").symlink_to(elsewhere)
    before, target = _snapshot(path), _snapshot(elsewhere)
    with pytest.raises(OutputError, match=r"store/mel: is a symbolic link, not a folder featx wrote; featx never "
                                          "writes through a link") as info:
        with StoreWriter(path, SETTINGS) as writer:
            writer.append(_images(9), key="f9", filename="t.00009.wav", label="x", length=66149)
    assert "\n" not in str(info.value)
    assert _snapshot(path) == before and _snapshot(elsewhere) == target


def test_overwrite_deletes_nothing_when_an_array_folder_is_a_link(tmp_path, run_cli):
    path = _store(tmp_path / "store")
    elsewhere = tmp_path / "elsewhere"
    (path / "mel").rename(elsewhere)
    (path / "mel").symlink_to(elsewhere)
    before, target = _snapshot(path), _snapshot(elsewhere)
    with pytest.raises(OutputError, match="store/mel: is a symbolic link"):
        StoreWriter(path, SETTINGS, overwrite=True).open()
    assert _snapshot(path) == before and _snapshot(elsewhere) == target
    # the command line: one line, exit 1, the store as it was
    audio = tmp_path / "audio" / "x"
    audio.mkdir(parents=True)
    import soundfile

    soundfile.write(audio / "a.wav", np.zeros(70000, np.float32), 22050)
    result = run_cli("spectrograms", tmp_path / "audio", "-o", path, "--overwrite", "-j", "1", "--kinds", "mel,chroma",
                     "--image-size", "16x20", ok=False)
    assert result.exit_code == 1 and "symbolic link" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert _snapshot(path) == before and _snapshot(elsewhere) == target


@pytest.mark.parametrize("plant, named", [
    (lambda p: (p / "mel" / "c.5.0.0").symlink_to("/etc/passwd"), r"mel/c\.5\.0\.0: is a symbolic link"),
    (lambda p: (p / "mel" / "notes.txt").write_text("mine"), r"mel/notes\.txt: is not something featx writes"),
    (lambda p: (p / "chroma" / "c.0.0.0").rename(p / "chroma" / "c.00.0.0.bak"), r"c\.00\.0\.0\.bak"),
    (lambda p: ((p / "mel" / "c.0.0.0").unlink(), (p / "mel" / "c.0.0.0").mkdir()), r"mel/c\.0\.0\.0: is not something"),
])
def test_overwrite_refuses_a_store_holding_what_featx_did_not_write(tmp_path, plant, named):
    path = _store(tmp_path / "store")
    plant(path)
    before = _snapshot(path)
    with pytest.raises(OutputError, match=named) as info:
        StoreWriter(path, SpectrogramSettings(kinds="mel", image_size=(8, 8)), overwrite=True).open()
    assert "featx replaces a store only when it wrote everything in its arrays" in str(info.value)
    assert _snapshot(path) == before


def test_overwrite_keeps_a_user_s_files_beside_the_arrays(tmp_path):
    path = _store(tmp_path / "store")
    (path / "README.txt").write_text("my notes")
    other = SpectrogramSettings(kinds="mel", image_size=(8, 8))
    with StoreWriter(path, other, overwrite=True) as writer:
        writer.append({"mel": np.ones((1, 8, 8), np.float32)}, key="a", filename="a.wav", length=1)
    assert (path / "README.txt").read_text() == "my notes"
    assert not (path / "chroma").exists()  # featx's own arrays of the old settings are gone
    store = open_store(path)
    assert store.settings == other and len(store) == 1


def test_a_link_at_a_shard_not_yet_written_is_replaced_not_followed(tmp_path):
    path = _store(tmp_path / "store", files=1)  # rows 0-2 in shard 0
    target = tmp_path / "precious"
    target.write_bytes(b"keep me")
    (path / "mel" / "c.1.0.0").symlink_to(target)  # where rows 16 and on will go
    with StoreWriter(path, SETTINGS) as writer:
        writer.append(_images(5, n=20), key="big", filename="t.00005.wav", label="x", length=66149)
    assert target.read_bytes() == b"keep me"
    assert not (path / "mel" / "c.1.0.0").is_symlink()
    store = open_store(path)
    assert len(store) == 23 and (store.read(range(3, 23))["mel"] == 5).all()


_RACER = """
import os, sys, time
import numpy as np
from featx.data.store import StoreWriter
from featx.errors import OutputError
from featx.features.spectrograms import SpectrogramSettings

path, n_mels, go = sys.argv[1], int(sys.argv[2]), sys.argv[3]
settings = SpectrogramSettings(kinds="mel", n_mels=n_mels, image_size=(n_mels, 8))
image = np.full((2, n_mels, 8), float(n_mels), np.float32)
print("ready", flush=True)
while not os.path.exists(go):
    pass
try:
    with StoreWriter(path, settings) as writer:
        writer.append({"mel": image}, key="a", filename="a.wav", label="x", length=1)
    print("wrote", flush=True)
except OutputError as exc:
    print("refused", exc, flush=True)
"""


@pytest.mark.slow
def test_two_writers_on_a_new_store_leave_it_whole(tmp_path):
    """Two processes, other settings, the same moment: one writes, the other changes nothing."""
    script = tmp_path / "racer.py"
    script.write_text(textwrap.dedent(_RACER))
    outcomes = []
    for attempt in range(8):
        path, go = tmp_path / f"store{attempt}", tmp_path / f"go{attempt}"
        procs = [subprocess.Popen([sys.executable, str(script), str(path), str(n), str(go)],
                                  stdout=subprocess.PIPE, text=True) for n in (24, 32)]
        for proc in procs:
            assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.05)
        go.touch()
        said = [proc.communicate(timeout=120)[0].strip() for proc in procs]
        assert all(p.returncode == 0 for p in procs), said
        winners = [n for n, s in zip((24, 32), said) if s == "wrote"]
        outcomes.append(tuple(s.split(" ", 1)[0] for s in said))
        assert len(winners) == 1, said  # the loser is refused (locked, or other settings)
        store = open_store(path)
        (n,) = winners
        assert store.settings.n_mels == n and len(store) == 2
        assert (store.read([0, 1])["mel"] == n).all()
        header = (path / "rows.jsonl").read_text().splitlines()[0]
        assert f'"n_mels": {n},' in header
    assert all(o.count("wrote") == 1 for o in outcomes)
