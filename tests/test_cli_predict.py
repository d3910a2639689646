"""``featx predict``: inputs far from the training data, warnings about tracks and audio it was
trained on, ``--top-k`` tables, and long audio for a model trained on whole clips."""
from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from featx.cli import main


def test_a_value_too_far_from_the_training_data_is_one_line(small_bundles, small_table, tmp_path, invoke, one_line_error):
    frame = pd.read_csv(small_table)
    frame.loc[3, "f_b"] = 1e90  # finite and within the small_table limit, but not a standardisable input
    far = tmp_path / "far.csv"
    frame.to_csv(far, index=False)
    one_line_error(invoke("-q", "predict", small_bundles["mlp"], far), "'f_b'", "row 5", str(far))


def test_predict_warns_about_training_tracks(five_genres, tmp_path, invoke):
    bundle, train_csv, frame = five_genres
    result = invoke("predict", bundle, train_csv)
    assert result.exit_code == 0, result.output
    assert "WARNING: 30 of 30 input tracks" in result.stderr and "WARNING" not in result.stdout
    fresh = tmp_path / "fresh.csv"
    frame.to_csv(fresh, index=False)
    result = invoke("predict", bundle, fresh)
    assert result.exit_code == 0 and "WARNING" not in result.output


def test_predict_warns_about_training_audio(corpus, tmp_path, run_cli, write_wav, tone, invoke):
    table = tmp_path / "features.csv"
    run_cli("extract", corpus, "-o", table, "-j", "1")
    model = tmp_path / "knn"
    run_cli("train", table, "--model", "knn", "-p", "n_neighbors=1", "--folds", "2", "-o", model)
    seen = corpus / "tones" / "tones.00000.wav"
    result = invoke("predict", model, seen)
    assert result.exit_code == 0, result.output
    assert "WARNING: 1 of 1 input tracks" in result.stderr and "tones.00000" in result.stderr
    new = write_wav(tmp_path / "other" / "new.wav", tone(550, 6.5))
    result = invoke("predict", model, new)
    assert result.exit_code == 0 and "WARNING" not in result.stderr


def test_top_k_with_csv_gives_the_k_best_genres(tmp_path, synthetic_feature_csv, invoke):
    csv = synthetic_feature_csv(tmp_path / "t.csv", n_tracks=5, n_segments=1, classes=["a", "b", "c"],
                                seed=2, separation=2.0, track_spread=0.3, row_spread=0.1)
    assert invoke("-q", "train", csv, "-m", "knn", "--folds", "2", "-o", tmp_path / "b").exit_code == 0
    full = invoke("-q", "predict", tmp_path / "b", csv, "-f", "csv")
    top = invoke("-q", "predict", tmp_path / "b", csv, "-f", "csv", "-k", "2")
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


@pytest.mark.slow
def test_whole_clip_model_predicts_long_audio_in_windows(tmp_path, tone, clicks, write_wav, invoke):
    import soundfile as sf

    sr = 22050
    root = tmp_path / "audio"
    for i in range(4):
        write_wav(root / "tones" / f"tones.{i:05d}.wav", tone(300 + 100 * i, 10.0))
        write_wav(root / "clicks" / f"clicks.{i:05d}.wav", clicks(90 + 10 * i, 10.0))
    table = tmp_path / "whole.csv"
    assert invoke("-q", "extract", root, "-o", table, "--whole-file", "-j", "1").exit_code == 0
    assert set(pd.read_csv(table)["length"]) == {10 * sr}
    bundle = tmp_path / "bundle"
    assert invoke("-q", "train", table, "-m", "knn", "-p", "n_neighbors=3", "--folds", "2",
                   "-o", bundle).exit_code == 0

    # 90 s: tones and clicks in turns, so that the windows disagree
    parts = [tone(350 + 20 * k, 10.0) if k % 2 else clicks(95 + 5 * k, 10.0) for k in range(9)]
    song = write_wav(tmp_path / "long" / "song.wav", np.concatenate(parts))
    decoded, _ = sf.read(song, dtype="float32")
    windows = []
    for k in range(9):  # the very samples of each window, as files of their own
        windows.append(write_wav(tmp_path / "windows" / f"w{k}.wav", decoded[k * 10 * sr:(k + 1) * 10 * sr]))

    result = invoke("predict", bundle, song, "-f", "csv")
    assert result.exit_code == 0, result.output
    row = pd.read_csv(io.StringIO(result.stdout))
    assert list(row.columns[:3]) == ["file", "genre", "windows"] and row["windows"].tolist() == [9]
    assert result.stderr.count("windows of that length") == 1
    assert "10.0 s" in result.stderr
    as_json = invoke("-q", "predict", bundle, song, "-f", "json")
    assert as_json.stderr == "" and '"windows": 9' in as_json.stdout
    each = invoke("-q", "predict", bundle, *windows, "-f", "csv")
    per_window = pd.read_csv(io.StringIO(each.stdout))
    assert per_window["windows"].tolist() == [1] * 9
    classes = ["clicks", "tones"]
    np.testing.assert_allclose(row[classes].to_numpy()[0], per_window[classes].mean().to_numpy(), atol=2e-6)
    assert 0 < row["tones"][0] < 1  # the windows really differ

    # a clip of the training length stays one window: the whole file
    clip = invoke("-q", "predict", bundle, root / "tones" / "tones.00000.wav", "-f", "csv")
    assert pd.read_csv(io.StringIO(clip.stdout))["windows"].tolist() == [1]


def _run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


@pytest.fixture
def whole_clip_bundle(tmp_path, tone, clicks, write_wav):
    """A knn trained on one row per 10-s clip, and a 40-s file for it."""
    root = tmp_path / "audio"
    for i in range(4):
        write_wav(root / "tones" / f"tones.{i:05d}.wav", tone(300 + 100 * i, 10.0))
        write_wav(root / "clicks" / f"clicks.{i:05d}.wav", clicks(90 + 10 * i, 10.0))
    table = tmp_path / "whole.csv"
    assert _run("-q", "extract", root, "-o", table, "--whole-file", "-j", "1").exit_code == 0
    bundle = tmp_path / "bundle"
    assert _run("-q", "train", table, "-m", "knn", "-p", "n_neighbors=3", "--folds", "2",
                   "-o", bundle).exit_code == 0
    song = write_wav(tmp_path / "long" / "song.wav",
                     np.concatenate([tone(350, 10.0), clicks(95, 10.0), tone(400, 10.0), clicks(100, 10.0)]))
    return bundle, song


def test_the_windows_note_names_the_column_only_where_it_is_shown(whole_clip_bundle):
    bundle, song = whole_clip_bundle
    table = _run("predict", bundle, song)  # the default table has no windows column
    assert table.exit_code == 0, table.output
    assert "windows" not in table.stdout.splitlines()[0]
    assert table.stderr.count("windows of that length") == 1
    assert "column 'windows'" not in table.stderr
    for fmt in ("csv", "json"):
        shown = _run("predict", bundle, song, "-f", fmt)
        assert shown.exit_code == 0 and "windows" in shown.stdout
        assert shown.stderr.count("(column 'windows')") == 1, shown.stderr
