"""Parquet feature tables: written by extract with the CSV's columns and numbers, read by
every command that reads a feature CSV, with the same checks."""
from __future__ import annotations

import csv
import json
import os
import re
import shutil

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
import pyarrow.parquet as pq  # noqa: E402


@pytest.fixture
def both(corpus, tmp_path, run_cli):
    """The tiny corpus extracted once as CSV and once as Parquet."""
    run_cli("extract", corpus, "-o", tmp_path / "f.csv", "-j", "1")
    run_cli("extract", corpus, "-o", tmp_path / "f.parquet", "-j", "1")
    return tmp_path / "f.csv", tmp_path / "f.parquet"


def test_parquet_holds_the_csv_columns_and_exactly_its_numbers(both):
    from featx import FeatureSettings

    csv_path, pq_path = both
    rows = list(csv.reader(open(csv_path, newline="")))
    table = pq.read_table(pq_path)
    assert table.column_names == rows[0]
    assert table.schema.field("filename").type == pa.string()
    assert table.schema.field("length").type == pa.int64()
    assert table.schema.field("label").type == pa.string()
    features = rows[0][2:-1]
    assert all(table.schema.field(c).type == pa.float64() for c in features)
    assert table.column("filename").to_pylist() == [r[0] for r in rows[1:]]
    assert table.column("length").to_pylist() == [int(r[1]) for r in rows[1:]]
    assert table.column("label").to_pylist() == [r[-1] for r in rows[1:]]
    # every float64 is the value the CSV's text parses to, bit for bit
    text = np.array([[float(v) for v in r[2:-1]] for r in rows[1:]])
    stored = np.column_stack([table.column(c).to_numpy() for c in features])
    assert text.view(np.int64).tolist() == stored.view(np.int64).tolist()
    # the settings live in the file's metadata as well as in the record beside it
    meta = json.loads(table.schema.metadata[b"featx"])
    sidecar = json.loads((pq_path.parent / "f.parquet.settings.json").read_text())
    assert meta["settings"] == sidecar["settings"] == FeatureSettings().to_dict()
    assert meta["columns"] == rows[0]


def test_reading_parquet_gives_the_csv_table(both, tmp_path):
    from featx import read_feature_csv

    csv_path, pq_path = both
    a, b = read_feature_csv(csv_path), read_feature_csv(pq_path)
    assert a.feature_columns == b.feature_columns and a.settings == b.settings
    assert np.array_equal(a.X, b.X) and b.X.dtype == np.float64
    assert list(a.frame.columns) == list(b.frame.columns)
    assert a.frame.equals(b.frame)
    assert list(a.tracks) == list(b.tracks)
    # one matrix: the frame's feature columns are views of it, not a second copy
    assert np.shares_memory(b.X, b.frame[b.feature_columns[0]].to_numpy())
    # without the record beside it, the settings come from the file's own metadata
    alone = tmp_path / "alone" / "g.parquet"
    alone.parent.mkdir()
    shutil.copy(pq_path, alone)
    c = read_feature_csv(alone)
    assert c.settings == a.settings and np.array_equal(c.X, a.X)


def test_train_on_parquet_predicts_like_csv(both, tmp_path, run_cli):
    csv_path, pq_path = both
    for name, table in (("c", csv_path), ("p", pq_path)):
        run_cli("train", table, "--model", "knn", "--folds", "2", "-p", "n_neighbors=1",
                "-o", tmp_path / name)
    assert (tmp_path / "c" / "predictions.csv").read_text() == (tmp_path / "p" / "predictions.csv").read_text()
    result = run_cli("predict", tmp_path / "p", pq_path, "-f", "csv")
    assert "tones.00000" in result.output


def test_parquet_rerun_is_up_to_date_and_reads_only_changed_files(corpus, tmp_path, run_cli, write_wav, tone):
    from featx import FeatureSettings, run_extraction

    out = tmp_path / "f.parquet"
    first = run_extraction([corpus], out, settings=FeatureSettings(), jobs=1, progress=False)
    assert first.n_extracted == 4
    again = run_extraction([corpus], out, settings=FeatureSettings(), jobs=1, progress=False)
    assert again.up_to_date
    write_wav(corpus / "tones" / "tones.00001.wav", tone(880, 6.5))
    third = run_extraction([corpus], out, settings=FeatureSettings(), jobs=1, progress=False)
    assert third.n_extracted == 1 and not third.up_to_date
    fresh = tmp_path / "fresh.parquet"
    run_extraction([corpus], fresh, settings=FeatureSettings(), jobs=1, progress=False)
    assert pq.read_table(out).equals(pq.read_table(fresh))
    assert not list(tmp_path.glob(".*.tmp*"))  # no temporary file left behind


def _write(path, columns: dict, metadata=None):
    table = pa.table(columns)
    if metadata:
        table = table.replace_schema_metadata(metadata)
    pq.write_table(table, path)
    return path


