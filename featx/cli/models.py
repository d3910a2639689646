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

from ._common import handle_errors, progress_enabled
from ..errors import ConfigError

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
    return (f"track accuracy {trk['accuracy']:.4f}, macro F1 {trk['f1_macro']:.4f} "
            f"(segment accuracy {seg['accuracy']:.4f}; {trk['n']} tracks, {seg['n']} rows)")


# ---------------------------------------------------------------------------
# train


@click.command("train")
@click.argument("csv", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-m", "--model", "model_name", default="mlp", show_default=True,
              help="Model name (see 'featx models').")
@click.option("-o", "--output", "output", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Bundle folder to write [default: models/<model>].")
@click.option("--epochs", type=int, default=None,
              help="Maximum epochs (Keras models) [default: 100; mlp: 60].")
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--learning-rate", type=float, default=1e-3, show_default=True, help="Adam learning rate.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for splits, weights and shuffling.")
@click.option("--patience", type=int, default=15, show_default=True,
              help="Early-stopping patience in epochs (best weights restored; 0: off).")
@click.option("--reduce-lr-patience", type=int, default=5, show_default=True,
              help="ReduceLROnPlateau patience (0: off).")
@click.option("--split", "split", type=click.Choice(["track", "artist", "fault-filtered", "random"]),
              default="track", show_default=True, help="How rows are split into train/test.")
@click.option("--folds", type=int, default=5, show_default=True,
              help="K-fold cross-validation; 1: one train/validation/test split.")
@click.option("--valid-fraction", type=float, default=None,
              help="Share of each training part held out (by track) for early stopping and "
                   "validation curves [default: 0.15; mlp: 0, i.e. train on all training rows].")
@click.option("--artist-map", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="'file ::: artist ::: title' index for --split artist (e.g. GTZANindex.txt).")
@click.option("--split-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder of train/valid/test lists for --split fault-filtered.")
@click.option("--units", default=None, help="Layer sizes, e.g. 256,128,64 (lstm, segment-lstm, mlp).")
@click.option("--dropout", type=float, default=None, help="Dropout rate (Keras models).")
@click.option("--depth", type=int, default=None, help="Number of layers (lstm, segment-lstm, mlp).")
@click.option("-p", "--param", "params", multiple=True, metavar="NAME=VALUE",
              help="Any model hyperparameter (repeatable), e.g. -p C=3 or -p n_neighbors=7.")
@click.option("--log-variances/--no-log-variances", default=True, show_default=True,
              help="Log-scale the *_var columns before standardising.")
@click.option("--refit/--no-refit", default=True, show_default=True,
              help="After K-fold CV, fit the saved model on all rows (else keep fold 1's model).")
@click.option("--overwrite", is_flag=True, help="Replace an existing bundle in the output folder.")
@click.pass_context
@handle_errors
def train(ctx, csv, model_name, output, epochs, batch_size, learning_rate, seed, patience,
          reduce_lr_patience, split, folds, valid_fraction, artist_map, split_dir, units, dropout,
          depth, params, log_variances, refit, overwrite):
    """Train and cross-validate a model on a feature CSV; write a bundle to -o DIR.

    DIR receives the model, its preprocessing and metadata, metrics.json,
    out-of-fold predictions.csv, report.md and figures/.
    """
    from ..bundle import check_output_dir, prepare_output_dir, save_bundle
    from ..data.table import read_feature_csv
    from ..models.registry import get_model
    from ..reporting.report import LEAKY_WARNING, write_outputs
    from ..training.config import TrainConfig
    from ..training.cv import cross_validate

    spec = get_model(model_name)
    overrides = _parse_params(params)
    for name, value in (("units", units), ("dropout", dropout), ("depth", depth)):
        if value is not None:
            overrides[name] = value
    config = TrainConfig(
        model=spec.name, params=overrides, epochs=epochs, batch_size=batch_size,
        learning_rate=learning_rate, seed=seed, patience=patience,
        reduce_lr_patience=reduce_lr_patience, split=split, folds=folds,
        valid_fraction=valid_fraction, log_variances=log_variances, artist_map=str(artist_map) if artist_map else None,
        split_dir=str(split_dir) if split_dir else None, refit=refit,
    ).validate()
    output = output or Path("models") / spec.name
    check_output_dir(output, overwrite=overwrite)  # fails early, before training
    table = read_feature_csv(csv)
    result = cross_validate(table, config, progress=progress_enabled(ctx))
    directory = prepare_output_dir(output, overwrite=overwrite)
    save_bundle(result, directory, table=table)
    facts = [("model", f"{spec.name} ({spec.description})"),
             ("data", f"{csv} ({table.n_rows} rows, {len(set(table.tracks))} tracks, "
                      f"{len(table.feature_columns)} features, {len(result.preprocessing.classes)} classes)"),
             ("split", result.plan.description),
             ("saved model", result.final_fit["rows"]),
             ("device", result.device),
             ("seed", str(config.seed)),
             ("training time", f"{result.seconds:.1f} s")]
    write_outputs(directory, metrics=result.metrics, predictions=result.predictions,
                  title=f"featx {spec.name}: cross-validated evaluation", facts=facts,
                  histories=result.histories if spec.kind == "keras" else None,
                  config=config.to_dict())
    if result.plan.leaky:
        click.echo(LEAKY_WARNING.strip("*"), err=True)
    click.echo(f"{spec.name}: {_summary_line(result.metrics)}")
    click.echo(f"bundle written to {directory}")


# ---------------------------------------------------------------------------
# evaluate


@click.command("evaluate")
@click.argument("bundle_dir", type=click.Path(path_type=Path))
@click.argument("csv", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for metrics/report/figures [default: BUNDLE_DIR/evaluation/<csv name>].")
@click.pass_context
@handle_errors
def evaluate(ctx, bundle_dir, csv, output):
    """Evaluate a trained bundle on a labelled feature CSV.

    Warns when the CSV holds tracks the saved model was trained on: figures on
    those are not held-out accuracy.
    """
    from ..bundle import load_bundle
    from ..data.table import read_feature_csv
    from ..reporting.report import write_outputs

    bundle = load_bundle(bundle_dir)
    table = read_feature_csv(csv)
    metrics, predictions = bundle.evaluate(table)
    output = output or Path(bundle_dir) / "evaluation" / Path(csv).stem
    facts = [("model", f"{bundle.spec.name} from {bundle_dir}"),
             ("data", f"{csv} ({table.n_rows} rows, {len(set(table.tracks))} tracks)"),
             ("trained on", str((bundle.metadata.get("training_data") or {}).get("path")))]
    write_outputs(output, metrics=metrics, predictions=predictions,
                  title=f"featx {bundle.spec.name}: evaluation on {Path(csv).name}", facts=facts)
    click.echo(f"{bundle.spec.name} on {csv}: {_summary_line(metrics)}")
    overlap = metrics.get("training_overlap") or {}
    if overlap.get("tracks"):
        from ..reporting.report import training_overlap_warning

        click.echo(training_overlap_warning(overlap), err=True)
    click.echo(f"report written to {output}")


# ---------------------------------------------------------------------------
# predict


def _render_predictions(frame, classes, fmt: str, top_k: int) -> str:
    import numpy as np

    proba = frame[classes].to_numpy()
    order = np.argsort(-proba, axis=1, kind="stable")[:, :top_k]
    if fmt == "csv":
        return frame.to_csv(index=False, float_format="%.6f")
    if fmt == "json":
        items = []
        for i, row in frame.reset_index(drop=True).iterrows():
            items.append({
                "file": row["file"], "genre": row["genre"],
                "top": [{"genre": classes[j], "probability": round(float(proba[i, j]), 6)} for j in order[i]],
                "probabilities": {c: round(float(row[c]), 6) for c in classes},
            })
        return json.dumps(items, indent=2)
    width = max([len("file")] + [len(str(f)) for f in frame["file"]])
    lines = [f"{'file':<{width}}  top {top_k}"]
    for i, name in enumerate(frame["file"]):
        best = "  ".join(f"{classes[j]} {proba[i, j]:.3f}" for j in order[i])
        lines.append(f"{name:<{width}}  {best}")
    return "\n".join(lines)


@click.command("predict")
@click.argument("bundle_dir", type=click.Path(path_type=Path))
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-f", "--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True)
@click.option("-k", "--top-k", type=int, default=3, show_default=True,
              help="Genres shown per file (table and json).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write to this file instead of standard output.")
@click.pass_context
@handle_errors
def predict(ctx, bundle_dir, inputs, fmt, top_k, output):
    """Classify audio files/folders, or the rows of feature CSVs, with a trained bundle.

    Audio is featurised with exactly the extraction settings of the model's
    training data; segment probabilities are averaged per file.
    """
    import pandas as pd

    from ..bundle import audio_files, load_bundle
    from ..data.table import read_feature_csv

    if top_k < 1:
        raise ConfigError(f"--top-k must be >= 1. Received: {top_k}")
    bundle = load_bundle(bundle_dir)
    classes = bundle.classes
    csvs = [p for p in inputs if p.suffix.lower() == ".csv"]
    audio = audio_files([p for p in inputs if p.suffix.lower() != ".csv"])
    frames = [bundle.classify_table(read_feature_csv(p, require_label=False)) for p in csvs]
    skipped = []
    if audio:
        predicted, skipped = bundle.classify_audio(audio, progress=progress_enabled(ctx))
        frames.append(predicted)
    frame = pd.concat(frames, ignore_index=True)
    text = _render_predictions(frame, classes, fmt, min(top_k, len(classes)))
    if output:
        output.write_text(text if text.endswith("\n") else text + "\n")
        click.echo(f"{len(frame)} prediction(s) written to {output}", err=True)
    elif len(frame):
        click.echo(text.rstrip("\n"))
    for file, reason in skipped:
        click.echo(f"skipped {file}: {reason}", err=True)
    if skipped:
        sys.exit(1)


# ---------------------------------------------------------------------------
# models


@click.command("models")
def models():
    """List the available models and their hyperparameters."""
    from ..models.registry import MODELS

    for spec in MODELS.values():
        click.echo(f"{spec.name:<14} {spec.kind:<8} {spec.description}")
        for name, param in spec.params.items():
            default = ",".join(map(str, param.default)) if isinstance(param.default, tuple) else param.default
            click.echo(f"    {name}={default}  ({param.help})")
        if "units" in spec.params:
            click.echo("    depth=<n>  (number of layers; extends units by halving)")
