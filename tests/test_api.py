"""The Python API exported from ``featx``: lazy imports, one-file/array extraction, train,
load and predict, and the Python API examples of docs/guide/python.rst, all run for real."""
from __future__ import annotations

import doctest
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import featx
from featx.errors import AudioError, ConfigError, DataError, FeatxError, OutputError

REPO = Path(__file__).resolve().parents[1]
SR = 22050
HEAVY = ("tensorflow", "keras", "sklearn", "torch", "jax")


def _fresh_python(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _mix(tone, clicks, seconds=6.5, sr=SR):
    rng = np.random.default_rng(3)
    n = int(round(seconds * sr))
    return (0.1 * rng.standard_normal(n) + tone(330, seconds, sr=sr) + clicks(120, seconds, sr=sr)).astype(np.float32)


# ---------------------------------------------------------------------------
# exports


def test_import_and_exported_names_load_no_tensorflow_keras_or_sklearn(tmp_path):
    code = (
        "import sys, numpy as np\n"
        "import featx\n"
        f"heavy = {HEAVY!r}\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
        "for name in featx.__all__:\n"
        "    if name != 'GenreClassifier':  # a scikit-learn estimator: imports scikit-learn\n"
        "        getattr(featx, name)\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
        "rows = featx.extract_features(np.sin(np.arange(int(3.5 * 22050)) / 7.0), sr=22050)\n"
        "print(len(rows), sorted(m for m in heavy if m in sys.modules))\n"
    )
    lines = _fresh_python(code).splitlines()
    assert lines == ["[]", "[]", "1 []"]


def test_all_dir_and_unknown_names():
    for name in featx.__all__:
        assert getattr(featx, name) is not None
        assert name in dir(featx)
    assert featx.FeatxError is FeatxError
    assert issubclass(featx.ConfigError, ValueError) and issubclass(featx.DataError, FeatxError)
    assert featx.FeatureSettings().sr == SR
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        featx.nothing_here  # noqa: B018


@pytest.mark.parametrize("name", ["extract_features", "train", "load_bundle", "run_extraction",
                                  "read_feature_csv", "FeatureSettings", "TrainConfig"])
def test_exported_functions_have_numpydoc_with_examples(name):
    doc = getattr(featx, name).__doc__ or ""
    for section in ("Examples",) if name == "TrainConfig" else ("Parameters", "Examples"):
        assert re.search(rf"^\s*{section}\n\s*-{{{len(section)}}}$", doc, re.M), (name, section)


def test_docstring_examples_run(monkeypatch, tmp_path):
    import featx.api
    import featx.data.frames
    import featx.features.settings
    import featx.training.config

    monkeypatch.chdir(tmp_path)
    for module in (featx.api, featx.data.frames, featx.features.settings, featx.training.config):
        failed, tried = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert failed == 0 and tried > 0, module.__name__


# ---------------------------------------------------------------------------
# extract_features


def test_a_file_gives_the_rows_featx_extract_writes(tmp_path, tone, clicks, write_wav):
    path = write_wav(tmp_path / "audio" / "mix" / "mix.00000.wav", _mix(tone, clicks))
    featx.run_extraction([tmp_path / "audio"], tmp_path / "f.csv", settings=featx.FeatureSettings(),
                         jobs=1, progress=False)
    written = pd.read_csv(tmp_path / "f.csv")
    rows = featx.extract_features(path)
    columns = ["length", *featx.FeatureSettings().feature_columns()]
    assert [Path(f).name for f in written["filename"]] == rows["filename"].tolist() == [
        "mix.00000.0.wav", "mix.00000.1.wav"]
    np.testing.assert_array_equal(rows[columns].to_numpy(), written[columns].to_numpy())
    assert rows.attrs["featx_settings"] == featx.FeatureSettings().to_dict()


@pytest.mark.slow
@pytest.mark.parametrize("native_sr", [SR, 44100, 16000])
def test_an_array_gives_the_rows_of_a_float_file_holding_it(tmp_path, tone, clicks, write_wav, native_sr):
    """Resampling and analysis are the file path's own: the same numbers, bit for bit."""
    y = _mix(tone, clicks, sr=native_sr)
    path = write_wav(tmp_path / f"clip{native_sr}.wav", y, sr=native_sr, subtype="FLOAT")
    from_file = featx.extract_features(path)
    from_array = featx.extract_features(y, sr=native_sr, name=path.name)
    pd.testing.assert_frame_equal(from_array, from_file)


def test_channels_are_averaged_and_settings_govern_the_analysis(tone):
    left, right = tone(440, 3.5), tone(880, 3.5, amp=0.25)
    stereo = featx.extract_features(np.stack([left, right]), sr=SR)
    mono = featx.extract_features((left + right) / 2, sr=SR)
    pd.testing.assert_frame_equal(stereo, mono)
    whole = featx.extract_features(left, sr=SR, settings=featx.FeatureSettings(segment_seconds=None))
    assert whole["filename"].tolist() == ["array.wav"] and whole["length"].tolist() == [len(left)]
    slow = featx.extract_features(left, sr=SR, settings=featx.FeatureSettings(sr=16000, segment_seconds=None))
    assert slow["length"].tolist() == [round(len(left) * 16000 / SR)]
    assert slow["spectral_centroid_mean"].iloc[0] == pytest.approx(440, rel=0.02)


@pytest.mark.parametrize("call, error, pattern", [
    (lambda y, p: featx.extract_features(y), ConfigError, r"sr is required with an array.*Received: sr=None"),
    (lambda y, p: featx.extract_features(y, sr=0), ConfigError, r"Received: sr=0"),
    (lambda y, p: featx.extract_features(y, sr=22050.5), ConfigError, r"Received: sr=22050.5"),
    (lambda y, p: featx.extract_features(p, sr=SR), ConfigError, r"sr is for an array.*Received: sr=22050"),
    (lambda y, p: featx.extract_features(p, name="x.wav"), ConfigError, r"Received: name='x.wav'"),
    (lambda y, p: featx.extract_features(y, sr=SR, settings={"sr": SR}), ConfigError, r"settings must be"),
    (lambda y, p: featx.extract_features(y[:100], sr=SR), AudioError, r"array.wav: .*shorter than one 3 s segment"),
    (lambda y, p: featx.extract_features(np.array([]), sr=SR), AudioError, r"holds no samples"),
    (lambda y, p: featx.extract_features(np.full(4 * SR, np.nan), sr=SR), AudioError, r"NaN or infinity"),
    (lambda y, p: featx.extract_features(np.zeros((2, 2, SR)), sr=SR), AudioError, r"Received: shape=\(2, 2, 22050\)"),
    (lambda y, p: featx.extract_features([[0.1, 0.2], [0.3, "x"]], sr=SR), AudioError, r"expected a numeric array"),
    (lambda y, p: featx.extract_features([p, p]), ConfigError, r"one file or one array.*a list holding 2 paths"),
    (lambda y, p: featx.extract_features(("a", "b"), sr=SR), ConfigError, r"run_extraction.*a tuple holding 2 paths"),
    (lambda y, p: featx.extract_features([0.1, p]), ConfigError, r"a list holding 1 path$"),
    (lambda y, p: featx.extract_features(np.array([str(p), str(p)])), ConfigError, r"an? ndarray holding 2 paths"),
    (lambda y, p: featx.extract_features(p.with_name("missing.wav")), AudioError, r"missing.wav: cannot be read"),
])
def test_bad_input_is_one_featx_error_naming_it(tmp_path, tone, write_wav, call, error, pattern):
    y = tone(440, 3.5)
    path = write_wav(tmp_path / "t.wav", y)
    with pytest.raises(error, match=pattern) as info:
        call(y, path)
    assert isinstance(info.value, FeatxError) and "\n" not in str(info.value)


# ---------------------------------------------------------------------------
# train, load_bundle, predict


@pytest.fixture(scope="module")
def table_csv(tmp_path_factory, synthetic_feature_csv):
    path = tmp_path_factory.mktemp("api") / "features.csv"
    return synthetic_feature_csv(path, n_tracks=6, n_segments=3, classes=("blues", "jazz", "rock"), seed=4,
                                 separation=3.0, track_spread=0.4, row_spread=0.3)


@pytest.mark.slow
def test_train_returns_the_bundle_it_saved(tmp_path, table_csv):
    model = featx.train(table_csv, "knn", output_dir=tmp_path / "knn", folds=3, n_neighbors=3, seed=2)
    bundle = model.bundle_
    assert isinstance(model, featx.GenreClassifier) and model.n_neighbors == 3
    assert isinstance(bundle, featx.Bundle) and bundle.path == tmp_path / "knn"
    assert bundle.metadata["params"]["n_neighbors"] == 3 and bundle.metadata["config"]["folds"] == 3
    assert bundle.metrics["track"]["accuracy"] >= 0.9
    loaded = featx.load_bundle(tmp_path / "knn")
    from_path = loaded.predict_tracks(table_csv)
    from_frame = loaded.predict_tracks(pd.read_csv(table_csv))
    pd.testing.assert_frame_equal(from_path, from_frame)
    pd.testing.assert_frame_equal(bundle.predict(table_csv), from_path)
    rows = pd.read_csv(table_csv)  # the estimator's own answer: one label per row
    assert loaded.predict(rows).tolist() == model.predict(rows).tolist()
    assert (loaded.predict(rows) == rows["label"]).mean() >= 0.9
    assert len(from_path) == 18 and (from_path["genre"] == from_path["file"].str.split(".").str[0]).mean() >= 0.9
    assert list(from_path.columns) == ["file", "genre", "confidence", "uncertain", "distance_pct",
                                       "blues", "jazz", "rock"]
    np.testing.assert_allclose(from_path[["blues", "jazz", "rock"]].sum(axis=1), 1.0)


@pytest.mark.slow
def test_train_on_a_dataframe_and_options_by_name(tmp_path, table_csv):
    frame = pd.read_csv(table_csv)
    bundle = featx.train(frame, "mlp", output_dir=tmp_path / "mlp", epochs=2, units=(8,), folds=2,
                         batch_size=16, learning_rate=0.01, params={"dropout": 0.1}).bundle_
    assert bundle.metadata["params"]["units"] == [8] and bundle.metadata["params"]["dropout"] == 0.1
    assert bundle.metadata["config"]["epochs"] == 2
    assert frame.equals(pd.read_csv(table_csv))  # the caller's frame is not changed
    predicted = featx.load_bundle(tmp_path / "mlp").predict_tracks(frame.drop(columns="label"))
    np.testing.assert_allclose(predicted[bundle.classes].to_numpy(), bundle.predict(frame)[bundle.classes].to_numpy(),
                               rtol=1e-5, atol=1e-6)


def test_train_errors_name_the_option(tmp_path, table_csv):
    with pytest.raises(ConfigError, match=r"no option 'epoch': expected a training option .*epochs.*"
                                          r"or a hyperparameter of model 'svm' \(.*C.*gamma"):
        featx.train(table_csv, "svm", output_dir=tmp_path / "a", epoch=3)
    with pytest.raises(ConfigError, match=r"folds must be an integer >= 1. Received: folds=0"):
        featx.train(table_csv, "svm", output_dir=tmp_path / "a", folds=0)
    with pytest.raises(ConfigError, match="unknown model 'gru'"):
        featx.train(table_csv, "gru", output_dir=tmp_path / "a")
    with pytest.raises(DataError, match="no 'label' column"):
        featx.train(pd.read_csv(table_csv).drop(columns="label"), "svm", output_dir=tmp_path / "a")
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(OutputError, match="mine"):
        featx.train(table_csv, "svm", output_dir=foreign, overwrite=True)
    assert (foreign / "notes.txt").read_text() == "keep me" and not (tmp_path / "a").exists()


def test_predict_rejects_other_rows(tmp_path, table_csv):
    bundle = featx.train(table_csv, "knn", output_dir=tmp_path / "knn", folds=2).bundle_
    frame = pd.read_csv(table_csv)
    with pytest.raises(DataError, match=r"DataFrame: value 'x' in column 'tempo' \(index 4"):
        bundle.predict(frame.assign(tempo=frame["tempo"].where(frame.index != 4, "x")))
    with pytest.raises(DataError, match="missing column"):
        bundle.predict(frame.drop(columns="f_b"))
    with pytest.raises(DataError, match="no 'filename' column"):
        bundle.predict(frame.drop(columns="filename"))
    with pytest.raises(DataError, match="Received: ndarray"):
        bundle.predict(frame.to_numpy())


@pytest.fixture(scope="module")
def demo_bundle(tmp_path_factory):
    """A knn bundle trained on the extracted demo corpus (audio kept for prediction)."""
    from featx.extract.demo import write_corpus

    root = tmp_path_factory.mktemp("demo")
    write_corpus(root / "audio", clips_per_genre=3)
    featx.run_extraction([root / "audio"], root / "features.csv", settings=featx.FeatureSettings(),
                         jobs=1, progress=False)
    trained = featx.train(root / "features.csv", "knn", output_dir=root / "knn", folds=3)
    assert trained.bundle_.metrics["track"]["accuracy"] >= 0.9
    return featx.load_bundle(root / "knn").bundle_, root


@pytest.mark.slow
def test_predict_audio_on_paths_folders_and_arrays(demo_bundle, tmp_path):
    import soundfile as sf

    bundle, root = demo_bundle
    clip = root / "audio" / "beats" / "beats.00001.wav"
    by_folder = bundle.predict_audio(root / "audio" / "beats")
    assert by_folder["genre"].tolist() == ["beats"] * 3
    y, native = sf.read(clip, dtype="float32")
    by_array = bundle.predict_audio(y, sr=native, name=clip.name)
    by_path = bundle.predict_audio([clip])
    assert by_array["file"].tolist() == ["beats.00001.wav"]
    np.testing.assert_array_equal(by_array[bundle.classes].to_numpy(), by_path[bundle.classes].to_numpy())
    rows = featx.extract_features(clip, settings=bundle.settings)
    np.testing.assert_allclose(bundle.predict(rows)[bundle.classes].to_numpy(),
                               by_path[bundle.classes].to_numpy())
    louder = bundle.predict_audio(np.stack([y, y]), sr=native)  # stereo: channels averaged
    np.testing.assert_array_equal(louder[bundle.classes].to_numpy(), by_path[bundle.classes].to_numpy())


def test_predict_audio_warns_about_bad_files_and_refuses_mixed_arguments(demo_bundle, tmp_path, write_wav, tone):
    bundle, root = demo_bundle
    short = write_wav(tmp_path / "short.wav", tone(440, 1.0))
    with pytest.warns(UserWarning, match=r"skipped .*short.wav: .*shorter than one"):
        out = bundle.predict_audio([short, root / "audio" / "drone" / "drone.00000.wav"])
    assert out["genre"].tolist() == ["drone"]
    with pytest.raises(ConfigError, match="sr is for an array"):
        bundle.predict_audio([short], sr=SR)
    with pytest.raises(ConfigError, match="sr is required with an array"):
        bundle.predict_audio(tone(440, 4.0))
    with pytest.raises(ConfigError, match="input not found"):
        bundle.predict_audio(tmp_path / "nowhere.wav")


def test_rows_made_with_other_settings_are_refused(demo_bundle):
    bundle, root = demo_bundle
    clip = root / "audio" / "drone" / "drone.00000.wav"
    other = featx.FeatureSettings(n_fft=1024)  # same columns, other numbers
    with pytest.raises(DataError, match=r"different settings.*n_fft=1024 \(model: 2048\)"):
        bundle.predict(featx.extract_features(clip, settings=other))


# ---------------------------------------------------------------------------
# the Python API page's examples


def _readme_python_blocks() -> list[str]:
    """The Python examples of the user guide's Python API page (docs/guide/python.rst)."""
    text = (REPO / "docs" / "guide" / "python.rst").read_text()
    blocks = re.findall(r"^\.\. code:: python\n\n((?:(?:   .*)?\n)+)", text, re.M)
    blocks = [textwrap.dedent(block) for block in blocks]
    assert len(blocks) >= 3
    return blocks


@pytest.mark.slow
def test_readme_python_api_examples_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "readme"}
    for block in _readme_python_blocks():
        exec(compile(block, "docs/guide/python.rst", "exec"), namespace)
    out = capsys.readouterr().out
    assert "array.0.wav" in out and "track accuracy" in out
    assert "sr is required with an array" in out
    model = namespace["model"]
    assert (tmp_path / "models" / "svm" / "metadata.json").is_file()
    assert model.bundle_.metrics["track"]["accuracy"] >= 0.9
    bundle = model.bundle_
    drones = bundle.predict_audio(["audio/drone"])
    assert drones["genre"].tolist() == ["drone"] * 4
