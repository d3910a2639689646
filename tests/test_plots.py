"""Figure functions: they draw the data they are given."""

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from featx.reporting import figures as plots


def test_confusion_heatmap_counts_and_normalised():
    cm = [[8, 2], [1, 3]]
    _, ax = plots.new_figure()
    plots.confusion_heatmap(cm, ["a", "b"], ax=ax)
    np.testing.assert_array_equal(np.asarray(ax.collections[0].get_array()).reshape(2, 2), cm)
    assert [t.get_text() for t in ax.texts] == ["8", "2", "1", "3"]
    _, ax = plots.new_figure()
    plots.confusion_heatmap(cm, ["a", "b"], ax=ax, normalize=True)
    values = np.asarray(ax.collections[0].get_array()).reshape(2, 2)
    np.testing.assert_allclose(values, [[0.8, 0.2], [0.25, 0.75]])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b"]


def test_history_curves_draw_train_and_validation():
    hist = [{"fold": "fold1", "loss": [1.0, 0.5, 0.4], "val_loss": [1.1, 0.7, 0.8]},
            {"fold": "fold2", "loss": [0.9, 0.6], "val_loss": [1.0, 0.9]}]
    _, ax = plots.new_figure()
    plots.history_curves(hist, metric="loss", ax=ax)
    ys = sorted(tuple(np.round(line.get_ydata(), 3)) for line in ax.get_lines() if len(line.get_ydata()) > 1)
    assert (1.0, 0.5, 0.4) in ys and (1.1, 0.7, 0.8) in ys and (1.0, 0.9) in ys
    _, ax = plots.new_figure()
    plots.history_curves([{"fold": "f"}], metric="loss", ax=ax)
    assert "no per-epoch loss" in ax.texts[0].get_text()


def test_per_class_bars_heights():
    _, ax = plots.new_figure()
    plots.per_class_bars({"a": {"precision": 0.5, "recall": 0.25, "f1": 1 / 3},
                          "b": {"precision": 1.0, "recall": 0.75, "f1": 6 / 7}}, ax=ax)
    heights = sorted(round(p.get_height(), 4) for p in ax.patches if p.get_height() > 0)
    assert heights == sorted(round(v, 4) for v in (0.5, 0.25, 1 / 3, 1.0, 0.75, 6 / 7))


@pytest.mark.slow
def test_feature_boxplot_on_real_features(tmp_path, gtzan_dir):
    frame = pd.read_csv(gtzan_dir / "features_30_sec.csv")
    fig, ax = plots.new_figure()
    plots.feature_boxplot(frame, "spectral_centroid_mean", ax=ax)
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == sorted(frame["label"].unique()) and len(labels) == 10
    # the median line of each box sits at that genre's median
    medians = frame.groupby("label")["spectral_centroid_mean"].median()
    lines = [l for l in ax.get_lines() if len(l.get_xdata()) == 2 and l.get_ydata()[0] == l.get_ydata()[1]]
    drawn = {round(l.get_ydata()[0], 3) for l in lines}
    assert all(round(m, 3) in drawn for m in medians)
    assert plots.save_figure(fig, tmp_path / "box.png").read_bytes()[:4] == b"\x89PNG"


def test_chromagram_of_a_pure_tone_peaks_at_its_pitch_class():
    sr = 22050
    y = 0.5 * np.sin(2 * np.pi * 440.0 * np.arange(sr * 2) / sr)
    _, ax = plots.new_figure()
    plots.chromagram(y, sr, ax=ax)
    chroma = np.asarray(ax.collections[0].get_array()).reshape(12, -1)
    assert np.bincount(chroma.argmax(axis=0)).argmax() == 9  # A
    _, axes = plots.new_figure(ncols=2)
    plots.mel_spectrogram(y, sr, ax=axes[0])
    plots.waveform(y, sr, ax=axes[1])
    mel = np.asarray(axes[0].collections[0].get_array())
    assert mel.max() == pytest.approx(0.0)  # dB relative to the peak


