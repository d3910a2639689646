"""Planning a sweep: options, the held-out design, the trial list, results and the best trial."""
from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataError
from ..io.atomic import atomic_write
from ..io.digest import file_sha256
from ..models.registry import ModelSpec, get_model
from ..training.config import (
    DEFAULT_THRESHOLD,
    LOWER_IS_BETTER,
    PRUNERS,
    SWEEP_METRICS,
    metric_names,
    parse_threshold,
)

logger = logging.getLogger(__name__)
import json
import time

from ..data.splits import make_splits
from ..data.store_table import read_table
from ..extract.executors import check_address, check_wait_workers
from ..models.registry import create
from ..training.cv import label_encoding
from .space import LEVELS, MAX_TRIALS, RESULTS, SEARCHES, Distribution, SearchSpace
from .storage import check_storage_url
from .study import tpe_distributions
from .trials import Design, Trial, trial_config, trial_identity, trial_key

# ---------------------------------------------------------------------------
# Planning


@dataclass
class SweepOptions:
    """Everything ``featx sweep`` was asked to do."""

    csv: Path
    model: str
    output: Path
    search: str = "grid"
    n_iter: int = 20
    metric: str = "f1_macro"
    level: str = "track"
    split: str = "track"
    folds: int = 5
    test_fraction: float = 0.2
    seed: int = 0
    artist_map: Path | None = None
    split_dir: Path | None = None
    jobs: int = 1
    retry_failed: bool = False
    retrain_best: bool = True
    max_trials: int = MAX_TRIALS
    scheduler: str | None = None  # a Dask scheduler's address: trials run on its cluster
    multi_label: bool = False
    threshold: float | str = DEFAULT_THRESHOLD
    overwrite: bool = False  # replace what an earlier sweep on other data or another model wrote
    prune: str = "none"  # stop unpromising trials early: none, median or hyperband
    storage: str | None = None  # the study's database URL (default: sqlite in DIR/study.db)
    study: str | None = None  # the study's name in the storage (default: the folder's name)
    wait_workers: float | None = None  # seconds to wait for a Dask worker; not part of the sweep

    @property
    def study_name(self) -> str:
        return self.study or Path(self.output).resolve().name

    def validate(self) -> "SweepOptions":
        get_model(self.model)
        if self.search not in SEARCHES:
            raise ConfigError(f"search must be one of {', '.join(SEARCHES)} (the sampler). "
                              f"Received: search={self.search!r}", param="search")
        if self.prune not in PRUNERS:
            raise ConfigError(f"prune must be one of {', '.join(PRUNERS)} (the pruner). "
                              f"Received: prune={self.prune!r}", param="prune")
        if self.prune != "none" and self.search == "grid":
            raise ConfigError(f"prune={self.prune!r} stops trials whose early epochs or folds trail the "
                              "others; a grid search runs every combination to its end to compare them "
                              "all, so pruning would only leave holes in the grid; use search='tpe' or "
                              "'random' with pruning, or prune='none'", param="prune")
        if self.search in ("random", "tpe") and (not isinstance(self.n_iter, int) or self.n_iter < 1):
            raise ConfigError(f"n_iter must be a positive integer. Received: n_iter={self.n_iter!r}",
                              param="n_iter")
        if self.storage is not None:
            check_storage_url(self.storage)
        if self.study is not None and (not isinstance(self.study, str) or not self.study.strip()):
            raise ConfigError(f"study must be a non-empty name. Received: study={self.study!r}", param="study")
        if self.wait_workers is not None:
            self.wait_workers = check_wait_workers(self.wait_workers)
        if self.metric not in SWEEP_METRICS:
            raise ConfigError(f"metric must be one of {', '.join(SWEEP_METRICS)}. Received: metric={self.metric!r}",
                              param="metric")
        if self.metric not in metric_names(self.multi_label):
            kind = "multi-label" if self.multi_label else "single-label"
            hint = "" if self.multi_label else "; add multi_label=True for a multi-label sweep"
            raise ConfigError(f"metric {self.metric!r} does not score a {kind} model; expected one of "
                              f"{', '.join(metric_names(self.multi_label))}{hint}. "
                              f"Received: metric={self.metric!r}", param="metric")
        self.threshold = parse_threshold(self.threshold)
        if self.level not in LEVELS:
            raise ConfigError(f"level must be one of {', '.join(LEVELS)}. Received: level={self.level!r}",
                              param="level")
        if not isinstance(self.folds, int) or self.folds < 1:
            raise ConfigError(f"folds must be an integer >= 1. Received: folds={self.folds!r}", param="folds")
        if self.split == "fault-filtered" and self.folds != 1:
            raise ConfigError(
                "split='fault-filtered' selects on its valid list and tests on its test list; "
                f"expected folds=1. Received: folds={self.folds}", param="folds"
            )
        if not 0 < float(self.test_fraction) <= 0.5:
            raise ConfigError(f"test_fraction must be in (0, 0.5]. Received: test_fraction={self.test_fraction!r}",
                              param="test_fraction")
        if not isinstance(self.jobs, int) or self.jobs == 0 or self.jobs < -1:
            raise ConfigError(f"jobs must be an integer >= 1, or -1 for one per CPU core. Received: jobs={self.jobs!r}",
                              param="jobs")
        if self.scheduler is not None:  # a malformed address ends the sweep before anything is written

            check_address(self.scheduler)
        return self

    def base(self) -> dict:
        return {"seed": self.seed, "split": self.split, "folds": self.folds,
                "artist_map": str(self.artist_map) if self.artist_map else None,
                "split_dir": str(self.split_dir) if self.split_dir else None,
                **({"multi_label": True, "threshold": self.threshold} if self.multi_label else {})}