@pytest.mark.parametrize("case, expected", [
    ("nan", "missing value in column 'f1' (row 2, filename b.0.wav); expected a finite number"),
    ("inf", "inf value in column 'f1' (row 1, filename a.0.wav); expected a finite number"),
    ("text", "non-numeric value 'x' in column 'f1'"),
    ("nofilename", "no 'filename' column"),
    ("nolabel", "no 'label' column"),
    ("garbage", "not a readable Parquet file"),
])
def test_bad_parquet_is_one_named_line(tmp_path, run_cli, case, expected):
    path = tmp_path / "bad.parquet"
    good = {"filename": ["a.0.wav", "b.0.wav"], "length": [1, 1], "f1": [1.0, 2.0], "label": ["x", "y"]}
    if case == "nan":
        _write(path, dict(good, f1=[1.0, None]))
    elif case == "inf":
        _write(path, dict(good, f1=[float("inf"), 1.0]))
    elif case == "text":
        _write(path, dict(good, f1=["x", "1"]))
    elif case == "nofilename":
        _write(path, {k: v for k, v in good.items() if k != "filename"})
    elif case == "nolabel":
        _write(path, {k: v for k, v in good.items() if k != "label"})
    else:
        path.write_bytes(b"PAR1 this is not parquet")
    result = run_cli("train", path, "--model", "knn", "-o", tmp_path / "m", ok=False)
    assert expected in result.output, result.output
    assert str(path) in result.output and len(result.output.strip().splitlines()) == 1


def test_duplicate_parquet_column_is_refused(tmp_path):
    from featx import read_feature_csv
    from featx.errors import DataError

    arrays = [pa.array(["a.0.wav"]), pa.array([1]), pa.array([1.0]), pa.array([2.0]), pa.array(["x"])]
    table = pa.Table.from_arrays(arrays, names=["filename", "length", "f1", "f1", "label"])
    path = tmp_path / "dup.parquet"
    pq.write_table(table, path)
    with pytest.raises(DataError, match="column 'f1' appears more than once"):
        read_feature_csv(path)


@pytest.mark.parametrize("names, expected", [
    (["filename", "length", "tempo", " tempo", "label"],
     "column 'tempo' appears more than once in the header (columns 3 and 4, spelled 'tempo' and ' tempo'"),
    (["filename", "length", "f1\t", "\u00a0f1", "label"], "column 'f1' appears more than once"),
    (["filename", "length", "f1", "f2", "label", " label"], "column 'label' appears more than once"),
    ([" filename", "length", "f1", "filename", "label"], "column 'filename' appears more than once"),
    (["filename", "length", "f1", " ", "label"], "column 4 has an empty name"),
])
def test_csv_parquet_and_dataframe_read_column_names_by_one_rule(tmp_path, run_cli, names, expected):
    """Parquet once took 'tempo' and ' tempo' as two columns, which the CSV reader refused; train
    then wrote a bundle that evaluate and predict rejected."""
    import pandas as pd

    from featx.data.frames import table_from_frame
    from featx.errors import DataError

    by_name = {"filename": ["a.0.wav", "b.0.wav"], "length": [1, 1], "label": ["x", "y"]}
    values = [by_name.get(n.strip(), [1.0 + i, 2.0 + i]) for i, n in enumerate(names)]
    parquet = tmp_path / "t.parquet"
    pq.write_table(pa.Table.from_arrays([pa.array(v) for v in values], names=names), parquet)
    csv_path = tmp_path / "t.csv"
    with open(csv_path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(names)
        writer.writerows(zip(*values))
    for path in (csv_path, parquet):
        out = tmp_path / f"m-{path.suffix[1:]}"
        result = run_cli("train", path, "--model", "knn", "-o", out, ok=False)
        assert result.output.startswith(f"Error: {path}: ") and expected in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1 and not out.exists()
    frame = pd.DataFrame(dict(enumerate(values)))
    frame.columns = names
    with pytest.raises(DataError, match=re.escape(expected)):
        table_from_frame(frame, require_label=True)


def test_parquet_output_never_written_through_a_symlink(corpus, tmp_path, run_cli):
    target = tmp_path / "elsewhere.parquet"
    target.write_bytes(b"keep")
    link = tmp_path / "f.parquet"
    os.symlink(target, link)
    result = run_cli("extract", corpus, "-o", link, "-j", "1", ok=False)
    assert "symbolic link" in result.output
    assert target.read_bytes() == b"keep"


def test_empty_parquet_column_name_is_refused(tmp_path, trained_knn):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    import featx

    csv, _ = trained_knn
    table = pa.Table.from_pandas(__import__("pandas").read_csv(csv), preserve_index=False)
    table = table.rename_columns([*table.column_names[:5], "", *table.column_names[6:]])
    path = tmp_path / "bad.parquet"
    pq.write_table(table, path)
    with pytest.raises(featx.DataError, match=r"column 6 has an empty name"):
        featx.read_feature_csv(path)
