"""Bundles: round trips, safe loading, corruption, version warnings, column checks."""
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from featx.bundle import load_bundle, prepare_output_dir, save_bundle
from featx.data.table import read_feature_csv
from featx.errors import BundleError, DataError, OutputError
from featx.features.settings import FeatureSettings
from featx.training.config import TrainConfig
from featx.training.cv import cross_validate

TINY = {"epochs": 3, "batch_size": 16, "patience": 2, "reduce_lr_patience": 1, "learning_rate": 0.01}


def write_table(path, *, settings=None, n_tracks=8, seed=0):
    """Whole-file rows; with ``settings`` the gtzan columns and a sidecar."""
    rng = np.random.default_rng(seed)
    cols = settings.feature_columns() if settings else ["f1", "f2", "f3", "f4"]
    rows = []
    for ci, cls in enumerate(("x", "y")):
        for t in range(n_tracks):
            rows.append([f"{cls}.{t:05d}.wav", 661500, *rng.normal(ci * 2, 1, size=len(cols)), cls])
    pd.DataFrame(rows, columns=["filename", "length", *cols, "label"]).to_csv(path, index=False)
    if settings:
        Path(str(path) + ".settings.json").write_text(json.dumps({"settings": settings.to_dict()}))
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Tiny mlp, svm and ensemble bundles trained on the same table with known settings."""
    root = tmp_path_factory.mktemp("bundles")
    settings = FeatureSettings(preset="gtzan", segment_seconds=None)
    table = read_feature_csv(write_table(root / "train.csv", settings=settings))
    out = {}
    for name, params in (("mlp", {"units": "8"}), ("svm", {"C": "2"}), ("ensemble", {"nn_units": "8"})):
        result = cross_validate(table, TrainConfig(model=name, folds=2, seed=3, params=params, **TINY),
                                progress=False)
        directory = prepare_output_dir(root / name, overwrite=False)
        save_bundle(result, directory, table=table)
        out[name] = (directory, result, table)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mlp", "svm", "ensemble"])
def test_round_trip_gives_identical_predictions(trained, name):
    directory, result, table = trained[name]
    bundle = load_bundle(directory)
    X = result.preprocessing.transform(table.X)
    if name == "mlp":
        expected = np.asarray(result.model.estimator.predict(X, verbose=0))
    else:
        expected = result.model.estimator.predict_proba(X)
    np.testing.assert_allclose(bundle.predict_table(table), expected, rtol=1e-5, atol=1e-6)
    meta = bundle.metadata
    assert meta["model"] == name and meta["seed"] == 3
    assert meta["feature_columns"] == table.feature_columns and meta["classes"] == ["x", "y"]
    assert meta["settings"] == table.settings.to_dict()
    assert meta["config"]["folds"] == 2 and meta["config"]["params"]
    assert {"featx", "numpy", "scikit-learn"} <= set(meta["versions"])
    assert meta["training_data"]["rows"] == table.n_rows and len(meta["training_data"]["sha256"]) == 64


@pytest.mark.slow
def test_bundle_holds_no_pickles(trained):
    import zipfile

    directory = trained["svm"][0]
    with np.load(directory / "model_check.npz", allow_pickle=False) as data:
        assert data["check_X"].dtype.kind == "f"
    with zipfile.ZipFile(directory / "model.skops") as archive:  # skops: a schema and plain arrays
        assert "schema.json" in archive.namelist()
    prep = json.loads((directory / "preprocessing.json").read_text())
    assert len(prep["scaler"]["mean"]) == len(prep["feature_columns"])
    with np.load(directory / "distance.npz", allow_pickle=False) as data:  # the training rows' distances
        assert data["rows"].dtype.kind == "f" and data["reference"].dtype.kind == "f"
    arrays = ("model_check.npz", "model_arrays.npz", "distance.npz")
    for name in arrays:  # plain arrays: loading them with pickles refused works
        with np.load(directory / name, allow_pickle=False) as data:
            assert all(data[key].dtype != object for key in data.files)
    assert not any(p.suffix in (".pkl", ".joblib", ".pickle", ".npz") and p.name not in arrays
                   for p in directory.rglob("*"))


def test_loading_refuses_code_in_a_keras_file(trained, tmp_path, reseal):
    import keras
    import shutil

    directory = tmp_path / "evil"
    shutil.copytree(trained["mlp"][0], directory)
    inputs = keras.Input(shape=(57,))
    outputs = keras.layers.Lambda(lambda x: x[:, :2] * 0 + 0.5)(inputs)
    keras.Model(inputs, outputs).save(directory / "model.keras")
    reseal(directory)
    with pytest.raises(BundleError, match="cannot load the Keras model"):
        load_bundle(directory)


def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


@pytest.mark.slow
def test_missing_and_corrupt_bundles(trained, tmp_path, reseal):
    with pytest.raises(BundleError, match="no such bundle folder"):
        load_bundle(tmp_path / "none")
    d = _copy(trained["mlp"][0], tmp_path / "a")
    (d / "model.keras").write_bytes(b"not a zip file")
    reseal(d)
    with pytest.raises(BundleError, match=r"model\.keras: cannot (load|read it as a zip archive)"):
        load_bundle(d)
    d = _copy(trained["mlp"][0], tmp_path / "b")
    (d / "metadata.json").write_text("{broken")
    with pytest.raises(BundleError, match=r"metadata\.json: corrupt JSON"):
        load_bundle(d)
    d = _copy(trained["mlp"][0], tmp_path / "c")
    (d / "preprocessing.json").unlink()
    with pytest.raises(BundleError, match=r"preprocessing\.json: missing"):
        load_bundle(d)
    d = _copy(trained["svm"][0], tmp_path / "d")
    (d / "model.skops").write_bytes(b"PK\x03\x04 truncated")
    reseal(d)
    with pytest.raises(BundleError, match=r"model\.skops: sha256 must be the digest model_arrays\.npz records"):
        load_bundle(d)
    (d / "model_arrays.npz").unlink()  # then the skops file itself is read, and refused
    reseal(d)
    with pytest.raises(BundleError, match=r"model\.skops: cannot read"):
        load_bundle(d)
    d = _copy(trained["mlp"][0], tmp_path / "e")
    meta = json.loads((d / "metadata.json").read_text())
    meta["classes"] = ["x", "y", "z"]
    (d / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="corrupt bundle"):
        load_bundle(d)


@pytest.mark.slow
def test_version_mismatch_warns(trained, tmp_path):
    d = _copy(trained["mlp"][0], tmp_path / "old")
    meta = json.loads((d / "metadata.json").read_text())
    meta["versions"]["scikit-learn"] = "0.1.0"
    (d / "metadata.json").write_text(json.dumps(meta))
    with pytest.warns(UserWarning, match=r"scikit-learn 0\.1\.0"):
        load_bundle(d)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_bundle(trained["mlp"][0])


def test_columns_and_settings_must_match(trained, tmp_path):
    bundle = load_bundle(trained["mlp"][0])
    settings = FeatureSettings(preset="gtzan", segment_seconds=None)
    csv = write_table(tmp_path / "other.csv", settings=settings, seed=1)
    pd.read_csv(csv).drop(columns=["tempo"]).to_csv(tmp_path / "short.csv", index=False)
    with pytest.raises(DataError, match="missing column.*tempo"):
        bundle.predict_table(read_feature_csv(tmp_path / "short.csv"))
    other = FeatureSettings(preset="gtzan", segment_seconds=None, hop_length=256)
    write_table(tmp_path / "hop.csv", settings=other)
    with pytest.raises(DataError, match="hop_length=256 \\(model: 512\\)"):
        bundle.predict_table(read_feature_csv(tmp_path / "hop.csv"))
    metrics, preds = bundle.evaluate(read_feature_csv(csv))
    assert metrics["track"]["n"] == 16 and len(preds) == 16


def test_output_folder_protection(tmp_path):
    d = tmp_path / "out"
    d.mkdir()
    (d / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="not empty"):
        prepare_output_dir(d, overwrite=False)
    with pytest.raises(OutputError, match="was not written by featx; refusing to replace it"):
        prepare_output_dir(d, overwrite=True)
    assert (d / "notes.txt").exists()
