"""The ``vgg16`` registry model: tiny real training on a store of mel images from a
weights file saved here, fine-tuned blocks at a lower learning rate, listing, bad input."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from featx.data.store import StoreWriter
from featx.features.spectrograms import SpectrogramSettings

pytestmark = pytest.mark.slow  # every test here trains, reads real data or runs real processes

#: Mel images of 32 bands (VGG16's smallest side) x 130 frames.
SETTINGS = SpectrogramSettings(kinds="mel", n_mels=32)
FAST = ("--folds", "2", "--no-refit", "--epochs", "1", "--batch-size", "4", "--valid-fraction", "0")


@pytest.fixture(scope="module")
def data(tmp_path_factory, write_wav, genre_clip, keras):
    from featx.extract.audio import load
    from featx.extract.spectro_runner import file_spectrograms

    root = tmp_path_factory.mktemp("vgg16")
    with StoreWriter(root / "store", SETTINGS) as writer:
        for genre in ("tones", "noise"):
            for k in range(2):
                wav = write_wav(root / "audio" / genre / f"{genre}.{k:05d}.wav", genre_clip(genre, k))
                writer.append(file_spectrograms(load(wav, sr=SETTINGS.sr), SETTINGS)[0], key=str(wav), filename=wav.name, label=genre,
                              length=SETTINGS.segment_samples)
    keras.utils.set_random_seed(7)
    base = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
    weights = root / "vgg16_notop.weights.h5"
    base.save_weights(str(weights))
    return {"root": root, "store": root / "store", "weights": weights, "saved": base.get_weights(),
            "audio": root / "audio"}


def test_vgg16_trains_from_a_local_weights_file_and_predicts(data, keras, run_cli):
    bundle = data["root"] / "bundle"
    result = run_cli("train", data["store"], "-m", "vgg16", "-o", bundle, *FAST,
                     "-p", f"weights={data['weights']}", "-p", "fine_tune_blocks=1", "-p", "dense_units=8")
    assert "vgg16: track accuracy" in result.output
    metrics = json.loads((bundle / "metrics.json").read_text())
    assert metrics["model"] == "vgg16" and metrics["track"]["n"] == 4 and metrics["segment"]["n"] == 8
    meta = json.loads((bundle / "metadata.json").read_text())
    assert '"fine_tune_blocks": 1' in json.dumps(meta)
    model = keras.saving.load_model(bundle / "model.keras", compile=False, safe_mode=True)
    base = model.get_layer("vgg16")
    layers = [layer for layer in base.layers if layer.weights]
    names = [layer.name for layer in layers]
    saved = dict(zip(names, [data["saved"][2 * i:2 * i + 2] for i in range(len(names))]))
    # the frozen blocks hold the file's weights after training; the fine-tuned block moved
    np.testing.assert_array_equal(base.get_layer("block1_conv1").get_weights()[0], saved["block1_conv1"][0])
    np.testing.assert_array_equal(base.get_layer("block4_conv3").get_weights()[0], saved["block4_conv3"][0])
    assert not np.array_equal(base.get_layer("block5_conv3").get_weights()[0], saved["block5_conv3"][0])
    wav = data["audio"] / "tones" / "tones.00001.wav"
    frame = pd.read_csv(__import__("io").StringIO(run_cli("predict", bundle, wav, "-f", "csv").stdout))
    assert list(frame["file"]) == [str(wav)]
    np.testing.assert_allclose(frame[["noise", "tones"]].sum(axis=1), 1.0, atol=1e-5)


def test_fine_tuned_blocks_learn_at_the_lower_rate(keras):
    from featx.models.pretrained import fine_tuning_optimizer, vgg16_model

    model = vgg16_model((32, 40), 3, weights="none", fine_tune_blocks=1)
    optimizer = fine_tuning_optimizer(model, keras.optimizers.SGD(learning_rate=1.0),
                                      {"fine_tune_lr_factor": 0.25})
    assert isinstance(optimizer, keras.optimizers.SGD)
    variables = model.trainable_variables
    before = [keras.ops.convert_to_numpy(v).copy() for v in variables]
    optimizer.apply([keras.ops.ones_like(v) for v in variables], variables)  # one step, gradient 1
    steps = {v.path: float(np.mean(b - keras.ops.convert_to_numpy(v))) for v, b in zip(variables, before)}
    assert {p for p in steps if p.startswith("block")} == {
        f"block5_conv{i}/{w}" for i in (1, 2, 3) for w in ("kernel", "bias")}
    for path, step in steps.items():
        assert step == pytest.approx(0.25 if path.startswith("block5") else 1.0, rel=1e-5), path
    frozen = vgg16_model((32, 40), 3, weights="none")
    plain = keras.optimizers.Adam()
    assert fine_tuning_optimizer(frozen, plain, {}) is plain  # nothing fine-tuned: unchanged


def test_models_lists_vgg16(run_cli):
    out = run_cli("models").output
    lines = out.splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith("vgg16 "))
    assert "keras" in lines[i] and "input: images (mel)" in lines[i]
    params = [line.split()[0] for line in lines[i + 1:i + 6]]
    assert params == ["weights=imagenet", "fine_tune_blocks=0", "fine_tune_lr_factor=0.1",
                      "dense_units=128", "dropout=0.5"]


@pytest.mark.parametrize("param, named", [
    ("fine_tune_lr_factor=0", "fine_tune_lr_factor"),
    ("fine_tune_blocks=6", "fine_tune_blocks"),
])
def test_bad_vgg16_parameters_are_one_line(data, run_cli, param, named):
    result = run_cli("train", data["store"], "-m", "vgg16", "-o", data["root"] / "bad", *FAST,
                     "-p", "weights=none", "-p", param, ok=False)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and named in lines[0], result.output
    assert not (data["root"] / "bad").exists()


def test_missing_weights_file_is_one_line_before_training(data, run_cli, tmp_path):
    missing = tmp_path / "nowhere.weights.h5"
    result = run_cli("train", data["store"], "-m", "vgg16", "-o", tmp_path / "b", *FAST,
                     "-p", f"weights={missing}", ok=False)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "VGG16 weights file not found" in lines[0] and str(missing) in lines[0]
    assert not (tmp_path / "b").exists()
