"""``featx plot``: feature boxplots, audio views, a bundle's curves and confusion matrix, timelines."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import click

from ..errors import BundleError, ConfigError
from ..extract.audio import find_audio, load
from ..io.guard import check_output_file, claim_folder, names_for_paths, safe_name, unique_names
from ..reporting.spectro_images import export_segment_pngs, write_example_grids
from . import options
from ._common import handle_errors, progress_enabled

logger = logging.getLogger(__name__)

#: Folders featx made that ``plot`` may add figures to (plot folders; a bundle's figures/).
PLOT_FOLDERS = ("featx-plots", "featx-output")


# ---------------------------------------------------------------------------
# plot


@click.group("plot")
def plot():
    """Figures: feature boxplots, audio views, a bundle's curves and confusion matrix."""


@plot.command("features")
@click.argument("csv", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-f", "--feature", "features", multiple=True,
              help="Feature column (repeatable) [default: spectral_centroid_mean, tempo].")
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), default=Path("plots"),
              show_default=True, help="Folder for one boxplot PNG per feature.")
@options.verbosity
@handle_errors
def plot_features(csv, features, output):
    """Boxplots of feature columns by genre."""
    from ..data.table import read_feature_csv  # pulls in pandas: only on this path

    # pulls in pandas: only on this path
    from ..reporting.figures import feature_boxplot, new_figure, save_figure

    table = read_feature_csv(csv)
    features = list(features) or [c for c in ("spectral_centroid_mean", "tempo") if c in table.feature_columns]
    if not features:
        features = table.feature_columns[:1]
    for name in features:
        if name not in table.feature_columns:
            raise ConfigError(
                f"{csv}: no feature column {name!r}; expected one of "
                f"{', '.join(table.feature_columns[:6])}, ..."
            )
    claim_folder(output, "featx-plots", accept=PLOT_FOLDERS)
    files = unique_names([f"box_{safe_name(name)}" for name in features], suffix=".png")
    for name, file in zip(features, files):
        fig, ax = new_figure(max(6.0, 0.7 * len(set(table.labels)) + 2), 4.5)
        feature_boxplot(table.frame, name, ax=ax)
        click.echo(save_figure(fig, output / file))


@plot.command("audio")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--sr", type=int, default=22050, show_default=True, help="Sample rate for analysis.")
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), default=Path("plots"),
              show_default=True, help="Folder for one PNG per file (waveform, mel spectrogram, chromagram).")
@options.verbosity
@handle_errors
def plot_audio(files, sr, output):
    """Waveform, mel spectrogram and chromagram of audio files."""
    # pulls in pandas: only on this path
    from ..reporting.figures import (
        chromagram,
        mel_spectrogram,
        new_figure,
        save_figure,
        waveform,
    )

    paths = find_audio(files)
    claim_folder(output, "featx-plots", accept=PLOT_FOLDERS)
    for path, file in zip(paths, names_for_paths(paths, suffix=".png")):
        y = load(path, sr=sr)
        rate = sr
        fig, axes = new_figure(10, 10, nrows=3)
        waveform(y, rate, ax=axes[0], title=f"{path.name}: waveform")
        mel_spectrogram(y, rate, ax=axes[1])
        chromagram(y, rate, ax=axes[2])
        click.echo(save_figure(fig, output / file))


@plot.command("spectrograms")
@click.argument("store", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), default=Path("plots"),
              show_default=True, help="Folder for one grid PNG per kind.")
@click.option("-n", "--per-genre", type=click.IntRange(min=1), default=4, show_default=True,
              help="Example segments per genre (each from another track while there are tracks).")
@click.option("--kinds", default=None, metavar="KIND[,KIND...]",
              help="Kinds to draw [default: all the store holds].")
@click.option("--png", "png_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Also export every segment as an 8-bit grayscale PNG into this folder "
                   "(PNG_DIR/<kind>/<label>/<track>.<segment>.png).")
@options.verbosity
@click.pass_context
@handle_errors
def plot_spectrograms(ctx, store, output, per_genre, kinds, png_dir):
    """Example spectrograms per genre from a store; optionally every segment as a PNG."""
    from ..data.store import open_store  # pulls in the store's checksums: only on this path

    opened = open_store(store)
    chosen = None if kinds is None else [k for k in kinds.replace(" ", ",").split(",") if k]
    claim_folder(output, "featx-plots", accept=PLOT_FOLDERS)
    for path in write_example_grids(opened, output, per_genre=per_genre, kinds=chosen):
        click.echo(path)
    if png_dir is not None:
        claim_folder(png_dir, "featx-plots", accept=PLOT_FOLDERS)
        written = export_segment_pngs(opened, png_dir, kinds=chosen, progress=progress_enabled(ctx))
        click.echo(f"{png_dir}: {len(written)} PNG(s)")


