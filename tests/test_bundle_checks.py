"""Checks on loading a bundle: every tampered field, array and model file is refused in one
line naming the file and field, before any prediction; an untouched bundle still predicts."""
from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from featx.bundle import load_bundle
from featx.errors import BundleError


def _featx(*args):
    """Run ``featx -q ARGS`` in a real subprocess; return (exit code, output). For checks that
    no warning is printed: in-process, pytest records warnings instead of printing them."""
    proc = subprocess.run([sys.executable, "-m", "featx", "-q", *[str(a) for a in args]],
                          capture_output=True, text=True, timeout=600)
    return proc.returncode, proc.stdout + proc.stderr


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
     "model_arrays.npz: model parameter n_neighbors must be 15"),
])
@pytest.mark.slow
def test_corrupt_bundle_fields_are_refused(tmp_path, trained_knn, name, edit, message, reseal):
    csv, bundle = trained_knn
    copy = _tampered_copy(bundle, tmp_path, name, edit)
    reseal(copy)
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


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _edit_json(path: Path, edit) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))  # NaN and Infinity as Python's json writes them


def _set(*keys, value):
    def edit(data):
        for key in keys[:-1]:
            data = data[key]
        data[keys[-1]] = value
    return edit


def _widen(data):  # one more feature column everywhere the JSON lists them
    data["feature_columns"].append("extra")
    if "scaler" in data:
        data["scaler"]["mean"].append(0.0)
        data["scaler"]["scale"].append(1.0)


def _widen_unlisted(data):  # as _widen, with the bundle's distance reference unlisted (so not read)
    _widen(data)
    data.get("files", {}).pop("distance", None)


def _more_classes(data):
    data["classes"].append("zz")
    if "labels" in data:
        data["labels"]["classes"].append("zz")


TAMPERED = [
    ("svm", {"preprocessing.json": _set("scaler", "mean", 0, value=math.nan)}, "scaler.mean[0]"),
    ("knn", {"preprocessing.json": _set("scaler", "scale", 1, value=math.inf)}, "scaler.scale[1]"),
    ("knn", {"preprocessing.json": _set("scaler", "scale", 2, value=0.0)}, "scaler.scale[2]"),
    ("knn", {"preprocessing.json": _set("scaler", "mean", value=[0.0, 1.0])}, "scaler.mean"),
    ("knn", {"preprocessing.json": _set("scaler", "mean", 3, value="0")}, "scaler.mean[3]"),
    ("knn", {"preprocessing.json": _set("classes", value=[])}, "classes"),
    ("knn", {"preprocessing.json": _set("classes", value=["blues", "blues"])}, "classes"),
    ("knn", {"preprocessing.json": _set("feature_columns", value="f_a_mean")}, "feature_columns"),
    ("svm", {"metadata.json": _set("params", "C", value=1e308)}, "C"),
    ("svm", {"metadata.json": _set("params", "C", value="ten")}, "params.C"),
    ("svm", {"metadata.json": _set("params", "gamma", value=-1)}, "params.gamma"),
    ("knn", {"metadata.json": _set("params", "n_neighbors", value=2.5)}, "params.n_neighbors"),
    ("knn", {"metadata.json": _set("params", value=[1, 2])}, "params"),
    ("knn", {"metadata.json": _set("format_version", value="one")}, "format_version"),
    ("knn", {"metadata.json": _set("model", value=7)}, "model"),
    ("knn", {"metadata.json": _set("model", value="no-such-model")}, "model"),
    ("knn", {"metadata.json": _set("seed", value="zero")}, "seed"),
    ("knn", {"metadata.json": _set("final_fit", value=[])}, "final_fit"),
    ("knn", {"metadata.json": _set("final_fit", "seed", value=-3)}, "final_fit.seed"),
    ("knn", {"metadata.json": _set("final_fit", "tracks", value="blues.00000")}, "final_fit.tracks"),
    ("knn", {"metadata.json": _set("training_data", "rows", value="many")}, "training_data.rows"),
    ("knn", {"metadata.json": _set("versions", "numpy", value=2)}, "versions.numpy"),
    ("knn", {"metadata.json": _set("segmented", value="no")}, "segmented"),
    ("knn", {"metadata.json": _set("settings", value=5)}, "settings"),
    ("knn", {"metadata.json": _set("classes", value=["blues", "jazz"])}, "classes"),
    ("mlp", {"metadata.json": _widen, "preprocessing.json": _widen}, "distance.npz: rows must be finite rows of 5"),
    ("mlp", {"metadata.json": _widen_unlisted, "preprocessing.json": _widen}, "input shape"),
    ("mlp", {"metadata.json": _more_classes, "preprocessing.json": _more_classes}, "output shape"),
]


