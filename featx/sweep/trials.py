"""One trial: its configuration, identity and evaluation in a worker (its journal is
:class:`featx.io.journal.Journal`)."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..models.registry import ModelSpec, get_model
from ..training.config import TrainConfig, metric_names

logger = logging.getLogger(__name__)
from ..data.labels import stratification_key
from ..data.store_table import read_table
from ..models.augment import AUGMENT_OPTIONS
from .space import (
    _TABLES,
    KERAS_OPTIONS,
    LEVELS,
    TRAIN_OPTIONS,
    _param_for,
    display_value,
    to_plain,
)


def trial_config(spec: ModelSpec, point: dict, *, base: dict) -> tuple[TrainConfig, str]:
    """``(TrainConfig, optimizer)`` for one combination (the config carries the optimizer too).

    Raises ConfigError naming the combination."""
    point = dict(point)
    for name, value in list(point.items()):
        param = _param_for(spec, name, name)
        if param.kind == "int" and isinstance(value, (float, np.floating)):
            point[name] = int(round(float(value)))  # sampled from a continuous distribution
        elif isinstance(value, np.generic):
            point[name] = value.item()
    model_params = {k: v for k, v in point.items() if k in spec.params or k == "depth"}
    options = {k: v for k, v in point.items() if k in TRAIN_OPTIONS}
    try:
        config = TrainConfig(model=spec.name, params=model_params, refit=False, **base, **options).validate()
    except ConfigError as exc:
        shown = ", ".join(f"{k}={display_value(v)}" for k, v in point.items())
        raise ConfigError(f"{exc} (in the combination {shown})") from None
    return config, config.optimizer


def trial_identity(config: TrainConfig, optimizer: str, data: dict) -> dict:
    """Everything that determines a trial's result, as plain data."""
    cfg = config.to_dict()
    for drop in ("artist_map", "split_dir", "refit"):
        cfg.pop(drop, None)
    # options at the values every earlier trial trained with are left out, so that
    # sweeps journalled before these options existed keep their trials' keys

    for name, off in {**AUGMENT_OPTIONS, "lr_schedule": "plateau", "multi_label": False}.items():
        if cfg.get(name) == off:
            cfg.pop(name)
    if not cfg.get("multi_label"):  # a threshold decides nothing for a single-label model
        cfg.pop("threshold", None)
    if not get_model(config.model).family.keras_training:
        for name in KERAS_OPTIONS:
            cfg.pop(name, None)
        cfg["fit_rows"] = "training part"  # since no validation part is split off first
    else:
        cfg["optimizer"] = optimizer
    return {"config": cfg, "data": data}


def trial_key(identity: dict) -> str:
    text = json.dumps(to_plain(identity), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class Trial:
    """One combination of the search space."""

    index: int
    point: dict
    config: TrainConfig
    optimizer: str
    key: str

    @property
    def shown(self) -> dict:
        return {k: display_value(v) for k, v in self.point.items()}


# ---------------------------------------------------------------------------
# Running one trial (in a worker process)


@dataclass
class Design:
    """How rows are used: a test part held out once, and the selection folds on the rest.

    All index arrays refer to rows of the full table. ``folds`` are
    ``(name, train_rows, validation_rows)``; each trial carves its own
    early-stopping part out of ``train_rows`` (its ``valid_fraction`` may be swept).
    """

    dev: np.ndarray
    test: np.ndarray
    folds: list[tuple[str, np.ndarray, np.ndarray]]
    groups: np.ndarray
    grouped: bool
    description: str
    test_description: str
    leaky: bool = False


def _load_table(csv: str, sha: str):
    key = (csv, sha)
    if key not in _TABLES:
        _TABLES.clear()
        _TABLES[key] = read_table(csv)  # a feature CSV or a spectrogram store
    return _TABLES[key]


def _level_summary(metrics: dict) -> dict:
    out = {}
    names = metric_names(bool(metrics.get("multi_label")))
    for level in LEVELS:
        m = metrics[level]
        out[level] = {name: m[name] for name in names}
        out[level]["std"] = {name: m["std"][name] for name in names}
        out[level]["n"] = m["n"]
    return out


def evaluate_config(table, config: TrainConfig, design: Design, *, on_epoch=None, on_fold=None) -> dict:
    """Cross-validate one configuration on the selection folds; the test part is not touched.

    Each selection fold's training rows give up their own early-stopping part
    (``config.valid_fraction``, grouped as the design is). ``on_epoch`` and ``on_fold``
    are handed to :func:`~featx.training.cv.cross_validate`.
    """
    from ..data.splits import (  # pulls in pandas: only on this path
        Fold,
        SplitPlan,
        inner_split,
    )
    from ..training.cv import cross_validate  # pulls in pandas: only on this path

    # a multi-label row is stratified on its rarest genre
    key = stratification_key(table.labels) if config.multi_label else table.labels
    folds = []
    for k, (name, train, valid) in enumerate(design.folds):
        tr, es = inner_split(train, key, design.groups, config.valid_fraction, config.seed + k, design.grouped)
        folds.append(Fold(name, tr, es, valid))
    plan = SplitPlan("track" if design.grouped else "random", folds, design.groups, design.description,
                     leaky=design.leaky)
    start = time.perf_counter()
    result = cross_validate(table, config, progress=False, plan=plan, final=False, on_epoch=on_epoch,
                            on_fold=on_fold)
    summary = _level_summary(result.metrics)
    summary["fit_seconds"] = round(time.perf_counter() - start, 4)
    epochs = [len(h["loss"]) for h in result.histories if "loss" in h]
    if epochs:
        summary["epochs_run"] = float(np.mean(epochs))
    return summary


def _error_text(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, MemoryError) or "OOM" in text or "ResourceExhausted" in type(exc).__name__:
        prefix = "out of memory"
    else:
        prefix = type(exc).__name__
    return f"{prefix}: {text[:400]}" if text else prefix


def mark_running(task: dict, key: str) -> None:
    """Name the trial ``key`` as this worker process's, in ``task["running"]`` (when given).

    Written as soon as the worker owns the trial; the calling process removes it once it
    has journaled the trial's record. A marker left when a worker process dies therefore
    names every trial whose result did not come back, whether the worker died while
    running it or while handing its result back.
    """
    if task.get("running"):
        (Path(task["running"]) / key).write_text(str(os.getpid()))


def clear_running(folder, key: str) -> None:
    """Remove the marker of the trial ``key`` from ``folder`` (see :func:`mark_running`)."""
    if folder is not None:
        (Path(folder) / key).unlink(missing_ok=True)
