"""Spectrogram CNN builders: shapes, parameter counts, size checks, a tiny real fit."""
from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest

from featx.errors import ConfigError
from featx.models import keras_spectro as spectro
from featx.models.keras_spectro import (
    MULTIHEAD_DEFAULT_INPUT,
    build_cnn2d,
    build_cnn2d_base,
    build_mfcc_cnn,
    build_multihead,
)

pytestmark = pytest.mark.slow  # every test here trains, reads real data or runs real processes

#: Each builder with the default input its docstring quotes.
DEFAULTS = [
    (build_cnn2d, (128, 130)),
    (build_cnn2d_base, (128, 128)),
    (build_mfcc_cnn, (20, 130)),
    (build_multihead, MULTIHEAD_DEFAULT_INPUT),
]


def _documented_count(builder) -> int:
    match = re.search(r"it has ([\d,]+) parameters", " ".join(builder.__doc__.split()))
    assert match, f"{builder.__name__}'s docstring quotes no parameter count"
    return int(match.group(1).replace(",", ""))


@pytest.mark.parametrize("builder, shape", DEFAULTS, ids=lambda v: getattr(v, "__name__", ""))
def test_default_input_shape_and_documented_parameter_count(builder, shape):
    model = builder(shape, 10)
    assert tuple(model.output.shape) == (None, 10)
    assert model.get_layer("genre").activation.__name__ == "softmax"
    assert model.count_params() == _documented_count(builder)


def test_exact_counts_and_layer_names():
    # the seed study's network, counted by hand: 3x3 convs 1->16->32->64->128->64,
    # 128x130 pooled to 2x2x64 = 256 features, dense 32, 10 classes
    convs = [(1, 16), (16, 32), (32, 64), (64, 128), (128, 64)]
    expected = sum(9 * a * b + b for a, b in convs) + (256 * 32 + 32) + (32 * 10 + 10)
    model = build_cnn2d((128, 130), 10)
    assert model.count_params() == expected == 179_498
    names = [layer.name for layer in model.layers]
    assert names[:2] == ["image", "as_image"]
    assert [n for n in names if n.startswith("pool_")] == [f"pool_{i}" for i in range(1, 6)]
    assert model.get_layer("pool_5").pool_size == (4, 4)
    assert model.get_layer("pool_4").pool_size == (2, 2)
    assert tuple(model.get_layer("flatten").output.shape) == (None, 256)


def test_multihead_heads_and_inputs():
    model = build_multihead(MULTIHEAD_DEFAULT_INPUT, 8)
    assert sorted(t.name for t in model.inputs) == ["chroma", "mel", "mfcc"]
    flat = {k: model.get_layer(f"{k}_flatten").output.shape[-1] for k in MULTIHEAD_DEFAULT_INPUT}
    assert flat == {"chroma": 1 * 5 * 128, "mel": 4 * 5 * 128, "mfcc": 1 * 5 * 128}
    assert model.get_layer("heads").output.shape[-1] == sum(flat.values())
    only_mel = build_multihead({"mel": (64, 64)}, 3, filters=(8, 8, 8, 8, 8), dense=(16,))
    assert [t.name for t in only_mel.inputs] == ["mel"]


@pytest.mark.parametrize(
    "builder, shape, minimum",
    [
        (build_cnn2d, (20, 130), "64x64"),  # an MFCC image is too short for its pooling
        (build_cnn2d, (128, 40), "64x64"),
        (build_cnn2d_base, (128, 7), "8x8"),
        (build_mfcc_cnn, (6, 130), "8x8"),
    ],
)
def test_too_small_images_refused_naming_the_minimum(builder, shape, minimum):
    with pytest.raises(ConfigError, match=f"at least {minimum}") as info:
        builder(shape, 10)
    assert "\n" not in str(info.value) and str(shape) in str(info.value)
    # fewer pooling blocks lower the minimum
    if builder is build_cnn2d:
        build_cnn2d((16, 130), 10, filters=(8, 8, 8))


@pytest.mark.parametrize(
    "call, named",
    [
        (lambda: build_cnn2d((128, 130), 10, activation="relu"), "activation"),
        (lambda: build_cnn2d((128, 130), 1), "num_classes"),
        (lambda: build_cnn2d_base((128, 128), 10, dropout=1.0), "dropout"),
        (lambda: build_mfcc_cnn((20, 130), 10, filters=(32, 0)), "filters"),
        (lambda: build_mfcc_cnn((20, 130), 10, kernel_size=(3, 3, 3)), "kernel_size"),
        (lambda: build_cnn2d((128,), 10), "input_shape"),
        (lambda: build_multihead((128, 130), 10), "dict of image shapes"),
        (lambda: build_multihead({"mel": (128, 130)}, 10, dense=()), "dense"),
    ],
)
def test_bad_hyperparameters_refused(call, named):
    with pytest.raises(ConfigError, match=named):
        call()


def test_sigmoid_output_and_channels_last_input():
    model = build_cnn2d_base((32, 32, 3), 4, filters=(8, 8), dense=16, activation="sigmoid")
    x = np.random.default_rng(0).standard_normal((2, 32, 32, 3)).astype("float32")
    y = np.asarray(model(x, training=False))
    assert y.shape == (2, 4) and np.all((y > 0) & (y < 1))
    assert not np.allclose(y.sum(axis=1), 1.0)


@pytest.mark.parametrize("which", ["cnn2d", "cnn2d_base", "mfcc_cnn", "multihead"])
def test_two_epoch_fit_on_a_tiny_batch(which):
    from featx.runtime.keras import import_keras

    keras = import_keras()
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    n, classes = 12, 3
    labels = np.arange(n) % classes
    if which == "multihead":
        shapes = {"chroma": (12, 16), "mel": (32, 16), "mfcc": (13, 16)}
        # two convolutions per head: tracing the five-deep heads' training step takes long here
        model = build_multihead(shapes, classes, filters=(4, 8), dense=(16,))
        x = {k: rng.standard_normal((n, *s)).astype("float32") + labels[:, None, None] for k, s in shapes.items()}
    else:
        builder, shape, kwargs = {
            "cnn2d": (build_cnn2d, (64, 64), dict(filters=(4, 4, 4, 4, 4), dense=8)),
            "cnn2d_base": (build_cnn2d_base, (16, 24), dict(filters=(4, 8, 8), dense=8)),
            "mfcc_cnn": (build_mfcc_cnn, (13, 24), dict(filters=(4, 8), dense=8)),
        }[which]
        model = builder(shape, classes, **kwargs)
        x = rng.standard_normal((n, *shape)).astype("float32") + labels[:, None, None]
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    history = model.fit(x, labels, epochs=2, batch_size=4, verbose=0)
    assert len(history.history["loss"]) == 2 and np.all(np.isfinite(history.history["loss"]))
    probs = model.predict(x, verbose=0)
    assert probs.shape == (n, classes)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_importing_the_spectrogram_modules_loads_no_tensorflow():
    code = (
        "import sys, featx.models.keras_spectro, featx.data.store, featx.features.spectrograms\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'sklearn') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_min_image_size():
    assert spectro.min_image_size([2, 2, 2, 2, 4]) == 64
    assert spectro.min_image_size([]) == 1
