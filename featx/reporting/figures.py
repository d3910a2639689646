"""Figures: seaborn/matplotlib functions that take data and an Axes and return it.

No pyplot state is used: :func:`new_figure` makes an Agg-backed figure and
:func:`save_figure` writes a PNG, so plotting works headless and never changes
the user's matplotlib backend.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..io.atomic import atomic_open
from ..io.guard import make_folder

#: Largest figure side, in inches (at the default 110 dpi: 3300 pixels). Figures that
#: grow with the number of classes or features stop growing here.
MAX_FIGURE_INCHES = 30.0
#: Most classes whose confusion-matrix cells carry their numbers.
ANNOTATE_MAX_CLASSES = 20
#: Most classes named along an axis; above it the ticks are left unlabelled.
TICK_LABEL_MAX_CLASSES = 60


def new_figure(width: float = 7.0, height: float = 5.0, *, ncols: int = 1, nrows: int = 1):
    """``(figure, axes)`` on an off-screen Agg canvas.

    Each side is capped at :data:`MAX_FIGURE_INCHES`, so a figure sized from the
    data (one cell per class) stays within a bounded number of pixels.
    """
    # plotting libraries are heavy: only when drawing
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure  # plotting libraries are heavy: only when drawing

    width, height = min(float(width), MAX_FIGURE_INCHES), min(float(height), MAX_FIGURE_INCHES)
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, (axes[0, 0] if axes.size == 1 else axes.ravel())


def save_figure(fig, path, *, dpi: int = 110) -> Path:
    """Write ``fig`` as a PNG to ``path`` atomically (see :mod:`featx.io.atomic`); returns ``path``.

    Missing folders are created with featx's folder marker (:func:`featx.io.guard.make_folder`).
    The figure's titles are also stored as the PNG's ``Title`` text, so that a figure
    can be told apart by its metadata too.
    """
    path = Path(path)
    make_folder(path.parent)
    suptitle = fig.get_suptitle() if hasattr(fig, "get_suptitle") else ""  # matplotlib >= 3.8
    titles = [t for t in [suptitle, *(ax.get_title() for ax in fig.axes)] if t]
    metadata = {"Title": " | ".join(t.replace("\n", ": ") for t in titles)} if titles else None
    with atomic_open(path) as fh:
        fig.savefig(fh, format="png", dpi=dpi, metadata=metadata)
    return path


def confusion_heatmap(matrix, classes, *, ax, normalize: bool = False, title: str | None = None):
    """Confusion matrix as a seaborn heatmap (rows: true genre, columns: predicted).

    Parameters
    ----------
    matrix : array-like [shape=(n_classes, n_classes)]
        Counts.
    normalize : bool
        Show each row as fractions of its true-class total; a class without rows
        has no fractions: its row is grey and marked n/a.

    Cells carry their numbers up to :data:`ANNOTATE_MAX_CLASSES` classes, and the
    axes name the classes up to :data:`TICK_LABEL_MAX_CLASSES`; above that the
    axis labels say how many classes there are.
    """
    import seaborn as sns  # plotting libraries are heavy: only when drawing

    counts = np.asarray(matrix, dtype=float)
    absent = np.zeros(len(counts), dtype=bool)
    if normalize:
        totals = counts.sum(axis=1, keepdims=True)
        # a genre without rows in the data has no fractions: its row is n/a, not 0.00
        absent = totals[:, 0] == 0
        values = np.divide(counts, totals, out=np.full_like(counts, np.nan), where=totals > 0)
        fmt = ".2f"
    else:
        values, fmt = counts, ".0f"
    named = len(classes) <= TICK_LABEL_MAX_CLASSES
    ticks = list(classes) if named else False
    annotate = len(classes) <= ANNOTATE_MAX_CLASSES
    sns.heatmap(values, annot=annotate, fmt=fmt, cmap="Blues",
                square=True, cbar=True, xticklabels=ticks, yticklabels=ticks, vmin=0,
                vmax=1 if normalize else None, ax=ax)
    for row in np.flatnonzero(absent):  # seaborn leaves NaN cells blank: grey them and say n/a
        from matplotlib.patches import Rectangle  # plotting libraries are heavy: only when drawing

        ax.add_patch(Rectangle((0, row), len(classes), 1, facecolor="#d9d9d9", edgecolor="none",
                               hatch="//", zorder=2))
        if annotate:
            ax.text(len(classes) / 2, row + 0.5, "n/a (no rows of this genre)", ha="center",
                    va="center", fontsize=8, color="#404040", zorder=3)
    unnamed = "" if named else f" ({len(classes)} classes, not named)"
    ax.set_xlabel("predicted" + unnamed)
    ax.set_ylabel("true" + unnamed)
    ax.set_title(title or ("confusion matrix (row-normalised)" if normalize else "confusion matrix (counts)"))
    return ax


def history_curves(histories, *, metric: str = "loss", ax):
    """Train (solid) and validation (dashed) curves of ``metric`` for every fold."""
    import seaborn as sns  # plotting libraries are heavy: only when drawing

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
    from matplotlib.ticker import MaxNLocator  # plotting libraries are heavy: only when drawing

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    if (frame["part"] == "validation").any():
        ax.set_title(f"{metric}: train (solid) and validation (dashed)")
    else:
        ax.set_title(f"{metric}: train (no validation part was held out)")
    return ax


def per_class_bars(per_class: dict, *, ax, title: str | None = None):
    """Grouped bars of precision, recall and F1 per class.

    A class without rows in the data (``support`` 0) has no recall or F1: it gets no
    bars for them (not bars of height 0) and ``(n/a: no rows)`` in its label.
    """
    import seaborn as sns  # plotting libraries are heavy: only when drawing

    def name(c, v):
        return f"{c} (n/a: no rows)" if v.get("support", 1) == 0 else c

    rows = [{"class": name(c, v), "measure": m, "value": v[m] if v.get("support", 1) or m == "precision"
             else np.nan} for c, v in per_class.items() for m in ("precision", "recall", "f1")]
    sns.barplot(pd.DataFrame(rows), x="class", y="value", hue="measure", ax=ax)
    ax.set_ylim(0, 1)
    ax.set_xlabel("")
    ax.tick_params(axis="x", labelrotation=45)
    if len(per_class) > TICK_LABEL_MAX_CLASSES:
        ax.set_xticks([])
        ax.set_xlabel(f"{len(per_class)} classes, not named")
    ax.set_title(title or "per-class precision, recall and F1")
    return ax


def feature_boxplot(frame: pd.DataFrame, feature: str, *, ax, by: str = "label"):
    """Boxplot of one feature column per genre."""
    import seaborn as sns  # plotting libraries are heavy: only when drawing

    order = sorted(frame[by].astype(str).unique())
    sns.boxplot(frame.assign(**{by: frame[by].astype(str)}), x=by, y=feature, order=order,
                hue=by, hue_order=order, legend=False, ax=ax)
    ax.set_xlabel("")
    ax.tick_params(axis="x", labelrotation=45)
    ax.set_title(f"{feature} by genre")
    return ax


def waveform(y, sr: int, *, ax, title: str = "waveform"):
    """Waveform envelope of a mono signal ``y`` [shape=(n,)]."""
    import librosa.display  # librosa is heavy: only on this path

    librosa.display.waveshow(np.asarray(y), sr=sr, ax=ax)
    ax.set_title(title)
    return ax


def mel_spectrogram(y, sr: int, *, ax, n_fft: int = 2048, hop_length: int = 512, n_mels: int = 128,
                    title: str = "mel spectrogram"):
    """Mel power spectrogram in dB."""
    import librosa  # librosa is heavy: only on this path
    import librosa.display  # librosa is heavy: only on this path

    S = librosa.feature.melspectrogram(y=np.asarray(y), sr=sr, n_fft=n_fft, hop_length=hop_length,
                                       n_mels=n_mels)
    img = librosa.display.specshow(librosa.power_to_db(S, ref=np.max), sr=sr, hop_length=hop_length,
                                   x_axis="time", y_axis="mel", ax=ax)
    ax.figure.colorbar(img, ax=ax, format="%+2.0f dB")
    ax.set_title(title)
    return ax


def chromagram(y, sr: int, *, ax, n_fft: int = 2048, hop_length: int = 512, title: str = "chromagram"):
    """STFT chromagram."""
    import librosa  # librosa is heavy: only on this path
    import librosa.display  # librosa is heavy: only on this path

    C = librosa.feature.chroma_stft(y=np.asarray(y), sr=sr, n_fft=n_fft, hop_length=hop_length)
    img = librosa.display.specshow(C, sr=sr, hop_length=hop_length, x_axis="time", y_axis="chroma", ax=ax)
    ax.figure.colorbar(img, ax=ax)
    ax.set_title(title)
    return ax


#: Colour map of each spectrogram image kind.
SPECTROGRAM_CMAPS = {"mel": "magma", "mfcc": "coolwarm", "chroma": "viridis"}


def spectrogram_image(image, *, ax, kind: str = "mel", title: str | None = None,
                      vmin: float | None = None, vmax: float | None = None):
    """One stored image [shape=(height, width)]: row 0 (lowest band) at the bottom.

    Axes show frame and bin numbers: a resized image has no time or frequency scale.
    """
    image = np.asarray(image, dtype=np.float32)
    artist = ax.imshow(image, origin="lower", aspect="auto", interpolation="nearest",
                       cmap=SPECTROGRAM_CMAPS.get(kind, "gray"), vmin=vmin, vmax=vmax)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)
    return ax, artist


def spectrogram_grid(images, labels, titles, *, axes, kind: str):
    """Examples per genre: ``images[r][c]`` in ``axes[r, c]``, each row named by ``labels[r]``.

    Parameters
    ----------
    images : list of list of np.ndarray [shape=(height, width)]
        One list per row (genre); rows may be shorter than the grid (cells left blank).
    labels : list of str
        Row names.
    titles : list of list of str
        A title per image (e.g. track and segment).
    axes : np.ndarray of Axes [shape=(n_rows, n_cols)]
    kind : str
        The image kind; one colour scale spans every image shown, so they compare.

    Returns
    -------
    axes
    """
    shown = [np.asarray(im) for row in images for im in row]
    vmin = float(min(im.min() for im in shown)) if shown else None
    vmax = float(max(im.max() for im in shown)) if shown else None
    artist = None
    for r, label in enumerate(labels):
        for c in range(axes.shape[1]):
            ax = axes[r, c]
            if c < len(images[r]):
                _, artist = spectrogram_image(images[r][c], ax=ax, kind=kind, title=titles[r][c],
                                              vmin=vmin, vmax=vmax)
            else:
                ax.set_axis_off()
        axes[r, 0].set_ylabel(str(label), fontsize=9)
    if artist is not None:
        axes[0, 0].figure.colorbar(artist, ax=list(axes.ravel()), shrink=0.6)
    return axes


def genre_timeline(starts, ends, proba, classes, *, ax, title: str | None = None):
    """A file's genre probabilities over time: one row per genre, one column per window.

    Each cell's shade is the probability (0 to 1, a colour map whose lightness grows with
    it, so that it reads in grey too); a dot marks each window's most probable genre.

    Parameters
    ----------
    starts, ends : array-like [shape=(n_windows,)]
        Where each window starts and ends, in seconds (in time order).
    proba : array-like [shape=(n_windows, n_classes)]
    classes : list of str
        The genres, in the order of ``proba``'s columns.

    Returns
    -------
    ax
    """
    starts = np.asarray(starts, dtype=float)
    ends = np.asarray(ends, dtype=float)
    proba = np.asarray(proba, dtype=float).reshape(len(starts), len(classes))
    # cell edges: each window from its start to the next one's (the last to its end)
    edges = np.append(starts, ends[-1] if len(ends) else 0.0)
    rows = np.arange(len(classes) + 1) - 0.5
    mesh = ax.pcolormesh(edges, rows, proba.T, cmap="viridis", vmin=0.0, vmax=1.0, shading="flat")
    if len(starts):
        centres = (edges[:-1] + edges[1:]) / 2
        best = np.argmax(proba, axis=1)
        ax.scatter(centres, best, s=14, facecolor="white", edgecolor="black", linewidth=0.6, zorder=3)
    named = len(classes) <= TICK_LABEL_MAX_CLASSES
    ax.set_yticks(np.arange(len(classes)) if named else [])
    if named:
        ax.set_yticklabels([str(c) for c in classes])
    ax.set_ylim(len(classes) - 0.5, -0.5)  # the first genre on top, as in a table
    ax.set_xlabel("time (s); dots: each window's most probable genre")
    ax.set_ylabel("genre" if named else f"genre ({len(classes)}, not named)")
    ax.figure.colorbar(mesh, ax=ax, label="probability", shrink=0.9)
    ax.set_title(title or "genre probabilities per window")
    return ax


# ---------------------------------------------------------------------------
# Figure sets written by train / evaluate / plot


def figure_subject(metrics: dict, data: str | None = None) -> str:
    """``"<model> on <data>"``: the first line of every evaluation figure's title."""
    model = str(metrics.get("model") or "model")
    return f"{model} on {data}" if data else model


