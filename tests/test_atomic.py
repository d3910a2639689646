"""Failure paths of the atomic writer, and the ending every extraction sink shares.

A writer that fails leaves the old file and no temporary file; an ``OSError`` becomes
one line naming the target, anything else propagates unchanged. The CSV and Parquet
sinks finish alike: the same errors CSV and settings record, and a failure at the end
leaves no table and keeps the journal, so the next run resumes.
"""
from __future__ import annotations

import hashlib
import json
import os

import pytest

from featx.errors import OutputError
from featx.io.atomic import (
    atomic_open,
    atomic_save,
    commit,
    discard_on_failure,
    temp_beside,
)


def _names(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("exc", [ValueError("bad row"), KeyboardInterrupt()], ids=["error", "interrupt"])
def test_a_failing_writer_leaves_the_old_file_and_no_temporary_file(tmp_path, exc):
    target = tmp_path / "t.csv"
    target.write_text("old\n")
    with pytest.raises(type(exc)) as info, atomic_open(target, "w") as fh:
        fh.write("new\n")
        raise exc
    assert info.value is exc  # propagated unchanged, not wrapped
    assert target.read_text() == "old\n"
    assert _names(tmp_path) == ["t.csv"]


def test_an_os_error_of_a_named_file_writer_is_one_line_naming_the_target(tmp_path):
    def save(tmp):
        with open(tmp / "inner", "w") as fh:  # a file is not a folder
            fh.write("x")

    target = tmp_path / "model.keras"
    with pytest.raises(OutputError) as info:
        atomic_save(target, save)
    assert str(info.value) == f"{target}: cannot write (Not a directory)"
    assert _names(tmp_path) == []


def test_a_named_file_writer_that_leaves_no_file_is_refused(tmp_path):
    target = tmp_path / "model.keras"
    with pytest.raises(OutputError, match=r"model\.keras: the writer did not produce a file"):
        atomic_save(target, lambda tmp: tmp.unlink())
    assert _names(tmp_path) == []


def test_temp_beside_commits_or_discards(tmp_path):
    target = tmp_path / "t.bin"
    tmp, fd = temp_beside(target)
    with discard_on_failure(tmp, target):
        os.write(fd, b"abc")
        os.close(fd)
        commit(tmp, target)
    assert target.read_bytes() == b"abc" and _names(tmp_path) == ["t.bin"]

    tmp, fd = temp_beside(target)
    os.close(fd)
    with pytest.raises(OutputError, match=r"t\.bin: cannot write \(Bad file descriptor\)"), \
            discard_on_failure(tmp, target):
        os.write(fd, b"never")  # the descriptor is closed: a real EBADF
    assert target.read_bytes() == b"abc" and _names(tmp_path) == ["t.bin"]


def test_commit_refuses_a_link_put_at_the_target_meanwhile(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    target = tmp_path / "t.csv"
    tmp, fd = temp_beside(target)
    os.write(fd, b"new")
    os.close(fd)
    target.symlink_to(victim)
    with pytest.raises(OutputError, match=r"t\.csv: is a symbolic link"):
        commit(tmp, target)
    assert victim.read_text() == "precious" and target.is_symlink()
    assert _names(tmp_path) == ["t.csv", "victim.txt"]


@pytest.fixture
def bad_corpus(corpus):
    """The tiny corpus plus one file that is not audio."""
    (corpus / "tones" / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunk" * 20)
    return corpus


def test_csv_and_parquet_outputs_end_with_the_same_records(bad_corpus, tmp_path):
    pytest.importorskip("pyarrow")
    from featx import FeatureSettings, run_extraction

    records, errors = {}, {}
    for suffix in ("csv", "parquet"):
        out = tmp_path / suffix / f"f.{suffix}"
        result = run_extraction([bad_corpus], out, settings=FeatureSettings(), jobs=1, progress=False)
        assert [os.path.basename(f) for f, _ in result.errors] == ["broken.wav"]
        records[suffix] = json.loads((out.parent / f"f.{suffix}.settings.json").read_text())
        listed = "f.errors.csv" if suffix == "csv" else "f.parquet.errors.csv"
        errors[suffix] = (out.parent / listed).read_text()
        assert records[suffix]["csv_sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
        assert _names(out.parent) == sorted([f"f.{suffix}", f"f.{suffix}.settings.json", listed])
    csv_record, parquet_record = records["csv"], records["parquet"]
    assert [k for k in csv_record if csv_record[k] != parquet_record[k]] == ["csv_sha256"]
    assert csv_record["rows"] == 8 and len(csv_record["errors"]) == 1
    broken = [e for e in csv_record["files"] if e["id"].endswith("broken.wav")]
    assert len(broken) == 1 and "error" in broken[0] and "rows" not in broken[0]
    assert errors["csv"] == errors["parquet"]
    assert errors["csv"].splitlines()[0] == "file,reason" and "broken.wav" in errors["csv"]


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_a_folder_where_the_errors_csv_goes_is_refused_before_any_work(bad_corpus, tmp_path, suffix):
    if suffix == "parquet":
        pytest.importorskip("pyarrow")
    from featx import FeatureSettings, run_extraction

    out = tmp_path / f"f.{suffix}"
    listed = "f.errors.csv" if suffix == "csv" else "f.parquet.errors.csv"
    (tmp_path / listed).mkdir()  # where the errors CSV should go
    with pytest.raises(OutputError, match=r"errors\.csv' is a folder where featx extract writes a file"):
        run_extraction([bad_corpus], out, settings=FeatureSettings(), jobs=1, progress=False)
    assert _names(tmp_path) == sorted(["audio", listed])  # nothing analysed, nothing written
    (tmp_path / listed).rmdir()
    again = run_extraction([bad_corpus], out, settings=FeatureSettings(), jobs=1, progress=False)
    assert again.n_rows == 8
    assert _names(tmp_path) == sorted(["audio", f"f.{suffix}", f"f.{suffix}.settings.json", listed])


def test_a_csv_and_a_parquet_table_side_by_side_keep_their_own_errors(bad_corpus, corpus, tmp_path):
    pytest.importorskip("pyarrow")
    from featx import FeatureSettings, run_extraction

    run_extraction([bad_corpus], tmp_path / "f.csv", settings=FeatureSettings(), jobs=1, progress=False)
    run_extraction([bad_corpus], tmp_path / "f.parquet", settings=FeatureSettings(), jobs=1, progress=False)
    csv_errors = (tmp_path / "f.errors.csv").read_bytes()
    (corpus / "tones" / "broken.wav").unlink()  # a clean run of the Parquet table
    run_extraction([corpus], tmp_path / "f.parquet", settings=FeatureSettings(), jobs=1, progress=False,
                   overwrite=True)
    assert not (tmp_path / "f.parquet.errors.csv").exists()  # its own stale list is gone
    assert (tmp_path / "f.errors.csv").read_bytes() == csv_errors  # the CSV's is untouched


def test_an_errors_csv_featx_did_not_write_is_neither_replaced_nor_deleted(bad_corpus, corpus, tmp_path):
    from featx import FeatureSettings, run_extraction

    mine = tmp_path / "f.errors.csv"
    mine.write_text("my own notes\n")
    with pytest.raises(OutputError, match=r"f\.errors\.csv already exists and was not written by featx"):
        run_extraction([bad_corpus], tmp_path / "f.csv", settings=FeatureSettings(), jobs=1, progress=False)
    assert mine.read_text() == "my own notes\n"
    (corpus / "tones" / "broken.wav").unlink()
    run_extraction([corpus], tmp_path / "f.csv", settings=FeatureSettings(), jobs=1, progress=False,
                   overwrite=True)  # a clean run, told to overwrite: it has no list to write or remove
    assert mine.read_text() == "my own notes\n"