def test_write_evaluation_figures(tmp_path):
    metrics = {"classes": ["a", "b"], "track": {
        "confusion_matrix": [[3, 1], [0, 4]],
        "per_class": {"a": {"precision": 1.0, "recall": 0.75, "f1": 0.857},
                      "b": {"precision": 0.8, "recall": 1.0, "f1": 0.889}}}}
    written = plots.write_evaluation_figures(tmp_path, metrics, [{"fold": "f", "loss": [1, 0.5],
                                                                   "accuracy": [0.5, 0.8]}])
    assert sorted(p.name for p in written) == ["confusion_counts.png", "confusion_normalized.png",
                                               "curves.png", "per_class.png"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" and p.stat().st_size > 5000 for p in written)


def test_normalised_confusion_figure_marks_absent_rows_na():
    from featx.reporting.figures import confusion_heatmap, new_figure

    matrix = [[3, 1, 0], [0, 0, 0], [0, 2, 2]]
    fig, ax = new_figure()
    confusion_heatmap(matrix, ["a", "b", "c"], ax=ax, normalize=True)
    texts = [t.get_text() for t in ax.texts]
    assert any(t.startswith("n/a") for t in texts)
    assert "0.75" in texts and "0.50" in texts
    assert texts.count("0.00") == 2  # the real zeros of rows a and c, none for absent row b
    fig, ax = new_figure()
    confusion_heatmap(matrix, ["a", "b", "c"], ax=ax, normalize=False)
    assert not any("n/a" in t.get_text() for t in ax.texts)


def test_per_class_bars_draw_no_recall_for_an_absent_genre():
    from featx.reporting.figures import new_figure, per_class_bars

    fig, ax = new_figure()
    per_class_bars({"a": {"precision": 0.5, "recall": 0.6, "f1": 0.55, "support": 3},
                    "b": {"precision": 0.25, "recall": 0.0, "f1": 0.0, "support": 0}}, ax=ax)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b (n/a: no rows)"]
    heights = sorted(round(float(p.get_height()), 2) for p in ax.patches if p.get_height() > 0)
    assert heights == [0.25, 0.5, 0.55, 0.6]  # no zero-height recall/F1 bars pretending a score


def _png_title(path: Path) -> str:
    from PIL import Image

    with Image.open(path) as image:
        return image.text["Title"]


def test_figure_titles_name_model_data_level_and_n(tmp_path, synthetic_feature_csv, invoke):
    csv = synthetic_feature_csv(tmp_path / "songs.csv", n_tracks=6, n_segments=1, classes=["a", "b"],
                                seed=1, separation=3.0, track_spread=0.3, row_spread=0.1)
    titles = {}
    for model in ("svm", "knn"):
        result = invoke("-q", "train", csv, "-m", model, "--folds", "2", "-o", tmp_path / model)
        assert result.exit_code == 0, result.output
        titles[model] = _png_title(tmp_path / model / "figures" / "confusion_counts.png")
        assert titles[model].startswith(f"{model} on songs.csv: confusion matrix (counts)")
        assert "track level, n = 12 tracks" in titles[model]
        assert "n = 12 tracks" in _png_title(tmp_path / model / "figures" / "per_class.png")
    assert titles["svm"] != titles["knn"]
    # figures redrawn from a bundle say the same
    redrawn = invoke("-q", "plot", "bundle", tmp_path / "svm", "-o", tmp_path / "again")
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


@pytest.mark.slow
def test_a_300_class_confusion_figure_has_a_bounded_size(tmp_path):
    from PIL import Image

    from featx.reporting.figures import MAX_FIGURE_INCHES, write_evaluation_figures

    n = 300
    rng = np.random.default_rng(0)
    classes = [f"genre{i:03d}" for i in range(n)]
    matrix = rng.integers(0, 3, (n, n))
    matrix[np.arange(n), np.arange(n)] += 10
    metrics = {"classes": classes, "model": "knn",
               "track": {"confusion_matrix": matrix.tolist(), "n": int(matrix.sum()),
                         "per_class": {c: {"precision": 0.5, "recall": 0.6, "f1": 0.55} for c in classes}}}
    started = time.perf_counter()
    written = write_evaluation_figures(tmp_path, metrics)
    assert time.perf_counter() - started < 90
    bound = int(MAX_FIGURE_INCHES * 110) + 1
    for path in written:
        width, height = Image.open(path).size
        assert width <= bound and height <= bound, (path, width, height)
    assert Image.open(tmp_path / "confusion_counts.png").size[0] > 1000  # still a readable heat map


def test_plot_audio_refuses_an_absurd_rate_in_one_line(corpus, tmp_path, run_cli, single_line_error):
    result = run_cli("plot", "audio", corpus / "tones" / "tones.00000.wav", "--sr", "100000000",
                     "-o", tmp_path / "plots", ok=False)
    single_line_error(result, "--sr 100000000", "between 1000 and 384000")
