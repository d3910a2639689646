"""Labels CSVs for ``featx extract --labels`` (featx/extract/labels.py): rows that contradict
each other, bare names matching two files, and rows naming no file."""
from __future__ import annotations

import pytest


def _labels_csv(path, rows):
    path.write_text("file,label\n" + "".join(f"{f},{lab}\n" for f, lab in rows))
    return path


def test_two_rows_giving_one_file_two_labels_are_refused(tmp_path, corpus, quiet_code_output):
    labels = _labels_csv(tmp_path / "labels.csv", [
        ("tones/tones.00000.wav", "pop"), ("tones.00000.wav", "jazz"),
        ("tones.00001.wav", "a"), ("clicks.00000.wav", "b"), ("clicks.00001.wav", "b")])
    code, text = quiet_code_output("extract", corpus, "-o", tmp_path / "f.csv", "--labels", labels, "-j", "1")
    assert code == 1 and "Traceback" not in text and len(text.strip().splitlines()) == 1, text
    assert "tones.00000.wav" in text and "'pop'" in text and "'jazz'" in text
    assert "row 2" in text and "row 3" in text
    assert not (tmp_path / "f.csv").exists()


def test_a_bare_name_matching_two_files_is_refused(tmp_path, tone, write_wav, quiet_code_output):
    root = tmp_path / "music"
    write_wav(root / "AlbumA" / "01.wav", tone(440, 3.5))
    write_wav(root / "AlbumB" / "01.wav", tone(660, 3.5))
    labels = _labels_csv(tmp_path / "labels.csv", [("01.wav", "rock")])
    code, text = quiet_code_output("extract", root, "-o", tmp_path / "f.csv", "--labels", labels, "-j", "1")
    assert code == 1 and "Traceback" not in text and len(text.strip().splitlines()) == 1, text
    assert "'01.wav' (row 2) matches more than one audio file" in text
    assert "AlbumA" in text and "AlbumB" in text


def test_rows_naming_no_file_warn(tmp_path, corpus):
    from featx.extract.corpus import find_corpus
    from featx.extract.labels import resolve_labels

    labels = _labels_csv(tmp_path / "labels.csv", [
        ("tones.00000.wav", "a"), ("tones.00001.wav", "a"), ("clicks/clicks.00000.wav", "b"),
        ("clicks.00001", "b"), ("gone.wav", "b"), ("also-gone.wav", "a")])
    files = find_corpus([corpus])
    with pytest.warns(UserWarning, match=r"2 row\(s\) name no audio file .*'gone.wav'"):
        got = resolve_labels(files, str(labels))
    assert dict(zip((f.path.name for f in files), got)) == {
        "tones.00000.wav": "a", "tones.00001.wav": "a", "clicks.00000.wav": "b", "clicks.00001.wav": "b"}
