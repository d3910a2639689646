"""Bundle formats: bundles of featx 0.1.0 still load and predict the same; new scikit-learn
bundles load without a fit and rebuild only the types featx trusts."""
from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pandas as pd
import pytest

from featx.bundle import load_bundle
from featx.errors import BundleError

REPO_FEATURES = {"svm": "features_30_sec.csv", "mlp": "features_30_sec.csv", "knn-multi": "features_30_sec.csv",
                 "seglstm": "features_3_sec.classical_jazz_rock.csv"}


@pytest.mark.parametrize("name", sorted(REPO_FEATURES))
def test_a_0_1_0_bundle_loads_and_predicts_what_0_1_0_predicted(bundles_0_1_0, name):
    folder = bundles_0_1_0 / name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # saved by featx 0.1.0: the version warning is expected
        bundle = load_bundle(folder)
        got = bundle.predict(bundles_0_1_0.parents[2] / "features_csv" / REPO_FEATURES[name])
    expected = pd.read_csv(folder / "expected.csv", keep_default_na=False)
    assert got["file"].tolist() == expected["file"].tolist()
    assert got["genre"].tolist() == expected["genre"].tolist()
    if "genres" in expected:
        assert got["genres"].tolist() == expected["genres"].tolist()
    np.testing.assert_allclose(got[bundle.classes].to_numpy(), expected[bundle.classes].to_numpy(),
                               rtol=0, atol=1e-6)


def test_the_0_1_0_version_is_named_when_it_loads(bundles_0_1_0):
    with pytest.warns(UserWarning, match=r"featx 0\.1\.0 \(now "):
        load_bundle(bundles_0_1_0 / "svm")


@pytest.fixture(scope="module")
def svm_bundle(tmp_path_factory, synthetic_feature_csv, run_cli):
    root = tmp_path_factory.mktemp("skops")
    csv = synthetic_feature_csv(root / "t.csv", n_tracks=8, n_segments=1, classes=("a", "b"), seed=0,
                                separation=2.0, track_spread=0.5, row_spread=0.3)
    run_cli("train", csv, "-m", "svm", "--folds", "2", "-o", root / "svm")
    return root / "svm", csv


def test_a_scikit_learn_bundle_loads_without_a_fit(svm_bundle, bundles_0_1_0, monkeypatch):
    import featx.models.sklearn_rows as family

    def no_fit(*args, **kwargs):
        raise AssertionError("the model was fitted while loading")

    monkeypatch.setattr(family, "fit_estimator", no_fit)
    folder, csv = svm_bundle
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["format_version"] == 2 and meta["files"]["model"] == "model.skops"
    assert load_bundle(folder).predict(csv)["genre"].nunique() == 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(BundleError, match="fitted while loading"):  # 0.1.0 bundles are refitted
            load_bundle(bundles_0_1_0 / "svm")


def test_a_model_file_holding_untrusted_types_is_refused_before_anything_is_built(svm_bundle, tmp_path, reseal):
    import os

    import skops.io as sio
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer
    from sklearn.svm import SVC

    folder = tmp_path / "b"
    shutil.copytree(svm_bundle[0], folder)
    crafted = make_pipeline(FunctionTransformer(os.getcwd, validate=False), SVC())  # a function to call
    sio.dump(crafted, folder / "model.skops")
    reseal(folder)
    # the arrays predicted from stand for the saved file only
    with pytest.raises(BundleError, match=r"model\.skops: sha256 must be the digest model_arrays\.npz records"):
        load_bundle(folder)
    (folder / "model_arrays.npz").unlink()
    with pytest.raises(BundleError, match=r"model\.skops: holds types featx does not load \(posix\.getcwd\)"):
        load_bundle(folder)


def test_a_newer_format_asks_for_an_upgrade(svm_bundle, tmp_path):
    folder = tmp_path / "b"
    shutil.copytree(svm_bundle[0], folder)
    meta = json.loads((folder / "metadata.json").read_text())
    meta["format_version"] = 3
    (folder / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="format 3 is newer than this featx understands \\(2\\); upgrade"):
        load_bundle(folder)