def data_sha256(path) -> str:
    """SHA-256 of a feature CSV; of a spectrogram store, of its settings and row table.

    A store's images are made from its files with its settings, and its row table
    names every committed file and segment, so these two change whenever its
    images do (without reading every image).
    """
    from ..data.store import (  # pulls in the store's checksums: only on this path
        ROWS_FILE,
        _read_marker,
    )

    path = Path(path)
    if not path.is_dir():
        return file_sha256(path)
    digest = hashlib.sha256(json.dumps(_read_marker(path), sort_keys=True).encode() + b"\0")
    rows = path / ROWS_FILE
    if rows.is_file():
        digest.update(rows.read_bytes())
    return digest.hexdigest()


class _SplitRows:
    """The rows ``rows`` of a table as the splitters see them (identities and labels only)."""

    def __init__(self, table, rows):
        self.name, self.segmented = table.name, table.segmented
        self.tracks = np.asarray(table.tracks)[rows]
        self.labels = np.asarray(table.labels)[rows]
        self.filenames = np.asarray(table.filenames)[rows]
        self.n_rows = len(rows)


def _data_identity(table, options: SweepOptions) -> dict:
    data = {"sha256": data_sha256(options.csv), "test_fraction": float(options.test_fraction)}
    if options.artist_map and options.split == "artist":
        data["artist_map"] = file_sha256(options.artist_map)
    if options.split_dir and options.split == "fault-filtered":
        digest = hashlib.sha256()
        for file in sorted(Path(options.split_dir).iterdir()):
            if file.is_file() and file.suffix == ".txt":
                digest.update(file.name.encode() + b"\0" + file.read_bytes())
        data["split_lists"] = digest.hexdigest()
    return data


