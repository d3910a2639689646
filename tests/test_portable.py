"""featx.models.portable: scikit-learn bundles predicted from plain arrays, without scikit-learn."""
from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

import featx
from featx.bundle import load_bundle
from featx.errors import BundleError
from featx.models import portable
from featx.models.sklearn_rows import CHECK_ARRAYS, PORTABLE_ARRAYS, SKOPS_MODEL

GENRES = ("blues", "classical", "jazz")


@pytest.fixture(scope="module")
def table(synthetic_feature_csv, tmp_path_factory):
    return synthetic_feature_csv(tmp_path_factory.mktemp("portable") / "rows.csv", n_tracks=12, n_segments=3,
                                 classes=GENRES, seed=4, separation=1.5, track_spread=0.6, row_spread=0.5)


def _train(csv, folder, model, **options):
    """A bundle of ``model`` fitted on every row of ``csv`` (no cross-validation: only the model counts here)."""
    frame = pd.read_csv(csv)
    y = frame.pop("label").to_numpy()
    if options.get("multi_label"):
        y = [[genre] for genre in y]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        featx.GenreClassifier(model=model, **options).fit(frame, y).save(folder)
    return folder


@pytest.fixture(scope="module")
def bundles(table, tmp_path_factory):
    root = tmp_path_factory.mktemp("bundles")
    made = {name: _train(table, root / name, name, **options) for name, options in {
        "svm": {}, "knn": {"n_neighbors": 3, "weights": "distance"}, "random-forest": {}, "ensemble": {}}.items()}
    made["svm-multi"] = _train(table, root / "svm-multi", "svm", multi_label=True)
    return made


