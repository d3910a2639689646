"""The model commands, run for real through click's CliRunner (and a subprocess for imports)."""
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from featx.cli import main

TINY = ["--epochs", "3", "--batch-size", "16", "--patience", "2", "--folds", "2"]
PNG = b"\x89PNG\r\n\x1a\n"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def make_csv(synthetic_feature_csv):
    """Return ``make(path, ...)``: write a small separable feature table (two genres)."""
    def make(path, *, n_tracks=8, n_segments=2, classes=("blues", "rock"), seed=0):
        return synthetic_feature_csv(path, n_tracks=n_tracks, n_segments=n_segments, classes=classes,
                                     seed=seed, separation=2.0, track_spread=0.5, row_spread=0.3)
    return make


@pytest.fixture(scope="module")
def run(run_cli):
    return run_cli


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, make_csv, run):
    root = tmp_path_factory.mktemp("cli")
    csv = make_csv(root / "train.csv")
    out = root / "mlp"
    result = run("train", csv, "--model", "mlp", "--units", "8", "--seed", "1", "-o", out, *TINY)
    assert "track accuracy" in result.output
    return out, csv


@pytest.mark.slow
def test_train_in_a_terminal_prints_no_tensorflow_start_up_logs(tmp_path, make_csv):
    """TensorFlow writes C++ log lines to stderr while loading; a featx run shows none."""
    import os

    csv = make_csv(tmp_path / "t.csv")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run([sys.executable, "-m", "featx", "-q", "train", str(csv), "--model", "mlp",
                           "--units", "8", "-o", str(tmp_path / "m"), *TINY],
                          capture_output=True, text=True, env=env, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr
    assert "track accuracy" in done.stdout
    assert "absl::InitializeLog" not in done.stderr and "I0000" not in done.stderr, done.stderr


def test_cpp_log_filter_follows_the_log_level():
    from featx.runtime.keras import filter_cpp_logs

    text = ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
            "I0000 00:00:1795253668.223746    1171 port.cc:153] oneDNN custom operations are on.\n"
            "W0000 00:00:1795253668.3    1171 gpu.cc:9] a warning\n"
            "E0000 00:00:1795253070.338662   26422 cuda_platform.cc:52] failed call to cuInit\n"
            "    continued detail of that line\n"
            "F0000 00:00:1795253070.4   26422 guard.cc:1] fatal\n"
            "/x/y.py:3: UserWarning: something the user should see\n"
            "  warnings.warn(\n")
    user = "/x/y.py:3: UserWarning: something the user should see\n  warnings.warn(\n"
    fatal = "F0000 00:00:1795253070.4   26422 guard.cc:1] fatal\n"
    assert filter_cpp_logs(text, 3) == fatal + user
    assert filter_cpp_logs(text, 2) == ("E0000 00:00:1795253070.338662   26422 cuda_platform.cc:52] failed call "
                                        "to cuInit\n    continued detail of that line\n") + fatal + user
    assert "W0000" in filter_cpp_logs(text, 1) and "I0000" not in filter_cpp_logs(text, 1)
    assert filter_cpp_logs(text, 0) == text


