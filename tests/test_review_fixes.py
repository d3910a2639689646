"""Defects found by review: tampered markers, outputs onto inputs, contradicting labels,
empty headers, corrupt bundles, and library errors that spoke of command-line options."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def _featx(*args, cwd=None):
    """Run ``featx -q ARGS`` in a real subprocess; return (exit code, output)."""
    proc = subprocess.run([sys.executable, "-m", "featx", "-q", *[str(a) for a in args]],
                          capture_output=True, text=True, cwd=cwd, timeout=600)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def trained(tmp_path_factory, synthetic_feature_csv):
    """A features CSV and a knn bundle trained on it, made once for the module."""
    root = tmp_path_factory.mktemp("trained")
    csv = synthetic_feature_csv(root / "few.csv", n_tracks=8, n_segments=1, classes=["a", "b"],
                                seed=1, separation=5.0, track_spread=0.3, row_spread=0.1)
    code, out = _featx("train", csv, "-m", "knn", "-o", root / "bundle", "--folds", "2")
    assert code == 0, out
    return csv, root / "bundle"


# ---------------------------------------------------------------------------
# 1. a tampered marker never makes --overwrite delete outside the folder


@pytest.mark.parametrize("key,entry", [
    ("files", "../victim/precious.txt"),
    ("files", "ABSOLUTE"),
    ("folders", "../victim"),
    ("files", "lnk/precious.txt"),
    ("scratch", "ABSOLUTE_DIR"),
    ("files", ""),
])
def test_tampered_marker_deletes_nothing(tmp_path, trained, key, entry):
    csv, _ = trained
    victim = tmp_path / "victim"
    victim.mkdir()
    precious = victim / "precious.txt"
    precious.write_text("keep me")
    out = tmp_path / "bundle"
    code, text = _featx("train", csv, "-m", "knn", "-o", out, "--folds", "2")
    assert code == 0, text
    (out / "lnk").symlink_to(victim, target_is_directory=True)
    entry = {"ABSOLUTE": str(precious), "ABSOLUTE_DIR": str(victim)}.get(entry, entry)
    marker_path = out / ".featx.json"
    marker = json.loads(marker_path.read_text())
    marker[key] = marker[key] + [entry]
    marker_path.write_text(json.dumps(marker))
    before = sorted(p.name for p in out.iterdir())

    code, text = _featx("train", csv, "-m", "knn", "-o", out, "--folds", "2", "--overwrite")
    assert code == 1, text
    assert "Traceback" not in text
    assert len(text.strip().splitlines()) == 1, text
    assert "corrupt marker" in text and str(marker_path) in text
    assert precious.read_text() == "keep me"
    assert sorted(p.name for p in out.iterdir()) == before


def test_listed_link_is_never_followed(tmp_path):
    from featx.io.guard import claim_folder, clear_folder

    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("keep")
    out = claim_folder(tmp_path / "out", "featx-output")
    (out / "link.txt").symlink_to(victim / "keep.txt")
    (out / "dirlink").symlink_to(victim, target_is_directory=True)
    marker = json.loads((out / ".featx.json").read_text())
    marker["files"].append("link.txt")
    marker["folders"].append("dirlink")
    (out / ".featx.json").write_text(json.dumps(marker))
    clear_folder(out)
    assert (victim / "keep.txt").read_text() == "keep"
    assert (out / "dirlink").is_symlink()


# ---------------------------------------------------------------------------
# 2. an output never lands on an input or inside a featx folder


def test_predict_output_onto_its_input_csv_is_refused(tmp_path, trained):
    csv, bundle = trained
    copy = tmp_path / "few.csv"
    copy.write_bytes(csv.read_bytes())
    code, text = _featx("predict", bundle, copy, "-o", copy, "-f", "csv")
    assert code == 1 and "Traceback" not in text and len(text.strip().splitlines()) == 1, text
    assert "is one of the inputs" in text
    assert copy.read_bytes() == csv.read_bytes()


def test_predict_output_inside_a_bundle_is_refused(tmp_path, trained):
    csv, bundle = trained
    metadata = (bundle / "metadata.json").read_bytes()
    for target in (bundle / "metadata.json", bundle / "new.csv"):
        code, text = _featx("predict", bundle, csv, "-o", target, "-f", "csv")
        assert code == 1 and "Traceback" not in text and len(text.strip().splitlines()) == 1, text
        assert "inside the featx model bundle" in text
    assert (bundle / "metadata.json").read_bytes() == metadata
    assert not (bundle / "new.csv").exists()
    code, text = _featx("predict", bundle, csv, "-o", tmp_path / "preds.csv", "-f", "csv")
    assert code == 0, text
    assert (tmp_path / "preds.csv").read_text().count("\n") == 17


def test_extract_output_onto_its_labels_csv_is_refused(tmp_path, corpus):
    labels = tmp_path / "labels.csv"
    labels.write_text("file,label\ntones.00000.wav,a\ntones.00001.wav,a\n"
                      "clicks.00000.wav,b\nclicks.00001.wav,b\n")
    before = labels.read_text()
    code, text = _featx("extract", corpus, "-o", labels, "--labels", labels, "-j", "1")
    assert code == 1 and "Traceback" not in text and len(text.strip().splitlines()) == 1, text
    assert "is one of the inputs" in text
    assert labels.read_text() == before


# ---------------------------------------------------------------------------
# 4. an empty header cell is refused, not renamed and trained on


def test_empty_header_cell_is_refused(tmp_path, trained):
    import featx

    csv, _ = trained
    lines = csv.read_text().splitlines()
    cells = lines[0].split(",")
    cells[5] = ""
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join([",".join(cells), *lines[1:]]) + "\n")
    with pytest.raises(featx.DataError, match=r"column 6 has an empty name"):
        featx.read_feature_csv(bad)
    code, text = _featx("train", bad, "-m", "knn", "-o", tmp_path / "b", "--folds", "2")
    assert code == 1 and "Traceback" not in text and len(text.strip().splitlines()) == 1, text
    assert str(bad) in text and "column 6 has an empty name" in text
    assert not (tmp_path / "b").exists()


def test_empty_parquet_column_name_is_refused(tmp_path, trained):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    import featx

    csv, _ = trained
    table = pa.Table.from_pandas(__import__("pandas").read_csv(csv), preserve_index=False)
    table = table.rename_columns([*table.column_names[:5], "", *table.column_names[6:]])
    path = tmp_path / "bad.parquet"
    pq.write_table(table, path)
    with pytest.raises(featx.DataError, match=r"column 6 has an empty name"):
        featx.read_feature_csv(path)


# ---------------------------------------------------------------------------
# 6. library errors name parameters, not command-line options


def test_library_errors_name_parameters(tmp_path):
    import numpy as np

    import featx
    from featx.sweep.space import space_from_options
    from featx.models.registry import get_model

    with pytest.raises(featx.BundleError) as info:
        featx.load_bundle(tmp_path / "nothing")
    assert " -o " not in str(info.value) and "featx train" not in str(info.value)
    with pytest.raises(ValueError) as info:
        featx.extract_features(np.zeros((3, 3, 3)), sr=22050)
    assert isinstance(info.value, featx.AudioError) and "shape=(3, 3, 3)" in str(info.value)
    for params in (["n_neighbors"], ["n_neighbors=1,,3"], []):
        with pytest.raises(featx.ConfigError) as info:
            space_from_options(get_model("knn"), params)
        assert "--" not in str(info.value), str(info.value)


def test_library_sources_hold_no_option_names():
    import ast
    import re

    import featx

    root = Path(featx.__file__).parent
    flag = re.compile(r"(?:^|[\s(])--[a-z]")
    offenders = []
    for path in root.rglob("*.py"):
        if "cli" in path.relative_to(root).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and node.exc is not None:
                texts = [n.value for n in ast.walk(node.exc)
                         if isinstance(n, ast.Constant) and isinstance(n.value, str)]
                offenders += [f"{path.name}:{node.lineno}: {t}" for t in texts if flag.search(t)]
    assert not offenders, offenders


# ---------------------------------------------------------------------------
# 3. a labels CSV that contradicts itself, or is ambiguous, is refused


def _labels_csv(path, rows):
    path.write_text("file,label\n" + "".join(f"{f},{lab}\n" for f, lab in rows))
    return path


def test_two_rows_giving_one_file_two_labels_are_refused(tmp_path, corpus):
    labels = _labels_csv(tmp_path / "labels.csv", [
        ("tones/tones.00000.wav", "pop"), ("tones.00000.wav", "jazz"),
        ("tones.00001.wav", "a"), ("clicks.00000.wav", "b"), ("clicks.00001.wav", "b")])
    code, text = _featx("extract", corpus, "-o", tmp_path / "f.csv", "--labels", labels, "-j", "1")
    assert code == 1 and "Traceback" not in text and len(text.strip().splitlines()) == 1, text
    assert "tones.00000.wav" in text and "'pop'" in text and "'jazz'" in text
    assert "row 2" in text and "row 3" in text
    assert not (tmp_path / "f.csv").exists()


def test_a_bare_name_matching_two_files_is_refused(tmp_path, tone, write_wav):
    root = tmp_path / "music"
    write_wav(root / "AlbumA" / "01.wav", tone(440, 3.5))
    write_wav(root / "AlbumB" / "01.wav", tone(660, 3.5))
    labels = _labels_csv(tmp_path / "labels.csv", [("01.wav", "rock")])
    code, text = _featx("extract", root, "-o", tmp_path / "f.csv", "--labels", labels, "-j", "1")
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


# ---------------------------------------------------------------------------
# 5. a corrupt bundle is named as such, before any prediction


def _tampered_copy(bundle, tmp_path, name, edit):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    path = copy / name
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    return copy


@pytest.mark.parametrize("name, edit, message", [
    ("preprocessing.json", lambda d: d["scaler"]["scale"].__setitem__(0, 1e-300),
     "preprocessing.json: scaler.scale[0] must lie in"),
    ("preprocessing.json", lambda d: d["scaler"]["scale"].__setitem__(0, 5e-324),
     "preprocessing.json: scaler.scale[0]"),
    ("preprocessing.json", lambda d: d["scaler"]["mean"].__setitem__(0, 1e308),
     "preprocessing.json: scaler.mean[0] must lie in"),
    ("preprocessing.json", lambda d: d.pop("labels"), "preprocessing.json: labels must be present"),
    ("metadata.json", lambda d: d["config"].__setitem__("folds", 0), "metadata.json: config.folds"),
    ("metadata.json", lambda d: d.pop("config"), "metadata.json: config must be present"),
    ("metadata.json", lambda d: d["params"].__setitem__("n_neighbors", 15),
     "model.skops: model parameter n_neighbors must be 15"),
])
def test_corrupt_bundle_fields_are_refused(tmp_path, trained, name, edit, message):
    csv, bundle = trained
    copy = _tampered_copy(bundle, tmp_path, name, edit)
    code, text = _featx("predict", copy, csv)
    # one line: no overflow warning or warning source line before the error
    assert code == 1 and "Traceback" not in text and len(text.strip().splitlines()) == 1, text
    assert "corrupt bundle" in text and message in text, text


def test_baseline_rows_of_a_0_1_0_bundle_must_match_metadata(tmp_path, bundles_0_1_0):
    import numpy as np

    import featx

    copy = _tampered_copy(bundles_0_1_0 / "svm", tmp_path, "metadata.json", lambda d: None)
    with np.load(copy / "baseline.npz") as data:
        arrays = {k: data[k] for k in data.files}
    arrays["X"] = np.tile(arrays["X"], (3, 1))
    arrays["y"] = np.tile(arrays["y"], 3)
    np.savez_compressed(copy / "baseline.npz", **arrays)
    with pytest.raises(featx.BundleError, match=r"baseline.npz: X must hold the 1000 training rows"):
        featx.load_bundle(copy)
