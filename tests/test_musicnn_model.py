"""The ``musicnn`` registry model: the pretrained musicnn network under a new genre head,
trained on a store of ``musicnn`` images made through the CLI from real audio files."""
from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest

from featx.features.musicnn_input import N_FRAMES, musicnn_logmel, to_musicnn_rate
from featx.features.musicnn_input import SR as MUSICNN_SR
from featx.features.spectrograms import (
    MUSICNN_SHAPE,
    SpectrogramSettings,
    segment_spectrograms,
)

pytestmark = pytest.mark.slow  # every test here trains, reads real data or runs real processes

SR = 22050
FAST = ("--folds", "2", "--no-refit", "--epochs", "1", "--batch-size", "4", "--valid-fraction", "0")
#: Front-end and mid-end layers of the port and the checkpoint scopes they load from.
FRONT = {"input_bn": "batch_normalization", "timbral_74_conv": "conv2d", "temporal_32_conv": "conv2d_4",
         "midend_1_conv": "conv2d_5"}


@pytest.fixture(scope="module")
def data(tmp_path_factory, write_wav, genre_clip, run_cli):
    root = tmp_path_factory.mktemp("musicnn_model")
    for genre in ("tones", "noise"):
        for k in range(2):
            write_wav(root / "audio" / genre / f"{genre}.{k:05d}.wav", genre_clip(genre, k))
    run_cli("spectrograms", root / "audio", "-o", root / "store", "--kinds", "musicnn", "-j", "1")
    return {"root": root, "store": root / "store", "audio": root / "audio"}


def test_musicnn_images_are_the_networks_input_of_each_segment(genre_clip):
    settings = SpectrogramSettings(kinds="musicnn")
    segments = np.stack([genre_clip("tones", 1)[:settings.segment_samples],
                         genre_clip("noise", 0)[:settings.segment_samples]])
    images = segment_spectrograms(segments, settings=settings)
    assert list(images) == ["musicnn"] and images["musicnn"].shape == (2, *MUSICNN_SHAPE)
    for segment, image in zip(segments, images["musicnn"]):
        expected = musicnn_logmel(to_musicnn_rate(segment, sr=SR), sr=MUSICNN_SR)[:N_FRAMES].T
        np.testing.assert_array_equal(image, expected)
    # a 2-s segment is zero-padded to a whole patch: its last frames are log10(1) = 0
    short = SpectrogramSettings(kinds="musicnn,mel", segment_seconds=2.0)
    out = segment_spectrograms(genre_clip("noise", 1)[:short.segment_samples], settings=short)
    assert out["musicnn"].shape == (1, *MUSICNN_SHAPE) and out["mel"].shape[1] == short.n_mels
    assert np.all(out["musicnn"][0, :, -50:] == 0) and np.all(out["musicnn"][0, :, :100] > 0)
    # the image settings of the other kinds leave musicnn images alone
    sized = SpectrogramSettings(kinds="musicnn", image_size="64x64", normalisation="per-image")
    assert sized.image_shape("musicnn") == MUSICNN_SHAPE
    np.testing.assert_array_equal(segment_spectrograms(segments, settings=sized)["musicnn"], images["musicnn"])


def test_musicnn_trains_with_the_pretrained_front_end_frozen_and_predicts(needs_musicnn, data, keras, run_cli):
    from featx.extract.musicnn import checkpoint_variables

    bundle = data["root"] / "bundle"
    result = run_cli("train", data["store"], "-m", "musicnn", "-o", bundle, *FAST)
    assert "musicnn: track accuracy" in result.output
    metrics = json.loads((bundle / "metrics.json").read_text())
    assert metrics["model"] == "musicnn" and metrics["track"]["n"] == 4 and metrics["segment"]["n"] == 8
    meta = json.dumps(json.loads((bundle / "metadata.json").read_text()))
    assert '"weights": "MSD_musicnn"' in meta and '"fine_tune": "none"' in meta
    model = keras.saving.load_model(bundle / "model.keras", compile=False, safe_mode=True)
    base = model.get_layer("musicnn_base")
    assert "logits" not in [layer.name for layer in base.layers]  # the 50 tag outputs are gone
    variables = checkpoint_variables("MSD_musicnn")
    for layer, scope in FRONT.items():
        kernel_or_gamma = base.get_layer(layer).get_weights()[0]
        saved = variables[f"{scope}/gamma" if layer.endswith("_bn") else f"{scope}/kernel"]
        np.testing.assert_array_equal(kernel_or_gamma, saved.reshape(kernel_or_gamma.shape), err_msg=layer)
    np.testing.assert_array_equal(base.get_layer("input_bn").get_weights()[2], variables["batch_normalization/moving_mean"])
    np.testing.assert_array_equal(base.get_layer("penultimate_dense").get_weights()[0], variables["dense/kernel"])
    assert model.get_layer("genre").get_weights()[0].shape == (200, 2)
    wav = data["audio"] / "tones" / "tones.00001.wav"
    frame = pd.read_csv(io.StringIO(run_cli("predict", bundle, wav, "-f", "csv").stdout))
    assert list(frame["file"]) == [str(wav)]
    np.testing.assert_allclose(frame[["noise", "tones"]].sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("fine_tune, trained", [
    ("none", set()),
    ("backend", {"pool_bn", "penultimate_dense", "penultimate"}),
])
def test_fine_tune_picks_the_trained_layers(needs_musicnn, keras, fine_tune, trained):
    from featx.models.pretrained import musicnn_model

    model = musicnn_model(MUSICNN_SHAPE, 3, activation="sigmoid", weights="MTT_musicnn", fine_tune=fine_tune)
    base = model.get_layer("musicnn_base")
    assert {layer.name for layer in base.layers if layer.trainable_weights} == trained
    assert {w.path.split("/")[0] for w in model.trainable_weights} == trained | {"genre"}
    assert model.get_layer("genre").activation.__name__ == "sigmoid"
    every = musicnn_model(MUSICNN_SHAPE, 3, fine_tune="all")
    assert len(every.trainable_weights) > len(model.trainable_weights) + 20


@pytest.mark.parametrize("param, named", [("fine_tune=front", "fine_tune"), ("weights=MSD_vgg", "weights")])
def test_bad_musicnn_parameters_are_one_line(data, run_cli, param, named):
    result = run_cli("train", data["store"], "-m", "musicnn", "-o", data["root"] / "bad", *FAST, "-p", param, ok=False)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and named in lines[0], result.output
    assert not (data["root"] / "bad").exists()


def test_musicnn_on_a_mel_store_is_one_line(data, run_cli, write_wav, tmp_path):
    run_cli("spectrograms", data["audio"], "-o", tmp_path / "mel", "--kinds", "mel", "-j", "1")
    result = run_cli("train", tmp_path / "mel", "-m", "musicnn", "-o", tmp_path / "b", *FAST, ok=False)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "musicnn" in lines[0] and "kinds=musicnn" in lines[0], result.output
    assert not (tmp_path / "b").exists()
