"""Image models end to end: tiny real training through the CLI on a store of synthetic audio,
out-of-fold metrics, prediction on audio and on stores, batches read from disk, bad input."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from featx.data.store import StoreWriter, open_store
from featx.features.spectrograms import SpectrogramSettings

pytestmark = pytest.mark.slow  # every test here trains, reads real data or runs real processes

SR = 22050
#: Small images, so that the networks train in moments: mel 32x130, mfcc 13x130, chroma 12x130.
SETTINGS = SpectrogramSettings(n_mels=32, n_mfcc=13)
#: 2 folds, no final refit, 2 epochs: every model trains twice on a few segments.
FAST = ("--folds", "2", "--no-refit", "--epochs", "2", "--batch-size", "4", "--valid-fraction", "0")
TINY = {
    "cnn2d": ("-p", "filters=4,4", "-p", "dense=8"),
    "cnn2d-base": ("-p", "filters=4,4", "-p", "dense=8"),
    "mfcc-cnn": ("-p", "filters=4,4", "-p", "dense=8"),
    "multihead": ("-p", "filters=4,4", "-p", "dense=8"),
}


def _clip(genre: str, k: int, seconds: float = 6.5) -> np.ndarray:
    """Tones: a steady sine (a different pitch per track). Noise: decaying bursts."""
    t = np.arange(int(seconds * SR)) / SR
    if genre == "tones":
        return (0.5 * np.sin(2 * np.pi * (330 + 110 * k) * t)).astype(np.float32)
    rng = np.random.default_rng(k)
    y = rng.standard_normal(len(t)).astype(np.float32) * 0.3
    return (y * (np.sin(2 * np.pi * (2 + k) * t) > 0)).astype(np.float32)


def _make_store(path, audio_root, settings, write_wav, n_tracks=3):
    from featx.extract.audio import load
    from featx.extract.spectro_runner import file_spectrograms

    with StoreWriter(path, settings) as writer:
        for genre in ("tones", "noise"):
            for k in range(n_tracks):
                wav = write_wav(audio_root / genre / f"{genre}.{k:05d}.wav", _clip(genre, k))
                writer.append(file_spectrograms(load(wav, sr=settings.sr), settings)[0], key=str(wav), filename=wav.name, label=genre,
                              length=settings.segment_samples)
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory, write_wav):
    root = tmp_path_factory.mktemp("spectro")
    store = _make_store(root / "store", root / "audio", SETTINGS, write_wav)
    no_chroma = SpectrogramSettings(kinds="mel,mfcc", n_mels=32, n_mfcc=13)
    store_mm = _make_store(root / "store_mm", root / "audio_mm", no_chroma, write_wav, n_tracks=2)
    return {"root": root, "store": store, "store_mm": store_mm, "audio": root / "audio"}


@pytest.fixture(scope="module")
def bundles(data, run_cli):
    """One bundle per image model, trained through ``featx train`` on the store."""
    out = {}
    for name, params in TINY.items():
        target = data["root"] / f"bundle-{name}"
        result = run_cli("train", data["store"], "-m", name, "-o", target, *FAST, *params)
        assert f"{name}: track accuracy" in result.output
        out[name] = target
    return out


@pytest.mark.parametrize("name", list(TINY))
def test_each_model_trains_with_out_of_fold_metrics(bundles, name):
    metrics = json.loads((bundles[name] / "metrics.json").read_text())
    assert metrics["model"] == name
    assert metrics["track"]["n"] == 6 and metrics["segment"]["n"] == 12  # every row predicted once
    assert 0 <= metrics["track"]["accuracy"] <= 1
    predictions = pd.read_csv(bundles[name] / "predictions.csv")
    assert len(predictions) == 12 and predictions["fold"].nunique() == 2
    assert predictions["track"].nunique() == 6
    meta = json.loads((bundles[name] / "metadata.json").read_text())
    assert meta["input"] == "images"
    assert meta["spectrogram_settings"] == SETTINGS.to_dict()
    prep = json.loads((bundles[name] / "preprocessing.json").read_text())
    kinds = {"cnn2d": ["mel"], "cnn2d-base": ["mel"], "mfcc-cnn": ["mfcc"],
             "multihead": ["chroma", "mel", "mfcc"]}[name]
    assert prep["feature_columns"] == kinds
    assert all(prep["std"][k] > 0 for k in kinds)


def test_training_statistics_come_from_training_rows_only(data):
    from featx.data.labels import LabelEncoding
    from featx.models.preprocessing import ImagePreprocessing

    store = open_store(data["store"])
    prep = ImagePreprocessing(["mel"], LabelEncoding().fit(["a", "b"]), {"mel": store.image_shape("mel")})
    part = prep.fit(store, [0, 1, 2])
    images = store.read([0, 1, 2], "mel")["mel"].astype(np.float64)
    assert part.mean_["mel"] == pytest.approx(images.mean(), rel=1e-9)
    assert part.std_["mel"] == pytest.approx(images.std(), rel=1e-6)
    assert prep.fit(store, [9, 10, 11]).mean_["mel"] != pytest.approx(part.mean_["mel"])


def test_predict_audio_with_a_spectrogram_bundle(bundles, data, run_cli):
    wavs = sorted(data["audio"].rglob("*.wav"))
    result = run_cli("predict", bundles["multihead"], *wavs[:2], "-f", "csv")
    frame = pd.read_csv(__import__("io").StringIO(result.stdout))
    assert list(frame["file"]) == [str(w) for w in wavs[:2]]
    assert set(frame["genre"]) <= {"tones", "noise"}
    np.testing.assert_allclose(frame[["noise", "tones"]].sum(axis=1), 1.0, atol=1e-5)


def test_predict_audio_equals_the_store_rows_averaged(bundles, data):
    """Audio is turned into the same images as the store holds: the same probabilities."""
    import featx
    from featx.data.store_table import StoreTable

    bundle = featx.load_bundle(bundles["cnn2d"]).bundle_
    table = StoreTable(data["store"])
    rows = bundle.predict_table(table)
    wav = data["audio"] / "tones" / "tones.00001.wav"
    frame, skipped = bundle.classify_audio([wav])
    assert not skipped
    mine = table.tracks == "tones.00001"
    np.testing.assert_allclose(frame[bundle.classes].to_numpy()[0], rows[mine].mean(axis=0), atol=1e-5)


def test_predict_and_evaluate_on_a_store(bundles, data, run_cli):
    result = run_cli("predict", bundles["cnn2d-base"], data["store"], "-f", "csv")
    frame = pd.read_csv(__import__("io").StringIO(result.stdout))
    assert len(frame) == 6  # one row per track of the store
    out = data["root"] / "evaluation"
    result = run_cli("evaluate", bundles["cnn2d-base"], data["store"], "-o", out)
    assert "track accuracy" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["track"]["n"] == 6


def test_bundle_checks_cover_spectrogram_settings(bundles, tmp_path, reseal):
    import featx
    from featx.errors import BundleError

    copy = tmp_path / "bundle"
    shutil.copytree(bundles["mfcc-cnn"], copy)
    meta = json.loads((copy / "metadata.json").read_text())
    meta["spectrogram_settings"]["n_mfcc"] = 20  # images of another height than the network's
    (copy / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="corrupt bundle: .*spectrogram_settings"):
        featx.load_bundle(copy)
    prep = json.loads((bundles["mfcc-cnn"] / "preprocessing.json").read_text())
    prep["std"]["mfcc"] = 0.0
    shutil.copy(bundles["mfcc-cnn"] / "metadata.json", copy / "metadata.json")
    (copy / "preprocessing.json").write_text(json.dumps(prep))
    reseal(copy)  # as a crafted bundle would: the scaler's own check then speaks
    with pytest.raises(BundleError, match=r"std\.mfcc must be a finite number > 0"):
        featx.load_bundle(copy)


def test_store_batches_are_read_per_batch(data):
    from featx.data.labels import LabelEncoding
    from featx.models.preprocessing import ImagePreprocessing
    from featx.models.keras_images import store_batches

    store = open_store(data["store"])

    class CountingStore:  # the real store; every read is recorded
        def __init__(self):
            self.reads = []

        def read(self, rows, kinds):
            self.reads.append(sorted(int(r) for r in rows))
            return store.read(rows, kinds)

    counting = CountingStore()
    prep = ImagePreprocessing(["mel", "mfcc"], LabelEncoding().fit(["noise", "tones"]),
                              {"mel": store.image_shape("mel"), "mfcc": store.image_shape("mfcc")})
    prep = prep.fit(store, np.arange(len(store)))
    rows = np.arange(len(store))
    y = np.arange(len(store)) % 2
    batches = store_batches(counting, rows, y, prep, batch_size=5, shuffle=True, seed=3)
    # the dataset keeps row numbers and targets, never images
    arrays = [v for v in vars(batches).values() if isinstance(v, np.ndarray)]
    assert arrays and all(a.ndim == 1 and a.size <= len(store) for a in arrays)
    assert counting.reads == []  # nothing read until a batch is asked for
    assert len(batches) == 3
    x, target = batches[1]
    assert len(counting.reads) == 1 and len(counting.reads[0]) == 5
    picked = np.array(counting.reads[0])
    assert sorted(target.tolist()) == sorted((picked % 2).tolist())
    assert set(x) == {"mel", "mfcc"} and x["mel"].shape == (5, 32, 130)
    expected = prep.transform(store.read(picked, ["mel", "mfcc"]))
    np.testing.assert_allclose(np.sort(x["mel"].reshape(5, -1), axis=0),
                               np.sort(expected["mel"].reshape(5, -1), axis=0), rtol=1e-6)
    first = [batches[i][1].tolist() for i in range(3)]
    order = batches.order.copy()
    batches.on_epoch_end()  # a new order every epoch, drawn from the seed
    assert not np.array_equal(order, batches.order)
    again = store_batches(store, rows, y, prep, batch_size=5, shuffle=True, seed=3)
    assert [again[i][1].tolist() for i in range(3)] == first


def test_csv_given_to_an_image_model(run_cli, synthetic_feature_csv, tmp_path):
    csv = synthetic_feature_csv(tmp_path / "f.csv", n_tracks=3, n_segments=2, classes=("a", "b"), seed=0,
                                separation=3, track_spread=0.1, row_spread=0.1)
    result = run_cli("train", csv, "-m", "cnn2d", "-o", tmp_path / "b", ok=False)
    assert result.exit_code == 1
    line = result.output.strip()
    assert "\n" not in line and "'cnn2d' reads mel images from a spectrogram store" in line


def test_store_given_to_a_table_model(run_cli, data, tmp_path):
    result = run_cli("train", data["store"], "-m", "mlp", "-o", tmp_path / "b", ok=False)
    line = result.output.strip()
    assert "\n" not in line and "'mlp' reads rows of a feature table" in line


def test_multihead_on_a_store_without_chroma(run_cli, data, tmp_path):
    result = run_cli("train", data["store_mm"], "-m", "multihead", "-o", tmp_path / "b", *FAST, ok=False)
    line = result.output.strip()
    assert "\n" not in line and "holds no chroma images" in line


def test_images_too_small_are_refused_before_training(run_cli, data, tmp_path):
    # cnn2d's default five convolutions pool by 2*2*2*2*4 = 64: mfcc images of 13 rows are too small
    result = run_cli("train", data["store"], "-m", "cnn2d", "-p", "kind=mfcc", "-o", tmp_path / "b",
                     *FAST, ok=False)
    line = result.output.strip()
    assert "\n" not in line and "at least 64x64" in line
    assert not (tmp_path / "b").exists()


def test_featx_models_lists_input_kinds(run_cli):
    out = run_cli("models").output
    assert "input: images (mel)" in out and "input: images (chroma,mel,mfcc)" in out
    assert "kind=mel" in out and "input: rows" in out


def test_cnn2d_base_training_defaults():
    from featx.training.config import TrainConfig

    config = TrainConfig(model="cnn2d-base").validate()
    assert (config.epochs, config.patience, config.reduce_lr_factor, config.batch_size,
            config.learning_rate, config.optimizer) == (50, 10, 0.1, 32, 1e-3, "adam")
    assert TrainConfig(model="cnn2d-base", patience=3).validate().patience == 3
    assert TrainConfig(model="cnn2d").validate().patience == 15


def test_python_api_predicts_a_store_path(bundles, data):
    import featx

    frame = featx.load_bundle(bundles["mfcc-cnn"]).predict_tracks(str(data["store"]))
    assert len(frame) == 6 and list(frame.columns[:2]) == ["file", "genre"]


def test_a_store_made_with_other_settings_is_refused(bundles, data, run_cli, write_wav):
    other = _make_store(data["root"] / "store_16", data["root"] / "audio_16",
                        SpectrogramSettings(kinds="mel", n_mels=16, n_mfcc=13), write_wav, n_tracks=2)
    result = run_cli("evaluate", bundles["cnn2d"], other, "-o", data["root"] / "ev16", ok=False)
    line = result.output.strip()
    assert "\n" not in line and "n_mels=16 (model: 32)" in line


def test_predict_audio_array_equals_the_file(bundles, data):
    import soundfile as sf

    import featx

    bundle = featx.load_bundle(bundles["multihead"]).bundle_
    wav = data["audio"] / "noise" / "noise.00002.wav"
    y, sr = sf.read(wav, dtype="float32")
    from_array = bundle.predict_audio(y, sr=sr, name="clip")
    from_file = bundle.predict_audio(wav)
    assert from_array["file"].tolist() == ["clip"]
    np.testing.assert_allclose(from_array[bundle.classes].to_numpy(), from_file[bundle.classes].to_numpy(),
                               atol=1e-5)