def _both(folder, frame):
    """Probabilities of a bundle from its arrays, and from the skops estimator."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fast = load_bundle(folder)
        assert fast.model._portable is not None
        from_arrays = fast.predict(frame)[fast.classes].to_numpy()
        slow = load_bundle(folder)
        slow.model._portable = None  # the estimator read from model.skops
        return from_arrays, slow.predict(frame)[slow.classes].to_numpy()


@pytest.mark.parametrize("name", ["svm", "knn", "random-forest", "ensemble", "svm-multi"])
def test_arrays_give_scikit_learns_probabilities(bundles, table, name):
    assert (bundles[name] / PORTABLE_ARRAYS).is_file()
    frame = pd.read_csv(table)
    frame.iloc[:, 2:6] += np.random.default_rng(1).normal(0, 2.0, (len(frame), 4))  # rows it never saw
    fast, slow = _both(bundles[name], frame)
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-9)


def test_real_table_predicts_identically(gtzan_dir, tmp_path):
    csv = gtzan_dir / "features_30_sec.csv"
    folder = _train(csv, tmp_path / "svm", "svm")
    fast, slow = _both(folder, pd.read_csv(csv))
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-9)
    assert (fast.argmax(axis=1) == slow.argmax(axis=1)).all()


def test_prediction_imports_neither_scikit_learn_nor_skops(bundles, table):
    code = ("import sys, warnings; warnings.simplefilter('ignore'); from featx.bundle import load_bundle; "
            f"b = load_bundle({str(bundles['svm'])!r}); b.predict({str(table)!r}); "
            "print(sorted(m for m in ('sklearn', 'skops', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_the_estimator_is_still_read_from_skops_when_asked(bundles):
    bundle = load_bundle(bundles["knn"])
    assert type(bundle.model.estimator).__name__ == "KNeighborsClassifier"


def test_a_bundle_without_arrays_predicts_with_scikit_learn(bundles, table, tmp_path):
    import shutil

    copy = shutil.copytree(bundles["random-forest"], tmp_path / "rf")
    (copy / PORTABLE_ARRAYS).unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        old = load_bundle(copy)
        assert old.model._portable is None
        fast = load_bundle(bundles["random-forest"])
        np.testing.assert_allclose(old.predict(pd.read_csv(table))[old.classes].to_numpy(),
                                   fast.predict(pd.read_csv(table))[fast.classes].to_numpy(), atol=1e-9)


def _rewrite(folder, change):
    path = folder / PORTABLE_ARRAYS
    with np.load(path) as data:
        arrays = {k: data[k].copy() for k in data.files}
    change(arrays)
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def _skeleton(arrays):
    return json.loads(bytes(arrays["skeleton"]).decode())


def _set_skeleton(arrays, skeleton):
    arrays["skeleton"] = np.frombuffer(json.dumps(skeleton).encode(), dtype=np.uint8)


def _forest_key(arrays, field):
    return _skeleton(arrays)[field]["$array"]


TAMPERING = {
    "not a zip archive": None,
    "skeleton not JSON": lambda a: a.__setitem__("skeleton", np.frombuffer(b"{not json", dtype=np.uint8)),
    "unknown node": lambda a: _set_skeleton(a, {"type": "eval", "code": "1"}),
    "missing array": lambda a: a.pop(_forest_key(a, "threshold")),
    "child out of range": lambda a: a[_forest_key(a, "left")].__setitem__(0, 10 ** 9),
    "feature out of range": lambda a: a[_forest_key(a, "feature")].__setitem__(0, 999),
    "threshold changed": lambda a: a[_forest_key(a, "threshold")].__setitem__(slice(None), 1e9),
    "classes out of range": lambda a: a.__setitem__("classes", np.array([0, 1, 7])),
}


@pytest.mark.parametrize("damage", sorted(TAMPERING))
def test_damaged_arrays_are_one_line_naming_the_file(bundles, tmp_path, damage):
    import shutil

    copy = shutil.copytree(bundles["random-forest"], tmp_path / "rf")
    if TAMPERING[damage] is None:
        (copy / PORTABLE_ARRAYS).write_bytes(b"PK\x03\x04 these are not arrays")
    else:
        _rewrite(copy, TAMPERING[damage])
    with pytest.raises(BundleError) as err:
        load_bundle(copy)
    message = str(err.value)
    assert "\n" not in message and (PORTABLE_ARRAYS in message or CHECK_ARRAYS in message), message


def test_a_node_that_is_its_own_child_cannot_loop(bundles, tmp_path):
    """A crafted cycle in a tree ends: the walk takes at most one step per node."""
    import shutil

    copy = shutil.copytree(bundles["random-forest"], tmp_path / "rf")
    with np.load(copy / PORTABLE_ARRAYS) as data:
        arrays = {k: data[k].copy() for k in data.files}
    tree = portable.from_arrays(arrays)
    inner = int(np.flatnonzero(tree["left"] != -1)[1])
    tree["left"][inner] = tree["right"][inner] = inner
    tree["roots"][:] = inner
    proba = portable.predict_proba(tree, np.zeros((3, 4)))
    assert proba.shape[0] == 3


def test_arrays_without_the_skops_file_are_refused(bundles, tmp_path):
    import shutil

    copy = shutil.copytree(bundles["svm"], tmp_path / "svm")
    (copy / SKOPS_MODEL).unlink()
    with pytest.raises(BundleError, match=r"model\.skops: missing"):
        load_bundle(copy)


def test_an_estimator_it_does_not_cover_is_saved_without_arrays():
    from sklearn.naive_bayes import GaussianNB

    X = np.random.default_rng(0).normal(size=(30, 3))
    model = GaussianNB().fit(X, np.arange(30) % 3)
    with pytest.raises(portable.Unsupported, match="GaussianNB"):
        portable.export(model)


def test_check_tree_refuses_shapes_that_do_not_chain():
    from sklearn.linear_model import LogisticRegression

    X = np.random.default_rng(0).normal(size=(30, 3))
    tree = portable.export(LogisticRegression().fit(X, np.arange(30) % 3))
    portable.check_tree(tree, 3)
    with pytest.raises(ValueError, match="logistic node"):
        portable.check_tree(tree, 4)
