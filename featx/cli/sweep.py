"""``featx sweep``: hyperparameter grids and random search with resumable, parallel trials."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import click

from ..models.registry import get_model
from ..sweep.space import MAX_TRIALS, space_from_options
from ..sweep.storage import STUDY_DB
from ..training.config import (
    DEFAULTS,
    LEVELS,
    OPTION_HELP,
    PRUNERS,
    SEARCHES,
    SPLITS,
    SWEEP_METRICS,
)
from . import options
from ._common import handle_errors, progress_enabled

logger = logging.getLogger(__name__)


@click.command("sweep")
@click.argument("csv", metavar="CSV|STORE", type=click.Path(path_type=Path))
@click.option("-m", "--model", "model_name", required=True, help="Model name (see 'featx models').")
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Sweep folder: trials.jsonl, results.csv, report.md/.html, best/.")
@click.option("-p", "--param", "params", multiple=True, metavar="NAME=V1,V2,...",
              help="Values of one hyperparameter or training option (repeatable): numbers, text, "
                   "tuples like units=256-128-64, or for --search random a distribution like "
                   "learning_rate='loguniform(1e-4,1e-1)'. One value fixes it.")
@click.option("--grid", "grid_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="YAML or JSON search space: {name: [values]} or a list of such sub-grids.")
@click.option("--search", default=SEARCHES[0], show_default=True, metavar="|".join(SEARCHES),
              help="grid: every combination; random: --n-iter sampled ones; tpe: --n-iter trials, "
                   "each chosen by Optuna's multivariate TPE sampler from the results so far.")
@click.option("--n-iter", type=int, default=20, show_default=True,
              help="Trials of --search random or tpe.")
@click.option("--prune", default=PRUNERS[0], show_default=True, metavar="|".join(PRUNERS),
              help="Stop trials early whose validation accuracy trails (median) or by successive "
                   "halving (hyperband): Keras trials after each epoch, others after each fold. "
                   "Not with --search grid.")
@click.option("--storage", default=None, metavar="URL",
              help="The study's database [default: sqlite:///DIR/study.db]; a PostgreSQL or MySQL URL "
                   "lets sweeps on several machines share one study.")
@click.option("--study", "study_name", default=None, metavar="NAME",
              help="The study's name in the storage [default: DIR's name].")
@click.option("--metric", type=click.Choice(SWEEP_METRICS), default="f1_macro", show_default=True,
              help="Validation metric that ranks the trials (f1_micro ... roc_auc_macro: with "
                   "--multi-label; hamming_loss ranks lowest first).")
@click.option("--multi-label", is_flag=True, help=OPTION_HELP["multi_label"])
@click.option("--threshold", default=str(DEFAULTS.threshold), show_default=True, metavar="T|tuned",
              help=OPTION_HELP["threshold"])
@click.option("--level", type=click.Choice(LEVELS), default=LEVELS[0], show_default=True,
              help="Score tracks (segment probabilities averaged) or single rows.")
@click.option("--split", type=click.Choice(SPLITS), default=DEFAULTS.split, show_default=True,
              help="How rows are grouped into test/validation parts.")
@click.option("--folds", type=int, default=DEFAULTS.folds, show_default=True,
              help="Validation folds on the non-test rows; 1: one validation part.")
@click.option("--test-fraction", type=float, default=0.2, show_default=True,
              help="Share of the groups held out as the test part (not with fault-filtered).")
@click.option("--artist-map", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="'file ::: artist ::: title' index for --split artist.")
@click.option("--split-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder of train/valid/test lists for --split fault-filtered.")
@click.option("--seed", type=int, default=DEFAULTS.seed, show_default=True,
              help="Seed for splits, weights, shuffling and random search.")
@click.option("-j", "--jobs", type=int, default=1, show_default=True,
              help="Trials run in parallel worker processes, an integer >= 1 (-1: one per CPU core).")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Run the trials on a running Dask cluster (e.g. tcp://10.0.0.5:8786) "
                   "instead of local processes; its workers must read the CSV.")
@options.wait_workers_opt
@click.option("--retry-failed", is_flag=True, help="Run failed trials of earlier runs again.")
@click.option("--overwrite", is_flag=True,
              help="Replace what an earlier sweep of other data or another model wrote in DIR.")
@click.option("--retrain-best/--no-retrain-best", default=True, show_default=True,
              help="Retrain the best configuration and score it once on the test part (DIR/best).")
@click.option("--max-trials", type=int, default=MAX_TRIALS, show_default=True, metavar="N",
              help="Refuse a search of more than N combinations (raise it to run a bigger one).")
@options.verbosity
@click.pass_context
@handle_errors(interrupted="finished trials are kept in the study and {output}/trials.jsonl; "
                           "run the same command again to resume")
def sweep(ctx, csv, model_name, output, params, grid_file, search, n_iter, prune, storage, study_name,
          metric, level, split, folds, test_fraction, artist_map, split_dir, seed, jobs, scheduler,
          wait_workers, retry_failed, retrain_best, max_trials, multi_label, threshold, overwrite):
    """Search the hyperparameters of one model on a feature CSV (grid, random or TPE)
    (a spectrogram STORE folder for an image model such as cnn2d).

    Each combination is cross-validated on the non-test rows; the best by the
    validation --metric is retrained and scored once on the held-out test part.
    Finished trials are kept in DIR/trials.jsonl: the same command resumes an
    interrupted sweep, and a widened grid runs only the new combinations.

    \b
    Examples:
      featx sweep data.csv -m mlp -o sweeps/mlp -p epochs=30,60 -p batch_size=16,32 \\
          -p learning_rate=1e-3,1e-2 -j 2
      featx sweep data.csv -m cnn -o sweeps/cnn --grid space.yaml
      featx sweep data.csv -m mlp -o sweeps/rs --search random --n-iter 50 \\
          -p "learning_rate=loguniform(1e-4,1e-1)" -p dropout=0.2,0.4
      featx sweep data.csv -m svm -o sweeps/tpe --search tpe --n-iter 16 \\
          -p "C=loguniform(1e-2,1e3)" -p "gamma=loguniform(1e-4,1e0)"
    """

    from ..sweep.plan import (  # pulls in pandas: only on this path
        SweepOptions,
        plan_sweep,
    )
    from ..sweep.runner import run_sweep  # pulls in pandas: only on this path
    options = SweepOptions(
        csv=csv, model=model_name, output=output, search=search, n_iter=n_iter, metric=metric,
        level=level, split=split, folds=folds, test_fraction=test_fraction, seed=seed,
        artist_map=artist_map, split_dir=split_dir, jobs=jobs, retry_failed=retry_failed,
        retrain_best=retrain_best, max_trials=max_trials, scheduler=scheduler,
        multi_label=multi_label, threshold=threshold, overwrite=overwrite, prune=prune, storage=storage,
        study=study_name, wait_workers=wait_workers).validate()
    space = space_from_options(get_model(model_name), list(params), grid_file)
    plan = plan_sweep(options, space)
    outcome = run_sweep(plan, progress=progress_enabled(ctx))
    click.echo(f"{outcome.total} {'trials' if search == 'tpe' else 'combinations'}: {outcome.reused} reused, "
               f"{outcome.ran} run, {outcome.failed} failed"
               + (f", {outcome.pruned} pruned" if outcome.pruned else "")
               + (f", {outcome.pending} still running elsewhere or waiting" if outcome.pending else "")
               + f" ({outcome.seconds:.1f} s); study {outcome.study!r} in "
               # the default study file is named as the output folder was given
               + (outcome.storage if storage else str(Path(output) / STUDY_DB)))
    if outcome.best is not None:
        record = outcome.records[outcome.best.key]
        m = record["metrics"][level]
        shown = ", ".join(f"{k}={v}" for k, v in outcome.best.shown.items())
        click.echo(f"best: {shown}: validation {metric} {m[metric]:.4f} ± {m['std'][metric]:.4f}")
        if outcome.best_dir is not None:
            test = json.loads((outcome.best_dir / "metrics.json").read_text())[level]
            click.echo(f"test part ({test['n']} {'tracks' if level == 'track' else 'rows'}): "
                       + (f"accuracy {test['accuracy']:.4f}, " if "accuracy" in test else "")
                       + f"{metric} {test[metric]:.4f}; "
                       f"bundle in {outcome.best_dir}")
    else:
        click.echo("no trial finished successfully; see the failures in the report")
    click.echo(f"results: {output / 'results.csv'}; report: {output / 'report.html'}")
