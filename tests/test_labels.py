"""Label encodings (one genre or several per row) and the output heads that follow them."""
import json

import numpy as np
import pytest

from featx.data.labels import LabelEncoding
from featx.errors import ConfigError, DataError
from featx.models.keras_segments import track_labels
from featx.training.metrics import compute_metrics
from featx.models.preprocessing import Preprocessing


def test_single_label_encoding_round_trips():
    enc = LabelEncoding().fit(["rock", "jazz", "blues", "rock"])
    assert enc.classes_ == ["blues", "jazz", "rock"] and not enc.multi_label
    y = enc.encode(["rock", "blues", "jazz"])
    assert y.dtype == np.int64 and y.tolist() == [2, 0, 1]
    assert enc.decode(y).tolist() == ["rock", "blues", "jazz"]
    assert (enc.activation, enc.loss) == ("softmax", "sparse_categorical_crossentropy")
    proba = np.array([[0.1, 0.2, 0.7], [0.5, 0.3, 0.2]])
    assert enc.decode_proba(proba).tolist() == ["rock", "blues"]
    again = LabelEncoding.from_dict(json.loads(json.dumps(enc.to_dict())))
    assert again == enc and again.encode(["jazz"]).tolist() == [1]
    # one genre per row: a ';' is part of the name, as before
    assert LabelEncoding().fit(["rock;blues", "jazz"]).classes_ == ["jazz", "rock;blues"]
    with pytest.raises(DataError, match=r"label 'pop' is not one of the model's classes \(blues, jazz, rock\)"):
        enc.encode(["rock", "pop"])


def test_several_genres_per_row_parse_and_round_trip():
    enc = LabelEncoding(multi_label=True).fit(["rock;blues", "jazz", "blues"])
    assert enc.classes_ == ["blues", "jazz", "rock"]
    y = enc.encode(["rock;blues", "jazz", " rock ; jazz "])
    assert y.dtype == np.float32 and y.shape == (3, 3)
    np.testing.assert_array_equal(y, [[1, 0, 1], [0, 1, 0], [0, 1, 1]])
    assert enc.decode(y).tolist() == ["blues;rock", "jazz", "jazz;rock"]
    assert (enc.activation, enc.loss) == ("sigmoid", "binary_crossentropy")
    # every genre at or above the threshold; the most probable one when none is
    proba = np.array([[0.9, 0.1, 0.6], [0.2, 0.3, 0.1]])
    assert enc.decode_proba(proba).tolist() == ["blues;rock", "jazz"]
    data = json.loads(json.dumps(enc.to_dict()))
    assert data == {"classes": ["blues", "jazz", "rock"], "multi_label": True, "separator": ";"}
    again = LabelEncoding.from_dict(data)
    assert again == enc and again != LabelEncoding().fit(["blues", "jazz", "rock"])
    np.testing.assert_array_equal(again.encode(["blues;rock"]), [[1, 0, 1]])
    with pytest.raises(DataError, match=r"label 'rock;;blues' has an empty genre"):
        enc.encode(["rock;;blues"])
    with pytest.raises(DataError, match="'pop' is not one of the model's classes"):
        enc.encode(["rock;pop"])
    with pytest.raises(DataError, match="not fitted"):
        LabelEncoding(multi_label=True).encode(["rock"])


def test_bundled_preprocessing_keeps_the_encoding_and_reads_older_files():
    X = np.arange(12, dtype=float).reshape(4, 3)
    prep = Preprocessing.for_labels(["a", "b", "c"], ["x;y", "y", "x", "y"], multi_label=True).fit(X)
    data = json.loads(json.dumps(prep.to_dict()))
    assert data["classes"] == ["x", "y"] and data["labels"]["multi_label"] is True
    again = Preprocessing.from_dict(data)
    assert again.labels == prep.labels and again.classes == ["x", "y"]
    np.testing.assert_array_equal(again.encode(["x;y"]), [[1, 1]])
    # preprocessing.json of a bundle saved before encodings were stored: one genre per row
    del data["labels"]
    old = Preprocessing.from_dict(data)
    assert not old.labels.multi_label and old.encode(["y", "x"]).tolist() == [1, 0]
    data["labels"] = {"classes": ["x", "z"], "multi_label": False}
    with pytest.raises(ValueError, match="labels and classes"):
        Preprocessing.from_dict(data)