def test_a_crash_while_importing_keras_still_shows_its_message(tmp_path):
    """The filter runs in its own process: a fatal abort inside the import keeps its last words."""
    import os

    fake = tmp_path / "fake" / "keras"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(
        "import os\n"
        "os.write(2, b'I0000 00:00:1.0    1 port.cc:1] chatter\\n'\n"
        "            b'F0000 00:00:1.0    1 cpu_feature_guard.cc:1] compiled to use AVX\\n'\n"
        "            b'a plain line\\n')\n"
        "os.abort()\n")
    repo = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path / "fake"), str(repo)])
    done = subprocess.run([sys.executable, "-c", "from featx.runtime.keras import import_keras; import_keras()"],
                          capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode != 0
    assert "compiled to use AVX" in done.stderr and "a plain line" in done.stderr, done.stderr
    assert "chatter" not in done.stderr

def test_importing_the_cli_does_not_import_tensorflow():
    code = ("import featx.cli, sys; "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'heavy import'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr
    help_text = CliRunner().invoke(main, ["--help"]).output
    for command in ("train", "evaluate", "predict", "plot", "models"):
        assert command in help_text


@pytest.mark.slow
def test_train_writes_a_complete_bundle(bundle):
    out, csv = bundle
    for name in ("model.keras", "preprocessing.json", "metadata.json", "metrics.json", "predictions.csv",
                 "history.json", "report.md"):
        assert (out / name).is_file(), name
    for fig in ("confusion_counts", "confusion_normalized", "per_class", "curves"):
        assert (out / "figures" / f"{fig}.png").read_bytes()[:8] == PNG
    metrics = json.loads((out / "metrics.json").read_text())
    for level in ("segment", "track"):
        for key in ("accuracy", "precision_macro", "recall_macro", "f1_macro", "per_class", "per_fold"):
            assert key in metrics[level]
        assert len(metrics[level]["per_fold"]) == 2
    preds = pd.read_csv(out / "predictions.csv")
    assert len(preds) == len(pd.read_csv(csv))  # out-of-fold: every row once
    assert set(preds["fold"]) == {"fold1", "fold2"}
    np.testing.assert_allclose(preds[["prob_blues", "prob_rock"]].sum(axis=1), 1, rtol=1e-5)
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["config"]["epochs"] == 3 and meta["config"]["params"]["units"] == [8]
    report = (out / "report.md").read_text()
    assert report.startswith("# featx mlp") and "figures/confusion_normalized.png" in report


def test_existing_bundle_needs_overwrite(bundle, run):
    out, csv = bundle
    result = run("train", csv, "--model", "knn", "-o", out, "--folds", "2", ok=False)
    assert "not empty; pass --overwrite" in result.output


def test_overwrite_refuses_a_foreign_folder_before_reading_or_training(tmp_path, make_csv, run):
    precious = tmp_path / "mine"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    unlabelled = make_csv(tmp_path / "t.csv")
    pd.read_csv(unlabelled).drop(columns=["label"]).to_csv(unlabelled, index=False)
    result = run("train", unlabelled, "--model", "knn", "-o", precious, "--overwrite", ok=False)
    assert "was not written by featx; refusing to replace it" in result.output  # not the CSV's error
    assert (precious / "notes.txt").read_text() == "keep me"


def test_random_split_report_says_inflated(tmp_path, make_csv, run):
    csv = make_csv(tmp_path / "t.csv")
    out = tmp_path / "rnd"
    run("train", csv, "--model", "knn", "-p", "n_neighbors=3", "--split", "random", "-o", out, "--folds", "2")
    first = (out / "report.md").read_text().splitlines()[0]
    assert "inflated" in first
    assert "inflated" in json.loads((out / "metrics.json").read_text())["warning"]


def test_evaluate_writes_metrics_and_report(bundle, tmp_path, make_csv, run):
    out, _ = bundle
    other = make_csv(tmp_path / "test.csv", seed=7)
    frame = pd.read_csv(other)
    frame["filename"] = "new-" + frame["filename"]  # other tracks than the training ones
    frame.to_csv(other, index=False)
    dest = tmp_path / "eval"
    result = run("evaluate", out, other, "-o", dest)
    assert "track accuracy" in result.output and "WARNING" not in result.output
    metrics = json.loads((dest / "metrics.json").read_text())
    assert metrics["track"]["n"] == 16 and metrics["segment"]["n"] == 32
    assert metrics["training_overlap"] == {"tracks": 0, "of": 16, "example": None, "source": "test.csv",
                                           "at_most": False}
    assert (dest / "report.md").is_file() and (dest / "figures" / "confusion_counts.png").is_file()
    assert (dest / "report.md").read_text().startswith("# featx mlp: evaluation")


@pytest.mark.slow
def test_evaluate_on_training_tracks_says_so(bundle, tmp_path):
    out, csv = bundle
    part = tmp_path / "part.csv"
    frame = pd.read_csv(csv)
    tracks = frame["filename"].str.rsplit(".", n=2).str[0]
    kept = sorted(set(tracks))[:3]
    frame[tracks.isin(kept)].to_csv(part, index=False)
    dest = tmp_path / "eval"
    result = CliRunner().invoke(main, ["evaluate", str(out), str(part), "-o", str(dest)])
    assert result.exit_code == 0, result.output
    warning = f"WARNING: 3 of 3 tracks in part.csv (e.g. {kept[0]}) were used to train this model"
    assert warning in result.stderr and warning not in result.stdout
    assert (dest / "report.md").read_text().splitlines()[0].startswith("**" + warning)
    assert json.loads((dest / "metrics.json").read_text())["training_overlap"]["tracks"] == 3
    # a bundle without the track list still recognises its own training file by checksum
    meta_path = out / "metadata.json"
    meta = json.loads(meta_path.read_text())
    old = json.loads(meta_path.read_text())
    del meta["final_fit"]["tracks"]
    try:
        meta_path.write_text(json.dumps(meta))
        result = CliRunner().invoke(main, ["evaluate", str(out), str(csv), "-o", str(tmp_path / "e2")])
        assert "WARNING: 16 of 16 tracks in train.csv" in result.stderr
        result = CliRunner().invoke(main, ["evaluate", str(out), str(part), "-o", str(tmp_path / "e3")])
        assert "WARNING" not in result.stderr
        meta["final_fit"]["n_train"] = 3  # a final fit on part of the file: only a bound is known
        meta_path.write_text(json.dumps(meta))
        result = CliRunner().invoke(main, ["evaluate", str(out), str(csv), "-o", str(tmp_path / "e4")])
        assert "WARNING: up to 16 of 16 tracks in train.csv" in result.stderr
    finally:
        meta_path.write_text(json.dumps(old))


def test_predict_formats(bundle, tmp_path, make_csv, run):
    out, _ = bundle
    unlabelled = make_csv(tmp_path / "new.csv", seed=3)
    pd.read_csv(unlabelled).drop(columns=["label"]).to_csv(unlabelled, index=False)
    csv_out = run("predict", out, unlabelled, "--format", "csv").output
    frame = pd.read_csv(pd.io.common.StringIO(csv_out))
    assert list(frame.columns) == ["file", "genre", "confidence", "uncertain", "distance_pct", "blues", "rock"]
    assert len(frame) == 16 and frame["file"].iloc[0] == "blues.00000.wav"
    np.testing.assert_allclose(frame[["blues", "rock"]].sum(axis=1), 1, rtol=1e-4)
    assert (frame["genre"] == frame[["blues", "rock"]].idxmax(axis=1)).all()
    items = json.loads(run("predict", out, unlabelled, "--format", "json", "--top-k", "1").output)
    assert len(items) == 16 and len(items[0]["top"]) == 1 and items[0]["top"][0]["genre"] == items[0]["genre"]
    table = run("predict", out, unlabelled, "-k", "2").output.splitlines()
    assert table[0].split()[:3] == ["file", "top", "2"] and len(table) == 17


def test_predict_audio_needs_known_settings(bundle, tmp_path, run):
    out, _ = bundle
    wav = tmp_path / "tone.wav"
    import soundfile as sf

    sf.write(wav, 0.1 * np.sin(np.arange(22050 * 4) * 2 * np.pi * 440 / 22050), 22050)
    result = run("predict", out, wav, ok=False)
    assert "no known extraction settings" in result.output


@pytest.mark.slow
def test_predict_real_audio_with_a_kaggle_model(tmp_path, run, gtzan_dir):
    out = tmp_path / "knn"
    run("train", gtzan_dir / "features_30_sec.csv", "--model", "knn", "--folds", "2", "-o", out)
    clips = [gtzan_dir / "audio" / "classical" / "classical.00000.wav", gtzan_dir / "audio" / "metal"]
    frame = pd.read_csv(pd.io.common.StringIO(
        run("predict", out, *clips, "--format", "csv").output))
    assert len(frame) == 2 and frame.columns[0] == "file" and frame.columns[1] == "genre"
    assert frame["file"].iloc[0].endswith("classical.00000.wav")
    # file, genre, windows, confidence, uncertain, distance_pct and ten genres
    assert frame.shape[1] == 16 and (frame["windows"] == 1).all()  # 30-s clips: one window each


@pytest.mark.slow
def test_plot_commands(bundle, tmp_path, run):
    out, csv = bundle
    written = run("plot", "features", csv, "-f", "tempo", "-f", "f_a_mean", "-o", tmp_path / "p").output
    assert (tmp_path / "p" / "box_tempo.png").read_bytes()[:8] == PNG and "box_f_a_mean.png" in written
    run("plot", "bundle", out, "-o", tmp_path / "b")
    assert {p.name for p in (tmp_path / "b").glob("*.png")} == {
        "confusion_counts.png", "confusion_normalized.png", "per_class.png", "curves.png"}
    import soundfile as sf

    wav = tmp_path / "chirp.wav"
    t = np.arange(22050 * 2) / 22050
    sf.write(wav, 0.2 * np.sin(2 * np.pi * (200 + 400 * t) * t), 22050)
    run("plot", "audio", wav, "-o", tmp_path / "a")
    assert (tmp_path / "a" / "chirp.png").read_bytes()[:8] == PNG
    assert "no feature column 'nope'" in run("plot", "features", csv, "-f", "nope", "-o", tmp_path / "p",
                                             ok=False).output


def test_models_lists_every_model(run):
    text = run("models").output
    for name in ("lstm", "segment-lstm", "mlp", "cnn", "svm", "knn", "random-forest"):
        assert name in text


@pytest.mark.parametrize("edit, message", [
    (lambda f: f.drop(columns=["label"]), "no 'label' column"),
    (lambda f: f.assign(tempo=f["tempo"].astype(object).where(f.index != 3, "fast")), "'fast' in column 'tempo'"),
    (lambda f: f.assign(f_b=f["f_b"].where(f.index != 1, np.nan)), "missing value in column 'f_b'"),
    (lambda f: f.assign(f_b=f["f_b"].where(f.index != 1, -np.inf)), "-inf value in column 'f_b'"),
    (lambda f: f.assign(label="rock"), "only one class ('rock')"),
    (lambda f: f[f["filename"].str.contains(r"\.0000[01]\.")], "4 track/artist group(s) but 5 fold(s)"),
])
def test_train_bad_tables_fail_in_one_line(tmp_path, edit, message, make_csv, run):
    csv = make_csv(tmp_path / "t.csv")
    edit(pd.read_csv(csv)).to_csv(csv, index=False)
    result = run("train", csv, "--model", "knn", "--folds", "5", "-o", tmp_path / "o", ok=False)
    error_lines = [l for l in result.output.splitlines() if l.startswith("Error")]
    assert len(error_lines) == 1 and message in error_lines[0], result.output
    assert str(csv) in error_lines[0] or "only one class" in message


def test_unknown_model_split_and_missing_bundle(bundle, tmp_path, run):
    out, csv = bundle
    result = run("train", csv, "--model", "transformer", "-o", tmp_path / "x", ok=False)
    assert "unknown model 'transformer'; expected one of lstm" in result.output
    result = run("train", csv, "--split", "album", "-o", tmp_path / "x", ok=False)
    assert "'album' is not one of" in result.output
    result = run("train", csv, "--split", "artist", "--folds", "2", "-o", tmp_path / "x", ok=False)
    assert "artist mapping file" in result.output
    result = run("train", csv, "-p", "C=3", "-o", tmp_path / "x", ok=False)
    assert "no hyperparameter 'C'" in result.output
    result = run("predict", tmp_path / "nowhere", csv, ok=False)
    assert "no such bundle folder" in result.output
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "metadata.json").write_text("[1, 2")
    assert "corrupt JSON" in run("evaluate", broken, csv, ok=False).output


def test_evaluate_and_predict_reject_other_columns(bundle, tmp_path, run):
    out, csv = bundle
    other = tmp_path / "other.csv"
    pd.read_csv(csv).rename(columns={"f_b": "f_c"}).to_csv(other, index=False)
    for args in (("evaluate", out, other), ("predict", out, other)):
        text = run(*args, ok=False).output
        assert "missing column(s) f_b; unexpected column(s) f_c" in text and str(other) in text


@pytest.mark.slow
def test_diverging_training_is_a_one_line_error(tmp_path, make_csv, run):
    csv = make_csv(tmp_path / "train.csv")
    # plain SGD at rate 0.5 with an L2 penalty of 100 multiplies the weights by -99 per step
    result = run("train", csv, "--model", "mlp", "--units", "8", "-p", "l2=100", "-p", "batch_norm=false",
                 "--optimizer", "sgd", "--learning-rate", "0.5", "-o", tmp_path / "bad",
                 "--epochs", "30", "--patience", "0", "--folds", "2", ok=False)
    assert "training loss became" in result.output and "diverged" in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert not (tmp_path / "bad" / "model.keras").exists()


def test_predict_skips_bad_audio_and_classifies_the_rest(corpus, tmp_path, run):
    table = tmp_path / "features.csv"
    assert CliRunner().invoke(main, ["-q", "extract", str(corpus), "-o", str(table), "-j", "1"]).exit_code == 0
    model = tmp_path / "knn"
    run("train", table, "--model", "knn", "-p", "n_neighbors=1", "--folds", "2", "-o", model)
    (corpus / "tones" / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk" * 20)
    result = CliRunner().invoke(main, ["-q", "predict", str(model), str(corpus), "--format", "csv"])
    assert result.exit_code == 1
    assert "skipped" in result.output and "broken.wav" in result.output and "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith(str(corpus))]
    assert len(lines) == 4  # the four good clips, each classified as its own genre
    for line in lines:
        file, genre = line.split(",")[:2]
        assert f"/{genre}/" in file


def test_epochs_and_segment_seconds_are_bounded(tmp_path, synthetic_feature_csv, corpus, stderr_error, invoke, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the relative paths below are the test's folder
    csv = synthetic_feature_csv(tmp_path / "t.csv", n_tracks=4, n_segments=1, classes=["a", "b", "c"],
                                seed=0, separation=5.0, track_spread=0.1, row_spread=0.1)
    result = invoke("train", csv, "-m", "mlp", "--epochs", "1000000000", "-o", "m")
    stderr_error(result, "--epochs must be at most 100000", "1000000000")
    result = invoke("extract", corpus, "--segment-seconds", "1e300", "-o", "x.csv")
    stderr_error(result, "1e+300", "at most 3600")
    assert not (tmp_path / "x.csv").exists()


def test_knn_neighbours_beyond_training_rows_is_one_line(tmp_path, synthetic_feature_csv, stderr_error, invoke, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the relative paths below are the test's folder
    csv = synthetic_feature_csv(tmp_path / "t.csv", n_tracks=4, n_segments=1, classes=["a", "b", "c"],
                                seed=0, separation=5.0, track_spread=0.1, row_spread=0.1)
    result = invoke("train", csv, "-m", "knn", "-p", "n_neighbors=600", "--folds", "2", "-o", "k")
    stderr_error(result, "n_neighbors=600", "training rows")
    assert not (tmp_path / "k" / "metadata.json").exists()


def test_keras_options_refused_for_scikit_learn_models(tmp_path, synthetic_feature_csv, stderr_error, invoke, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the relative paths below are the test's folder
    csv = synthetic_feature_csv(tmp_path / "t.csv", n_tracks=4, n_segments=1, classes=["a", "b", "c"],
                                seed=0, separation=5.0, track_spread=0.1, row_spread=0.1)
    result = invoke("train", csv, "-m", "knn", "--epochs", "5", "--optimizer", "sgd", "-o", "k")
    stderr_error(result, "Keras training option", "knn is a scikit-learn model")
    result = invoke("train", csv, "-m", "knn", "--lr-schedule", "constant", "-o", "k")
    stderr_error(result, "--lr-schedule")
    assert not (tmp_path / "k").exists()


@pytest.mark.parametrize("model, args, needle", [
    ("svm", ["-p", "C=1e309"], "C='1e309'"),
    ("svm", ["-p", "C=nan"], "C='nan'"),
    ("svm", ["-p", "C=-1"], "C='-1'"),
    ("svm", ["-p", "gamma=inf"], "gamma='inf'"),
    ("mlp", ["--depth", "100000"], "--depth 100000"),
    ("mlp", ["--units", "0,8"], "--units 0,8"),
    ("mlp", ["--dropout", "1.0"], "--dropout 1.0"),
    ("random-forest", ["-p", "n_estimators=1e12"], "n_estimators='1e12'"),
])
def test_train_refuses_non_finite_and_absurd_hyperparameters_in_one_line(
        tmp_path, feature_csv, run_cli, model, args, needle, single_line_error):
    out = tmp_path / "bundle"
    started = time.perf_counter()
    result = run_cli("train", feature_csv, "-m", model, "-o", out, *args, ok=False)
    assert time.perf_counter() - started < 20
    line = single_line_error(result, needle, "expected")
    assert "bad value" in line
    assert not out.exists()


@pytest.mark.slow
def test_many_genres_say_each_warning_once(tmp_path):
    """300 genres printed 816 lines (a pandas PerformanceWarning per probability column, and
    scikit-learn's warning once per fold); 3,000 genres 15,614."""
    rng = np.random.default_rng(0)
    rows = [[f"g{g}.{t:05d}.wav", 661500, *rng.normal(g, 0.1, 4), f"genre{g}"] for g in range(300) for t in range(2)]
    csv = tmp_path / "many.csv"
    pd.DataFrame(rows, columns=["filename", "length", "a", "b", "c", "d", "label"]).to_csv(csv, index=False)
    done = subprocess.run([sys.executable, "-m", "featx", "train", str(csv), "-m", "knn", "-p", "n_neighbors=1",
                           "--folds", "2", "-o", str(tmp_path / "b")], capture_output=True, text=True, cwd=REPO,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    warnings_said = [line for line in done.stderr.splitlines() if "Warning: " in line]
    assert "PerformanceWarning" not in done.stderr
    assert len(warnings_said) == len(set(w.split("Warning: ", 1)[1] for w in warnings_said)) <= 2, done.stderr
    assert len(done.stderr.splitlines()) < 12, done.stderr
    predictions = pd.read_csv(tmp_path / "b" / "predictions.csv")
    assert [c for c in predictions.columns if c.startswith("prob_")] == [f"prob_genre{g}" for g in sorted(range(300), key=str)]