def plan_design(table, options: SweepOptions) -> Design:
    """The held-out test part and the selection folds (same split kinds as ``featx train``)."""
    common = dict(split=options.split, seed=options.seed, valid_fraction=0.0,
                  artist_map=options.artist_map, split_dir=options.split_dir)
    outer = make_splits(table, folds=1, test_fraction=float(options.test_fraction), **common)
    fold = outer.folds[0]
    test = np.sort(fold.test)
    groups = np.asarray(outer.groups, dtype=object)
    grouped = options.split != "random"
    if options.split == "fault-filtered":
        dev = np.sort(np.concatenate([fold.train, fold.valid]))
        if len(fold.valid) == 0:
            raise DataError(f"{options.split_dir}: no valid list; sweeps select on the valid list")
        folds = [("valid", np.sort(fold.train), np.sort(fold.valid))]
        description = "the fault-filtered valid list (training on its train list)"
        test_description = f"the fault-filtered test list ({len(set(outer.groups[test]))} tracks)"
    else:
        dev = np.sort(fold.train)
        inner = make_splits(_SplitRows(table, dev), folds=options.folds, **common)
        groups = np.empty(table.n_rows, dtype=object)
        groups[:] = outer.groups
        folds = [(f.name if options.folds > 1 else "valid", dev[np.sort(f.train)], dev[np.sort(f.test)])
                 for f in inner.folds]
        unit = {"track": "track", "artist": "artist", "random": "row"}[options.split]
        n_test = len(set(groups[test])) if grouped else len(test)
        by = f", grouped by {unit}" if grouped else ""
        if options.folds > 1:
            description = f"{options.folds}-fold cross-validation on the non-test rows{by}"
        else:
            description = f"one validation part of the non-test rows{by}"
        test_description = (f"{n_test} held-out {unit}s ({options.test_fraction:.0%} of the "
                            f"{unit}s, stratified by genre)")
    leaky = bool(options.split == "random" and table.segmented)
    return Design(dev, test, folds, groups, grouped, description, test_description, leaky)


@dataclass
class SweepPlan:
    options: SweepOptions
    spec: ModelSpec
    space: SearchSpace
    table: object
    data: dict
    design: Design
    trials: list[Trial]
    #: When results.csv was last written (``time.monotonic()``) and how long that took.
    results_written: tuple[float, float] | None = field(default=None, repr=False, compare=False)


def plan_sweep(options: SweepOptions, space: SearchSpace) -> SweepPlan:
    """Check everything and list the trials; nothing is trained. Errors name their entry."""
    options.validate()
    spec = get_model(options.model)
    if options.search == "tpe":  # trials are sampled while the sweep runs: check one combination
        tpe_distributions(space)
        points = []
        probe = {k: (v.low if v.kind != "randint" else int(v.low)) if isinstance(v, Distribution) else v[0]
                 for k, v in space.grids[0].items()}
        configs = [trial_config(spec, probe, base=options.base())]
    else:
        points = space.points(options.search, n_iter=options.n_iter, seed=options.seed,
                              max_trials=options.max_trials)
        configs = [trial_config(spec, p, base=options.base()) for p in points]
    if configs:  # the split is checked before the table is read
        create(configs[0][0], None).check_split(options.split)
    table = read_table(options.csv)  # a feature CSV, or a spectrogram store for an image model
    labels = label_encoding(table, configs[0][0]) if configs else None
    for config, _ in configs:  # the model of every combination must read the table
        create(config, labels).check_input(table)
    data = _data_identity(table, options)
    design = plan_design(table, options)
    trials = []
    for i, (point, (config, optimizer)) in enumerate(zip(points, configs[:len(points)])):
        key = trial_key(trial_identity(config, optimizer, data))
        trials.append(Trial(i, point, config, optimizer, key))
    return SweepPlan(options, spec, space, table, data, design, trials)


# ---------------------------------------------------------------------------
# Results


def score_of(record: dict | None, metric: str, level: str) -> float:
    if not record or record.get("status") != "ok":
        return float("nan")
    return float(record["metrics"][level][metric])


