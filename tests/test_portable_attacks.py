"""featx.models.portable and model_arrays.npz under attack: crafted trees, files that are
not files, and tables far longer than the model's reference rows."""
from __future__ import annotations

import json
import os
import shutil
import signal
import tracemalloc
import warnings

import numpy as np
import pandas as pd
import pytest

import featx
from featx.bundle import load_bundle
from featx.errors import BundleError
from featx.models import portable
from featx.models.sklearn_rows import PORTABLE_ARRAYS

GENRES = ("blues", "classical", "jazz")


@pytest.fixture(scope="module")
def table(synthetic_feature_csv, tmp_path_factory):
    return synthetic_feature_csv(tmp_path_factory.mktemp("attacks") / "rows.csv", n_tracks=12, n_segments=3,
                                 classes=GENRES, seed=7, separation=1.5, track_spread=0.6, row_spread=0.5)


@pytest.fixture(scope="module")
def forest_bundle(table, tmp_path_factory):
    frame = pd.read_csv(table)
    y = frame.pop("label").to_numpy()
    folder = tmp_path_factory.mktemp("forest") / "rf"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        featx.GenreClassifier(model="random-forest").fit(frame, y).save(folder)
    assert (folder / PORTABLE_ARRAYS).is_file()
    return folder


def _arrays(folder):
    with np.load(folder / PORTABLE_ARRAYS) as data:
        return {k: data[k].copy() for k in data.files}


def _forest(arrays):
    """The forest node's fields, as views into ``arrays`` (so edits reach the file when saved)."""
    skeleton = json.loads(bytes(arrays["skeleton"]).decode())
    return {k: arrays[v["$array"]] for k, v in skeleton.items() if isinstance(v, dict) and "$array" in v}


def _save(folder, arrays):
    with open(folder / PORTABLE_ARRAYS, "wb") as fh:
        np.savez(fh, **arrays)


def _loop_to_root(f):
    """The last tree's first leaf made an inner node whose children are its own root: rows
    reaching it walked the tree again and again, once per node of the whole forest."""
    root = int(f["roots"][-1])
    leaf = int(np.flatnonzero((f["left"] == -1) & (np.arange(len(f["left"])) > root))[0])
    f["left"][leaf] = f["right"][leaf] = root
    f["feature"][leaf] = 0


def _two_parents(f):
    inner = np.flatnonzero(f["left"] != -1)
    f["right"][inner[1]] = f["left"][inner[0]]


def _root_is_a_child(f):
    f["roots"][1] = f["left"][int(f["roots"][0])]


def _root_twice(f):
    f["roots"][1] = f["roots"][0]


def _leaf_with_a_right_child(f):
    leaf = int(np.flatnonzero(f["left"] == -1)[0])
    f["right"][leaf] = int(f["roots"][0])


CRAFTED = {"a leaf looping to its root": _loop_to_root, "a node with two parents": _two_parents,
           "a root that is also a child": _root_is_a_child, "a root listed twice": _root_twice,
           "a leaf with a right child": _leaf_with_a_right_child}


@pytest.mark.parametrize("craft", sorted(CRAFTED))
def test_a_forest_that_is_not_trees_is_refused_at_loading(forest_bundle, tmp_path, craft, reseal):
    copy = shutil.copytree(forest_bundle, tmp_path / "rf")
    arrays = _arrays(copy)
    CRAFTED[craft](_forest(arrays))
    _save(copy, arrays)
    reseal(copy)
    with pytest.raises(BundleError) as err:
        load_bundle(copy)
    message = str(err.value)
    assert "\n" not in message and PORTABLE_ARRAYS in message and "do not form trees" in message, message


def test_the_forest_check_accepts_every_tree_scikit_learn_grows(forest_bundle):
    tree = portable.from_arrays(_arrays(forest_bundle))
    portable.check_tree(tree, int(tree["feature"].max()) + 1)
    with pytest.raises(ValueError, match="do not form trees"):
        _loop_to_root(tree)
        portable.check_tree(tree, int(tree["feature"].max()) + 1)


