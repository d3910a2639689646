"""Figure functions: they draw the data they are given."""

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