@pytest.mark.parametrize("model, edits, field", TAMPERED,
                         ids=[f"{m}-{f}-{i}" for i, (m, _, f) in enumerate(TAMPERED)])
def test_a_tampered_bundle_is_refused_in_one_line(small_bundles, tmp_path, small_table, model, edits, field, invoke, one_line_error,
                                                  reseal):
    bundle = _copy(small_bundles[model], tmp_path / "b")
    for name, edit in edits.items():
        _edit_json(bundle / name, edit)
    reseal(bundle)
    with pytest.raises(BundleError) as info:
        load_bundle(bundle)
    message = str(info.value)
    assert message.startswith("corrupt bundle: ") and "\n" not in message
    assert field in message and str(bundle) in message
    one_line_error(invoke("-q", "predict", bundle, small_table), "corrupt bundle", field)


def test_tampered_model_files_are_refused(small_bundles, tmp_path, small_table, invoke, one_line_error, reseal):
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression

    bundle = _copy(small_bundles["knn"], tmp_path / "b")
    with np.load(bundle / "model_check.npz") as data:
        arrays = {k: data[k] for k in data.files}
    arrays["check_proba"][0, 0] += 0.5
    np.savez_compressed(bundle / "model_check.npz", **arrays)
    reseal(bundle)
    one_line_error(invoke("-q", "predict", bundle, small_table), "corrupt bundle", "model_check.npz", "check_proba")
    arrays["check_X"][0, 0] = np.nan
    np.savez_compressed(bundle / "model_check.npz", **arrays)
    reseal(bundle)
    one_line_error(invoke("-q", "predict", bundle, small_table), "corrupt bundle", "model_check.npz", "check_X")
    other = _copy(small_bundles["knn"], tmp_path / "c")  # another estimator in the model file
    sio.dump(LogisticRegression().fit(np.eye(4)[:, :3], [0, 1, 0, 1]), other / "model.skops")
    reseal(other)
    one_line_error(invoke("-q", "predict", other, small_table), "corrupt bundle", "model.skops", "sha256")
    (other / "model_arrays.npz").unlink()  # without the arrays, the skops file itself is checked
    one_line_error(invoke("-q", "predict", other, small_table), "corrupt bundle", "model.skops", "KNeighborsClassifier")
    hyper = _copy(small_bundles["svm"], tmp_path / "d")  # metadata that no longer describes the model
    _edit_json(hyper / "metadata.json", _set("params", "C", value=3.0))
    one_line_error(invoke("-q", "predict", hyper, small_table), "corrupt bundle", "model_arrays.npz", "C")
    (hyper / "model_arrays.npz").unlink()
    one_line_error(invoke("-q", "predict", hyper, small_table), "corrupt bundle", "model.skops", "C")


def test_tampered_arrays_of_a_0_1_0_bundle_are_refused(bundles_0_1_0, tmp_path, small_table, invoke, one_line_error):
    bundle = _copy(bundles_0_1_0 / "svm", tmp_path / "b")
    with np.load(bundle / "baseline.npz") as data:
        arrays = {k: data[k] for k in data.files}
    arrays["X"][0, 0] = np.nan
    np.savez_compressed(bundle / "baseline.npz", **arrays)
    one_line_error(invoke("-q", "predict", bundle, small_table), "corrupt bundle", "baseline.npz", "X")


def test_an_untouched_bundle_still_loads_and_predicts(small_bundles, small_table, run_cli):
    for name in ("knn", "svm"):
        result = run_cli("predict", small_bundles[name], small_table, "--format", "csv")
        frame = pd.read_csv(pd.io.common.StringIO(result.output))
        assert len(frame) == 16 and (frame["genre"] == frame["file"].str.split(".").str[0]).mean() > 0.8


@pytest.mark.slow
def test_huge_C_in_a_bundle_fails_at_once_in_a_real_process(small_bundles, tmp_path, small_table):
    """``params.C = 1e308`` used to make the refit on load run for ever."""
    bundle = _copy(small_bundles["svm"], tmp_path / "b")
    _edit_json(bundle / "metadata.json", _set("params", "C", value=1e308))
    done = subprocess.run([sys.executable, "-m", "featx", "-q", "predict", str(bundle), str(small_table)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "corrupt bundle" in done.stderr and "C" in done.stderr
