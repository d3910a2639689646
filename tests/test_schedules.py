"""Learning-rate schedules of every Keras model, and image augmentation inside real training.

The stores here hold random images written straight to a store (no audio), with a
genre-dependent brightness, so that tiny networks train in moments.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from featx.data.store import StoreWriter
from featx.errors import ConfigError
from featx.features.spectrograms import SpectrogramSettings
from featx.training.config import TrainConfig

pytestmark = pytest.mark.slow  # every test here trains, reads real data or runs real processes

SETTINGS = SpectrogramSettings(kinds="mel", image_size=(16, 24))
TINY_CNN = ("-p", "filters=4,4", "-p", "dense=8")


def write_store(path, *, n_tracks=4, n_segments=3, genres=("rock", "jazz"), repeat=1, seed=0):
    """A store of random images; ``repeat`` writes every track again under other ids."""
    rng = np.random.default_rng(seed)
    h, w = SETTINGS.image_shape("mel")
    tracks = [(g, k, rng.normal(gi, 1.0, size=(n_segments, h, w)).astype(np.float32))
              for gi, g in enumerate(genres) for k in range(n_tracks)]
    with StoreWriter(path, SETTINGS) as writer:
        for r in range(repeat):
            for g, k, images in tracks:
                name = f"{g}.{r * 1000 + k:05d}"
                writer.append({"mel": images}, key=f"{g}/{name}.wav", filename=f"{name}.wav", label=g,
                              length=66149)
    return path


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return write_store(tmp_path_factory.mktemp("sched") / "store")


# --------------------------------------------------------------------------- configuration


@pytest.mark.parametrize("model,schedule", [("mlp", "plateau"), ("cnn2d", "constant"), ("mfcc-cnn", "constant"),
                                            ("cnn2d-base", "plateau"), ("multihead", "polynomial")])
def test_each_model_has_its_schedule_by_default(model, schedule):
    config = TrainConfig(model=model).validate()
    assert config.lr_schedule == schedule
    if model == "cnn2d-base":
        assert config.reduce_lr_factor == 0.1
    # an explicit choice wins over the model's default
    assert TrainConfig(model=model, lr_schedule="constant").validate().lr_schedule == "constant"


@pytest.mark.parametrize("kwargs,match", [
    ({"lr_schedule": "cosine"}, "lr_schedule='cosine'"),
    ({"lr_schedule": "polynomial", "learning_rate": 1e-5, "min_lr": 1e-5}, "min_lr=1e-05"),
    ({"min_lr": -1.0}, "min_lr=-1"),
    ({"mixup": 0.2}, "mixup=0.2"),
    ({"time_masks": 2}, "time_masks=2"),
])
def test_bad_schedule_or_augmentation_is_refused(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        TrainConfig(model="mlp", **kwargs).validate()


def test_augmentation_is_accepted_for_image_models_and_recorded():
    config = TrainConfig(model="cnn2d", time_masks=2, freq_masks=1, mask_width=4, time_shift=0.1,
                         mixup=0.2).validate()
    again = TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))).validate()
    assert again == config and again.mixup == 0.2 and again.time_masks == 2


# --------------------------------------------------------------------------- the schedule in a real fit


def _recorded_fit(config, X, y):
    """Fit a tiny Dense network compiled with featx's options; the learning rate after each epoch."""
    from featx.runtime.keras import import_keras
    from featx.data.labels import LabelEncoding
    from featx.models.keras_fit import compile_options

    keras = import_keras()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((X.shape[1],)), keras.layers.Dense(2, activation="softmax")])
    steps = math.ceil(len(X) / config.batch_size)
    kwargs, callbacks = compile_options(config, LabelEncoding().fit(["a", "b"]), steps, "loss")
    model.compile(**kwargs)
    seen = []

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append((int(self.model.optimizer.iterations.numpy()),
                         float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))))

    model.fit(X, y, epochs=config.epochs, batch_size=config.batch_size, verbose=0,
              callbacks=[*callbacks, Record()])
    return seen, steps


