"""Regression tests: interrupts inside scikit-learn fits, quiet mode, bounds, sweep folders."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

GTZAN_CSV = Path("/work/shared/data/gtzan/features_30_sec.csv")
FEATX = [sys.executable, "-m", "featx"]

def _default_sigint():
    """Run in the child before exec: Ctrl-C acts as on a terminal even when this test run
    was started with SIGINT ignored (a background job of a non-interactive shell)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)



def _featx(*args, cwd, timeout=300):
    return subprocess.run(FEATX + [str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def _one_line_error(result, *needles):
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr
    return result.stderr


def _wait_for_cpu(proc, seconds: float, limit: float = 120.0) -> None:
    """Wait until ``proc`` has used ``seconds`` of CPU time (imports done, fitting begun)."""
    tick = os.sysconf("SC_CLK_TCK")
    start = time.monotonic()
    while time.monotonic() - start < limit:
        assert proc.poll() is None, proc.communicate()
        fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        if (int(fields[11]) + int(fields[12])) / tick >= seconds:
            return
        time.sleep(0.2)
    raise AssertionError("the process never got going")


# ---------------------------------------------------------------------------
# Ctrl-C inside an MLPClassifier fit


def test_fit_estimator_reraises_interrupt_swallowed_by_mlp(tmp_path):
    script = textwrap.dedent("""
        import numpy as np, sys
        from sklearn.neural_network import MLPClassifier
        from featx.models.sklearn_rows import fit_estimator
        rng = np.random.default_rng(0)
        X = rng.normal(size=(400, 20)); y = rng.integers(0, 4, 400)
        est = MLPClassifier((64,), max_iter=1000000, tol=0.0, n_iter_no_change=1000000)
        print("fitting", flush=True)
        try:
            fit_estimator(est, X, y)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            sys.exit(7)
        print("finished", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)
    assert proc.stdout.readline().strip() == "fitting"
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 7, out + err
    assert "interrupted" in out
    assert "Training interrupted by user" not in err


@pytest.mark.skipif(not GTZAN_CSV.exists(), reason="GTZAN features_30_sec.csv is not available")
def test_ctrl_c_during_ensemble_train_exits_130_and_saves_nothing(tmp_path):
    proc = subprocess.Popen(FEATX + ["train", str(GTZAN_CSV), "-m", "ensemble", "-o", "out", "--folds", "2"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_sigint)
    _wait_for_cpu(proc, 7.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + err
    assert "Traceback" not in err and "Training interrupted" not in err, err
    assert "interrupted" in err
    assert not (tmp_path / "out" / "metadata.json").exists()


@pytest.mark.skipif(not GTZAN_CSV.exists(), reason="GTZAN features_30_sec.csv is not available")
def test_ctrl_c_during_ensemble_sweep_records_no_finished_trial(tmp_path):
    proc = subprocess.Popen(FEATX + ["sweep", str(GTZAN_CSV), "-m", "ensemble", "-o", "sw", "--folds", "5",
                                     "-p", "nn_alpha=0.1,0.2"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_sigint)
    _wait_for_cpu(proc, 7.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + err
    assert "Traceback" not in err and "Training interrupted" not in err, err
    journal = tmp_path / "sw" / "trials.jsonl"
    lines = journal.read_text().splitlines() if journal.exists() else []
    assert not [line for line in lines if '"status"' in line], lines
    assert not (tmp_path / "sw" / "best").exists()


# ---------------------------------------------------------------------------
# quiet mode in worker processes; absurd audio


def test_quiet_parent_silences_warnings_in_pool_workers(tmp_path):
    (tmp_path / "noisy_task.py").write_text(textwrap.dedent("""
        import warnings
        def noisy(key):
            warnings.warn("noisy worker warning", RuntimeWarning)
            return {"key": key}
    """))
    script = textwrap.dedent("""
        import sys, warnings
        from featx.extract.pool import map_files
        from noisy_task import noisy
        if sys.argv[1] == "quiet":
            warnings.simplefilter("ignore")
        print(sorted(r["key"] for r in map_files(noisy, ["a", "b"], jobs=2)))
    """)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    runs = {mode: subprocess.run([sys.executable, "-c", script, mode], capture_output=True, text=True,
                                 env=env, cwd=tmp_path, timeout=120) for mode in ("loud", "quiet")}
    for result in runs.values():
        assert result.returncode == 0 and "['a', 'b']" in result.stdout, result.stderr
    assert "noisy worker warning" in runs["loud"].stderr
    assert "noisy worker warning" not in runs["quiet"].stderr


def test_absurd_amplitude_is_a_skipped_file_and_quiet_is_silent(tmp_path, write_wav):
    folder = tmp_path / "loud"
    folder.mkdir()
    t = np.arange(22050 * 4) / 22050
    write_wav(folder / "huge.wav", (np.sin(2 * np.pi * 440 * t) * 1e30).astype(np.float32), subtype="FLOAT")
    write_wav(folder / "fine.wav", (np.sin(2 * np.pi * 440 * t) * 0.5).astype(np.float32), subtype="FLOAT")
    result = _featx("-q", "extract", "loud", "-o", "loud.csv", "-j", "2", cwd=tmp_path)
    assert "Warning" not in result.stderr and "Traceback" not in result.stderr, result.stderr
    errors = (tmp_path / "loud.errors.csv").read_text()
    assert "huge.wav" in errors and "amplitude" in errors
    rows = (tmp_path / "loud.csv").read_text().splitlines()
    assert len(rows) > 1 and all("huge.wav" not in r for r in rows)


def test_absurd_sample_rate_is_named(tmp_path):
    import struct

    sr = 4_000_000_000
    data = (np.sin(np.arange(22050) / 10) * 10000).astype("<i2").tobytes()
    header = (b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE" + b"fmt "
              + struct.pack("<IHHIIHH", 16, 1, 1, sr, (sr * 2) & 0xFFFFFFFF, 2, 16)
              + b"data" + struct.pack("<I", len(data)))
    (tmp_path / "rate.wav").write_bytes(header + data)
    from featx.errors import AudioError
    from featx.extract.audio import load

    with pytest.raises(AudioError, match="sample rate 4,000,000,000 Hz is above"):
        load(tmp_path / "rate.wav", sr=22050)


# ---------------------------------------------------------------------------
# bounds


def test_epochs_and_segment_seconds_are_bounded(tmp_path, synthetic_feature_csv, corpus):
    csv = synthetic_feature_csv(tmp_path / "t.csv", n_tracks=4, n_segments=1, classes=["a", "b", "c"],
                                seed=0, separation=5.0, track_spread=0.1, row_spread=0.1)
    result = _featx("train", csv, "-m", "mlp", "--epochs", "1000000000", "-o", "m", cwd=tmp_path)
    _one_line_error(result, "--epochs must be at most 100000", "1000000000")
    result = _featx("extract", corpus, "--segment-seconds", "1e300", "-o", "x.csv", cwd=tmp_path)
    _one_line_error(result, "1e+300", "at most 3600")
    assert not (tmp_path / "x.csv").exists()


def test_knn_neighbours_beyond_training_rows_is_one_line(tmp_path, synthetic_feature_csv):
    csv = synthetic_feature_csv(tmp_path / "t.csv", n_tracks=4, n_segments=1, classes=["a", "b", "c"],
                                seed=0, separation=5.0, track_spread=0.1, row_spread=0.1)
    result = _featx("train", csv, "-m", "knn", "-p", "n_neighbors=600", "--folds", "2", "-o", "k",
                    cwd=tmp_path)
    _one_line_error(result, "n_neighbors=600", "training rows")
    assert not (tmp_path / "k" / "metadata.json").exists()


def test_keras_options_refused_for_scikit_learn_models(tmp_path, synthetic_feature_csv):
    csv = synthetic_feature_csv(tmp_path / "t.csv", n_tracks=4, n_segments=1, classes=["a", "b", "c"],
                                seed=0, separation=5.0, track_spread=0.1, row_spread=0.1)
    result = _featx("train", csv, "-m", "knn", "--epochs", "5", "--optimizer", "sgd", "-o", "k", cwd=tmp_path)
    _one_line_error(result, "Keras training option", "knn is a scikit-learn model")
    result = _featx("train", csv, "-m", "knn", "--lr-schedule", "constant", "-o", "k", cwd=tmp_path)
    _one_line_error(result, "--lr-schedule")
    assert not (tmp_path / "k").exists()


# ---------------------------------------------------------------------------
# sweep folders


def test_sweep_folder_of_other_data_or_model_is_refused_unless_overwrite(tmp_path, synthetic_feature_csv):
    kw = dict(n_tracks=6, n_segments=1, classes=["a", "b", "c"], separation=5.0, track_spread=0.1,
              row_spread=0.1)
    one = synthetic_feature_csv(tmp_path / "one.csv", seed=0, **kw)
    two = synthetic_feature_csv(tmp_path / "two.csv", seed=1, **kw)
    base = ["sweep", "-o", "sw", "--folds", "3", "--no-retrain-best"]
    first = _featx(*base[:1], one, "-m", "knn", *base[1:], "-p", "n_neighbors=1,3", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    results = (tmp_path / "sw" / "results.csv").read_text()
    other = _featx(*base[:1], two, "-m", "knn", *base[1:], "-p", "n_neighbors=1,3", cwd=tmp_path)
    _one_line_error(other, "sha256", "two.csv", "--overwrite")
    model = _featx(*base[:1], one, "-m", "svm", *base[1:], "-p", "C=1", cwd=tmp_path)
    _one_line_error(model, "model knn vs svm")
    assert (tmp_path / "sw" / "results.csv").read_text() == results
    (tmp_path / "sw" / "notes.txt").write_text("mine")
    again = _featx(*base[:1], two, "-m", "knn", *base[1:], "-p", "n_neighbors=1,3", "--overwrite",
                   cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "2 combinations: 0 reused, 2 run" in again.stdout
    assert (tmp_path / "sw" / "notes.txt").read_text() == "mine"


# ---------------------------------------------------------------------------
# messages and help


def test_random_search_larger_than_its_grid_is_the_grid(tmp_path, synthetic_feature_csv):
    csv = synthetic_feature_csv(tmp_path / "t.csv", n_tracks=6, n_segments=1, classes=["a", "b", "c"],
                                seed=0, separation=5.0, track_spread=0.1, row_spread=0.1)
    result = _featx("sweep", csv, "-m", "knn", "-o", "sw", "--folds", "3", "--no-retrain-best",
                    "--search", "random", "--n-iter", "1000000000", "-p", "n_neighbors=3,5", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "2 combinations" in result.stdout and "1,000,000,000" not in result.stdout + result.stderr


def test_single_group_class_warning_and_group_advice(caplog):
    import logging

    from featx.data.splits import _check_labels
    from featx.errors import DataError

    y = np.array(["blues", "rock", "rock", "jazz", "jazz"])
    groups = np.array(["b1", "r1", "r2", "j1", "j2"])
    # the level is set here: an earlier in-process `featx -q` leaves featx's loggers at ERROR
    with caplog.at_level(logging.WARNING, logger="featx"):
        _check_labels(y, groups, 1, "t.csv")
    text = " ".join(r.getMessage() for r in caplog.records)
    assert "'blues' has only 1 group" in text and "1 folds" not in text
    with pytest.raises(DataError, match="more data: training, validation and testing need 3 groups") as info:
        _check_labels(np.array(["a", "b"]), np.array(["g1", "g2"]), 2, "t.csv")
    assert "fewer folds" not in str(info.value)


def test_help_texts_and_choices():
    from click.testing import CliRunner

    from featx.cli import main

    runner = CliRunner()
    extract_help = runner.invoke(main, ["extract", "--help"]).output
    assert "[default|gtzan|musicnn-msd|musicnn-mtt]" in extract_help
    assert "INPUTS" in runner.invoke(main, ["blend", "--help"]).output.split("Options:")[0].split("Pairs")[1]
    predict_help = runner.invoke(main, ["predict", "--help"]).output
    assert "readable table" in predict_help
    assert "one boxplot PNG per feature" in runner.invoke(main, ["plot", "features", "--help"]).output
    assert "one PNG per file" in runner.invoke(main, ["plot", "audio", "--help"]).output
    for command in (["extract"], ["spectrograms"], ["sweep"]):
        assert "integer >= 1" in runner.invoke(main, [*command, "--help"]).output.replace("\n", " ")
    bad = runner.invoke(main, ["extract", ".", "-o", "x.csv", "--preset", "kaggle"])
    assert bad.exit_code == 2 and "'kaggle' is not one of" in bad.output