def _alarm(seconds):
    def expire(signum, frame):
        raise TimeoutError(f"still blocked after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    return previous


@pytest.mark.parametrize("kind", ["FIFO", "folder"])
def test_arrays_that_are_not_a_file_are_one_line_not_a_hang(forest_bundle, tmp_path, kind):
    copy = shutil.copytree(forest_bundle, tmp_path / "rf")
    (copy / PORTABLE_ARRAYS).unlink()
    if kind == "FIFO":
        os.mkfifo(copy / PORTABLE_ARRAYS)  # opening it for reading blocks until a writer comes
    else:
        (copy / PORTABLE_ARRAYS).mkdir()
    previous = _alarm(30)
    try:
        with pytest.raises(BundleError) as err:
            load_bundle(copy)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    message = str(err.value)
    assert "\n" not in message and PORTABLE_ARRAYS in message and f"a {kind}" in message, message


def test_a_dangling_link_in_place_of_the_arrays_falls_back_to_scikit_learn(forest_bundle, table, tmp_path):
    copy = shutil.copytree(forest_bundle, tmp_path / "rf")
    (copy / PORTABLE_ARRAYS).unlink()
    (copy / PORTABLE_ARRAYS).symlink_to(tmp_path / "nowhere.npz")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bundle = load_bundle(copy)
        assert bundle.model._portable is None
        reference = load_bundle(forest_bundle)
        frame = pd.read_csv(table)
        np.testing.assert_allclose(bundle.predict(frame)[bundle.classes].to_numpy(),
                                   reference.predict(frame)[reference.classes].to_numpy(), atol=1e-9)


def _knn(n_train=400, n_features=6, seed=0):
    from sklearn.neighbors import KNeighborsClassifier

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_train, n_features))
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5)
    model = KNeighborsClassifier(n_neighbors=5, weights="distance", algorithm="brute").fit(X, y)
    return model, rng


def test_a_long_table_is_predicted_in_bounded_memory(monkeypatch):
    """A knn's distances to its training rows are made a batch of rows at a time: the peak
    stays near one batch's matrices, where the whole table's would be 40 times larger."""
    model, rng = _knn()
    tree = portable.export(model)
    monkeypatch.setattr(portable, "BATCH_ELEMENTS", 2 ** 15)  # 32,768 distances: 81 rows a batch
    rows = rng.normal(size=(8000, 6))
    whole_matrix = len(rows) * 400 * 8  # bytes of one (rows, training rows) float64 matrix
    tracemalloc.start()
    try:
        proba = portable.predict_proba(tree, rows)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    np.testing.assert_allclose(proba, model.predict_proba(rows), rtol=0, atol=1e-9)
    assert peak < whole_matrix / 10, (peak, whole_matrix)


@pytest.mark.parametrize("batch", [1, 7, 2 ** 12])
def test_batches_give_the_probabilities_of_one_pass(monkeypatch, batch):
    model, rng = _knn(n_train=50)
    tree = portable.export(model)
    rows = rng.normal(size=(333, 6))
    whole = portable.predict_proba(tree, rows)
    monkeypatch.setattr(portable, "BATCH_ELEMENTS", batch * 50)
    np.testing.assert_allclose(portable.predict_proba(tree, rows), whole, rtol=0, atol=1e-12)
    assert portable.predict_proba(tree, rows[:0]).shape == (0, whole.shape[1])


def test_nearest_neighbours_break_ties_as_a_stable_sort():
    """Training rows at equal distance (duplicated rows) are taken lowest index first, as the
    stable sort that the arrays were checked against at saving takes them."""
    rng = np.random.default_rng(3)
    for trial in range(300):
        n, m = rng.integers(1, 12), rng.integers(1, 25)
        d = rng.integers(0, 3, size=(n, m)).astype(float) if trial % 2 else rng.normal(size=(n, m))
        k = int(rng.integers(1, m + 1))
        expected = np.sort(np.argsort(d, axis=1, kind="stable")[:, :k], axis=1)
        np.testing.assert_array_equal(portable._nearest(d, k), expected)


def test_a_knn_whose_equal_rows_disagree_is_left_to_scikit_learn(table, tmp_path):
    """Equal training rows of different genres are equally near every query, and which of them
    scikit-learn counts follows its own search order: such a knn is not exported as arrays,
    and its bundle predicts with scikit-learn (the arrays' answers differed by 0.25)."""
    from sklearn.neighbors import KNeighborsClassifier

    rng = np.random.default_rng(5)
    X = np.repeat(rng.normal(size=(20, 4)), 3, axis=0)  # every training row three times
    y = rng.integers(0, 3, size=len(X))
    model = KNeighborsClassifier(n_neighbors=4, algorithm="brute").fit(X, y)
    with pytest.raises(portable.Unsupported, match="equal training rows"):
        portable.export(model)
    agreeing = KNeighborsClassifier(n_neighbors=4, weights="distance").fit(X, np.repeat(y[::3], 3))
    rows = rng.normal(size=(30, 4))
    np.testing.assert_allclose(portable.predict_proba(portable.export(agreeing), rows),
                               agreeing.predict_proba(rows), rtol=0, atol=1e-9)

    frame = pd.read_csv(table)
    frame = pd.concat([frame, frame.assign(filename="copy_" + frame["filename"],
                                           label=np.roll(frame["label"].to_numpy(), 1))])
    labels = frame.pop("label").to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        featx.GenreClassifier(model="knn").fit(frame, labels).save(tmp_path / "knn")
        assert not (tmp_path / "knn" / PORTABLE_ARRAYS).exists()
        bundle = load_bundle(tmp_path / "knn")
        assert bundle.model._portable is None  # predicted by the skops estimator
        assert len(bundle.predict(frame)) == 2 * 12 * len(GENRES)  # one row per track, copies included
