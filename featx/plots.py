"""Figures: seaborn/matplotlib functions that take data and an Axes and return it.

No pyplot state is used: :func:`new_figure` makes an Agg-backed figure and
:func:`save_figure` writes a PNG, so plotting works headless and never changes
the user's matplotlib backend.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def new_figure(width: float = 7.0, height: float = 5.0, *, ncols: int = 1, nrows: int = 1):
    """``(figure, axes)`` on an off-screen Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, (axes[0, 0] if axes.size == 1 else axes.ravel())


def save_figure(fig, path, *, dpi: int = 110) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


def confusion_heatmap(matrix, classes, *, ax, normalize: bool = False, title: str | None = None):
    """Confusion matrix as a seaborn heatmap (rows: true genre, columns: predicted).

    Parameters
    ----------
    matrix : array-like [shape=(n_classes, n_classes)]
        Counts.
    normalize : bool
        Show each row as fractions of its true-class total.
    """
    import seaborn as sns

    counts = np.asarray(matrix, dtype=float)
    if normalize:
        totals = counts.sum(axis=1, keepdims=True)
        values = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
        fmt = ".2f"
    else:
        values, fmt = counts, ".0f"
    sns.heatmap(values, annot=len(classes) <= 20, fmt=fmt, cmap="Blues", square=True, cbar=True,
                xticklabels=classes, yticklabels=classes, vmin=0, vmax=1 if normalize else None, ax=ax)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or ("confusion matrix (row-normalised)" if normalize else "confusion matrix (counts)"))
    return ax


def history_curves(histories, *, metric: str = "loss", ax):
    """Train (solid) and validation (dashed) curves of ``metric`` for every fold."""
    import seaborn as sns

    rows = []
    for hist in histories:
        for split, key in (("train", metric), ("validation", f"val_{metric}")):
            for epoch, value in enumerate(hist.get(key, []), start=1):
                rows.append({"epoch": epoch, metric: value, "part": split, "fold": hist.get("fold", "")})
    if not rows:
        ax.text(0.5, 0.5, f"no per-epoch {metric} (not a Keras model)", ha="center", va="center",
                transform=ax.transAxes)
        ax.set_axis_off()
        return ax
    frame = pd.DataFrame(rows)
    sns.lineplot(frame, x="epoch", y=metric, hue="fold", style="part", ax=ax)
    if (frame["part"] == "validation").any():
        ax.set_title(f"{metric}: train (solid) and validation (dashed)")
    else:
        ax.set_title(f"{metric}: train (no validation part was held out)")
    return ax


def per_class_bars(per_class: dict, *, ax):
    """Grouped bars of precision, recall and F1 per class."""
    import seaborn as sns

    rows = [{"class": c, "measure": m, "value": v[m]}
            for c, v in per_class.items() for m in ("precision", "recall", "f1")]
    sns.barplot(pd.DataFrame(rows), x="class", y="value", hue="measure", ax=ax)
    ax.set_ylim(0, 1)
    ax.set_xlabel("")
    ax.tick_params(axis="x", labelrotation=45)
    ax.set_title("per-class precision, recall and F1")
    return ax


def feature_boxplot(frame: pd.DataFrame, feature: str, *, ax, by: str = "label"):
    """Boxplot of one feature column per genre."""
    import seaborn as sns

    order = sorted(frame[by].astype(str).unique())
    sns.boxplot(frame.assign(**{by: frame[by].astype(str)}), x=by, y=feature, order=order,
                hue=by, hue_order=order, legend=False, ax=ax)
    ax.set_xlabel("")
    ax.tick_params(axis="x", labelrotation=45)
    ax.set_title(f"{feature} by genre")
    return ax


def waveform(y, sr: int, *, ax, title: str = "waveform"):
    """Waveform envelope of a mono signal ``y`` [shape=(n,)]."""
    import librosa.display

    librosa.display.waveshow(np.asarray(y), sr=sr, ax=ax)
    ax.set_title(title)
    return ax


def mel_spectrogram(y, sr: int, *, ax, n_fft: int = 2048, hop_length: int = 512, n_mels: int = 128,
                    title: str = "mel spectrogram"):
    """Mel power spectrogram in dB."""
    import librosa
    import librosa.display

    S = librosa.feature.melspectrogram(y=np.asarray(y), sr=sr, n_fft=n_fft, hop_length=hop_length,
                                       n_mels=n_mels)
    img = librosa.display.specshow(librosa.power_to_db(S, ref=np.max), sr=sr, hop_length=hop_length,
                                   x_axis="time", y_axis="mel", ax=ax)
    ax.figure.colorbar(img, ax=ax, format="%+2.0f dB")
    ax.set_title(title)
    return ax


def chromagram(y, sr: int, *, ax, n_fft: int = 2048, hop_length: int = 512, title: str = "chromagram"):
    """STFT chromagram."""
    import librosa
    import librosa.display

    C = librosa.feature.chroma_stft(y=np.asarray(y), sr=sr, n_fft=n_fft, hop_length=hop_length)
    img = librosa.display.specshow(C, sr=sr, hop_length=hop_length, x_axis="time", y_axis="chroma", ax=ax)
    ax.figure.colorbar(img, ax=ax)
    ax.set_title(title)
    return ax


# ---------------------------------------------------------------------------
# Figure sets written by train / evaluate / plot


def write_evaluation_figures(directory, metrics: dict, histories: list[dict] | None = None) -> list[Path]:
    """Confusion matrices (counts and normalised, track level), curves, per-class bars."""
    directory = Path(directory)
    classes = metrics["classes"]
    level = "track"
    written = []
    for normalize, name in ((False, "confusion_counts.png"), (True, "confusion_normalized.png")):
        size = 3.0 + 0.6 * len(classes)
        fig, ax = new_figure(size + 1.5, size)
        confusion_heatmap(metrics[level]["confusion_matrix"], classes, ax=ax, normalize=normalize,
                          title=f"{level}-level confusion matrix ({'row-normalised' if normalize else 'counts'})")
        written.append(save_figure(fig, directory / name))
    fig, ax = new_figure(max(6.0, 0.8 * len(classes) + 2), 4.5)
    per_class_bars(metrics[level]["per_class"], ax=ax)
    written.append(save_figure(fig, directory / "per_class.png"))
    if histories is not None:
        fig, axes = new_figure(12, 4.5, ncols=2)
        history_curves(histories, metric="loss", ax=axes[0])
        history_curves(histories, metric="accuracy", ax=axes[1])
        written.append(save_figure(fig, directory / "curves.png"))
    return written
