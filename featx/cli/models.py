"""Model commands: ``featx train``, ``evaluate``, ``predict``, ``plot``, ``models``.

Each command parses its options and delegates to the library; TensorFlow/Keras
is imported only when a command runs.
"""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from ..data.store_table import StoreTable, is_store, read_table
from ..errors import ConfigError, OutputError
from ..io.atomic import atomic_write
from ..io.guard import check_output_file
from ..models.registry import MODELS, get_model
from ..reporting.report import (
    LEAKY_WARNING,
    evaluation_dir,
    training_overlap_warning,
    write_outputs,
)
from ..sweep.space import KERAS_OPTIONS
from ..training.config import (
    AGGREGATES,
    DEFAULTS,
    LOUDNESS,
    MIN_SHARE,
    OPTIMIZERS,
    OPTION_HELP,
    SPLITS,
    TUNED,
    TrainConfig,
    parse_threshold,
)
from . import options
from ._common import handle_errors, info, progress_enabled, schedule_and_augment_options

logger = logging.getLogger(__name__)


def _parse_params(pairs) -> dict:
    params = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"--param expects NAME=VALUE. Received: {pair!r}")
        name, value = pair.split("=", 1)
        params[name.strip().replace("-", "_")] = value.strip()
    return params


def _summary_line(metrics: dict) -> str:
    seg, trk = metrics["segment"], metrics["track"]
    if metrics.get("multi_label"):
        return (f"track F1 micro {trk['f1_micro']:.4f}, F1 macro {trk['f1_macro']:.4f}, "
                f"subset accuracy {trk['subset_accuracy']:.4f}, mAP {trk['average_precision_macro']:.4f} "
                f"({trk['n']} tracks, {seg['n']} rows)")
    return (f"track accuracy {trk['accuracy']:.4f}, macro F1 {trk['f1_macro']:.4f} "
            f"(segment accuracy {seg['accuracy']:.4f}; {trk['n']} tracks, {seg['n']} rows)")


def _threshold_option(ctx, threshold: str, multi_label: bool):
    """``--threshold`` as a number or 'tuned'; refused (one line) without ``--multi-label``."""
    value = parse_threshold(threshold)
    given = ctx.get_parameter_source("threshold") is not click.core.ParameterSource.DEFAULT
    if given and not multi_label:
        raise ConfigError(f"--threshold applies to multi-label models only; add --multi-label. "
                          f"Received: --threshold {threshold}")
    return value


def _refuse_keras_options(ctx, spec) -> None:
    """Refuse a Keras training option given on the command line for a scikit-learn model."""
    if spec.family.keras_training:
        return
    for name in sorted(KERAS_OPTIONS):
        if name in ctx.params and ctx.get_parameter_source(name) not in (
                click.core.ParameterSource.DEFAULT, None):
            raise ConfigError(f"{name} is a Keras training option; {spec.name} is a scikit-learn model. "
                              f"Received: {name}={ctx.params[name]}", param=name)


# ---------------------------------------------------------------------------
# train


@click.command("train")
@click.argument("csv", metavar="CSV|STORE", type=click.Path(path_type=Path))
@click.option("-m", "--model", "model_name", default=DEFAULTS.model, show_default=True,
              help=OPTION_HELP["model"])
@click.option("-o", "--output", "output", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Bundle folder to write [default: models/<model>].")
@click.option("--epochs", type=int, default=DEFAULTS.epochs, help=OPTION_HELP["epochs"])
@click.option("--batch-size", type=int, default=DEFAULTS.batch_size, show_default=True,
              help=OPTION_HELP["batch_size"])
@click.option("--learning-rate", type=float, default=DEFAULTS.learning_rate, show_default=True,
              help=OPTION_HELP["learning_rate"])
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default=DEFAULTS.optimizer, show_default=True,
              help=OPTION_HELP["optimizer"])
@click.option("--seed", type=int, default=DEFAULTS.seed, show_default=True, help=OPTION_HELP["seed"])
@click.option("--patience", type=int, default=DEFAULTS.patience, show_default=True,
              help=OPTION_HELP["patience"])
@click.option("--reduce-lr-patience", type=int, default=DEFAULTS.reduce_lr_patience, show_default=True,
              help=OPTION_HELP["reduce_lr_patience"])
@click.option("--split", "split", type=click.Choice(SPLITS), default=DEFAULTS.split, show_default=True,
              help=OPTION_HELP["split"])