def test_polynomial_schedule_decays_with_power_two_to_the_floor():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 3)).astype(np.float32), rng.integers(0, 2, 40)
    config = TrainConfig(model="mlp", epochs=5, batch_size=8, learning_rate=0.1, min_lr=0.001,
                         lr_schedule="polynomial").validate()
    seen, steps = _recorded_fit(config, X, y)
    assert steps == 5 and [it for it, _ in seen] == [5, 10, 15, 20, 25]
    for epoch, (_, lr) in enumerate(seen, start=1):
        expected = (0.1 - 0.001) * (1 - epoch / 5) ** 2 + 0.001
        assert lr == pytest.approx(expected, rel=1e-5)
    assert seen[-1][1] == pytest.approx(0.001)


def test_constant_schedule_keeps_the_learning_rate():
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(24, 3)).astype(np.float32), rng.integers(0, 2, 24)
    config = TrainConfig(model="mlp", epochs=3, batch_size=8, learning_rate=0.02,
                         lr_schedule="constant").validate()
    seen, _ = _recorded_fit(config, X, y)
    assert [lr for _, lr in seen] == pytest.approx([0.02] * 3)


def test_plateau_schedule_cuts_the_rate_by_its_factor():
    # a constant target: the loss stops improving at once, so the plateau callback acts
    X, y = np.zeros((16, 3), dtype=np.float32), np.zeros(16, dtype=int)
    config = TrainConfig(model="mlp", epochs=4, batch_size=16, learning_rate=1e-9, min_lr=1e-12,
                         lr_schedule="plateau", reduce_lr_patience=1, reduce_lr_factor=0.1).validate()
    seen, _ = _recorded_fit(config, X, y)
    assert seen[-1][1] < 1e-9 * 0.5
    assert all(lr in (pytest.approx(1e-9 * 0.1 ** k) for k in range(5)) for _, lr in seen)


def test_every_keras_table_model_follows_the_polynomial_schedule(synthetic_feature_csv, tmp_path):
    """Through the model object's fit: the optimizer ends at min_lr after the planned steps."""
    from featx.data.labels import LabelEncoding
    from featx.data.table import read_feature_csv
    from featx.models.registry import create

    table = read_feature_csv(synthetic_feature_csv(tmp_path / "f.csv", n_tracks=4, n_segments=2,
                                                   classes=("a", "b"), seed=0, separation=3.0,
                                                   track_spread=0.3, row_spread=0.3))
    labels = LabelEncoding().fit(table.labels)
    rows = np.arange(table.n_rows)
    for name, params in (("mlp", {"units": (8,)}), ("cnn", {"filters": (4,), "dense": 8})):
        config = TrainConfig(model=name, params=params, epochs=3, batch_size=4, learning_rate=0.05,
                             min_lr=0.0005, patience=0, lr_schedule="polynomial").validate()
        fitted = create(config, labels, table=table).fit(table, rows, rows[:0], seed=0, progress=False)
        model, history = fitted.estimator, fitted.history
        assert len(history["loss"]) == 3
        assert int(model.optimizer.iterations.numpy()) == 3 * math.ceil(len(rows) / 4)
        assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(0.0005, rel=1e-5)


# --------------------------------------------------------------------------- images


