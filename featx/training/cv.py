"""Cross-validation: folds, out-of-fold predictions and the final fit.

A loop that knows nothing of model families: it plans grouped folds
(:mod:`featx.data.splits`), asks the registry for a model object per fold
(:func:`featx.models.registry.create`), fits it on the fold's training rows,
predicts its test rows and scores the out-of-fold predictions
(:mod:`featx.training.metrics`). Multi-label runs also choose each fold's decision
thresholds on rows of its training part only.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd

from ..runtime.progress import progress_bar
from ..data.labels import SEPARATOR, LabelEncoding, stratification_key
from ..data.splits import SplitPlan, inner_split, make_splits
from ..errors import DataError
from ..features.settings import LABEL_COLUMN
from ..models.base import ModelFamily
from ..models.registry import create
from .confidence import fit_confidence
from .config import TrainConfig
from .metrics import compute_metrics, prediction_frame
from .multilabel_eval import TUNING_FRACTION, fold_thresholds

logger = logging.getLogger(__name__)

__all__ = ["TrainResult", "cross_validate", "label_encoding", "check_single_genre", "fold_design", "tuning_rows"]


@dataclass
class TrainResult:
    """What :func:`cross_validate` produced.

    Attributes
    ----------
    config : TrainConfig
        The resolved configuration.
    model : ModelFamily or None
        The model to keep (``None`` when the run asked for no final model).
    plan : SplitPlan
    predictions : pandas.DataFrame
        Out-of-fold row predictions (:func:`~featx.training.metrics.prediction_frame`).
    metrics : dict
        Segment- and track-level scores with their spread over folds.
    histories : list of dict
        Per-fold (and final) training curves of Keras models.
    final_fit : dict
        What the kept model was fitted on: ``rows`` (in words), ``train``, ``valid``, ``seed``.
    device : str
    seconds : float
    thresholds : np.ndarray or None
        The kept model's per-genre decision thresholds (multi-label runs only).
    confidence : dict or None
        The kept model's calibration and ``uncertain`` threshold, fitted on the out-of-fold
        predictions (:func:`~featx.training.confidence.fit_confidence`).
    """

    config: TrainConfig
    model: ModelFamily | None
    plan: SplitPlan
    predictions: pd.DataFrame
    metrics: dict
    histories: list[dict]
    final_fit: dict
    device: str
    seconds: float
    thresholds: np.ndarray | None = None
    confidence: dict | None = None

    @property
    def spec(self):
        """The registry entry of the trained model."""
        return self.model.spec

    @property
    def preprocessing(self):
        """The kept model's fitted preprocessing."""
        return self.model.preprocessing


def check_single_genre(table) -> None:
    """Refuse labels that hold several genres (``rock;blues``) in a single-label run."""
    several = [i for i, label in enumerate(table.labels) if SEPARATOR in str(label)]
    if several:
        row = several[0]
        raise DataError(
            f"{table.name}: column '{LABEL_COLUMN}' holds several genres in one row (row {row + 2}, "
            f"{table.filenames[row]}: {table.labels[row]!r}); expected one genre per row, or train "
            "a multi-label model with multi_label=True", param="multi_label")


def label_encoding(table, config: TrainConfig) -> LabelEncoding:
    """The label encoding of ``table``'s labels for ``config`` (one genre per row, or several).

    Raises
    ------
    DataError
        Several genres in a row of a single-label run, or fewer than two genres.
    """
    if not config.multi_label:
        check_single_genre(table)
    labels = LabelEncoding(multi_label=config.multi_label).fit(table.labels)
    if len(labels.classes_) < 2:
        raise DataError(
            f"{table.name}: only one class ({labels.classes_[0]!r}) in column '{LABEL_COLUMN}'; "
            "expected at least two genres to classify")
    return labels


def fold_design(table, config: TrainConfig, *, labels: LabelEncoding | None = None):
    """``(model, labels, key)``: an unfitted model checked against ``table``, its label
    encoding and the stratification key of every row (a multi-label row: its rarest genre).

    Raises
    ------
    FeatxError
        The model cannot read ``table`` or be evaluated with ``config.split``, or the
        labels are unusable; raised before anything is read or trained.
    """
    labels = labels or label_encoding(table, config)
    model = create(config, labels, table=table)
    model.check_input(table)
    model.check_split(config.split)
    model.check_trainable(table)
    # a multi-label row is stratified on its rarest genre, whatever the order its cell lists them in
    key = stratification_key(table.labels) if labels.multi_label else labels.encode(table.labels)
    return model, labels, key


def tuning_rows(table, config, labels, key, groups, train, valid, model, *, seed: int, grouped: bool,
                 desc: str):
    """Truth and probabilities of validation rows for tuning a fold's thresholds, or ``None``.

    Only rows of the fold's training part are used: its validation part (predicted by
    the fold's model, which was not fitted on it), or, when it has none, a grouped
    share (:data:`~featx.training.multilabel_eval.TUNING_FRACTION`) of its training
    rows predicted by a model fitted on the rest. The fold's test rows are never read.
    """
    y = labels.encode(table.labels)
    if len(valid):
        return y[valid], model.predict_proba(table, valid)
    inner_train, inner_valid = inner_split(np.asarray(train), key, groups, TUNING_FRACTION, seed, grouped)
    if len(inner_valid) == 0:
        return None
    tuner = create(config, labels, table=table)
    tuner.fit(table, inner_train, np.array([], dtype=int), seed=seed, progress=False, desc=f"{desc} thresholds")
    proba = tuner.predict_proba(table, inner_valid)
    tuner.release()
    return y[inner_valid], proba


