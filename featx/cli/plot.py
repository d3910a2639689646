"""``featx plot``: feature boxplots, audio views, a bundle's curves and confusion matrix."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import click

from ._common import handle_errors
from ..errors import ConfigError

logger = logging.getLogger(__name__)


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
              show_default=True)
@handle_errors
def plot_features(csv, features, output):
    """Boxplots of feature columns by genre."""
    from ..data.table import read_feature_csv
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
    for name in features:
        fig, ax = new_figure(max(6.0, 0.7 * len(set(table.labels)) + 2), 4.5)
        feature_boxplot(table.frame, name, ax=ax)
        click.echo(save_figure(fig, output / f"box_{name}.png"))


@plot.command("audio")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--sr", type=int, default=22050, show_default=True, help="Sample rate for analysis.")
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), default=Path("plots"),
              show_default=True)
@handle_errors
def plot_audio(files, sr, output):
    """Waveform, mel spectrogram and chromagram of audio files."""
    from ..extract.audio import find_audio, load
    from ..reporting.figures import chromagram, mel_spectrogram, new_figure, save_figure, waveform

    for path in find_audio(files):
        y = load(path, sr=sr)
        rate = sr
        fig, axes = new_figure(10, 10, nrows=3)
        waveform(y, rate, ax=axes[0], title=f"{path.name}: waveform")
        mel_spectrogram(y, rate, ax=axes[1])
        chromagram(y, rate, ax=axes[2])
        click.echo(save_figure(fig, output / f"{path.stem}.png"))


@plot.command("bundle")
@click.argument("bundle_dir", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the PNGs [default: BUNDLE_DIR/figures].")
@handle_errors
def plot_bundle(bundle_dir, output):
    """Training curves, confusion matrices and per-class scores of a trained bundle."""
    from ..bundle import _read_json
    from ..errors import BundleError
    from ..reporting.figures import write_evaluation_figures

    metrics = _read_json(Path(bundle_dir) / "metrics.json")
    history_path = Path(bundle_dir) / "history.json"
    histories = None
    if history_path.exists():
        try:
            histories = json.loads(history_path.read_text())
        except ValueError:
            raise BundleError(f"{history_path}: corrupt JSON; expected per-fold training curves") from None
    try:
        written = write_evaluation_figures(output or Path(bundle_dir) / "figures", metrics, histories)
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{bundle_dir}/metrics.json: unexpected content ({exc})") from None
    for path in written:
        click.echo(path)