def results_frame(plan: SweepPlan, records: dict[str, dict]) -> pd.DataFrame:
    """One row per combination: hyperparameters, metric means and standard deviations, time, status."""
    level = plan.options.level
    rows = []
    for trial in plan.trials:
        row = {name: trial.shown.get(name) for name in plan.space.names}
        record = records.get(trial.key)
        status = record.get("status") if record else "pending"
        for name in metric_names(plan.options.multi_label):
            if status == "ok":
                m = record["metrics"][level]
                row[name], row[f"{name}_std"] = m[name], m["std"][name]
            else:
                row[name] = row[f"{name}_std"] = np.nan
        used = (record or {}).get("used") or {}
        row["epochs_run"] = ((record or {}).get("metrics", {}).get("epochs_run", np.nan) if status == "ok"
                             else used.get("epochs", np.nan))
        row["folds_run"] = len(plan.design.folds) if status == "ok" else used.get("folds", np.nan)
        row["train_seconds"] = (record.get("seconds") if record and record.get("seconds") is not None
                                else np.nan)
        row["status"] = status
        row["state"] = (record or {}).get("state") or _STATES.get(status, status.upper())
        row["error"] = (record or {}).get("error", "")
        row["trial"] = trial.key
        rows.append(row)
    columns = list(plan.space.names) + [c for n in metric_names(plan.options.multi_label)
                                        for c in (n, f"{n}_std")]
    columns += ["epochs_run", "folds_run", "train_seconds", "status", "state", "error", "trial"]
    frame = pd.DataFrame(rows, columns=columns)
    if not plan.spec.family.keras_training:  # no epochs to count
        frame = frame.drop(columns="epochs_run")
    if plan.options.prune == "none":  # every trial runs all its folds
        frame = frame.drop(columns="folds_run")
    return frame


#: The study's trial state shown for a featx status when no study trial is at hand.
_STATES = {"ok": "COMPLETE", "failed": "FAIL", "pruned": "PRUNED", "pending": "WAITING"}


#: Least time between two rewrites of results.csv while trials finish (seconds); a
#: rewrite that takes longer than a tenth of this spaces the next ones further apart.
RESULTS_INTERVAL = 5.0


def write_results(plan: SweepPlan, records: dict[str, dict], *,
                  throttle: bool = False) -> pd.DataFrame | None:
    """Write ``results.csv`` (one row per combination) and return its frame.

    With ``throttle``, nothing is written (and ``None`` returned) when the last
    write was less than :data:`RESULTS_INTERVAL` seconds ago, or less than ten
    times its own duration: a big sweep's table is rewritten every few seconds
    while trials finish, not after every trial. The final write is unthrottled.
    """
    now = time.monotonic()
    if throttle and plan.results_written is not None:
        last, took = plan.results_written
        if now - last < max(RESULTS_INTERVAL, 10 * took):
            return None
    frame = results_frame(plan, records)
    atomic_write(plan.options.output / RESULTS, frame.to_csv(index=False, float_format="%.6g"))
    plan.results_written = (now, time.monotonic() - now)
    return frame


def best_trial(plan: SweepPlan, records: dict[str, dict]) -> Trial | None:
    """The trial with the best mean validation metric: highest, lowest for hamming_loss (ties: lower
    std, then earlier)."""
    metric, level = plan.options.metric, plan.options.level
    best, best_rank = None, None
    for trial in plan.trials:
        record = records.get(trial.key)
        score = score_of(record, metric, level)
        if not math.isfinite(score):
            continue
        sign = 1 if metric in LOWER_IS_BETTER else -1  # hamming loss: lower is better
        rank = (sign * score, record["metrics"][level]["std"][metric], trial.index)
        if best_rank is None or rank < best_rank:
            best, best_rank = trial, rank
    return best


# ---------------------------------------------------------------------------
# Running a sweep


@dataclass
class SweepOutcome:
    """What :func:`run_sweep` did."""

    plan: SweepPlan
    records: dict
    total: int
    reused: int
    ran: int
    failed: int
    pending: int
    best: Trial | None
    best_dir: Path | None
    seconds: float
    results: pd.DataFrame = field(repr=False, default=None)
    retrain_seconds: float = 0.0
    pruned: int = 0
    storage: str = ""  # the study's database URL, password masked
    study: str = ""  # the study's name