def cross_validate(table, config: TrainConfig, *, progress=None, plan: SplitPlan | None = None,
                   seed_offset: int = 0, kept_rows: str | None = None, final: bool = True,
                   on_epoch=None, on_fold=None) -> TrainResult:
    """Cross-validate ``config.model`` on ``table`` and fit the model to keep.

    Parameters
    ----------
    table : FeatureTable or StoreTable
        A labelled feature table, or a spectrogram store's rows.
    config : TrainConfig
        Validated here (the result's ``config`` is the resolved copy).
    progress : bool or None
        ``False`` hides progress bars; ``None`` shows them on a terminal.
    plan : SplitPlan, optional
        Folds to use instead of the ones ``config`` describes (a sweep's
        held-out test part, for example).
    seed_offset : int
        Fold ``k`` is fitted with seed ``config.seed + seed_offset + k``.
    kept_rows : str, optional
        What the saved model was fitted on when a fold's model is kept
        (default: "train part of <fold>").
    final : bool
        Fit (or keep) a model after the folds. ``False``: evaluate only; the result's
        ``model`` is ``None``.
    on_epoch : callable, optional
        ``on_epoch(fold_index, epoch, logs)`` after every epoch of a fold's fit (Keras
        models). An exception it raises stops the run and propagates.
    on_fold : callable, optional
        ``on_fold(fold_index, predictions)`` after every fold, with that fold's row
        predictions. An exception it raises stops the run and propagates.
    """
    start = time.perf_counter()
    config = config.validate()
    model0, labels, key = fold_design(table, config)
    if plan is None:
        plan = make_splits(table, split=config.split, folds=config.folds, seed=config.seed,
                           valid_fraction=config.valid_fraction, artist_map=config.artist_map,
                           split_dir=config.split_dir)
    device = model0.device()
    logger.info("training %s on %s: %s; %s", model0.name, table.name, plan.description, device)

    frames, histories, kept = [], [], []
    multi = labels.multi_label
    grouped = plan.split != "random"
    thresholds_by_fold, tested = {}, []
    keep_folds = final and (len(plan.folds) == 1 or not config.refit)
    bar = progress_bar(plan.folds, desc="folds", unit="fold", progress=progress)
    for k, fold in enumerate(bar):
        seed = config.seed + seed_offset + k
        model = create(config, labels, table=table)
        model.fit(table, fold.train, fold.valid, seed=seed, progress=progress, desc=fold.name,
                  on_epoch=None if on_epoch is None else partial(on_epoch, k))
        proba = model.predict_proba(table, fold.test)
        thresholds = None
        if multi:
            thresholds, _ = fold_thresholds(config, len(labels.classes_), tune=lambda: tuning_rows(
                table, config, labels, key, plan.groups, fold.train, fold.valid, model, seed=seed,
                grouped=grouped, desc=fold.name))
            thresholds_by_fold[fold.name] = thresholds
            tested.append((fold.test, proba))
        frames.append(prediction_frame(table, fold.test, proba, labels, fold.name, thresholds=thresholds))
        histories.append({"fold": fold.name, **model.history})
        logger.info("%s: test accuracy %.4f (%d rows)", fold.name,
                    float((frames[-1]["label"] == frames[-1]["predicted"]).mean()), len(fold.test))
        if on_fold is not None:
            on_fold(k, frames[-1])
        if keep_folds and k == 0:
            kept.append((model, fold, thresholds))
        else:
            model.release()
    bar.close()
    predictions = pd.concat(frames, ignore_index=True)
    metrics = compute_metrics(predictions, labels, thresholds=thresholds_by_fold if multi else None)
    metrics.update(split=plan.split, split_description=plan.description, leaky=plan.leaky,
                   folds=len(plan.folds), model=model0.name)

    final_model, final_fit, final_thresholds = None, {}, None
    if keep_folds:
        final_model, fold, final_thresholds = kept[0]
        final_fit = {"rows": kept_rows or f"train part of {fold.name}", "train": fold.train,
                     "valid": fold.valid, "seed": config.seed + seed_offset}
    elif final:
        everything = np.arange(table.n_rows)
        train, valid = inner_split(everything, key, plan.groups, config.valid_fraction, config.seed, grouped)
        seed = config.seed + len(plan.folds)
        final_model = create(config, labels, table=table)
        final_model.fit(table, train, valid, seed=seed, progress=progress, desc="final")
        histories.append({"fold": "final", **final_model.history})
        final_fit = {"rows": "all rows" + (" (a validation part for early stopping)" if len(valid) else ""),
                     "train": train, "valid": valid, "seed": seed}
        if multi:  # the saved model's thresholds: tuned on the out-of-fold predictions of every row
            rows = np.concatenate([t for t, _ in tested])
            y = labels.encode(table.labels)
            final_thresholds, _ = fold_thresholds(config, len(labels.classes_), tune=lambda: (
                y[rows], np.concatenate([p for _, p in tested])))
    if multi and final_thresholds is not None:
        metrics["thresholds"]["final"] = {c: float(t) for c, t in zip(labels.classes_, final_thresholds)}
        metrics["threshold"] = config.threshold
    confidence = fit_confidence(predictions, labels) if final_model is not None else None
    return TrainResult(config, final_model, plan, predictions, metrics, histories, final_fit, device,
                       time.perf_counter() - start, thresholds=final_thresholds if multi else None,
                       confidence=confidence)