def write_evaluation_figures(directory, metrics: dict, histories: list[dict] | None = None, *,
                             data: str | None = None) -> list[Path]:
    """Confusion matrices (counts and normalised, track level), curves, per-class bars.

    Every title names the model (``metrics["model"]``), the data (``data``, e.g. the
    CSV's file name), the level and the number of tracks or rows it counts, so that
    figures of two bundles cannot be mistaken for each other.
    """
    directory = Path(directory)
    classes = metrics["classes"]
    level = "track"
    subject = figure_subject(metrics, data)
    n = metrics[level].get("n")
    counted = f"{level} level, n = {n} {level}s" if n is not None else f"{level} level"
    written = []
    if metrics.get("multi_label"):  # several genres per track: no confusion matrix, bars per genre
        fig, ax = new_figure(max(6.0, 0.8 * len(classes) + 2), 4.5)
        per_class_bars(metrics[level]["per_class"], ax=ax,
                       title=f"{subject}\nper-genre precision, recall and F1 (multi-label), {counted}")
        written.append(save_figure(fig, directory / "per_genre.png"))
    for normalize, name in ((False, "confusion_counts.png"), (True, "confusion_normalized.png")):
        if metrics.get("multi_label"):
            break
        size = 3.0 + 0.6 * len(classes)
        fig, ax = new_figure(size + 1.5, size)
        kind = "row-normalised" if normalize else "counts"
        confusion_heatmap(metrics[level]["confusion_matrix"], classes, ax=ax, normalize=normalize,
                          title=f"{subject}\nconfusion matrix ({kind}), {counted}")
        written.append(save_figure(fig, directory / name))
    if not metrics.get("multi_label"):
        fig, ax = new_figure(max(6.0, 0.8 * len(classes) + 2), 4.5)
        per_class_bars(metrics[level]["per_class"], ax=ax,
                       title=f"{subject}\nper-class precision, recall and F1, {counted}")
        written.append(save_figure(fig, directory / "per_class.png"))
    if histories is not None:
        fig, axes = new_figure(12, 4.5, ncols=2)
        history_curves(histories, metric="loss", ax=axes[0])
        history_curves(histories, metric="accuracy", ax=axes[1])
        fig.suptitle(f"{subject}: training curves per fold")
        written.append(save_figure(fig, directory / "curves.png"))
    return written


