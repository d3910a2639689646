"""featx.GenreClassifier and featx.GroupedSplit with scikit-learn's own tools, on real fits."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import featx
from featx.errors import ConfigError, DataError

REPO = Path(__file__).resolve().parents[1]

TINY_MLP = {"epochs": 4, "batch_size": 8, "patience": 0, "reduce_lr_patience": 0, "learning_rate": 0.01,
            "units": (16,)}


@pytest.fixture(scope="module")
def rows(tmp_path_factory, synthetic_feature_csv):
    """Segment rows of three separable genres, 6 tracks each, 3 segments per track."""
    path = synthetic_feature_csv(tmp_path_factory.mktemp("est") / "f.csv", n_tracks=6, n_segments=3,
                                 classes=("blues", "jazz", "rock"), seed=1, separation=3.0,
                                 track_spread=0.3, row_spread=0.2)
    frame = pd.read_csv(path)
    return frame.drop(columns="label"), frame["label"].to_numpy(), frame["filename"].str.rsplit(".", n=2).str[0]


def test_parameters_are_the_models_hyperparameters_and_training_options():
    from sklearn.base import clone

    clf = featx.GenreClassifier(model="svm", C=3)
    params = clf.get_params()
    assert params["model"] == "svm" and params["C"] == 3 and params["gamma"] is None
    assert {"epochs", "learning_rate", "valid_fraction", "multi_label"} <= set(params)
    copy = clone(clf)
    assert copy.get_params() == params and copy is not clf
    assert repr(clf) == "GenreClassifier(model='svm', C=3)"
    clf.set_params(model="knn", n_neighbors=3)
    assert clf.get_params()["n_neighbors"] == 3 and "n_neighbors" in clf.get_params()
    with pytest.raises(ValueError, match="invalid parameter 'n_trees'"):
        clf.set_params(n_trees=3)


@pytest.mark.slow
def test_bad_parameters_are_one_line_at_fit(rows):
    X, y, _ = rows
    with pytest.raises(ConfigError, match="model 'svm' has no hyperparameter 'n_neighbors'"):
        featx.GenreClassifier(model="svm", n_neighbors=3).fit(X, y)
    with pytest.raises(ConfigError, match="unknown model 'gru'"):
        featx.GenreClassifier(model="gru").fit(X, y)
    with pytest.raises(ConfigError, match="C"):
        featx.GenreClassifier(model="svm", C=-1).fit(X, y)
    with pytest.raises(DataError, match="reads mel images from a spectrogram store"):
        featx.GenreClassifier(model="cnn2d").fit(X, y)
    with pytest.raises(DataError, match="y has 3 entries"):
        featx.GenreClassifier(model="knn").fit(X, y[:3])


@pytest.mark.slow
def test_grid_search_by_name_with_grouped_folds(rows):
    from sklearn.model_selection import GridSearchCV

    X, y, tracks = rows
    cv = featx.GroupedSplit(by="track", n_splits=3, seed=0)
    for train, test in cv.split(X, y, tracks):  # no track on both sides
        assert not set(tracks.iloc[train]) & set(tracks.iloc[test])
    gtzan = pd.read_csv(REPO / "features_csv" / "features_30_sec.csv")  # the shipped Kaggle table
    search = GridSearchCV(featx.GenreClassifier(model="svm"), {"C": [0.01, 10.0]}, cv=cv)
    search.fit(gtzan.drop(columns="label"), gtzan["label"])
    assert search.best_params_ == {"C": 10.0} and 0.6 < search.best_score_ < 0.9
    assert list(search.classes_)[:2] == ["blues", "classical"] and len(search.classes_) == 10


def test_pipeline_and_cross_val_score_on_a_matrix(rows):
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y, tracks = rows
    matrix = X.drop(columns=["filename", "length"]).to_numpy()
    pipe = make_pipeline(StandardScaler(), featx.GenreClassifier(model="knn", n_neighbors=3))
    scores = cross_val_score(pipe, matrix, y, groups=tracks, cv=featx.GroupedSplit(n_splits=3))
    assert scores.shape == (3,) and scores.min() > 0.8


@pytest.mark.slow
def test_a_keras_family_fits_predicts_and_round_trips_through_a_bundle(rows, tmp_path, run_cli):
    X, y, _ = rows
    clf = featx.GenreClassifier(model="mlp", **TINY_MLP).fit(X, y)
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 3) and np.allclose(proba.sum(axis=1), 1, atol=1e-5)
    assert set(clf.predict(X)) <= set(clf.classes_) and clf.score(X, y) > 0.6
    assert list(clf.feature_names_in_) == [c for c in X.columns if c not in ("filename", "length")]
    assert not list(tmp_path.iterdir())  # fitting wrote nothing
    folder = clf.save(tmp_path / "mlp")
    csv = tmp_path / "rows.csv"
    X.assign(label=y).to_csv(csv, index=False)
    out = run_cli("predict", folder, csv, "-f", "csv")
    # fitted without cross-validation: a distance reference, no confidence record
    assert out.output.splitlines()[0].startswith("file,genre,distance_pct,blues,jazz,rock")
    run_cli("evaluate", folder, csv, "-o", tmp_path / "ev")
    loaded = featx.load_bundle(folder)
    np.testing.assert_allclose(loaded.predict_proba(X), proba, rtol=1e-5, atol=1e-6)
    assert loaded.predict(X).tolist() == clf.predict(X).tolist()


def test_labels_that_are_numbers_keep_their_order(rows):
    X, y, _ = rows
    codes = pd.Series(y).map({"blues": 10, "jazz": 2, "rock": 7}).to_numpy()
    clf = featx.GenreClassifier(model="knn", n_neighbors=3).fit(X, codes)
    assert clf.classes_.tolist() == [2, 7, 10]
    proba = clf.predict_proba(X)
    assert clf.predict(X).tolist() == clf.classes_[proba.argmax(axis=1)].tolist()
    assert clf.score(X, codes) > 0.9


@pytest.mark.slow
def test_multi_label_with_genre_lists_and_with_multi_hot_rows(rows):
    X, y, _ = rows
    lists = [[g] if i % 4 else [g, "live"] for i, g in enumerate(y)]
    clf = featx.GenreClassifier(model="knn", n_neighbors=3, multi_label=True).fit(X, lists)
    assert clf.classes_.tolist() == ["blues", "jazz", "live", "rock"]
    predicted = clf.predict(X)
    assert predicted.shape == (len(X), 4) and set(np.unique(predicted)) <= {0, 1}
    assert (predicted.sum(axis=1) >= 1).all()  # at least the most probable genre
    hot = np.zeros((len(X), 4), dtype=int)
    for i, genres in enumerate(lists):
        hot[i, [clf.classes_.tolist().index(g) for g in genres]] = 1
    net = featx.GenreClassifier(model="mlp", multi_label=True, **TINY_MLP).fit(X, hot)
    assert net.classes_.tolist() == [0, 1, 2, 3]
    assert net.predict(X).shape == (len(X), 4)
    assert 0 <= net.score(X, hot) <= 1 and net.score(X, hot) == clf.__class__.score(net, X, hot)
    with pytest.raises(DataError, match="multi_label=True"):
        featx.GenreClassifier(model="knn").fit(X, hot)


@pytest.mark.slow
def test_segment_sequences_take_their_tracks_from_groups_or_file_names(rows):
    X, y, tracks = rows
    params = {"epochs": 3, "batch_size": 4, "patience": 0, "reduce_lr_patience": 0, "units": (8,), "dense": 0}
    by_name = featx.GenreClassifier(model="segment-lstm", **params).fit(X, y)
    proba = by_name.predict_proba(X)
    per_track = pd.DataFrame(proba).groupby(tracks.to_numpy()).nunique()
    assert (per_track == 1).all().all()  # every segment carries its track's answer
    matrix = X.drop(columns=["filename", "length"]).to_numpy()
    by_groups = featx.GenreClassifier(model="segment-lstm", **params).fit(matrix, y, groups=tracks)
    assert by_groups.model_.max_segments == 3


def test_not_fitted_and_foreign_columns():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        featx.GenreClassifier().predict(np.zeros((2, 3)))


@pytest.mark.slow
def test_a_fault_filtered_split_is_one_fold(gtzan_dir):
    table = featx.read_feature_csv(gtzan_dir / "features_30_sec.csv")
    cv = featx.GroupedSplit(by="fault-filtered", split_dir=gtzan_dir / "splits" / "fault_filtered")
    folds = list(cv.split(table.frame, table.labels))
    assert cv.get_n_splits() == 1 and len(folds) == 1
    train, test = folds[0]
    lists = gtzan_dir / "splits" / "fault_filtered"

    def named(*names):
        return {line.strip().rsplit("/", 1)[-1].removesuffix(".wav") for name in names
                for line in (lists / name).read_text().splitlines() if line.strip()}

    assert set(table.tracks[train]) == named("train_filtered.txt", "valid_filtered.txt") & set(table.tracks)
    assert set(table.tracks[test]) == named("test_filtered.txt") & set(table.tracks)
