"""Model builders and the registry."""
import numpy as np
import pytest

from featx.models import keras_tabular as nets
from featx.errors import ConfigError
from featx.models.registry import MODELS, get_model

keras = pytest.importorskip("keras")


def test_lstm_matches_the_study_architecture():
    model = nets.build_lstm((58,), 10)
    assert model.count_params() == 511_370
    assert [l.units for l in model.layers if l.name.startswith("lstm_")] == [256, 128, 64]
    assert model.get_layer("genre").units == 10
    assert not model.compiled  # builders return uncompiled models
    assert nets.build_lstm((57,), 10).count_params() == 511_370  # recurrent params do not depend on length


def test_builder_hyperparameters_change_the_network():
    small = nets.build_lstm((20,), 3, units=(8, 4), dropout=0.0)
    assert [l.name for l in small.layers] == ["features", "as_sequence", "lstm_1", "lstm_2", "genre"]
    mlp = nets.build_mlp((20,), 4, units=(16, 8), batch_norm=False, dropout=0.1)
    assert [mlp.get_layer(f"dense_{i}").units for i in (1, 2)] == [16, 8]
    assert not any("batch_norm" in l.name for l in mlp.layers)
    cnn = nets.build_cnn((20,), 4, filters=(4, 8, 8), kernel_size=5, dense=16)
    assert cnn.get_layer("conv_3").filters == 8 and cnn.get_layer("conv_1").kernel_size == (5,)


@pytest.mark.parametrize("name, shape", [("lstm", (12,)), ("mlp", (12,)), ("cnn", (12,)),
                                         ("segment-lstm", (5, 12))])
def test_every_keras_model_outputs_probabilities(name, shape):
    spec = get_model(name)
    params = spec.resolve({"units": "8"} if "units" in spec.params else {"filters": "4"})
    model = spec.builder(shape, 3, **params)
    x = np.random.default_rng(0).normal(size=(4, *shape)).astype("float32")
    out = np.asarray(model(x, training=False))
    assert out.shape == (4, 3)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)


def test_segment_lstm_masks_padding():
    rng = np.random.default_rng(1)
    padded = nets.build_segment_lstm((6, 5), 3, units=(7,), dense=4, dropout=0.0)
    exact = nets.build_segment_lstm((4, 5), 3, units=(7,), dense=4, dropout=0.0)
    exact.set_weights(padded.get_weights())
    seq = rng.normal(size=(1, 4, 5)).astype("float32")
    with_pad = np.concatenate([seq, np.zeros((1, 2, 5), "float32")], axis=1)
    np.testing.assert_allclose(np.asarray(padded(with_pad)), np.asarray(exact(seq)), rtol=1e-5, atol=1e-6)
    # without the mask the zero steps would change the output
    other = with_pad.copy()
    other[0, 4:] = 0.5
    assert not np.allclose(np.asarray(padded(other)), np.asarray(exact(seq)), atol=1e-4)


@pytest.mark.parametrize("call, pattern", [
    (lambda: nets.build_lstm((10, 2), 3), "input_shape"),
    (lambda: nets.build_mlp((10,), 1), "num_classes"),
    (lambda: nets.build_lstm((10,), 3, units=()), "units"),
    (lambda: nets.build_cnn((10,), 3, dropout=1.5), "dropout"),
])
def test_builders_reject_bad_arguments(call, pattern):
    with pytest.raises(ConfigError, match=pattern):
        call()