# ---------------------------------------------------------------------------
# sweep figures
def metric_by_hyperparameter(frame: pd.DataFrame, name: str, metric: str, *, ax):
    """The validation metric of every finished trial against one hyperparameter.

    Few distinct values: a box per value with the trials as points; many numeric
    values (random search): a scatter plot, log-scaled when the values span two
    decades or more.
    """
    import seaborn as sns  # plotting libraries are heavy: only when drawing

    values = frame[name]
    if _is_numeric(values) and values.nunique() > 12:
        sns.scatterplot(x=values.astype(float), y=frame[metric], s=14, alpha=0.6, ax=ax)
        low, high = float(values.min()), float(values.max())
        if low > 0 and high / low >= 100:
            ax.set_xscale("log")
    else:
        cat = _ordered_category(values, max_levels=10**6)
        data = pd.DataFrame({name: cat, metric: frame[metric].to_numpy()})
        sns.boxplot(data, x=name, y=metric, color="#c6dbef", showfliers=False, ax=ax)
        sns.stripplot(data, x=name, y=metric, color="#08306b", size=3, alpha=0.6, jitter=0.15, ax=ax)
        if len(cat.categories) > 5:
            ax.tick_params(axis="x", labelrotation=45)
    ax.set_xlabel(name)
    ax.set_ylabel(f"validation {metric}")
    ax.set_title(f"{metric} by {name}")
    return ax


