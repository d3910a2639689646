"""Timelines: ``featx predict --timeline`` (every window's probabilities as CSV),
:func:`featx.bundle.timeline.read_timeline`, and ``featx plot timeline``."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

CLIPS = (Path("audio") / "jazz" / "jazz.00001.wav", Path("audio") / "rock" / "rock.00000.wav",
         Path("audio") / "classical" / "classical.00002.wav")


@pytest.fixture(scope="module")
def segment_bundle(gtzan_dir, run_cli, tmp_path_factory) -> Path:
    """k-NN on the real 3-s GTZAN rows of classical, jazz and rock (a timeline of 3-s windows)."""
    out = tmp_path_factory.mktemp("timeline") / "knn3"
    run_cli("train", gtzan_dir / "features_3_sec.classical_jazz_rock.csv", "--model", "knn", "--folds", "2",
            "-o", out)
    return out


@pytest.mark.slow
def test_predict_timeline_windows_average_to_the_predicted_rows(segment_bundle, gtzan_dir, run_cli, tmp_path):
    clips = [gtzan_dir / c for c in CLIPS if (gtzan_dir / c).exists()]
    assert len(clips) >= 2
    timeline = tmp_path / "timeline.csv"
    predicted = pd.read_csv(io.StringIO(run_cli("predict", segment_bundle, *clips, "-f", "csv",
                                                "--timeline", timeline).output))
    frame = pd.read_csv(timeline)
    classes = ["classical", "jazz", "rock"]
    assert list(frame.columns) == ["file", "window", "start", "end", *classes]
    for _, row in predicted.iterrows():
        mine = frame[frame["file"] == row["file"]]
        assert len(mine) == 10  # 30-s clips in 3-s windows
        assert list(mine["window"]) == list(range(len(mine)))
        np.testing.assert_allclose(mine["start"], 3.0 * np.arange(len(mine)), atol=1e-6)
        assert (mine["end"] > mine["start"]).all() and mine["end"].max() <= 30.1
        np.testing.assert_allclose(mine[classes].mean().to_numpy(), row[classes].to_numpy(dtype=float), atol=1e-6)
        np.testing.assert_allclose(mine[classes].sum(axis=1), 1.0, atol=1e-5)
    # drawn: one panel per file, or only the file asked for
    png = run_cli("plot", "timeline", timeline, "-o", tmp_path / "all.png").output.strip()
    assert Path(png).stat().st_size > 10_000
    one = run_cli("plot", "timeline", timeline, "--file", clips[0].name, "-o", tmp_path / "one.png").output.strip()
    assert Path(one).stat().st_size > 5_000
    result = run_cli("plot", "timeline", timeline, "--file", "nothing.wav", ok=False)
    assert "no file 'nothing.wav'" in result.output
    assert not (tmp_path / "timeline.png").exists()


@pytest.mark.slow
def test_a_whole_clip_model_has_one_window_per_30_s_clip(gtzan_dir, run_cli, tmp_path):
    out = tmp_path / "knn30"
    run_cli("train", gtzan_dir / "features_30_sec.csv", "--model", "knn", "--folds", "2", "-o", out)
    timeline = tmp_path / "t.csv"
    run_cli("predict", out, gtzan_dir / CLIPS[0], "--timeline", timeline)
    frame = pd.read_csv(timeline)
    assert len(frame) == 1 and frame["start"].iloc[0] == 0.0 and frame["end"].iloc[0] == pytest.approx(30.0, abs=0.1)
    assert frame.shape[1] == 4 + 10


def test_timeline_and_output_must_differ(run_cli, tmp_path):
    table = tmp_path / "rows.csv"
    table.write_text("filename,tempo\nx.wav,120\n")
    out = tmp_path / "same.csv"
    result = run_cli("predict", tmp_path, table, "--timeline", out, "-o", out, ok=False)
    assert "--timeline and -o name the same file" in result.output
    assert not out.exists()


@pytest.mark.slow
def test_timeline_needs_audio_among_the_inputs(segment_bundle, gtzan_dir, run_cli, tmp_path):
    timeline = tmp_path / "t.csv"
    result = run_cli("predict", segment_bundle, gtzan_dir / "features_3_sec.classical_jazz_rock.csv",
                     "--timeline", timeline, ok=False)
    assert "--timeline needs audio files among the inputs" in result.output
    assert not timeline.exists()


@pytest.mark.parametrize("text, said", [
    ("file,start,window,end,rock\na.wav,0,0,3,1\n", "columns start with file, start, window, end; expected file, window"),
    ("file,window,start,end\na.wav,0,0,3\n", "no probability columns"),
    ("file,window,start,end,rock\n", "no rows"),
    ("file,window,start,end,rock,jazz\na.wav,0,0,3,0.5,0.5\na.wav,1,3,6,1.5,0\n",
     "column 'rock', row 3: 1.5; expected a probability in [0, 1]"),
    ("file,window,start,end,rock\na.wav,0.5,0,3,1\n", "column 'window', row 2: 0.5; expected a whole number"),
    ("file,window,start,end,rock\na.wav,0,3,1,1\n", "row 2: end 1.0 is before start 3.0"),
    ("file,window,start,end,rock\n,0,0,3,1\n", "column 'file' is empty in row 2"),
])
def test_plot_timeline_names_what_is_wrong_in_the_csv(text, said, run_cli, tmp_path):
    csv = tmp_path / "bad.csv"
    csv.write_text(text)
    result = run_cli("plot", "timeline", csv, ok=False)
    assert said in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not csv.with_suffix(".png").exists()


def test_plot_timeline_draws_a_written_csv(run_cli, tmp_path):
    rng = np.random.default_rng(1)
    proba = rng.dirichlet(np.ones(4), size=12)
    frame = pd.DataFrame({"file": ["x.wav"] * 12, "window": range(12), "start": 3.0 * np.arange(12),
                          "end": 3.0 * np.arange(12) + 3.0})
    frame[["blues", "jazz", "metal", "pop"]] = proba
    csv = tmp_path / "t.csv"
    frame.to_csv(csv, index=False)
    assert run_cli("plot", "timeline", csv).output.strip() == str(tmp_path / "t.png")
    assert (tmp_path / "t.png").stat().st_size > 5_000
    result = run_cli("plot", "timeline", csv, "-o", tmp_path / "t.jpg", ok=False)
    assert "expected a file name ending in .png" in result.output