@plot.command("bundle")
@click.argument("bundle_dir", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the PNGs [default: BUNDLE_DIR/figures].")
@options.verbosity
@handle_errors
def plot_bundle(bundle_dir, output):
    """Training curves, confusion matrices and per-class scores of a trained bundle."""
    from ..bundle import legacy_figures  # pulls in pandas: only on this path
    from ..bundle import read_json as _read_json  # pulls in pandas: only on this path
    from ..reporting.figures import write_evaluation_figures  # pulls in pandas: only on this path

    metrics = _read_json(Path(bundle_dir) / "metrics.json")
    history_path = Path(bundle_dir) / "history.json"
    histories = None
    if history_path.exists():
        try:
            histories = json.loads(history_path.read_text())
        except ValueError:
            raise BundleError(f"{history_path}: corrupt JSON; expected per-fold training curves") from None
    default = Path(bundle_dir) / "figures"
    claim_folder(output or default, "featx-plots", accept=PLOT_FOLDERS,
                 legacy=None if output else legacy_figures(Path(bundle_dir)))
    try:
        trained = (_read_json(Path(bundle_dir) / "metadata.json").get("training_data") or {}).get("path")
        written = write_evaluation_figures(output or default, metrics, histories,
                                           data=Path(str(trained)).name if trained else None)
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{bundle_dir}/metrics.json: unexpected content ({exc})") from None
    for path in written:
        click.echo(path)


#: Most files drawn in one timeline figure (one panel each).
MAX_TIMELINE_PANELS = 12


@plot.command("timeline")
@click.argument("csv", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The PNG to write [default: the CSV's name with .png].")
@click.option("--file", "files", multiple=True, metavar="NAME",
              help="Draw only this file of the CSV (repeatable; its path as in the CSV, or its name) "
                   f"[default: every file, at most {MAX_TIMELINE_PANELS}].")
@options.verbosity
@handle_errors
def plot_timeline(csv, output, files):
    """Genre probabilities over time, from the CSV of featx predict --timeline: one panel per file,
    one row per genre, one column per window."""
    from ..bundle.timeline import read_timeline, timeline_classes  # pulls in pandas: only on this path

    # pulls in pandas: only on this path
    from ..reporting.figures import genre_timeline, new_figure, save_figure

    output = output if output is not None else Path(csv).with_suffix(".png")
    if output.suffix.lower() != ".png":
        raise ConfigError(f"-o {output}: expected a file name ending in .png")
    if output.is_dir():
        raise ConfigError(f"-o {output}: is a folder; expected a file name ending in .png")
    check_output_file(output, (csv,))
    frame = read_timeline(csv)
    classes = timeline_classes(frame)
    names = list(dict.fromkeys(frame["file"]))
    chosen = []
    for wanted in files:
        found = [n for n in names if n == wanted] or [n for n in names if Path(n).name == wanted]
        if not found:
            raise ConfigError(f"{csv}: no file {wanted!r}; expected one of {', '.join(names[:5])}"
                              + (", ..." if len(names) > 5 else ""))
        chosen += [n for n in found if n not in chosen]
    chosen = chosen or names
    if len(chosen) > MAX_TIMELINE_PANELS:
        raise ConfigError(f"{csv}: {len(chosen)} files; one figure draws at most {MAX_TIMELINE_PANELS}: "
                          "choose some with --file")
    longest = max(int((frame["file"] == n).sum()) for n in chosen)
    height = (1.4 + 0.3 * len(classes)) * len(chosen)
    fig, axes = new_figure(max(8.0, 6.0 + 0.05 * longest), max(3.0, height), nrows=len(chosen))
    for ax, name in zip(axes if len(chosen) > 1 else [axes], chosen):
        part = frame[frame["file"] == name].sort_values("start")
        genre_timeline(part["start"], part["end"], part[classes].to_numpy(), classes, ax=ax,
                       title=f"{Path(name).name}: genre probabilities per window ({len(part)} windows)")
    click.echo(save_figure(fig, output))
