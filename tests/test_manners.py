"""How featx behaves around the work: Ctrl-C, -q, progress without a terminal, decode
messages, figure titles, --top-k, thread limits, and long audio for whole-clip models."""
from __future__ import annotations

import io
import os
import re
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from featx.cli import main

REPO = Path(__file__).resolve().parents[1]
PROGRESS_LINE = re.compile(r"^[\w .-]+: \d+(/\d+)? \w+, \d+\.\d s(, .*)?$")

def _default_sigint():
    """Run in the child before exec: Ctrl-C acts as on a terminal even when this test run
    was started with SIGINT ignored (a background job of a non-interactive shell)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)



def _featx(*args, env=None, **kwargs):
    """``python -m featx ARGS`` as a real process (stderr is a pipe, not a terminal)."""
    return subprocess.run([sys.executable, "-m", "featx", *map(str, args)], capture_output=True,
                          text=True, cwd=REPO, env={**os.environ, **(env or {})}, **kwargs)


def _invoke(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


# ---------------------------------------------------------------------------
# Ctrl-C


def test_ctrl_c_in_train_exits_130_with_one_line(tmp_path, synthetic_feature_csv):
    csv = synthetic_feature_csv(tmp_path / "t.csv", n_tracks=40, n_segments=1, classes=["a", "b", "c"],
                                seed=0, separation=1.0, track_spread=0.5, row_spread=0.1)
    env = {**os.environ, "FEATX_PROGRESS_INTERVAL": "0.2"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "featx", "train", str(csv), "-m", "mlp", "--units", "8",
         "--epochs", "100000", "--patience", "0", "--reduce-lr-patience", "0", "--folds", "2",
         "-o", str(tmp_path / "m")],
        stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO, env=env,
        preexec_fn=_default_sigint)
    lines = []
    try:
        selector = selectors.DefaultSelector()
        selector.register(proc.stderr, selectors.EVENT_READ)
        deadline = time.monotonic() + 180
        # wait until training reports its epochs: the run has really started
        while not any("epochs," in line for line in lines):
            assert time.monotonic() < deadline and proc.poll() is None, "".join(lines)
            if selector.select(timeout=1):
                lines.append(proc.stderr.readline())
        proc.send_signal(signal.SIGINT)
        out, rest = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, "".join(lines) + rest
    messages = [line for line in rest.splitlines() if line and not PROGRESS_LINE.match(line)]
    assert messages == ["train: interrupted"], rest
    assert "Traceback" not in rest and "Aborted" not in rest
    assert not (tmp_path / "m").exists()


def test_every_command_goes_through_the_one_error_handler():
    import click

    def leaves(command):
        if isinstance(command, click.Group):
            ctx = click.Context(command)
            for name in command.list_commands(ctx):
                yield from leaves(command.get_command(ctx, name))
        else:
            yield command

    commands = list(leaves(main))
    assert len(commands) >= 9
    unhandled = [c.name for c in commands if not getattr(c.callback, "handles_errors", False)]
    assert unhandled == []


# ---------------------------------------------------------------------------
# -q


def test_quiet_runs_print_nothing_on_stderr(corpus, tmp_path, synthetic_feature_csv):
    out = tmp_path / "f.csv"
    table = synthetic_feature_csv(tmp_path / "t.csv", n_tracks=6, n_segments=1, classes=["a", "b"],
                                  seed=3, separation=3.0, track_spread=0.3, row_spread=0.1)
    runs = [
        ("extract", corpus, "-o", out, "-j", "1", "--segment-seconds", "2"),
        ("extract", corpus, "-o", out, "-j", "1", "--segment-seconds", "2"),  # up to date
        ("train", out, "-m", "svm", "--folds", "2", "-o", tmp_path / "b"),
        ("evaluate", tmp_path / "b", out, "-o", tmp_path / "e"),  # its tracks were trained on
        ("predict", tmp_path / "b", corpus, "-o", tmp_path / "p.csv", "-f", "csv"),
        ("plot", "bundle", tmp_path / "b", "-o", tmp_path / "fig"),
        ("sweep", table, "-m", "knn", "-p", "n_neighbors=1,3", "--folds", "2", "-o", tmp_path / "s"),
    ]
    for args in runs:
        result = _invoke("-q", *args)
        assert result.exit_code == 0, (args, result.output)
        assert result.stderr == "", (args, result.stderr)
    # the same runs without -q do say things on stderr
    loud = _invoke("evaluate", tmp_path / "b", out, "-o", tmp_path / "e2")
    assert loud.exit_code == 0 and "used to train this model" in loud.stderr


#: Commands that do not take -q/-v after their name yet (featx/cli/models.py and sweep.py
#: apply featx.cli.options.verbosity when they do).
NOT_YET_VERBOSITY: set[str] = set()


def test_q_and_v_work_after_the_command_name(corpus, tmp_path):
    """``featx spectrograms -q`` was "No such option: -q"."""
    import click

    for name in sorted(main.list_commands(click.Context(main))):
        command = main.get_command(click.Context(main), name)
        leaves = command.commands.values() if isinstance(command, click.Group) else [command]
        for leaf in leaves:
            opts = {o for p in leaf.params for o in getattr(p, "opts", [])}
            if name not in NOT_YET_VERBOSITY:
                assert {"-q", "-v", "--quiet", "--verbose"} <= opts, (name, leaf.name)
    out = tmp_path / "f.csv"
    for args in (("extract", corpus, "-o", out, "-j", "1", "-q"),
                 ("spectrograms", corpus, "-o", tmp_path / "s", "--kinds", "mel", "-j", "1", "-q"),
                 ("blend", corpus, "-o", tmp_path / "b", "--pairs", "1", "-q"),
                 ("plot", "features", out, "-o", tmp_path / "p", "-q")):
        result = _invoke(*args)
        assert result.exit_code == 0 and result.stderr == "", (args, result.output)
    (corpus / "tones" / "tones.00000.wav").touch()  # changed: analysed again
    featx = [sys.executable, "-m", "featx"]  # a fresh process: its own logging set-up
    again = subprocess.run([*featx, "extract", str(corpus), "-o", str(out), "-j", "1", "-v"],
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "INFO: 3 of 4 file(s) unchanged since an earlier run" in again.stderr
    both = subprocess.run([*featx, "-v", "extract", str(corpus), "-o", str(out), "-j", "1", "-q"],
                          capture_output=True, text=True, timeout=300)  # -q wins wherever it stands
    assert both.returncode == 0 and both.stderr == ""


# ---------------------------------------------------------------------------
# progress without a terminal


def test_extract_without_a_terminal_prints_progress_lines(tmp_path, tone, write_wav, monkeypatch):
    root = tmp_path / "audio"
    for i in range(6):
        write_wav(root / "g" / f"g.{i:05d}.wav", tone(220 + 40 * i, 3.5))
    done = _featx("extract", root, "-o", tmp_path / "a.csv", "-j", "1",
                  env={"FEATX_PROGRESS_INTERVAL": "0"})
    assert done.returncode == 0, done.stderr
    counts = [int(m.group(1)) for m in re.finditer(r"^extract: (\d+)/6 files, \d+\.\d s$",
                                                     done.stderr, re.M)]
    assert counts == [1, 2, 3, 4, 5, 6], done.stderr
    assert "\r" not in done.stderr and "it/s" not in done.stderr  # lines, not a tqdm bar
    # a long interval says nothing during a short run; -q never says anything
    monkeypatch.setenv("FEATX_PROGRESS_INTERVAL", "3600")
    slow = _invoke("extract", root, "-o", tmp_path / "b.csv", "-j", "1")
    assert slow.exit_code == 0 and "extract:" not in slow.stderr and "wrote 6 rows" in slow.stderr
    monkeypatch.setenv("FEATX_PROGRESS_INTERVAL", "0")
    quiet = _invoke("-q", "extract", root, "-o", tmp_path / "c.csv", "-j", "1")
    assert quiet.exit_code == 0 and quiet.stderr == ""


def test_progress_lines_follow_the_interval():
    from featx.runtime.progress import LineProgress

    stream = io.StringIO()
    bar = LineProgress(total=4, desc="trials", unit="trial", interval=0.2, stream=stream)
    bar.update()
    assert stream.getvalue() == ""
    time.sleep(0.25)
    bar.set_postfix_str("best f1_macro 0.5000")
    bar.update()
    bar.update()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and re.fullmatch(r"trials: 2/4 trials, 0\.\d s, best f1_macro 0\.5000", lines[0])


def test_a_bad_progress_interval_is_one_line(corpus, tmp_path):
    done = _featx("extract", corpus, "-o", tmp_path / "a.csv", env={"FEATX_PROGRESS_INTERVAL": "soon"})
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "Error: FEATX_PROGRESS_INTERVAL must be a number of seconds >= 0. "
        "Received: FEATX_PROGRESS_INTERVAL='soon'"]


# ---------------------------------------------------------------------------
# decode errors


def test_files_that_are_not_audio_are_skipped_with_what_is_wrong(corpus, tmp_path):
    (corpus / "tones" / "notes.wav").write_text("these are my notes, not audio\n")
    (corpus / "tones" / "noise.flac").write_bytes(bytes(range(200, 256)) * 8)
    out = tmp_path / "f.csv"
    result = _invoke("extract", corpus, "-o", out, "-j", "1")
    assert result.exit_code == 1
    text = result.stderr
    assert re.search(r"skipped \S*notes\.wav: cannot be decoded as audio: not a WAV file: no RIFF header \(starts with text\)", text), text
    assert re.search(r"skipped \S*noise\.flac: cannot be decoded as audio: not a FLAC file: no fLaC header \(starts with bytes c8 c9 ca cb\)",
                     text), text
    assert "NoBackendError" not in text and "Traceback" not in text
    assert len(pd.read_csv(out)) == 4 * 2  # the four real clips still give their rows


def test_unknown_and_damaged_files_say_so(tmp_path, tone, write_wav):
    from featx.errors import AudioError
    from featx.extract.audio import load

    odd = tmp_path / "clip.bin"
    odd.write_bytes(b"\x00\x01\x02\x03" * 64)
    with pytest.raises(AudioError, match=r"clip\.bin: cannot be decoded as audio: unknown format \(starts with bytes "
                                         r"00 01 02 03\); expected WAV, FLAC"):
        load(odd, sr=22050)
    good = write_wav(tmp_path / "good.wav", tone(440, 1.0))
    damaged = tmp_path / "damaged.wav"
    damaged.write_bytes(good.read_bytes()[:12] + b"\xff" * 40)
    with pytest.raises(AudioError, match=r"damaged\.wav: cannot be decoded as audio: corrupt WAV file"):
        load(damaged, sr=22050)


# ---------------------------------------------------------------------------
# figures


def _png_title(path: Path) -> str:
    from PIL import Image

    with Image.open(path) as image:
        return image.text["Title"]


def test_figure_titles_name_model_data_level_and_n(tmp_path, synthetic_feature_csv):
    csv = synthetic_feature_csv(tmp_path / "songs.csv", n_tracks=6, n_segments=1, classes=["a", "b"],
                                seed=1, separation=3.0, track_spread=0.3, row_spread=0.1)
    titles = {}
    for model in ("svm", "knn"):
        result = _invoke("-q", "train", csv, "-m", model, "--folds", "2", "-o", tmp_path / model)
        assert result.exit_code == 0, result.output
        titles[model] = _png_title(tmp_path / model / "figures" / "confusion_counts.png")
        assert titles[model].startswith(f"{model} on songs.csv: confusion matrix (counts)")
        assert "track level, n = 12 tracks" in titles[model]
        assert "n = 12 tracks" in _png_title(tmp_path / model / "figures" / "per_class.png")
    assert titles["svm"] != titles["knn"]
    # figures redrawn from a bundle say the same
    redrawn = _invoke("-q", "plot", "bundle", tmp_path / "svm", "-o", tmp_path / "again")
    assert redrawn.exit_code == 0, redrawn.output
    assert _png_title(tmp_path / "again" / "confusion_counts.png") == titles["svm"]


def test_training_curves_count_whole_epochs():
    from featx.reporting.figures import history_curves, new_figure

    fig, ax = new_figure()
    history_curves([{"fold": "fold 1", "loss": [1.0, 0.7, 0.6], "val_loss": [1.1, 0.9, 0.8]}],
                   metric="loss", ax=ax)
    fig.canvas.draw()
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks), ticks


# ---------------------------------------------------------------------------
# predict -k with csv


def test_top_k_with_csv_gives_the_k_best_genres(tmp_path, synthetic_feature_csv):
    csv = synthetic_feature_csv(tmp_path / "t.csv", n_tracks=5, n_segments=1, classes=["a", "b", "c"],
                                seed=2, separation=2.0, track_spread=0.3, row_spread=0.1)
    assert _invoke("-q", "train", csv, "-m", "knn", "--folds", "2", "-o", tmp_path / "b").exit_code == 0
    full = _invoke("-q", "predict", tmp_path / "b", csv, "-f", "csv")
    top = _invoke("-q", "predict", tmp_path / "b", csv, "-f", "csv", "-k", "2")
    assert full.exit_code == 0 and top.exit_code == 0, top.output
    full_frame = pd.read_csv(io.StringIO(full.stdout))
    top_frame = pd.read_csv(io.StringIO(top.stdout))
    sure = ["confidence", "uncertain", "distance_pct"]
    assert list(full_frame.columns) == ["file", "genre", *sure, "a", "b", "c"]
    assert list(top_frame.columns) == ["file", "genre", *sure, "top1", "top1_probability", "top2",
                                       "top2_probability"]
    proba = full_frame[["a", "b", "c"]].to_numpy()
    ranked = np.sort(proba, axis=1)[:, ::-1]
    assert (top_frame["top1"] == full_frame["genre"]).all()
    np.testing.assert_allclose(top_frame["top1_probability"], ranked[:, 0], atol=1e-6)
    np.testing.assert_allclose(top_frame["top2_probability"], ranked[:, 1], atol=1e-6)
    assert (top_frame["top1"] != top_frame["top2"]).all()


# ---------------------------------------------------------------------------
# thread limits


def test_scikit_learn_fits_and_predictions_run_on_one_thread():
    """A real estimator that records the BLAS/OpenMP thread counts it runs under."""
    from sklearn.base import BaseEstimator, ClassifierMixin
    from threadpoolctl import threadpool_info

    from featx.models.sklearn_rows import fit_estimator, sklearn_proba

    def threads():
        return max(pool["num_threads"] for pool in threadpool_info())

    class ThreadRecorder(ClassifierMixin, BaseEstimator):
        def fit(self, X, y):
            self.classes_ = np.unique(y)
            self.fit_threads_ = threads()
            return self

        def predict_proba(self, X):
            self.predict_threads_ = threads()
            return np.full((len(X), len(self.classes_)), 1.0 / len(self.classes_))

    X, y = np.random.default_rng(0).normal(size=(20, 3)), np.arange(20) % 2
    model = fit_estimator(ThreadRecorder(), X, y)
    proba = sklearn_proba(model, X)
    assert model.fit_threads_ == 1 and model.predict_threads_ == 1
    assert proba.shape == (20, 2)


# ---------------------------------------------------------------------------
# long audio for a model trained on whole clips


def test_whole_clip_model_predicts_long_audio_in_windows(tmp_path, tone, clicks, write_wav):
    import soundfile as sf

    sr = 22050
    root = tmp_path / "audio"
    for i in range(4):
        write_wav(root / "tones" / f"tones.{i:05d}.wav", tone(300 + 100 * i, 10.0))
        write_wav(root / "clicks" / f"clicks.{i:05d}.wav", clicks(90 + 10 * i, 10.0))
    table = tmp_path / "whole.csv"
    assert _invoke("-q", "extract", root, "-o", table, "--whole-file", "-j", "1").exit_code == 0
    assert set(pd.read_csv(table)["length"]) == {10 * sr}
    bundle = tmp_path / "bundle"
    assert _invoke("-q", "train", table, "-m", "knn", "-p", "n_neighbors=3", "--folds", "2",
                   "-o", bundle).exit_code == 0

    # 90 s: tones and clicks in turns, so that the windows disagree
    parts = [tone(350 + 20 * k, 10.0) if k % 2 else clicks(95 + 5 * k, 10.0) for k in range(9)]
    song = write_wav(tmp_path / "long" / "song.wav", np.concatenate(parts))
    decoded, _ = sf.read(song, dtype="float32")
    windows = []
    for k in range(9):  # the very samples of each window, as files of their own
        windows.append(write_wav(tmp_path / "windows" / f"w{k}.wav", decoded[k * 10 * sr:(k + 1) * 10 * sr]))

    result = _invoke("predict", bundle, song, "-f", "csv")
    assert result.exit_code == 0, result.output
    row = pd.read_csv(io.StringIO(result.stdout))
    assert list(row.columns[:3]) == ["file", "genre", "windows"] and row["windows"].tolist() == [9]
    assert result.stderr.count("windows of that length") == 1
    assert "10.0 s" in result.stderr
    as_json = _invoke("-q", "predict", bundle, song, "-f", "json")
    assert as_json.stderr == "" and '"windows": 9' in as_json.stdout
    each = _invoke("-q", "predict", bundle, *windows, "-f", "csv")
    per_window = pd.read_csv(io.StringIO(each.stdout))
    assert per_window["windows"].tolist() == [1] * 9
    classes = ["clicks", "tones"]
    np.testing.assert_allclose(row[classes].to_numpy()[0], per_window[classes].mean().to_numpy(), atol=2e-6)
    assert 0 < row["tones"][0] < 1  # the windows really differ

    # a clip of the training length stays one window: the whole file
    clip = _invoke("-q", "predict", bundle, root / "tones" / "tones.00000.wav", "-f", "csv")
    assert pd.read_csv(io.StringIO(clip.stdout))["windows"].tolist() == [1]


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
