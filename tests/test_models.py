"""The model object: every registered model's family, the per-epoch hook, and a new model
added by one registry entry (ARCHITECTURE.md's worked example), trained for real."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from featx.data.labels import LabelEncoding
from featx.data.table import read_feature_csv
from featx.models.base import ModelFamily
from featx.models.params import Param
from featx.models.registry import MODELS, ModelSpec, create, get_model
from featx.training.config import TrainConfig
from featx.training.cv import cross_validate


@pytest.fixture(scope="module")
def table(tmp_path_factory, synthetic_feature_csv):
    path = synthetic_feature_csv(tmp_path_factory.mktemp("models") / "t.csv", n_tracks=6, n_segments=3,
                                 classes=("a", "b", "c"), seed=2, separation=3.0, track_spread=0.3,
                                 row_spread=0.2)
    return read_feature_csv(path)


def test_every_registered_model_has_a_family_that_says_what_it_reads():
    inputs = {"rows", "segments", "images"}
    for spec in MODELS.values():
        family = spec.family
        assert issubclass(family, ModelFamily), spec.name
        assert spec.input in inputs and spec.kind in ("keras", "sklearn")
        assert bool(spec.image_kinds({})) == (spec.input == "images"), spec.name
        model = create(TrainConfig(model=spec.name).validate(), LabelEncoding().fit(["x", "y"]))
        assert type(model) is family and model.name == spec.name and model.n_classes == 2


@pytest.mark.slow
def test_on_epoch_sees_every_epoch_and_can_stop_a_run(table):
    seen = []
    config = TrainConfig(model="mlp", epochs=3, batch_size=8, patience=0, reduce_lr_patience=0, folds=2,
                         valid_fraction=0.2, params={"units": (8,)})
    cross_validate(table, config, progress=False, final=False,
                   on_epoch=lambda fold, epoch, logs: seen.append((fold, epoch, sorted(logs))))
    assert [(f, e) for f, e, _ in seen] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    assert {"loss", "val_loss", "val_accuracy"} <= set(seen[0][2])

    class Stop(Exception):
        pass

    def stop_at_second(fold, epoch, logs):
        if epoch == 1:
            raise Stop(fold)

    with pytest.raises(Stop):
        cross_validate(table, config, progress=False, final=False, on_epoch=stop_at_second)
    folds = []
    cross_validate(table, TrainConfig(model="knn", folds=3, params={"n_neighbors": 3}), progress=False,
                   final=False, on_fold=lambda fold, predictions: folds.append((fold, len(predictions))))
    assert [f for f, _ in folds] == [0, 1, 2] and sum(n for _, n in folds) == table.n_rows


def make_logistic(*, seed: int = 0, C: float = 1.0):
    """Multinomial logistic regression (the worked example of ARCHITECTURE.md)."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, max_iter=5000, random_state=seed)


def test_a_new_model_is_one_registry_entry(table, tmp_path, run_cli, monkeypatch):
    import featx

    spec = ModelSpec("logistic", "sklearn_rows:SklearnRows", make_logistic,
                     {"C": Param("float", 1.0, "inverse regularisation strength", low=0, high=1e6,
                                 open_low=True)},
                     "scikit-learn logistic regression")
    monkeypatch.setitem(MODELS, "logistic", spec)
    assert get_model("logistic") is spec
    csv = table.path
    run_cli("train", csv, "-m", "logistic", "-p", "C=3", "--folds", "3", "-o", tmp_path / "lr")
    out = run_cli("predict", tmp_path / "lr", csv, "-f", "csv")
    frame = pd.read_csv(pd.io.common.StringIO(out.output))
    assert (frame["genre"] == frame["file"].str.split(".").str[0]).mean() > 0.9
    assert "logistic" in run_cli("models").output
    rows = pd.read_csv(csv)
    clf = featx.GenreClassifier(model="logistic", C=3).fit(rows.drop(columns="label"), rows["label"])
    assert clf.score(rows.drop(columns="label"), rows["label"]) > 0.9
    assert np.allclose(clf.predict_proba(rows).sum(axis=1), 1.0)