@click.option("--folds", type=int, default=DEFAULTS.folds, show_default=True, help=OPTION_HELP["folds"])
@click.option("--valid-fraction", type=float, default=DEFAULTS.valid_fraction, help=OPTION_HELP["valid_fraction"])
@click.option("--artist-map", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULTS.artist_map,
              help=OPTION_HELP["artist_map"])
@click.option("--split-dir", type=click.Path(file_okay=False, path_type=Path), default=DEFAULTS.split_dir,
              help=OPTION_HELP["split_dir"])
@click.option("--units", default=None, help="Layer sizes, e.g. 256,128,64 (lstm, segment-lstm, mlp).")
@click.option("--dropout", type=float, default=None, help="Dropout rate (Keras models).")
@click.option("--depth", type=int, default=None, help="Number of layers (lstm, segment-lstm, mlp).")
@click.option("-p", "--param", "params", multiple=True, metavar="NAME=VALUE",
              help="Any model hyperparameter (repeatable), e.g. -p C=3 or -p n_neighbors=7.")
@click.option("--log-variances/--no-log-variances", default=DEFAULTS.log_variances, show_default=True,
              help=OPTION_HELP["log_variances"])
@click.option("--loudness", type=click.Choice(LOUDNESS), default=DEFAULTS.loudness, show_default=True,
              help=OPTION_HELP["loudness"])
@click.option("--refit/--no-refit", default=DEFAULTS.refit, show_default=True, help=OPTION_HELP["refit"])
@click.option("--multi-label", is_flag=True, default=DEFAULTS.multi_label, help=OPTION_HELP["multi_label"])
@click.option("--threshold", default=str(DEFAULTS.threshold), show_default=True, metavar="T|tuned",
              help=OPTION_HELP["threshold"])
@click.option("--overwrite", is_flag=True, help="Replace an existing bundle in the output folder.")
@schedule_and_augment_options
@options.verbosity
@click.pass_context
@handle_errors
def train(ctx, csv, model_name, output, epochs, batch_size, learning_rate, optimizer, seed, patience,
          reduce_lr_patience, split, folds, valid_fraction, artist_map, split_dir, units, dropout,
          depth, params, log_variances, loudness, refit, overwrite, multi_label, threshold, training_options):
    """Train and cross-validate a model on a feature CSV (or, for an image model such as
    cnn2d, a spectrogram STORE folder); write a bundle to -o DIR.

    DIR receives the model, its preprocessing and metadata, metrics.json,
    out-of-fold predictions.csv, report.md and figures/.

    \b
    Examples:
      featx train features_csv/features_30_sec.csv -m svm -o models/svm
      featx train features.csv -m mlp --epochs 40 --folds 5 -o models/mlp
      featx train spectro -m cnn2d -o models/cnn2d
    """
    from ..pipeline.train import train_bundle  # pulls in pandas: only on this path

    spec = get_model(model_name)
    _refuse_keras_options(ctx, spec)
    overrides = _parse_params(params)
    for name, value in (("units", units), ("dropout", dropout), ("depth", depth)):
        if value is not None:
            overrides[name] = value
    config = TrainConfig(
        model=spec.name, params=overrides, epochs=epochs, batch_size=batch_size,
        learning_rate=learning_rate, optimizer=optimizer, seed=seed, patience=patience,
        reduce_lr_patience=reduce_lr_patience, split=split, folds=folds,
        valid_fraction=valid_fraction, log_variances=log_variances, loudness=loudness, artist_map=str(artist_map) if artist_map else None,
        split_dir=str(split_dir) if split_dir else None, refit=refit,
        multi_label=multi_label, threshold=_threshold_option(ctx, threshold, multi_label),
        **training_options,
    ).validate()
    run = train_bundle(csv, config, output_dir=output or Path("models") / spec.name, overwrite=overwrite,
                       progress=progress_enabled(ctx))
    if run.result.plan.leaky:
        info(LEAKY_WARNING.strip("*"), err=True)
    click.echo(f"{spec.name}: {_summary_line(run.metrics)}")
    click.echo(f"bundle written to {run.directory}")


# ---------------------------------------------------------------------------
# evaluate