def test_image_model_with_polynomial_schedule_and_augmentation(store):
    """A fold of cnn2d on a store: the schedule reaches its floor, mixup trains on blended one-hot
    targets, and the held-out rows are predicted from the plain images."""
    from featx.data.labels import LabelEncoding
    from featx.data.store_table import StoreTable
    from featx.models.registry import create

    table = StoreTable(store)
    config = TrainConfig(model="cnn2d", params={"filters": (4, 4), "dense": 8}, epochs=2, batch_size=4,
                         lr_schedule="polynomial", learning_rate=0.01, min_lr=0.0001, patience=0,
                         time_masks=1, freq_masks=1, mask_width=2, time_shift=0.2, mixup=0.4).validate()
    rows = np.arange(table.n_rows)
    train, test = rows[table.tracks != "rock.00000"], rows[table.tracks == "rock.00000"]
    fitted = create(config, LabelEncoding().fit(table.labels), table=table)
    fitted.fit(table, train, rows[:0], seed=0, progress=False)
    proba = fitted.predict_proba(table, test)
    model, prep, history = fitted.estimator, fitted.preprocessing, fitted.history
    assert model.loss == "categorical_crossentropy"
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(0.0001, rel=1e-5)
    assert len(history["loss"]) == 2
    plain = np.asarray(model(prep.model_input(table.store.read(test, prep.kinds)), training=False))
    np.testing.assert_allclose(proba, plain, rtol=1e-5, atol=1e-6)


def test_training_batches_are_augmented_and_validation_batches_are_not(store):
    from featx.data.labels import LabelEncoding
    from featx.data.store_table import StoreTable
    from featx.models.augment import Augmentation
    from featx.models.keras_images import store_batches
    from featx.models.preprocessing import ImagePreprocessing

    table = StoreTable(store)
    labels = LabelEncoding().fit(table.labels)
    y = labels.encode(table.labels)
    rows = np.arange(table.n_rows)
    prep = ImagePreprocessing(["mel"], labels, table.image_shapes(["mel"])).fit(table.store, rows)
    aug = Augmentation(time_masks=2, mask_width=1, seed=3)
    plain = store_batches(table.store, rows, y, prep, batch_size=5)
    augmented = store_batches(table.store, rows, y, prep, batch_size=5, augmentation=aug)
    x0, y0 = plain[1]
    x1, y1 = augmented[1]
    np.testing.assert_array_equal(y0, y1)
    assert not np.array_equal(x0, x1)
    for image in x1:  # two frames zeroed per image, nothing else changed
        assert int((image == 0).all(axis=0).sum()) == 2
    # the same batch asked for again is the same (seeded by epoch and batch)
    np.testing.assert_array_equal(augmented[1][0], x1)


def test_cli_records_the_options_and_refuses_them_for_table_models(store, tmp_path, run_cli,
                                                                    synthetic_feature_csv):
    out = tmp_path / "bundle"
    run_cli("train", store, "-m", "cnn2d", "-o", out, "--folds", "2", "--no-refit", "--epochs", "1",
            "--batch-size", "4", "--valid-fraction", "0", *TINY_CNN, "--lr-schedule", "polynomial",
            "--time-masks", "1", "--freq-masks", "2", "--mask-width", "3", "--time-shift", "0.1",
            "--time-shift-mode", "zero", "--mixup", "0.3")
    config = json.loads((out / "metadata.json").read_text())["config"]
    assert config["lr_schedule"] == "polynomial"
    assert (config["time_masks"], config["freq_masks"], config["mask_width"]) == (1, 2, 3)
    assert (config["time_shift"], config["time_shift_mode"], config["mixup"]) == (0.1, "zero", 0.3)

    csv = synthetic_feature_csv(tmp_path / "f.csv", n_tracks=3, n_segments=1, classes=("a", "b"), seed=0,
                                separation=3.0, track_spread=0.3, row_spread=0.3)
    result = run_cli("train", csv, "-m", "mlp", "-o", tmp_path / "m", "--mixup", "0.2", ok=False)
    assert "--mixup" in result.output and "image" in result.output
    assert len(result.output.strip().splitlines()) == 1
    result = run_cli("train", store, "-m", "cnn2d", "-o", tmp_path / "m2", *TINY_CNN, "--freq-masks", "4",
                     "--mask-width", "5", ok=False)
    assert "--freq-masks" in result.output and "16 rows" in result.output
