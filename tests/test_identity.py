"""Identity of tracks and labels, change detection, and the one locked journal."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from featx.cli import main

REPO = Path(__file__).resolve().parents[1]


def extract(*args):
    return CliRunner().invoke(main, ["-q", "extract", *map(str, args)])


def one_line_error(result, *words):
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    for word in words:
        assert word in result.output, (word, result.output)


# --------------------------------------------------------------------------- identity


def test_album_layout_gives_two_tracks(tmp_path, tone, write_wav):
    from featx.data.table import read_feature_csv

    write_wav(tmp_path / "music" / "AlbumA" / "01.wav", tone(330, 6.5))
    write_wav(tmp_path / "music" / "AlbumB" / "01.wav", tone(550, 6.5))
    out = tmp_path / "f.csv"
    result = extract(tmp_path / "music", "-o", out, "-j", "1")
    assert result.exit_code == 0, result.output
    table = read_feature_csv(out)
    assert table.filenames.tolist() == ["AlbumA/01.0.wav", "AlbumA/01.1.wav",
                                        "AlbumB/01.0.wav", "AlbumB/01.1.wav"]
    assert table.tracks.tolist() == ["AlbumA/01", "AlbumA/01", "AlbumB/01", "AlbumB/01"]
    assert table.segment_indices.tolist() == [0, 1, 0, 1]
    assert table.labels.tolist() == ["AlbumA", "AlbumA", "AlbumB", "AlbumB"]

    # two input folders: each folder's name leads, so ids stay unique
    both = tmp_path / "both.csv"
    assert extract(tmp_path / "music" / "AlbumA", tmp_path / "music" / "AlbumB", "-o", both,
                   "-j", "1", "--whole-file").exit_code == 0
    assert pd.read_csv(both)["filename"].tolist() == ["AlbumA/01.wav", "AlbumB/01.wav"]

    # Kaggle's bare file names would merge the two: refused, naming both files
    refused = extract(tmp_path / "music", "-o", tmp_path / "g.csv", "--preset", "gtzan")
    one_line_error(refused, "'01.wav'", "AlbumA", "AlbumB")
    assert not (tmp_path / "g.csv").exists()
    # two files of one name named directly: refused too
    refused = extract(tmp_path / "music" / "AlbumA" / "01.wav", tmp_path / "music" / "AlbumB" / "01.wav",
                      "-o", tmp_path / "h.csv")
    one_line_error(refused, "'01.wav'", "common parent folder")


def test_linked_files_are_labelled_by_the_folder_they_are_found_in(tmp_path, tone, write_wav):
    store = write_wav(tmp_path / "store" / "rock" / "song.wav", tone(440, 6.5))
    genres = tmp_path / "genres"
    (genres / "jazz").mkdir(parents=True)
    (genres / "blues").mkdir()
    os.symlink(store, genres / "jazz" / "song.wav")  # the target sits in a folder named rock
    os.symlink(store, genres / "blues" / "song.wav")  # one file linked into two genre folders
    out = tmp_path / "f.csv"
    result = extract(genres, "-o", out, "-j", "1", "--whole-file")
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    assert table["filename"].tolist() == ["blues/song.wav", "jazz/song.wav"]
    assert table["label"].tolist() == ["blues", "jazz"]
    features = table.columns[2:-1]
    np.testing.assert_array_equal(table.loc[0, features].to_numpy(), table.loc[1, features].to_numpy())
    assert store.is_file() and not store.is_symlink()


def test_linked_genre_folders_are_entered_once_and_labelled_by_the_link(tmp_path, tone, write_wav):
    write_wav(tmp_path / "data" / "r" / "song.wav", tone(440, 6.5))
    genres = tmp_path / "genres"
    genres.mkdir()
    os.symlink(tmp_path / "data" / "r", genres / "rock")  # a genre folder kept elsewhere
    os.symlink(genres, tmp_path / "data" / "r" / "up")  # a link back up the tree: no loop
    out = tmp_path / "f.csv"
    result = extract(genres, "-o", out, "-j", "1", "--whole-file")
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    assert table["filename"].tolist() == ["rock/song.wav"]
    assert table["label"].tolist() == ["rock"]


# --------------------------------------------------------------------------- change detection


def test_edited_labels_csv_relabels_the_rows(corpus, tmp_path):
    mapping = tmp_path / "labels.csv"
    pd.DataFrame({"file": ["tones.00000.wav", "tones.00001.wav", "clicks.00000.wav", "clicks.00001.wav"],
                  "label": ["a", "a", "b", "b"]}).to_csv(mapping, index=False)
    out = tmp_path / "f.csv"
    assert extract(corpus, "-o", out, "--labels", mapping, "-j", "1").exit_code == 0
    before = pd.read_csv(out)
    assert before["label"].tolist() == ["b"] * 4 + ["a"] * 4

    pd.DataFrame({"file": ["tones/tones.00000.wav", "tones.00001", "clicks.00000.wav", "clicks.00001.wav"],
                  "label": ["c", "a", "b", "d"]}).to_csv(mapping, index=False)
    result = CliRunner().invoke(main, ["extract", str(corpus), "-o", str(out), "--labels", str(mapping),
                                       "-j", "1"])
    assert result.exit_code == 0, result.output
    assert "up to date" not in result.output and "4 from an earlier run" in result.output
    after = pd.read_csv(out)
    assert after["label"].tolist() == ["b", "b", "d", "d", "c", "c", "a", "a"]
    pd.testing.assert_frame_equal(after.drop(columns="label"), before.drop(columns="label"))

    again = CliRunner().invoke(main, ["extract", str(corpus), "-o", str(out), "--labels", str(mapping)])
    assert again.exit_code == 0 and "up to date" in again.output
    # switching to folder labels relabels too, without analysing anything again
    folder = CliRunner().invoke(main, ["extract", str(corpus), "-o", str(out), "-j", "1"])
    assert folder.exit_code == 0 and "4 from an earlier run" in folder.output
    assert pd.read_csv(out)["label"].tolist() == ["clicks"] * 4 + ["tones"] * 4


def test_replaced_audio_is_analysed_again(corpus, tmp_path, tone, write_wav):
    out = tmp_path / "f.csv"
    assert extract(corpus, "-o", out, "-j", "1").exit_code == 0
    before = pd.read_csv(out)
    clip = corpus / "tones" / "tones.00000.wav"
    stamp = clip.stat().st_mtime_ns
    write_wav(clip, tone(1234, 6.5))  # same name and size, new content
    os.utime(clip, ns=(stamp, stamp + 10**9))
    result = CliRunner().invoke(main, ["extract", str(corpus), "-o", str(out), "-j", "1"])
    assert result.exit_code == 0, result.output
    assert "up to date" not in result.output and "3 from an earlier run" in result.output
    after = pd.read_csv(out)
    fresh = tmp_path / "fresh.csv"
    assert extract(corpus, "-o", fresh, "-j", "1").exit_code == 0
    assert out.read_bytes() == fresh.read_bytes()
    changed = after["filename"].str.startswith("tones/tones.00000.")
    assert not np.allclose(after.loc[changed, "spectral_centroid_mean"], before.loc[changed, "spectral_centroid_mean"])
    pd.testing.assert_frame_equal(after[~changed], before[~changed])


def test_contradictory_labels_are_refused(corpus, tmp_path):
    from featx.data.table import read_feature_csv
    from featx.errors import DataError

    mapping = tmp_path / "labels.csv"
    pd.DataFrame({"file": ["tones.00000.wav", "tones.00001.wav", "tones.00000.wav", "clicks.00000.wav",
                           "clicks.00001.wav"],
                  "label": ["a", "a", "b", "b", "b"]}).to_csv(mapping, index=False)
    refused = extract(corpus, "-o", tmp_path / "f.csv", "--labels", mapping)
    one_line_error(refused, "labels.csv", "'tones.00000.wav'", "'a'", "'b'", "row 4")
    assert not (tmp_path / "f.csv").exists()

    pd.DataFrame({"file": ["tones.00000.wav", "tones.00001.wav", "tones.00000.wav", "clicks.00000.wav",
                           "clicks.00001.wav"],
                  "label": ["a", "a", "a", "b", "b"]}).to_csv(mapping, index=False)
    assert extract(corpus, "-o", tmp_path / "f.csv", "--labels", mapping, "-j", "1").exit_code == 0

    # a feature table whose track carries two labels is refused when read
    table = pd.read_csv(tmp_path / "f.csv")
    table["filename"] = table["filename"].str.split("/").str[-1].str.replace("clicks", "tones")
    table.to_csv(tmp_path / "merged.csv", index=False)
    with pytest.raises(DataError, match=r"track 'tones.00000' has rows labelled 'b' \(row 2\) and 'a'"):
        read_feature_csv(tmp_path / "merged.csv")
    result = CliRunner().invoke(main, ["-q", "train", str(tmp_path / "merged.csv"), "-m", "knn",
                                       "-o", str(tmp_path / "model")])
    one_line_error(result, "track 'tones.00000'", "expected one label per track")


# --------------------------------------------------------------------------- the journal


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


@pytest.mark.slow
def test_second_extract_on_one_output_is_refused(tmp_path, tone, clicks, write_wav):
    audio = tmp_path / "audio"
    for i in range(24):
        write_wav(audio / f"g{i % 2}" / f"clip.{i:05d}.wav", tone(200 + 40 * i, 9.5) + clicks(90, 9.5))
    out = tmp_path / "features.csv"
    journal = tmp_path / "features.csv.partial"
    cmd = [sys.executable, "-m", "featx", "-q", "extract", str(audio), "-o", str(out), "-j", "1"]
    first = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while _lines(journal) < 2 and time.time() < deadline and first.poll() is None:
            time.sleep(0.01)  # until the header and one record are written
        assert first.poll() is None, "finished before a second run could start"
        second = extract(audio, "-o", out, "-j", "1")
        held = first.poll() is None
        again = extract(audio, "-o", out, "-j", "1", "--overwrite")
    finally:
        stdout, stderr = first.communicate(timeout=300)
    assert held, "the first run ended while the second ran"
    one_line_error(second, f"another featx run is writing to {journal}", "wait for it")
    one_line_error(again, "another featx run is writing to")
    assert first.returncode == 0, stderr
    assert len(pd.read_csv(out)) == 24 * 3 and not journal.exists()
    assert json.loads((tmp_path / "features.csv.settings.json").read_text())["rows"] == 72


@pytest.mark.slow
def test_sweep_is_refused_while_its_journal_is_locked(tmp_path, synthetic_feature_csv, run_cli):
    csv = synthetic_feature_csv(tmp_path / "t.csv", n_tracks=6, n_segments=1, classes=["a", "b"], seed=0,
                                separation=3.0, track_spread=0.3, row_spread=0.1)
    sweep_dir = tmp_path / "sweep"
    args = ["sweep", csv, "-m", "knn", "-p", "n_neighbors=1,3", "--folds", "2", "-o", sweep_dir,
            "--no-retrain-best"]
    assert "2 combinations: 0 reused, 2 run" in run_cli(*args).output
    holder = ("import sys\nfrom featx.io.journal import Journal\n"
              "j = Journal(sys.argv[1], {'kind': 'sweep'}, allow_nan=True)\nj.open()\n"
              "print('locked', flush=True)\nsys.stdin.read()\n")
    proc = subprocess.Popen([sys.executable, "-c", holder, str(sweep_dir / "trials.jsonl")], cwd=REPO,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        refused = run_cli(*args, ok=False)
        one_line_error(refused, "another featx run is writing to", "trials.jsonl")
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)
    done = run_cli(*args)  # the lock is gone with its process: the sweep resumes
    assert "2 combinations: 2 reused, 0 run" in done.output


def test_journal_at_a_symbolic_link_is_refused(corpus, tmp_path, synthetic_feature_csv, run_cli):
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me\n")
    out = tmp_path / "f.csv"
    os.symlink(victim, tmp_path / "f.csv.partial")
    refused = extract(corpus, "-o", out, "-j", "1")
    one_line_error(refused, "f.csv.partial is a symbolic link")
    assert victim.read_text() == "keep me\n" and not out.exists()
    assert (tmp_path / "f.csv.partial").is_symlink()

    csv = synthetic_feature_csv(tmp_path / "t.csv", n_tracks=6, n_segments=1, classes=["a", "b"], seed=0,
                                separation=3.0, track_spread=0.3, row_spread=0.1)
    sweep_dir = tmp_path / "sweep"
    args = ["sweep", csv, "-m", "knn", "-p", "n_neighbors=1", "--folds", "2", "-o", sweep_dir,
            "--no-retrain-best"]
    run_cli(*args)
    (sweep_dir / "trials.jsonl").unlink()
    os.symlink(victim, sweep_dir / "trials.jsonl")
    refused = run_cli(*args, ok=False)
    one_line_error(refused, "trials.jsonl is a symbolic link")
    assert victim.read_text() == "keep me\n"


def test_journal_recovery_keeps_what_was_finished(tmp_path):
    from featx.errors import OutputError
    from featx.io.journal import Journal

    path = tmp_path / "run.partial"
    with Journal(path, {"settings": {"x": 1}}) as journal:
        for key in "abc":
            journal.append({"key": key, "value": key * 3})
    whole = path.read_bytes()
    with open(path, "ab") as fh:
        fh.write(b'{"key": "d", "value": "ddd"}x\n{"key": "e", "va')  # an unparsable record, a cut line
    with Journal(path, {"settings": {"x": 1}}) as journal:
        assert {k: r["value"] for k, r in journal.records.items()} == {"a": "aaa", "b": "bbb", "c": "ccc"}
        assert path.read_bytes() == whole  # dropped from the file too
        journal.append({"key": "a", "value": "again"})  # the last record of a key wins
    with Journal(path, {"settings": {"x": 1}}) as journal:
        assert journal.records["a"]["value"] == "again" and len(journal.records) == 3

    with pytest.raises(OutputError, match=r"other settings \(x: 1 there, 2 now\)"):
        Journal(path, {"settings": {"x": 2}}).open()
    journal = Journal(path, {"settings": {"x": 2}})
    journal.open(fresh=True)  # starting again
    journal.close()
    assert path.read_bytes() == b'{"featx_journal": 2, "settings": {"x": 2}}\n'

    headerless = tmp_path / "trials.jsonl"  # as sweeps of earlier versions wrote it
    headerless.write_text('{"key": "t1", "status": "ok"}\n{"key": "t2", "sta')
    with Journal(headerless, {"kind": "sweep"}, headerless=True) as journal:
        assert list(journal.records) == ["t1"]
        journal.append({"key": "t2", "status": "ok"})
    assert headerless.read_text() == '{"key": "t1", "status": "ok"}\n{"key": "t2", "status": "ok"}\n'
    with pytest.raises(OutputError, match="is not a featx journal"):
        Journal(headerless, {"kind": "sweep"}).open()

    foreign = tmp_path / "notes.partial"
    foreign.write_text("my notes\n")
    with pytest.raises(OutputError, match="is not a featx journal"):
        Journal(foreign, {}).open(fresh=True)
    assert foreign.read_text() == "my notes\n"


# ---------------------------------------------------------------------------
# Folder names as labels


def test_genre_like_folder_names():
    from featx.extract.labels import looks_like_genre

    genres = ["rock", "blues", "Hip-Hop", "hiphop", "easy listening", "Soul-RnB", "drum and bass", "tones"]
    others = ["Abbey Road (1969)", "CD1", "Disc 2", "2019", "Pink Floyd - The Wall", "[FLAC] live",
              "Downloads", "audio", "music", "New Folder", "a very long folder name of an album",
              "one two three four", ""]
    assert [n for n in genres if not looks_like_genre(n)] == []
    assert [n for n in others if looks_like_genre(n)] == []


def test_folder_labels_that_are_no_genres_are_said_once(tmp_path, tone, write_wav, invoke):
    for i, folder in enumerate(["Abbey Road (1969)", "CD1", "CD2", "rock"]):
        for k in range(3):
            write_wav(tmp_path / "music" / folder / f"{k:02d}.wav", tone(220 + 110 * i + 10 * k, 3.5))
    done = invoke("extract", tmp_path / "music", "-o", tmp_path / "f.csv", "-j", "1")
    assert done.exit_code == 0, done.stderr
    notes = [line for line in done.stderr.splitlines() if "do not look like a genre" in line]
    assert notes == ["WARNING: labels are each file's folder name, and 3 of 4 folder name(s) do not look like "
                     "a genre (e.g. 'Abbey Road (1969)'); pass --labels none (labels='none') for a table "
                     "without labels, or --labels FILE.csv"]
    quiet = invoke("-q", "extract", tmp_path / "music", "-o", tmp_path / "g.csv", "-j", "1")
    assert quiet.exit_code == 0 and quiet.stderr == ""
    unlabelled = invoke("extract", tmp_path / "music", "-o", tmp_path / "h.csv", "-j", "1", "--labels", "none")
    assert unlabelled.exit_code == 0 and "look like a genre" not in unlabelled.stderr
    blend = invoke("blend", tmp_path / "music", "-o", tmp_path / "b", "--pairs", "1")
    assert blend.exit_code == 0, blend.stderr
    assert "pass --labels FILE.csv (a CSV with columns file,label)" in blend.stderr  # blending needs genres


def test_genre_folders_get_no_note(corpus, tmp_path, invoke):
    done = invoke("extract", corpus, "-o", tmp_path / "f.csv", "-j", "1")
    assert done.exit_code == 0 and "look like a genre" not in done.stderr
