"""VGG16 transfer model: weights from a local file, frozen base, fine-tuned blocks, refusals."""
from __future__ import annotations

import numpy as np
import pytest

from featx.errors import ConfigError
from featx.models import transfer
from featx.models.transfer import build_vgg16, fine_tuned_layers

pytestmark = pytest.mark.slow  # every test here trains, reads real data or runs real processes

VGG16_NOTOP_PARAMS = 14_714_688  # VGG16's 13 convolutions: sum of 3*3*in*out + out


def _count(weights) -> int:
    return int(sum(np.prod(w.shape) for w in weights))


@pytest.fixture(scope="module")
def keras():
    from featx.runtime.keras import import_keras

    return import_keras()


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory, keras):
    """VGG16(include_top=False) with seeded random weights, saved by the test."""
    keras.utils.set_random_seed(7)
    base = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
    path = tmp_path_factory.mktemp("vgg") / "vgg16_notop.weights.h5"
    base.save_weights(str(path))
    return path, [w.copy() for w in base.get_weights()]


def test_weights_from_local_file_are_loaded(weights_file, keras):
    path, saved = weights_file
    keras.utils.set_random_seed(123)  # a different initialisation: only the file can match
    model = build_vgg16((48, 40), 4, weights=path)
    loaded = model.get_layer("vgg16").get_weights()
    assert len(loaded) == len(saved) == 26
    for a, b in zip(loaded, saved):
        np.testing.assert_array_equal(a, b)
    fresh = build_vgg16((48, 40), 4, weights=None).get_layer("vgg16").get_weights()
    assert not np.array_equal(fresh[0], saved[0])


def test_frozen_base_trains_only_the_head(keras):
    model = build_vgg16((128, 128), 10, weights=None)
    # head: flatten 4x4x512 -> dense 128 -> 10 outputs
    head = (4 * 4 * 512 * 128 + 128) + (128 * 10 + 10)
    assert _count(model.trainable_weights) == head == 1_049_994
    assert _count(model.weights) == VGG16_NOTOP_PARAMS + head
    assert fine_tuned_layers(model) == []
    assert model.get_layer("genre").activation.__name__ == "softmax"
    assert model.get_layer("dropout").rate == 0.5
    assert model.get_layer("dense").units == 128


def test_fine_tune_one_block_unfreezes_exactly_block5(keras):
    model = build_vgg16((64, 64), 3, weights=None, fine_tune_blocks=1, activation="sigmoid")
    names = [layer.name for layer in fine_tuned_layers(model)]
    assert names == ["block5_conv1", "block5_conv2", "block5_conv3"]
    block5 = 3 * (3 * 3 * 512 * 512 + 512)
    head = (2 * 2 * 512 * 128 + 128) + (128 * 3 + 3)
    assert _count(model.trainable_weights) == block5 + head
    frozen = [layer.name for layer in model.get_layer("vgg16").layers if layer.weights and not layer.trainable]
    assert frozen and all(not name.startswith("block5") for name in frozen)
    assert model.get_layer("genre").activation.__name__ == "sigmoid"
    two = build_vgg16((64, 64), 3, weights=None, fine_tune_blocks=2)
    assert {layer.name.split("_")[0] for layer in fine_tuned_layers(two)} == {"block4", "block5"}


def test_imagenet_offline_gives_one_line(tmp_path, keras):
    # a real download attempt into an empty cache: where it succeeds, the machine is online
    try:
        path = transfer.imagenet_weights(cache_dir=tmp_path)
    except ConfigError as exc:
        message = str(exc)
    else:
        pytest.skip(f"this machine is online: Keras downloaded {path}")
    assert "\n" not in message
    assert transfer.IMAGENET_FILE in message
    assert str(tmp_path / "models") in message
    assert "weights=PATH" in message and transfer.IMAGENET_URL in message
    assert not list((tmp_path / "models").glob("*.h5"))  # no half-downloaded file left


def test_build_with_imagenet_offline_raises_the_same_line(keras):
    import os
    from pathlib import Path

    cached = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras") / "models" / transfer.IMAGENET_FILE
    if cached.exists():
        pytest.skip(f"ImageNet weights already cached at {cached}")
    try:
        build_vgg16((32, 32), 2, weights="imagenet")
    except ConfigError as exc:
        assert "\n" not in str(exc) and transfer.IMAGENET_FILE in str(exc)
        assert str(cached.parent) in str(exc)
    else:
        pytest.skip("this machine is online: the ImageNet weights were downloaded")