@click.command("evaluate")
@click.argument("bundle_dir", type=click.Path(path_type=Path))
@click.argument("csv", metavar="CSV|STORE", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for metrics/report/figures [default: BUNDLE_DIR/evaluation/<csv name>, "
                   "made safe; -2, -3, ... when that name holds another CSV's evaluation].")
@options.verbosity
@click.pass_context
@handle_errors
def evaluate(ctx, bundle_dir, csv, output):
    """Evaluate a trained bundle on a labelled feature CSV (a spectrogram STORE for an image model).

    Warns when the CSV holds tracks the saved model was trained on: figures on
    those are not held-out accuracy.

    \b
    Examples:
      featx evaluate models/svm other_features.csv
      featx evaluate models/cnn2d other_spectro -o reports/cnn2d
    """
    from ..bundle import load_bundle  # pulls in pandas: only on this path

    bundle = load_bundle(bundle_dir)
    table = read_table(csv)
    metrics, predictions = bundle.evaluate(table)
    output = output or evaluation_dir(bundle_dir, csv)
    facts = [("model", f"{bundle.spec.name} from {bundle_dir}"),
             ("data", f"{csv} ({table.n_rows} rows, {len(set(table.tracks))} tracks)"),
             ("trained on", str((bundle.metadata.get("training_data") or {}).get("path")))]
    write_outputs(output, metrics=metrics, predictions=predictions,
                  title=f"featx {bundle.spec.name}: evaluation on {Path(csv).name}", facts=facts)
    click.echo(f"{bundle.spec.name} on {csv}: {_summary_line(metrics)}")
    overlap = metrics.get("training_overlap") or {}
    if overlap.get("tracks"):
        info(training_overlap_warning(overlap), err=True)
    click.echo(f"report written to {output}")


# ---------------------------------------------------------------------------
# predict


def _uncertain_reason(row, outside: float | None) -> str:
    """Why a prediction is uncertain, in words (empty when it is not)."""
    if "uncertain" not in row or not bool(row["uncertain"]):
        return ""
    far = outside is not None and "distance_pct" in row and float(row["distance_pct"]) >= outside
    return "UNSURE: outside the training data" if far else "UNSURE: low confidence"


def _render_predictions(frame, classes, fmt: str, top_k: int, *, csv_top_k: bool = False,
                        aggregate: str = "mean", outside: float | None = None) -> str:
    """Predictions as text; ``csv_top_k``: CSV columns ``top1, top1_probability, ...``
    for the ``top_k`` best genres instead of one column per genre. ``aggregate`` names
    what the genre columns hold (``vote``: shares of segments); ``outside``: the distance
    percentile from which a file lies outside the training data."""
    import numpy as np  # numpy: not needed to import this module
    import pandas as pd  # pandas: kept off featx extract's path

    proba = frame[classes].to_numpy()
    order = np.argsort(-proba, axis=1, kind="stable")[:, :top_k]
    extra = [c for c in ("windows",) if c in frame.columns]
    sure = [c for c in ("confidence", "uncertain", "distance_pct") if c in frame.columns]
    multi = "genres" in frame.columns  # several genres: a multi-label model, or vote/max pooling
    value = "share" if aggregate == "vote" else "probability"
    if fmt == "csv":
        if not csv_top_k:
            return frame.to_csv(index=False, float_format="%.6f")
        ranked = frame[["file", "genre", *(["genres"] if multi else []), *extra, *sure]].reset_index(drop=True)
        for r in range(top_k):
            ranked[f"top{r + 1}"] = [classes[j] for j in order[:, r]]
            ranked[f"top{r + 1}_{value}"] = proba[np.arange(len(proba)), order[:, r]]
        return ranked.to_csv(index=False, float_format="%.6f")
    if fmt == "json":
        items = []
        for i, row in frame.reset_index(drop=True).iterrows():
            items.append({
                "file": row["file"], "genre": row["genre"],
                **({"genres": [g for g in str(row["genres"]).split(";") if g]} if multi else {}),
                **{c: int(row[c]) for c in extra if not pd.isna(row[c])},
                **({"confidence": round(float(row["confidence"]), 6)} if "confidence" in sure else {}),
                **({"uncertain": bool(row["uncertain"])} if "uncertain" in sure else {}),
                **({"distance_pct": round(float(row["distance_pct"]), 2)} if "distance_pct" in sure else {}),
                "top": [{"genre": classes[j], value: round(float(proba[i, j]), 6)} for j in order[i]],
                ("shares" if aggregate == "vote" else "probabilities"):
                    {c: round(float(row[c]), 6) for c in classes},
            })
        return json.dumps(items, indent=2)
    width = max([len("file")] + [len(str(f)) for f in frame["file"]])
    head = f"top {top_k}" + (" (shares of segments)" if aggregate == "vote" else "")
    if multi:
        gwidth = max([len("genres")] + [len(str(g)) for g in frame["genres"]])
        lines = [f"{'file':<{width}}  {'genres':<{gwidth}}  {head}"]
    else:
        lines = [f"{'file':<{width}}  {head}"]
    for i, name in enumerate(frame["file"]):
        row = frame.iloc[i]
        best = "  ".join(f"{classes[j]} {proba[i, j]:.3f}" for j in order[i])
        genres = f"{str(frame['genres'].iloc[i]) or '-':<{gwidth}}  " if multi else ""
        notes = []
        if "confidence" in sure:
            notes.append(f"confidence {float(row['confidence']):.2f}")
        if "distance_pct" in sure:
            notes.append(f"distance pct {float(row['distance_pct']):.1f}")
        reason = _uncertain_reason(row, outside)
        if reason:
            notes.append(reason)
        lines.append(f"{name:<{width}}  {genres}{best}" + (f"  | {'; '.join(notes)}" if notes else ""))
    return "\n".join(lines)


def _check_output_file(output: Path) -> None:
    """Raise unless a file can be written at ``output`` (its folder exists; it is no folder)."""
    parent = output.parent
    if not parent.is_dir():
        raise OutputError(f"{output}: folder {parent} does not exist; expected -o in an existing "
                          "folder (create it first)")
    if output.is_dir():
        raise OutputError(f"{output}: is a folder; expected a file name for -o")


def _warn_training_tracks(bundle, tables, audio) -> None:
    """Say when inputs are tracks the model was trained on: their predictions prove nothing."""
    seen, total, example = 0, 0, None
    for table in tables:
        overlap = bundle.training_overlap(table) or {}
        seen += int(overlap.get("tracks") or 0)
        total += len(set(table.tracks))
        example = example or overlap.get("example")
    trained = bundle.seen_tracks(audio)
    seen, total = seen + len(trained), total + len(audio)
    example = example or (trained[0] if trained else None)
    if seen:
        info(f"WARNING: {seen} of {total} input tracks (e.g. {example}) were used to train this "
             "model: its predictions for them do not show how it does on new music", err=True)


@click.command("predict")
@click.argument("bundle_dir", type=click.Path(path_type=Path))
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-f", "--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True, help="Output: a readable table, CSV rows or JSON.")
@click.option("-k", "--top-k", type=int, default=3, show_default=True,
              help="Genres shown per file (table and json). Given with -f csv: columns "
                   "top1, top1_probability, ... for the k best genres instead of one per genre.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write to this file instead of standard output.")