def pair_heatmap(frame: pd.DataFrame, a: str, b: str, metric: str, *, ax):
    """Mean validation metric for each pair of values of two hyperparameters."""
    import seaborn as sns  # plotting libraries are heavy: only when drawing

    data = pd.DataFrame({a: _ordered_category(frame[a]), b: _ordered_category(frame[b]),
                         metric: frame[metric].to_numpy()})
    table = data.pivot_table(index=a, columns=b, values=metric, aggfunc="mean", observed=False)
    sns.heatmap(table, annot=table.size <= 100, fmt=".3f", cmap="viridis", cbar=True, ax=ax,
                annot_kws={"fontsize": 8})
    ax.set_title(f"mean {metric}: {a} × {b}")
    return ax


def _grid_figure(n: int, *, width: float, height: float):

    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    fig, axes = new_figure(width * ncols, height * nrows, ncols=ncols, nrows=nrows)
    axes = [axes] if n == 1 else list(axes)
    for ax in axes[n:]:
        ax.set_axis_off()
    return fig, axes[:n]


def sweep_figures(frame: pd.DataFrame, names: list[str], metric: str, directory: Path,
                  *, max_pairs: int = 6) -> list[Path]:
    """``figures/metric_by_hyperparameter.png`` and ``figures/pair_heatmaps.png``."""

    ok = frame[frame["status"] == "ok"]
    varied = [n for n in names if ok[n].nunique() > 1]
    written = []
    if len(ok) < 2 or not varied:
        return written
    fig, axes = _grid_figure(len(varied), width=4.4, height=3.6)
    for name, ax in zip(varied, axes):
        metric_by_hyperparameter(ok, name, metric, ax=ax)
    written.append(save_figure(fig, directory / "metric_by_hyperparameter.png", dpi=90))
    pairs = [(a, b) for i, a in enumerate(varied) for b in varied[i + 1:]][:max_pairs]
    if pairs:
        fig, axes = _grid_figure(len(pairs), width=4.8, height=4.0)
        for (a, b), ax in zip(pairs, axes):
            pair_heatmap(ok, a, b, metric, ax=ax)
        written.append(save_figure(fig, directory / "pair_heatmaps.png", dpi=90))
    return written


def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def _ordered_category(series: pd.Series, *, max_levels: int = 8) -> pd.Categorical:
    """Hyperparameter values as ordered categories; many numeric values become quantile bins."""
    if _is_numeric(series) and series.nunique() > max_levels:
        binned = pd.qcut(series.astype(float), q=5, duplicates="drop")
        bins = binned.cat.categories
        # qcut opens its first bin a little below the smallest value: name the value itself
        lefts = [float(series.min())] + [iv.left for iv in bins[1:]]
        labels = [f"{left:.3g}–{iv.right:.3g}" for left, iv in zip(lefts, bins)]
        return binned.cat.rename_categories(labels)
    values = series.dropna().unique().tolist()
    values = sorted(values) if _is_numeric(series) else sorted(values, key=str)
    return pd.Categorical(series.astype(str), categories=[str(v) for v in values], ordered=True)