def test_small_images_refused_naming_the_minimum():
    with pytest.raises(ConfigError, match=r"at least 32x32.*image_size=\(32, 130\).*input_shape=\(20, 130\)"):
        build_vgg16((20, 130), 10, weights=None)
    with pytest.raises(ConfigError, match="at least 32"):
        build_vgg16((64, 64), 10, weights=None, image_size=(16, 64))


def test_small_images_resized_inside_the_model(keras):
    model = build_vgg16((20, 130), 3, weights=None, image_size=(32, 130))
    assert model.get_layer("resize").output.shape[1:] == (32, 130, 1)
    out = model.predict(np.zeros((2, 20, 130), dtype="float32"), verbose=0)
    assert out.shape == (2, 3)


def test_bad_settings_refused(tmp_path, weights_file):
    for kwargs, match in [({"fine_tune_blocks": 6}, "fine_tune_blocks"),
                          ({"activation": "relu"}, "activation"),
                          ({"dropout": 1.0}, "dropout"),
                          ({"dense_units": 0}, "dense_units")]:
        with pytest.raises(ConfigError, match=match):
            build_vgg16((32, 32), 3, weights=None, **kwargs)
    with pytest.raises(ConfigError, match="input_shape"):
        build_vgg16((32, 32, 2), 3, weights=None)
    with pytest.raises(ConfigError, match="not found"):
        build_vgg16((32, 32), 3, weights=tmp_path / "missing.h5")
    other = tmp_path / "other.weights.h5"
    from featx.runtime.keras import import_keras

    keras = import_keras()
    small = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    small.save_weights(str(other))
    with pytest.raises(ConfigError, match="cannot be loaded as VGG16") as info:
        build_vgg16((32, 32), 3, weights=other)
    assert "\n" not in str(info.value)


def test_one_epoch_fit_on_tiny_images(keras, weights_file):
    path, saved = weights_file
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.random((8, 32, 32)).astype("float32")
    y = np.eye(2, dtype="float32")[np.arange(8) % 2]
    model = build_vgg16((32, 32), 2, weights=path, dense_units=16, activation="sigmoid")
    before = model.get_layer("dense").get_weights()[0].copy()
    model.compile(optimizer="adam", loss="binary_crossentropy")
    history = model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    for a, b in zip(model.get_layer("vgg16").get_weights(), saved):
        np.testing.assert_array_equal(a, b)  # the frozen base did not move
    assert not np.array_equal(model.get_layer("dense").get_weights()[0], before)  # the head learned
    assert model.predict(x, verbose=0).shape == (8, 2)


def test_weights_from_a_file_in_the_imagenet_files_format(tmp_path, keras, weights_file):
    """The ImageNet file is Keras 2's HDF5 weights layout (one group per layer): it loads too."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    _, saved = weights_file
    base = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
    base.set_weights(saved)
    path = tmp_path / transfer.IMAGENET_FILE
    with h5py.File(path, "w") as fh:
        legacy_h5_format.save_weights_to_hdf5_group(fh, base)
    keras.utils.set_random_seed(5)
    model = build_vgg16((32, 32), 2, weights=path)
    for a, b in zip(model.get_layer("vgg16").get_weights(), saved):
        np.testing.assert_array_equal(a, b)


def test_saved_and_loaded_model_keeps_its_frozen_and_fine_tuned_layers(tmp_path, keras):
    model = build_vgg16((32, 48), 3, weights=None, fine_tune_blocks=1, dense_units=8)
    path = tmp_path / "vgg.keras"
    model.save(str(path))
    loaded = keras.models.load_model(str(path))
    assert [layer.name for layer in fine_tuned_layers(loaded)] == \
        ["block5_conv1", "block5_conv2", "block5_conv3"]
    assert _count(loaded.trainable_weights) == _count(model.trainable_weights)
    x = np.random.default_rng(1).random((2, 32, 48)).astype("float32")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    with pytest.raises(ConfigError, match="no VGG16 base|'vgg16' base"):
        fine_tuned_layers(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]))