@click.option("--threshold", default=None, metavar="T",
              help="Multi-label models: decide the genres column with this threshold for every "
                   "genre instead of the bundle's own thresholds.")
@click.option("--aggregate", type=click.Choice(AGGREGATES), default="mean", show_default=True,
              help="How a file's segments are pooled: mean probabilities; vote (the share of "
                   "segments each genre wins, and a genres column of every genre with at least "
                   "--min-share of them: both halves of a medley); max (each genre's highest "
                   "probability in any segment).")
@click.option("--min-share", type=float, default=MIN_SHARE, show_default=True,
              help="With --aggregate vote: the share of a file's segments a genre needs to be "
                   "listed in the genres column.")
@click.option("--timeline", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="FILE.csv",
              help="Also write every window's probabilities of the audio inputs to this CSV: file, "
                   "window, start, end (seconds), then one column per genre (draw it with featx plot timeline).")
@options.verbosity
@click.pass_context
@handle_errors
def predict(ctx, bundle_dir, inputs, fmt, top_k, output, threshold, aggregate, min_share, timeline):
    """Classify audio files/folders, or the rows of feature CSVs (spectrogram STORE folders
    for an image model), with a trained bundle.

    Audio is featurised with exactly the extraction settings of the model's
    training data; segment probabilities are averaged per file. A model trained
    on whole clips gets long audio in windows of its clips' length, averaged
    per file (column 'windows').

    A multi-label model (featx train --multi-label) adds a 'genres' column: every
    genre whose probability reaches its threshold, most probable first, joined by ';'.

    \b
    Examples:
      featx predict models/svm song.mp3 my_music/
      featx predict models/svm my_music/ -f csv -o predictions.csv
      featx predict models/mlp new_features.csv --top-k 3
    """
    import pandas as pd  # pandas: kept off featx extract's path

    from ..bundle import audio_files, load_bundle  # pulls in pandas: only on this path
    from ..data.table import read_feature_csv  # pulls in pandas: only on this path

    if top_k < 1:
        raise ConfigError(f"--top-k must be >= 1. Received: {top_k}")
    for path in (output, timeline):
        if path is not None:
            _check_output_file(path)  # before any work: a wrong -o must not cost a whole run
            check_output_file(path, (bundle_dir, *inputs))
    if output is not None and timeline is not None and output.resolve() == timeline.resolve():
        raise ConfigError(f"--timeline and -o name the same file ({timeline}); expected two different files")
    bundle = load_bundle(bundle_dir)
    if threshold is not None:
        from ..bundle.multilabel import (
            single_label_refusal,  # pulls in pandas: only on this path
        )

        value = parse_threshold(threshold)
        if not bundle.multi_label:
            raise single_label_refusal(bundle_dir, "--threshold")
        if value == TUNED:
            raise ConfigError("predict --threshold takes a number in (0, 1); the tuned thresholds are "
                              "the bundle's own (leave --threshold out). Received: --threshold tuned")
        bundle.metadata["thresholds"] = {c: value for c in bundle.classes}
    classes = bundle.classes
    tables = (".csv", ".parquet", ".pq")  # feature tables: CSV or Parquet
    csvs = [p for p in inputs if p.suffix.lower() in tables]
    stores = [p for p in inputs if p.suffix.lower() not in tables and is_store(p)]
    audio = audio_files([p for p in inputs if p.suffix.lower() not in tables and p not in stores])
    tables = [read_feature_csv(p, require_label=False) for p in csvs] + [StoreTable(p) for p in stores]
    if timeline is not None and not audio:
        raise ConfigError("--timeline needs audio files among the inputs (the rows of a feature table or "
                          "store carry no times); expected an audio file or folder")
    frames = [bundle.classify_table(table, aggregate=aggregate, min_share=min_share) for table in tables]
    _warn_training_tracks(bundle, tables, audio)
    skipped, windows = [], []
    if audio:
        predicted, skipped = bundle.classify_audio(audio, progress=progress_enabled(ctx), aggregate=aggregate,
                                                   min_share=min_share,
                                                   on_windows=windows.append if timeline else None)
        frames.append(predicted)
    if timeline is not None:
        _write_timeline(timeline, windows, classes)
    frame = pd.concat(frames, ignore_index=True)
    if "windows" in frame.columns:  # rows of feature CSVs have no windows: left blank
        frame["windows"] = frame["windows"].astype("Int64")
        if (frame["windows"] > 1).any():
            shown = " (column 'windows')" if fmt != "table" else ""  # the table has no such column
            info(f"note: {bundle.spec.name} was trained on whole clips of {bundle.clip_seconds:.1f} s; "
                 "longer audio is cut into windows of that length and their probabilities are "
                 f"averaged{shown}", err=True)
    csv_top_k = ctx.get_parameter_source("top_k") is not click.core.ParameterSource.DEFAULT
    outside = (bundle.confidence or {}).get("outside_percentile")
    text = _render_predictions(frame, classes, fmt, min(top_k, len(classes)), csv_top_k=csv_top_k,
                               aggregate=aggregate, outside=outside)
    if output:
        atomic_write(output, text if text.endswith("\n") else text + "\n")
        info(f"{len(frame)} prediction(s) written to {output}", err=True)
    elif len(frame):
        click.echo(text.rstrip("\n"))
    for file, reason in skipped:
        click.echo(f"skipped {file}: {reason}", err=True)
    if skipped:
        sys.exit(1)