def test_track_targets_work_for_codes_and_multi_hot_rows():
    row_track = np.array([0, 0, 1, 1, 1])
    assert track_labels(np.array([2, 2, 0, 0, 0]), row_track, 2).tolist() == [2, 0]
    hot = np.array([[1, 0, 1], [1, 0, 1], [0, 1, 0], [0, 1, 0], [0, 1, 0]], dtype=np.float32)
    np.testing.assert_array_equal(track_labels(hot, row_track, 2), [[1, 0, 1], [0, 1, 0]])
    hot[4] = [1, 1, 0]
    with pytest.raises(DataError, match="rows of one track carry different labels"):
        track_labels(hot, row_track, 2, "t.csv")


def test_metrics_of_several_genres_per_row_are_the_multilabel_ones():
    import pandas as pd

    enc = LabelEncoding(multi_label=True).fit(["a;b", "b"])
    frame = pd.DataFrame({"fold": ["f", "f"], "track": ["t", "u"], "label": ["a;b", "b"],
                          "predicted": ["a;b", "a"], "prob_a": [0.9, 0.3], "prob_b": [0.8, 0.1]})
    metrics = compute_metrics(frame, enc, thresholds=0.5)
    track = metrics["track"]
    # row t: {a, b} found exactly; row u: nothing reaches 0.5, b missed
    assert metrics["multi_label"] is True
    assert track["subset_accuracy"] == pytest.approx(0.5)
    assert track["hamming_loss"] == pytest.approx(0.25)
    assert track["f1_micro"] == pytest.approx(2 * 2 / (2 * 2 + 0 + 1))
    assert track["per_class"]["b"]["support"] == 2 and track["per_class"]["b"]["recall"] == 0.5


@pytest.mark.parametrize("builder, shape", [("build_mlp", (6,)), ("build_cnn", (6,)), ("build_lstm", (6,)),
                                            ("build_segment_lstm", (3, 6))])
def test_builders_take_the_output_activation(builder, shape):
    from featx.models import keras_tabular

    build = getattr(keras_tabular, builder)
    small = {"units": (4,)} if builder != "build_cnn" else {"filters": (4,), "dense": 4}
    sigmoid = build(shape, 3, activation="sigmoid", **small)
    softmax = build(shape, 3, **small)
    assert sigmoid.output_shape == softmax.output_shape == (None, 3)
    assert sigmoid.get_layer("genre").activation.__name__ == "sigmoid"
    assert softmax.get_layer("genre").activation.__name__ == "softmax"
    x = np.random.default_rng(0).normal(size=(4, *shape)).astype("float32")
    p_sig, p_soft = np.asarray(sigmoid(x)), np.asarray(softmax(x))
    np.testing.assert_allclose(p_soft.sum(axis=1), 1, atol=1e-5)
    assert np.all((p_sig > 0) & (p_sig < 1)) and not np.allclose(p_sig.sum(axis=1), 1, atol=1e-3)
    with pytest.raises(ConfigError, match="activation must be one of softmax, sigmoid. Received: activation='relu'"):
        build(shape, 3, activation="relu", **small)


@pytest.mark.slow
def test_members_average_sigmoid_heads():
    from featx.models.keras_tabular import build_mlp

    model = build_mlp((5,), 4, units=(4,), members=2, activation="sigmoid")
    assert model.get_layer("m1_genre").activation.__name__ == "sigmoid"
    assert model.output_shape == (None, 4)


@pytest.mark.slow
def test_a_multi_hot_target_trains_a_sigmoid_network():
    """The multi-label path is representable end to end in one fit: loss and head follow the encoding."""
    from featx.data.frames import table_from_arrays
    from featx.models.registry import create
    from featx.training.config import TrainConfig

    rng = np.random.default_rng(0)
    enc = LabelEncoding(multi_label=True).fit(["a;b", "b", "a", "c"])
    labels = ["a;b", "b", "a", "c"] * 8
    y = enc.encode(labels)
    X = (y @ rng.normal(size=(3, 5)) + rng.normal(0, 0.1, size=(len(y), 5))).astype("float32")
    config = TrainConfig(model="mlp", epochs=2, batch_size=8, patience=0, reduce_lr_patience=0,
                         multi_label=True, params={"units": (8,)}).validate()
    table = table_from_arrays(X, labels)
    model = create(config, enc, table=table).fit(table, np.arange(len(y)), [], seed=0, progress=False)
    network, history = model.estimator, model.history
    assert network.get_layer("genre").activation.__name__ == "sigmoid"
    assert network.loss == "binary_crossentropy" and len(history["loss"]) == 2
    assert np.all(np.isfinite(history["loss"]))
    proba = model.predict_proba(table)
    assert proba.shape == (len(y), 3) and np.all((proba >= 0) & (proba <= 1))
