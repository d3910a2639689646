"""Train, evaluate and save: the one pipeline behind ``featx train``, a sweep's best model and the API.

:func:`train_bundle` cross-validates a configuration on a feature table, fits
the model to keep, and writes a bundle folder: the model with its
preprocessing and metadata (:func:`featx.bundle.save_bundle`), ``metrics.json``,
out-of-fold ``predictions.csv``, ``history.json`` (Keras models), ``report.md``
and ``figures/``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from ..bundle import check_output_dir, prepare_output_dir, save_bundle
from ..data.store_table import StoreTable, read_table
from ..data.table import FeatureTable
from ..models.registry import get_model
from ..reporting.report import write_outputs
from ..training.config import TrainConfig
from ..training.cv import TrainResult, cross_validate

logger = logging.getLogger(__name__)


@dataclass
class TrainRun:
    """What :func:`train_bundle` made.

    Attributes
    ----------
    result : TrainResult
        The fitted model, its preprocessing, predictions and histories.
    directory : Path
        The bundle folder that was written.
    metrics : dict
        The evaluation, as written to ``metrics.json`` (less the warning line a
        leaky split adds there).
    """

    result: TrainResult
    directory: Path
    metrics: dict


def train_bundle(table, config: TrainConfig, *, output_dir, overwrite: bool = False, progress=None,
                 plan=None, seed_offset: int = 0, kept_rows: str | None = None, title: str | None = None,
                 facts: list[tuple[str, str]] | None = None, extra_metadata: dict | None = None) -> TrainRun:
    """Cross-validate ``config`` on ``table``, then write a bundle with its evaluation to ``output_dir``.

    Parameters
    ----------
    table : FeatureTable, StoreTable or path
        A labelled feature table or spectrogram store, or the path of a feature CSV
        or of a store folder to read.
    config : TrainConfig
        The training run (validated here).
    output_dir : path
        The bundle folder. It must be new or empty, or (with ``overwrite``)
        hold a bundle, which is replaced. It is checked before anything is
        read or trained.
    overwrite : bool
        Replace a bundle already in ``output_dir``.
    progress : bool or None
        ``False`` hides progress bars; ``None`` shows them on a terminal.
    plan : SplitPlan, optional
        Folds to use instead of the ones ``config`` describes.
    seed_offset : int
        Added to ``config.seed`` for every fit (see :func:`cross_validate`).
    kept_rows : str, optional
        What the saved model was fitted on, when a fold's model is kept.
    title, facts : optional
        The report's title and its leading facts (default: those of ``featx train``).
    extra_metadata : dict, optional
        More entries for the bundle's ``metadata.json``.

    Returns
    -------
    TrainRun

    Raises
    ------
    FeatxError
        A bad configuration (:class:`~featx.errors.ConfigError`), table
        (:class:`~featx.errors.DataError`), output folder
        (:class:`~featx.errors.OutputError`) or a diverged fit
        (:class:`~featx.errors.TrainingError`).

    Examples
    --------
    >>> from featx.training.config import TrainConfig
    >>> run = train_bundle("features.csv", TrainConfig(model="svm", folds=3),
    ...                    output_dir="models/svm")  # doctest: +SKIP
    >>> run.metrics["track"]["accuracy"]  # doctest: +SKIP
    0.74
    """
    config = config.validate()
    spec = get_model(config.model)
    output_dir = Path(output_dir)
    check_output_dir(output_dir, overwrite=overwrite)  # fails early, before reading or training
    if not isinstance(table, (FeatureTable, StoreTable)):
        table = read_table(table)  # a feature CSV, or a spectrogram store folder
    result = cross_validate(table, config, progress=progress, plan=plan, seed_offset=seed_offset,
                            kept_rows=kept_rows)
    directory = prepare_output_dir(output_dir, overwrite=overwrite)
    save_bundle(result, directory, table=table, extra=extra_metadata)
    if facts is None:
        facts = [("model", f"{spec.name} ({spec.description})"),
                 ("data", f"{table.name} ({table.n_rows} rows, {len(set(table.tracks))} tracks, "
                          f"{len(table.feature_columns)} features, {len(result.preprocessing.classes)} classes)"),
                 ("split", result.plan.description),
                 ("saved model", result.final_fit["rows"]),
                 ("device", result.device),
                 ("seed", str(config.seed)),
                 ("training time", f"{result.seconds:.1f} s")]
    write_outputs(directory, metrics=result.metrics, predictions=result.predictions,
                  title=title or f"featx {spec.name}: cross-validated evaluation", facts=facts,
                  histories=result.histories if any(len(h) > 1 for h in result.histories) else None,
                  config=result.config.to_dict())
    logger.info("bundle written to %s", directory)
    return TrainRun(result, directory, result.metrics)
