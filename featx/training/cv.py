"""Cross-validation: folds, out-of-fold predictions and the final fit."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..data.table import FeatureTable
from ..data.splits import SplitPlan, make_splits
from ..errors import ConfigError, DataError, TrainingError
from ..models.registry import ModelSpec, get_model
from ..features.settings import LABEL_COLUMN

logger = logging.getLogger(__name__)
from .config import TrainConfig
from .fit import describe_device, fit_model, predict_rows, segment_sequences
from .metrics import compute_metrics, prediction_frame, track_labels
from .multilabel_eval import first_genres, fold_thresholds
from .preprocessing import Preprocessing


# ---------------------------------------------------------------------------
# Cross-validation


@dataclass
class TrainResult:
    """What :func:`cross_validate` produced."""

    config: TrainConfig
    spec: ModelSpec
    preprocessing: Preprocessing
    model: object
    plan: SplitPlan
    predictions: pd.DataFrame
    metrics: dict
    histories: list[dict]
    max_segments: int | None
    final_fit: dict
    device: str
    seconds: float
    #: The saved model's per-genre decision thresholds (multi-label runs only).
    thresholds: np.ndarray | None = None


def _fold_arrays(table, spec, prep, rows, y, max_segments):
    """Model inputs and targets for ``rows``."""
    X = prep.transform(table.X[rows])
    if spec.input == "segments":
        seqs, _, row_track = segment_sequences(
            X, table.tracks[rows], table.segment_indices[rows], max_segments=max_segments)
        return seqs, track_labels(y[rows], row_track, len(seqs), table.name)
    return X, y[rows]


def label_setup(table: FeatureTable, spec: ModelSpec, config: TrainConfig, *, multi_label: bool = False):
    """``(prep0, y, max_segments)``: label encoding and unfitted preprocessing for ``table``.

    ``y`` holds the targets of every row as :meth:`featx.data.labels.LabelEncoding.encode`
    makes them (``prep0.labels``). An image model gets an
    :class:`~featx.training.images.ImagePreprocessing` instead.
    """
    multi_label = bool(multi_label or getattr(config, "multi_label", False))
    if not multi_label:
        check_single_genre(table)
    if spec.input == "images":
        from .images import image_setup

        return image_setup(table, spec, config, multi_label=multi_label)
    prep0 = Preprocessing.for_labels(table.feature_columns, table.labels, log_variances=config.log_variances,
                                     multi_label=multi_label)
    y = prep0.encode(table.labels)
    max_segments = int(pd.Series(table.tracks).value_counts().max()) if spec.input == "segments" else None
    return prep0, y, max_segments


def check_single_genre(table: FeatureTable) -> None:
    """Refuse labels that hold several genres (``rock;blues``) in a single-label run."""
    from ..data.labels import SEPARATOR

    several = [i for i, label in enumerate(table.labels) if SEPARATOR in str(label)]
    if several:
        row = several[0]
        raise DataError(
            f"{table.name}: column '{LABEL_COLUMN}' holds several genres in one row (row {row + 2}, "
            f"{table.filenames[row]}: {table.labels[row]!r}); expected one genre per row, or train "
            "a multi-label model with multi_label=True", param="multi_label")


def fit_and_predict(table: FeatureTable, spec: ModelSpec, config: TrainConfig, prep0: Preprocessing, y,
                    train, valid, test, *, seed: int, max_segments, progress=None, desc: str = "epochs"):
    """One fold: fit the scaler and the model on ``train`` (``valid``: early stopping), predict ``test``.

    Returns ``(model, prep, history, proba)``; ``proba`` is ``None`` when ``test`` is.

    Raises
    ------
    TrainingError
        The loss, or the predicted probabilities, became non-finite.
    """
    if spec.input == "images":  # images are read from the store per batch
        from .images import fit_and_predict_images

        return fit_and_predict_images(table, spec, config, prep0, y, train, valid, test, seed=seed,
                                      progress=progress, desc=desc)
    n_classes = len(prep0.classes)
    prep = prep0.fit(table.X[train])
    X_tr, y_tr = _fold_arrays(table, spec, prep, train, y, max_segments)
    X_va, y_va = _fold_arrays(table, spec, prep, valid, y, max_segments)
    model, history = fit_model(spec, config.params, X_tr, y_tr, X_va, y_va, num_classes=n_classes,
                               config=config, seed=seed, progress=progress, desc=desc, labels=prep0.labels)
    if test is None:
        return model, prep, history, None
    proba = predict_rows(model, spec, prep.transform(table.X[test]), table.tracks[test],
                         table.segment_indices[test], num_classes=n_classes, max_segments=max_segments)
    if not np.all(np.isfinite(proba)):
        raise TrainingError(f"{desc}: the model predicts non-finite probabilities; training diverged")
    return model, prep, history, proba


def tuning_rows(table: FeatureTable, spec: ModelSpec, config: TrainConfig, prep0: Preprocessing, y, key,
                groups, train, valid, model, prep, *, seed: int, max_segments, grouped: bool, desc: str):
    """Truth and probabilities of validation rows for tuning a fold's thresholds, or ``None``.

    Only rows of the fold's training part are used: its validation part (predicted by
    the fold's model, which was not fitted on it), or, when it has none, a grouped
    share (:data:`~featx.training.multilabel_eval.TUNING_FRACTION`) of its training
    rows predicted by a model fitted on the rest. The fold's test rows are never read.
    """
    from ..data.splits import _inner_valid
    from .multilabel_eval import TUNING_FRACTION

    if len(valid) and spec.input != "images":
        proba = predict_rows(model, spec, prep.transform(table.X[valid]), table.tracks[valid],
                             table.segment_indices[valid], num_classes=len(prep0.classes),
                             max_segments=max_segments)
        return y[valid], proba
    inner_train, inner_valid = _inner_valid(np.asarray(train), key, groups, TUNING_FRACTION, seed, grouped)
    if len(inner_valid) == 0:
        return None
    _, _, _, proba = fit_and_predict(table, spec, config, prep0, y, inner_train, np.array([], dtype=int),
                                     inner_valid, seed=seed, max_segments=max_segments, progress=False,
                                     desc=f"{desc} thresholds")
    return y[inner_valid], proba


def final_fit_record(rows: str, train, valid, seed: int, spec: ModelSpec, prep: Preprocessing,
                     table: FeatureTable, y) -> dict:
    """What the saved model was fitted on (a scikit-learn model also keeps its rows)."""
    record = {"rows": rows, "train": train, "valid": valid, "seed": seed}
    if spec.kind == "sklearn":
        both = np.concatenate([train, valid])
        record["X"] = prep.transform(table.X[both])
        record["y"] = y[both]
    return record


def cross_validate(table: FeatureTable, config: TrainConfig, *, progress=None, plan: SplitPlan | None = None,
                   seed_offset: int = 0, kept_rows: str | None = None) -> TrainResult:
    """Cross-validate ``config.model`` on ``table`` and fit the model to keep.

    Parameters
    ----------
    table : FeatureTable
        A labelled feature table.
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
    """
    from .._progress import progress_bar

    start = time.perf_counter()
    config = config.validate()
    spec = get_model(config.model)
    from ..data.store_table import check_input

    check_input(spec, table, config.params)
    if spec.input == "segments" and not table.segmented:
        raise DataError(
            f"{table.name}: model {spec.name!r} needs segment rows (filenames like "
            "rock.00001.7.wav); this table has one row per file. Use a segmented table "
            "(features extracted with segment_seconds=3) or a row model (mlp, lstm, cnn)"
        )
    if spec.input == "segments" and config.split == "random":
        raise ConfigError(
            f"model {spec.name!r} predicts whole tracks; split='random' would cut tracks apart. "
            "Expected split='track', 'artist' or 'fault-filtered'. Received: split='random'",
            param="split",
        )
    prep0, y, max_segments = label_setup(table, spec, config)
    labels = prep0.labels
    classes = prep0.classes
    if len(classes) < 2:
        raise DataError(
            f"{table.name}: only one class ({classes[0]!r}) in column '{LABEL_COLUMN}'; "
            "expected at least two genres to classify"
        )
    if spec.input == "images":  # a network the store's images are too small for: refused now
        from .images import check_builds

        check_builds(table, spec, config, len(classes))
    if plan is None:
        plan = make_splits(table, split=config.split, folds=config.folds, seed=config.seed,
                           valid_fraction=config.valid_fraction, artist_map=config.artist_map,
                           split_dir=config.split_dir)
    device = describe_device() if spec.kind == "keras" else "cpu (scikit-learn)"
    logger.info("training %s on %s: %s; %s", spec.name, table.name, plan.description, device)

    frames, histories = [], []
    models = []
    multi = labels.multi_label
    # splits stratify a multi-label table on each row's first genre
    key = first_genres(table.labels) if multi else y
    grouped = plan.split != "random"
    fold_thresholds_, tested = {}, []
    bar = progress_bar(plan.folds, desc="folds", unit="fold", progress=progress)
    for k, fold in enumerate(bar):
        model, prep, history, proba = fit_and_predict(
            table, spec, config, prep0, y, fold.train, fold.valid, fold.test,
            seed=config.seed + seed_offset + k, max_segments=max_segments, progress=progress, desc=fold.name)
        thresholds = None
        if multi:
            thresholds, _ = fold_thresholds(config, len(classes), tune=lambda: tuning_rows(
                table, spec, config, prep0, y, key, plan.groups, fold.train, fold.valid, model, prep,
                seed=config.seed + seed_offset + k, max_segments=max_segments, grouped=grouped,
                desc=fold.name))
            fold_thresholds_[fold.name] = thresholds
            tested.append((fold.test, proba))
        frames.append(prediction_frame(table, fold.test, proba, labels, fold.name, thresholds=thresholds))
        histories.append({"fold": fold.name, **history})
        models.append((model, prep, fold))
        logger.info("%s: test accuracy %.4f (%d rows)", fold.name,
                    float((frames[-1]["label"] == frames[-1]["predicted"]).mean()), len(fold.test))
    bar.close()
    predictions = pd.concat(frames, ignore_index=True)
    metrics = compute_metrics(predictions, labels, thresholds=fold_thresholds_ if multi else None)
    metrics.update(split=plan.split, split_description=plan.description, leaky=plan.leaky,
                   folds=len(plan.folds), model=spec.name)

    if len(plan.folds) == 1 or not config.refit:
        model, prep, fold = models[0]
        final_thresholds = fold_thresholds_.get(fold.name)
        final_fit = final_fit_record(kept_rows or f"train part of {fold.name}", fold.train, fold.valid,
                                     config.seed + seed_offset, spec, prep, table, y)
    else:
        from ..data.splits import _inner_valid

        everything = np.arange(table.n_rows)
        train, valid = _inner_valid(everything, key, plan.groups, config.valid_fraction, config.seed, grouped)
        seed = config.seed + len(plan.folds)
        model, prep, history, _ = fit_and_predict(table, spec, config, prep0, y, train, valid, None,
                                                  seed=seed, max_segments=max_segments,
                                                  progress=progress, desc="final")
        histories.append({"fold": "final", **history})
        rows = "all rows" + (" (a validation part for early stopping)" if len(valid) else "")
        final_fit = final_fit_record(rows, train, valid, seed, spec, prep, table, y)
        final_thresholds = None
        if multi:  # the saved model's thresholds: tuned on the out-of-fold predictions of every row
            rows_ = np.concatenate([t for t, _ in tested])
            final_thresholds, _ = fold_thresholds(config, len(classes), tune=lambda: (
                y[rows_], np.concatenate([p for _, p in tested])))
    if multi:
        metrics["thresholds"]["final"] = {c: float(t) for c, t in zip(classes, final_thresholds)}
        metrics["threshold"] = config.threshold
    return TrainResult(config, spec, prep, model, plan, predictions, metrics, histories,
                       max_segments, final_fit, device, time.perf_counter() - start,
                       thresholds=final_thresholds if multi else None)