def test_registry_names_and_hyperparameters():
    assert set(MODELS) == {"lstm", "segment-lstm", "mlp", "cnn", "svm", "ensemble", "knn", "random-forest",
                           "cnn2d", "cnn2d-base", "mfcc-cnn", "multihead", "vgg16", "musicnn"}
    with pytest.raises(ConfigError, match="unknown model 'transformer'; expected one of lstm, "):
        get_model("transformer")
    lstm = get_model("lstm")
    assert lstm.resolve({})["units"] == (256, 128, 64)
    assert lstm.resolve({"depth": 2})["units"] == (256, 128)
    assert lstm.resolve({"depth": "4"})["units"] == (256, 128, 64, 32)
    assert lstm.resolve({"units": "32,16", "dropout": "0.5"}) == {"units": (32, 16), "dropout": 0.5}
    with pytest.raises(ConfigError, match="no hyperparameter 'C'; expected one of depth, dropout, units"):
        lstm.resolve({"C": 1})
    with pytest.raises(ConfigError, match="depth=3 but units"):
        lstm.resolve({"units": "8,4", "depth": 3})
    with pytest.raises(ConfigError, match="expected comma-separated positive integers"):
        lstm.resolve({"units": "big"})
    with pytest.raises(ConfigError, match="one of uniform, distance"):
        get_model("knn").resolve({"weights": "cosine"})
    assert get_model("svm").resolve({"C": "3"})["C"] == 3.0
    assert get_model("ensemble").resolve({"nn_units": "32,16"})["nn_units"] == (32, 16)


@pytest.mark.parametrize("weights, pattern", [
    ({"nn_weight": -1.0}, r"nn_weight; expected a finite number in \[0, 1e\+06\]. Received: nn_weight=-1.0"),
    ({"svm_weight": 0.0, "nn_weight": 0.0, "logistic_weight": 0.0}, "every member weight is 0"),
])
def test_ensemble_rejects_bad_weights(weights, pattern):
    spec = get_model("ensemble")
    with pytest.raises(ConfigError, match=pattern):
        spec.builder(seed=0, **spec.resolve(weights))


def test_ensemble_probabilities_are_the_weighted_mean_of_its_members():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(0, 1, (30, 4)), rng.normal(1.5, 1, (30, 4)), rng.normal(-1.5, 1, (30, 4))])
    y = np.repeat([0, 1, 2], 30)
    spec = get_model("ensemble")
    params = spec.resolve({"nn_units": "16", "svm_weight": 2.0, "logistic_weight": 0.5})
    model = spec.builder(seed=1, **params).fit(X, y)
    members = dict(model.named_estimators_)
    assert set(members) == {"svm", "nn", "logistic"}
    expected = (2.0 * members["svm"].predict_proba(X) + members["nn"].predict_proba(X)
                + 0.5 * members["logistic"].predict_proba(X)) / 3.5
    np.testing.assert_allclose(model.predict_proba(X), expected, rtol=1e-12)
    alone = spec.builder(seed=1, **spec.resolve({"nn_weight": 0.0, "logistic_weight": 0.0})).fit(X, y)
    assert list(alone.named_estimators_) == ["svm"]


def test_the_ensemble_svm_member_is_calibrated():
    from sklearn.calibration import CalibratedClassifierCV

    from featx.models.registry import get_model

    spec = get_model("ensemble")
    ensemble = spec.builder(seed=0, **spec.resolve({"nn_units": "8"}))
    members = dict(ensemble.estimators)
    assert isinstance(members["svm"], CalibratedClassifierCV)
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 1, (20, 3)), rng.normal(2, 1, (20, 3))])
    y = np.repeat([0, 1], 20)
    ensemble.fit(X, y)
    proba = ensemble.named_estimators_["svm"].predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert ((proba.argmax(axis=1) == y).mean()) > 0.8


def test_loading_parameters_shares_the_bounds():
    """Bundles are loaded through ModelSpec.resolve, as train and sweep resolve theirs."""
    from featx.models.registry import get_model

    for params in ({"C": 1e308}, {"C": float("inf")}, {"C": float("nan")}, {"units": [64] * 100},
                   {"depth": 10**5}, {"n_neighbors": 0}):
        model = "mlp" if "units" in params or "depth" in params else ("knn" if "n_neighbors" in params else "svm")
        with pytest.raises(ConfigError, match="bad value for"):
            get_model(model).resolve(params)
    assert get_model("svm").resolve({"C": "1e6", "gamma": "0.01"}) == {"C": 1e6, "gamma": "0.01", "kernel": "rbf"}
    assert get_model("mlp").resolve({"depth": 4})["units"] == (512, 256, 128, 64)