def _write_timeline(path: Path, windows: list, classes: list[str]) -> None:
    """Write the per-window probabilities of the analysed files as CSV (atomically)."""
    import pandas as pd  # pandas: kept off featx extract's path

    from ..bundle.timeline import TIMELINE_COLUMNS, timeline_frame  # pulls in pandas: only on this path

    parts = [timeline_frame(w, classes) for w in windows]
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=[*TIMELINE_COLUMNS, *classes])
    atomic_write(path, frame.to_csv(index=False, float_format="%.6f"))
    info(f"timeline of {len(frame)} window(s) of {len(parts)} file(s) written to {path}", err=True)


# ---------------------------------------------------------------------------
# models


@click.command("models")
@options.verbosity
@handle_errors
def models():
    """List the available models and their hyperparameters."""
    for spec in MODELS.values():
        kinds = f" ({','.join(spec.kinds)})" if spec.kinds else ""
        click.echo(f"{spec.name:<14} {spec.kind:<8} input: {spec.input}{kinds}; {spec.description}")
        for name, param in spec.params.items():
            default = ",".join(map(str, param.default)) if isinstance(param.default, tuple) else param.default
            click.echo(f"    {name}={default}  ({param.help})")
        if "units" in spec.params:
            click.echo("    depth=<n>  (number of layers; extends units by halving)")
