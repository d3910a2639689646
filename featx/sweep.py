"""Hyperparameter sweeps: search spaces, resumable parallel trials, results and reports.

A sweep evaluates many configurations of one model on one feature table:

1. A grouped *test part* is held out once (the same kind of split as
   ``featx train``: by track, by artist, per row, or the fault-filtered test list).
2. Every configuration (a *trial*) is cross-validated on the remaining rows;
   its out-of-fold validation metrics are the only figures used for selection.
3. The best configuration is retrained on all non-test rows, scored once on the
   test part and saved as a normal bundle in ``DIR/best/``.

Finished trials are appended to ``DIR/trials.jsonl`` (one JSON line per trial,
written with a single ``write``), keyed by a hash of everything that determines
the result: the resolved hyperparameters, the data file's content, the split,
folds and seed. Re-running a sweep reuses every trial already in the journal,
so a widened grid or an interrupted run only trains what is missing.
``results.csv`` is rewritten atomically after every trial; ``report.md`` and the
self-contained ``report.html`` are written at the end.

Trials run through :mod:`joblib` (loky worker processes, one BLAS thread each).
Keras/TensorFlow is imported inside the trial functions only.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import math
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ._io import atomic_write
from .errors import ConfigError, DataError, OutputError
from .registry import ModelSpec, Param, get_model
from .training import METRIC_NAMES, OPTIMIZERS, TrainConfig

logger = logging.getLogger(__name__)

JOURNAL = "trials.jsonl"
RESULTS = "results.csv"
SETTINGS = "sweep.json"
RUNNING = ".running"
BEST = "best"
SEARCHES = ("grid", "random")
LEVELS = ("track", "segment")

#: Training options that can be swept next to a model's own hyperparameters.
TRAIN_OPTIONS: dict[str, Param] = {
    "epochs": Param("int", None, "maximum epochs"),
    "batch_size": Param("int", 32, "mini-batch size"),
    "learning_rate": Param("float", 1e-3, "initial learning rate"),
    "optimizer": Param("str", "adam", "optimizer", OPTIMIZERS),
    "patience": Param("int", 15, "early-stopping patience (0: off)"),
    "reduce_lr_patience": Param("int", 5, "ReduceLROnPlateau patience (0: off)"),
    "reduce_lr_factor": Param("float", 0.5, "ReduceLROnPlateau factor"),
    "min_lr": Param("float", 1e-5, "ReduceLROnPlateau floor"),
    "valid_fraction": Param("float", None, "share of each training part held out for early stopping"),
    "log_variances": Param("bool", True, "log-scale the *_var columns"),
}
#: Training options that only mean something for Keras models.
KERAS_OPTIONS = frozenset(TRAIN_OPTIONS) - {"log_variances"}

_EXPECTED = {
    "ints": "positive integers joined by '-' like 256-128-64",
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "str": "text",
}


# ---------------------------------------------------------------------------
# Search space


@dataclass(frozen=True)
class Distribution:
    """A distribution to sample from in random search: ``loguniform(1e-4, 1e-1)``.

    ``uniform`` and ``loguniform`` are continuous on ``[low, high]``;
    ``randint`` draws integers with ``low <= x <= high``.
    """

    kind: str
    low: float
    high: float

    KINDS = ("uniform", "loguniform", "randint")

    def __post_init__(self):
        if self.kind not in self.KINDS:
            raise ConfigError(f"unknown distribution {self.kind!r}; expected one of {', '.join(self.KINDS)}")
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
            raise ConfigError(f"{self}: expected finite bounds with low < high")
        if self.kind == "loguniform" and self.low <= 0:
            raise ConfigError(f"{self}: expected low > 0 for a log-uniform distribution")
        if self.kind == "randint" and (self.low != int(self.low) or self.high != int(self.high)):
            raise ConfigError(f"{self}: expected integer bounds")

    def scipy(self):
        """The frozen :mod:`scipy.stats` distribution (anything with ``rvs``)."""
        from scipy import stats

        if self.kind == "uniform":
            return stats.uniform(loc=self.low, scale=self.high - self.low)
        if self.kind == "loguniform":
            return stats.loguniform(self.low, self.high)
        return stats.randint(int(self.low), int(self.high) + 1)

    def __str__(self) -> str:
        return f"{self.kind}({self.low:g}, {self.high:g})"


_DIST_RE = re.compile(r"^\s*([a-z_]+)\s*\((.*)\)\s*$", re.IGNORECASE)


def parse_distribution(text: str, *, source: str) -> Distribution | None:
    """``'loguniform(1e-4, 1e-1)'`` -> :class:`Distribution`; ``None`` if not that form."""
    match = _DIST_RE.match(text)
    if not match:
        return None
    kind, args = match.group(1).lower(), [a.strip() for a in match.group(2).split(",")]
    try:
        low, high = (float(a) for a in args)
    except ValueError:
        raise ConfigError(
            f"{source}: expected a distribution like {kind}(LOW, HIGH). Received: {text!r}"
        ) from None
    try:
        return Distribution(kind, low, high)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def _param_for(spec: ModelSpec, name: str, source: str) -> Param:
    """The :class:`Param` describing hyperparameter ``name`` of ``spec``."""
    if name in spec.params:
        return spec.params[name]
    if name == "depth" and "units" in spec.params:
        return Param("int", None, "number of layers")
    if name in TRAIN_OPTIONS and (spec.kind == "keras" or name not in KERAS_OPTIONS):
        return TRAIN_OPTIONS[name]
    valid = list(spec.params) + (["depth"] if "units" in spec.params else [])
    valid += [n for n in TRAIN_OPTIONS if spec.kind == "keras" or n not in KERAS_OPTIONS]
    if name in TRAIN_OPTIONS:
        raise ConfigError(
            f"{source}: {name} is a Keras training option; model {spec.name!r} is a scikit-learn "
            f"model. Expected one of {', '.join(valid)}"
        )
    raise ConfigError(
        f"{source}: model {spec.name!r} has no hyperparameter {name!r}; expected one of {', '.join(valid)}"
    )


def typed_value(spec: ModelSpec, name: str, value, *, source: str):
    """Convert one raw value (text from ``--param`` or a YAML/JSON item) to its kind."""
    param = _param_for(spec, name, source)
    raw = value
    if param.kind == "ints" and isinstance(value, str):
        # '-' joins layer sizes (256-128-64); only between digits, so -5 or 8--4 stay invalid
        value = re.sub(r"(?<=\d)-(?=\d)", ",", value.strip().strip("()[]"))
    if param.kind == "int" and isinstance(value, str):
        value = value.strip()
    if isinstance(value, (list, tuple)) and param.kind != "ints":
        value = None  # a list where one value is expected
    try:
        if value is None or (isinstance(value, dict)):
            raise ConfigError("")
        out = param.parse(spec.name, name, value)
        if param.kind in ("int", "float") and isinstance(raw, bool):
            raise ConfigError("")
        return out
    except ConfigError:
        expected = _EXPECTED[param.kind]
        if param.choices:
            expected = "one of " + ", ".join(param.choices)
        raise ConfigError(f"{source}: bad value for {name}; expected {expected}. Received: {raw!r}") from None


def split_values(text: str) -> list[str]:
    """``'1e-3,1e-2'`` -> ``['1e-3', '1e-2']`` (commas outside brackets separate values)."""
    out, depth, current = [], 0, ""
    for ch in text:
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(current)
            current = ""
        else:
            current += ch
    out.append(current)
    return [v.strip() for v in out]


def parse_param_option(text: str) -> tuple[str, object]:
    """One ``--param NAME=V1,V2`` option -> ``(name, [raw values] or Distribution)``."""
    source = f"--param {text}"
    if "=" not in text:
        raise ConfigError(f"--param expects NAME=V1,V2,... Received: {text!r}")
    name, values = (p.strip() for p in text.split("=", 1))
    name = name.replace("-", "_")
    if not name:
        raise ConfigError(f"--param expects NAME=V1,V2,... with a name. Received: {text!r}")
    source = f"--param {name}"
    dist = parse_distribution(values, source=source)
    if dist is not None:
        return name, dist
    items = split_values(values)
    if not values.strip() or any(not v for v in items):
        raise ConfigError(f"{source}: empty value in the list; expected NAME=V1,V2,... Received: {text!r}")
    return name, items


def read_grid_file(path) -> list[dict]:
    """A YAML or JSON search space -> list of sub-grids ``{name: [raw values] or Distribution}``.

    The file holds a mapping ``{name: [values]}`` (a scalar is one value; a
    string like ``"loguniform(1e-4, 1e-1)"`` is a distribution for random
    search), a list of such mappings (sub-grids searched one after the other),
    or either of those under a top-level ``grid`` key.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such grid file; expected a YAML or JSON search space")
    try:
        data = yaml.safe_load(path.read_text())  # JSON is YAML
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise ConfigError(f"{path}: grid file does not parse{line} ({first})") from None
    if isinstance(data, dict) and set(data) == {"grid"}:
        data = data["grid"]
    grids = data if isinstance(data, list) else [data]
    if not grids or not all(isinstance(g, dict) and g for g in grids):
        raise ConfigError(
            f"{path}: expected a mapping of hyperparameter names to value lists, or a list of such "
            f"mappings. Received: {type(data).__name__}"
        )
    out = []
    for i, grid in enumerate(grids):
        where = f"{path}" + (f" (sub-grid {i + 1})" if len(grids) > 1 else "")
        sub = {}
        for name, values in grid.items():
            name = str(name).replace("-", "_")
            source = f"{where}: {name}"
            if isinstance(values, str):
                dist = parse_distribution(values, source=source)
                if dist is not None:
                    sub[name] = dist
                    continue
            if isinstance(values, dict):
                try:
                    sub[name] = Distribution(str(values.get("dist", values.get("distribution"))),
                                             float(values["low"]), float(values["high"]))
                except (KeyError, TypeError, ValueError):
                    raise ConfigError(
                        f"{source}: expected a list of values or a distribution "
                        "{dist: loguniform, low: ..., high: ...}"
                    ) from None
                except ConfigError as exc:
                    raise ConfigError(f"{source}: {exc}") from None
                continue
            values = values if isinstance(values, list) else [values]
            if not values or any(v is None for v in values):
                raise ConfigError(f"{source}: empty value list; expected one or more values")
            sub[name] = values
        out.append((where, sub))
    return out


@dataclass
class SearchSpace:
    """Typed sub-grids: ``{name: [values] or Distribution}``, and the names in given order."""

    names: list[str]
    grids: list[dict]

    def points(self, search: str, *, n_iter: int = 20, seed: int = 0) -> list[dict]:
        """The combinations to evaluate, in a fixed order."""
        if search == "grid":
            from sklearn.model_selection import ParameterGrid

            for grid in self.grids:
                for name, values in grid.items():
                    if isinstance(values, Distribution):
                        raise ConfigError(
                            f"{name}={values} is a distribution; --search grid needs a list of values "
                            "(or use --search random --n-iter N)"
                        )
            points = list(ParameterGrid(self.grids))
        elif search == "random":
            import warnings

            from sklearn.model_selection import ParameterSampler

            if not isinstance(n_iter, int) or n_iter < 1:
                raise ConfigError(f"--n-iter must be a positive integer. Received: n_iter={n_iter!r}")
            space = [{k: (v.scipy() if isinstance(v, Distribution) else v) for k, v in g.items()}
                     for g in self.grids]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # n_iter larger than a finite grid
                points = list(ParameterSampler(space, n_iter=n_iter, random_state=seed))
        else:
            raise ConfigError(f"unknown search {search!r}; expected one of {', '.join(SEARCHES)}")
        return [{k: (p[k].item() if isinstance(p[k], np.generic) else p[k]) for k in self.names if k in p}
                for p in points]


def build_space(spec: ModelSpec, entries: list[tuple[str, dict]]) -> SearchSpace:
    """Type and check raw sub-grids against ``spec``; every problem names its entry.

    ``entries`` is a list of ``(source, {name: [raw values] or Distribution})``;
    ``--param`` options are passed as one entry merged into every sub-grid.
    """
    if not entries:
        raise ConfigError("nothing to sweep; expected --param NAME=V1,V2,... or --grid FILE")
    names: list[str] = []
    grids = []
    for source, grid in entries:
        typed = {}
        for name, values in grid.items():
            where = f"--param {name}" if source == "--param" else f"{source}: {name}"
            param = _param_for(spec, name, where)
            if isinstance(values, Distribution):
                if param.kind not in ("int", "float"):
                    raise ConfigError(f"{where}: {values} needs a numeric hyperparameter; "
                                      f"{name} expects {_EXPECTED[param.kind]}")
                typed[name] = values
            else:
                if not values:
                    raise ConfigError(f"{where}: empty value list; expected one or more values")
                typed[name] = [typed_value(spec, name, v, source=where) for v in values]
            if name not in names:
                names.append(name)
        grids.append(typed)
    return SearchSpace(names, grids)


def space_from_options(spec: ModelSpec, params: list[str], grid_file=None) -> SearchSpace:
    """The search space of ``--param`` options and/or a ``--grid`` file.

    ``--param`` values apply to every sub-grid of the file (and override it).
    """
    option_grid: dict = {}
    for text in params:
        name, values = parse_param_option(text)
        option_grid[name] = values
    if grid_file is not None:
        entries = read_grid_file(grid_file)
        entries = [(src, {**sub, **option_grid}) for src, sub in entries]
    else:
        entries = [("--param", option_grid)] if option_grid else []
    return build_space(spec, entries)


# ---------------------------------------------------------------------------
# Trials: configuration, keys, display


def to_plain(value):
    """JSON-safe plain value (tuples -> lists, numpy scalars -> Python)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (tuple, list)):
        return [to_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    return value


def display_value(value) -> str | float | int | bool:
    """How a hyperparameter value appears in results and reports (tuples as ``256-128-64``)."""
    if isinstance(value, (list, tuple)):
        return "-".join(str(v) for v in value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def trial_config(spec: ModelSpec, point: dict, *, base: dict) -> tuple[TrainConfig, str]:
    """``(TrainConfig, optimizer)`` for one combination; raises ConfigError naming it."""
    point = dict(point)
    for name, value in list(point.items()):
        param = _param_for(spec, name, name)
        if param.kind == "int" and isinstance(value, (float, np.floating)):
            point[name] = int(round(float(value)))  # sampled from a continuous distribution
        elif isinstance(value, np.generic):
            point[name] = value.item()
    model_params = {k: v for k, v in point.items() if k in spec.params or k == "depth"}
    options = {k: v for k, v in point.items() if k in TRAIN_OPTIONS}
    optimizer = options.pop("optimizer", "adam")
    try:
        config = TrainConfig(model=spec.name, params=model_params, refit=False, **base, **options).validate()
    except ConfigError as exc:
        shown = ", ".join(f"{k}={display_value(v)}" for k, v in point.items())
        raise ConfigError(f"{exc} (in the combination {shown})") from None
    return config, optimizer


def trial_identity(config: TrainConfig, optimizer: str, data: dict) -> dict:
    """Everything that determines a trial's result, as plain data."""
    cfg = config.to_dict()
    for drop in ("artist_map", "split_dir", "refit"):
        cfg.pop(drop, None)
    if get_model(config.model).kind == "sklearn":
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
# The journal


class Journal:
    """Append-only JSON-lines record of finished trials, locked against a second writer."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._fd = None

    def open(self) -> dict[str, dict]:
        """Lock the journal, drop a cut-off last line, and return ``{key: record}``."""
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            import fcntl

            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # pragma: no cover - no advisory locks on this platform
            pass
        except OSError:
            os.close(self._fd)
            self._fd = None
            raise OutputError(
                f"{self.path.parent}: another featx sweep is writing to this folder; "
                "wait for it or use another -o folder"
            ) from None
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end < len(data):
            logger.warning("%s: ignoring a cut-off last line (%d bytes) from an interrupted run",
                           self.path, len(data) - end)
            os.ftruncate(self._fd, end)
            data = data[:end]
        records: dict[str, dict] = {}
        for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                records[str(record["key"])] = record
            except (ValueError, KeyError, TypeError):
                logger.warning("%s: ignoring unreadable line %d", self.path, number)
        return records

    def append(self, record: dict) -> None:
        line = (json.dumps(record, sort_keys=True, allow_nan=True) + "\n").encode()
        os.write(self._fd, line)  # one write per record: a record is whole or cut, never interleaved

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


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


_TABLES: dict = {}
_WORKER: dict = {"threads": None}


def _load_table(csv: str, sha: str):
    from .dataset import read_feature_csv

    key = (csv, sha)
    if key not in _TABLES:
        _TABLES.clear()
        _TABLES[key] = read_feature_csv(csv)
    return _TABLES[key]


def _configure_worker(threads: int | None, keras_model: bool) -> None:
    """Once per process: cap TensorFlow's threads, let trials share a GPU."""
    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    if not keras_model or _WORKER.get("configured"):
        return
    _WORKER["configured"] = True
    from ._keras import import_keras
    keras = import_keras()

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        try:
            if threads:
                tf.config.threading.set_intra_op_parallelism_threads(threads)
                tf.config.threading.set_inter_op_parallelism_threads(threads)
            for gpu in tf.config.list_physical_devices("GPU"):
                tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialised in this process
            pass


def _level_summary(metrics: dict) -> dict:
    out = {}
    for level in LEVELS:
        m = metrics[level]
        out[level] = {name: m[name] for name in METRIC_NAMES}
        out[level]["std"] = {name: m["std"][name] for name in METRIC_NAMES}
        out[level]["n"] = m["n"]
    return out


def evaluate_config(table, config: TrainConfig, optimizer: str, design: Design) -> dict:
    """Cross-validate one configuration on the selection folds; the test part is not touched."""
    from .dataset import _inner_valid
    from .training import compute_metrics, fit_and_predict, label_setup, prediction_frame

    spec = get_model(config.model)
    prep0, y, max_segments = label_setup(table, spec, config)
    frames, epochs_run, fit_seconds = [], [], 0.0
    for k, (name, train, valid) in enumerate(design.folds):
        tr, es = _inner_valid(train, y, design.groups, config.valid_fraction, config.seed + k, design.grouped)
        start = time.perf_counter()
        model, _, history, proba = fit_and_predict(table, spec, config, prep0, y, tr, es, valid,
                                                   seed=config.seed + k, max_segments=max_segments,
                                                   progress=False, desc=name, optimizer=optimizer)
        fit_seconds += time.perf_counter() - start
        epochs_run.append(len(history.get("loss", [])))
        frames.append(prediction_frame(table, valid, proba, prep0.classes, name))
        del model
    metrics = compute_metrics(pd.concat(frames, ignore_index=True), prep0.classes)
    summary = _level_summary(metrics)
    summary["fit_seconds"] = round(fit_seconds, 4)
    if spec.kind == "keras":
        summary["epochs_run"] = float(np.mean(epochs_run))
    return summary


def _error_text(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, MemoryError) or "OOM" in text or "ResourceExhausted" in type(exc).__name__:
        prefix = "out of memory"
    else:
        prefix = type(exc).__name__
    return f"{prefix}: {text[:400]}" if text else prefix


def run_trial(task: dict) -> dict:
    """Evaluate one trial (picklable; runs in a worker). Never raises for a failing trial."""
    start = time.perf_counter()
    record = {"key": task["key"], "index": task["index"], "params": task["params"],
              "config": task["identity"]["config"], "pid": os.getpid()}
    spec = get_model(task["identity"]["config"]["model"])
    keras_model = spec.kind == "keras"
    marker = Path(task["running"]) / task["key"] if task.get("running") else None
    if marker is not None:  # lets the parent name the trial if this process is killed
        marker.write_text(str(os.getpid()))
    try:
        _configure_worker(task.get("threads"), keras_model)
        table = _load_table(task["csv"], task["sha"])
        config = TrainConfig.from_dict(task["train_config"]).validate()
        record["metrics"] = evaluate_config(table, config, task["optimizer"], task["design"])
        record["status"] = "ok"
    except Exception as exc:  # a failing trial is a result, not a crash
        record["status"] = "failed"
        record["error"] = _error_text(exc)
        logger.debug("trial %s failed", task["key"], exc_info=True)
    finally:
        if keras_model and "keras" in __import__("sys").modules:
            from ._keras import import_keras
            keras = import_keras()

            keras.backend.clear_session()
        if marker is not None:
            marker.unlink(missing_ok=True)
    record["seconds"] = round(time.perf_counter() - start, 4)
    record["finished"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return record


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

    def validate(self) -> "SweepOptions":
        get_model(self.model)
        if self.search not in SEARCHES:
            raise ConfigError(f"--search must be one of {', '.join(SEARCHES)}. Received: {self.search!r}")
        if self.metric not in METRIC_NAMES:
            raise ConfigError(f"--metric must be one of {', '.join(METRIC_NAMES)}. Received: {self.metric!r}")
        if self.level not in LEVELS:
            raise ConfigError(f"--level must be one of {', '.join(LEVELS)}. Received: {self.level!r}")
        if not isinstance(self.folds, int) or self.folds < 1:
            raise ConfigError(f"--folds must be a positive integer. Received: folds={self.folds!r}")
        if self.split == "fault-filtered" and self.folds != 1:
            raise ConfigError(
                "--split fault-filtered selects on its valid list and tests on its test list; "
                f"expected --folds 1. Received: folds={self.folds}"
            )
        if not 0 < float(self.test_fraction) <= 0.5:
            raise ConfigError(f"--test-fraction must be in (0, 0.5]. Received: {self.test_fraction!r}")
        if not isinstance(self.jobs, int) or self.jobs == 0 or self.jobs < -1:
            raise ConfigError(f"--jobs must be a positive integer or -1 (all cores). Received: {self.jobs!r}")
        return self

    def base(self) -> dict:
        return {"seed": self.seed, "split": self.split, "folds": self.folds,
                "artist_map": str(self.artist_map) if self.artist_map else None,
                "split_dir": str(self.split_dir) if self.split_dir else None}


def _data_identity(table, options: SweepOptions) -> dict:
    from .bundle import file_sha256

    data = {"sha256": file_sha256(options.csv), "test_fraction": float(options.test_fraction)}
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
    from .dataset import make_splits

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
        inner = make_splits(table.subset(np.isin(np.arange(table.n_rows), dev)),
                            folds=options.folds, **common)
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


def plan_sweep(options: SweepOptions, space: SearchSpace) -> SweepPlan:
    """Check everything and list the trials; nothing is trained. Errors name their entry."""
    from .dataset import read_feature_csv

    options.validate()
    spec = get_model(options.model)
    points = space.points(options.search, n_iter=options.n_iter, seed=options.seed)
    configs = [trial_config(spec, p, base=options.base()) for p in points]
    if spec.input == "segments" and options.split == "random":
        raise ConfigError(f"model {spec.name!r} predicts whole tracks; expected --split track, artist "
                          "or fault-filtered")
    table = read_feature_csv(options.csv)
    if spec.input == "segments" and not table.segmented:
        raise DataError(f"{table.name}: model {spec.name!r} needs segment rows; this table has one row per file")
    data = _data_identity(table, options)
    design = plan_design(table, options)
    trials = []
    for i, (point, (config, optimizer)) in enumerate(zip(points, configs)):
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
        for name in METRIC_NAMES:
            if status == "ok":
                m = record["metrics"][level]
                row[name], row[f"{name}_std"] = m[name], m["std"][name]
            else:
                row[name] = row[f"{name}_std"] = np.nan
        row["epochs_run"] = (record or {}).get("metrics", {}).get("epochs_run", np.nan) if status == "ok" else np.nan
        row["train_seconds"] = record.get("seconds", np.nan) if record else np.nan
        row["status"] = status
        row["error"] = (record or {}).get("error", "")
        row["trial"] = trial.key
        rows.append(row)
    columns = list(plan.space.names) + [c for n in METRIC_NAMES for c in (n, f"{n}_std")]
    columns += ["epochs_run", "train_seconds", "status", "error", "trial"]
    frame = pd.DataFrame(rows, columns=columns)
    if plan.spec.kind != "keras":
        frame = frame.drop(columns="epochs_run")
    return frame


def write_results(plan: SweepPlan, records: dict[str, dict]) -> pd.DataFrame:
    frame = results_frame(plan, records)
    atomic_write(plan.options.output / RESULTS, frame.to_csv(index=False, float_format="%.6g"))
    return frame


def best_trial(plan: SweepPlan, records: dict[str, dict]) -> Trial | None:
    """The trial with the highest mean validation metric (ties: lower std, then earlier)."""
    metric, level = plan.options.metric, plan.options.level
    best, best_rank = None, None
    for trial in plan.trials:
        record = records.get(trial.key)
        score = score_of(record, metric, level)
        if not math.isfinite(score):
            continue
        rank = (-score, record["metrics"][level]["std"][metric], trial.index)
        if best_rank is None or rank < best_rank:
            best, best_rank = trial, rank
    return best


# ---------------------------------------------------------------------------
# The best configuration: retrain on all non-test rows, test once, save a bundle


def retrain_best(plan: SweepPlan, trial: Trial) -> Path:
    """Fit ``trial``'s configuration on the non-test rows, score the test part, save ``DIR/best``."""
    from .bundle import save_bundle, write_json
    from .dataset import Fold, SplitPlan, _inner_valid
    from .report import write_outputs
    from .training import (TrainResult, compute_metrics, describe_device, final_fit_record,
                           fit_and_predict, label_setup, prediction_frame)

    start = time.perf_counter()
    table, design, spec = plan.table, plan.design, plan.spec
    config, optimizer = trial.config, trial.optimizer
    _configure_worker(None, spec.kind == "keras")
    prep0, y, max_segments = label_setup(table, spec, config)
    seed = config.seed + len(design.folds)
    train, valid = _inner_valid(design.dev, y, design.groups, config.valid_fraction, seed, design.grouped)
    test = design.test
    model, prep, history, proba = fit_and_predict(table, spec, config, prep0, y, train, valid, test,
                                                  seed=seed, max_segments=max_segments, progress=False,
                                                  desc="final", optimizer=optimizer)
    predictions = prediction_frame(table, test, proba, prep0.classes, "test")
    metrics = compute_metrics(predictions, prep0.classes)
    split_plan = SplitPlan(plan.options.split, [Fold("test", train, valid, test)], design.groups,
                           f"trained on the non-test rows, tested once on {design.test_description}",
                           leaky=design.leaky)
    metrics.update(split=plan.options.split, split_description=split_plan.description, leaky=design.leaky,
                   folds=1, model=spec.name)
    rows = "all non-test rows" + (" (a validation part for early stopping)" if len(valid) else "")
    final_fit = final_fit_record(rows, train, valid, seed, spec, prep, table, y)
    device = describe_device() if spec.kind == "keras" else "cpu (scikit-learn)"
    histories = [{"fold": "final", **history}]
    result = TrainResult(config, spec, prep, model, split_plan, predictions, metrics, histories,
                         max_segments, final_fit, device, time.perf_counter() - start)

    out = plan.options.output
    tmp = out / ".best.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_bundle(result, tmp, table=table)
    record_meta = {"trial": trial.key, "hyperparameters": to_plain(trial.point), "optimizer": optimizer,
                   "selected_by": f"{plan.options.level}-level {plan.options.metric} on validation folds",
                   "test_part": design.test_description, "n_test_rows": int(len(test))}
    metadata = json.loads((tmp / "metadata.json").read_text())
    metadata["sweep"] = record_meta
    write_json(tmp / "metadata.json", metadata)
    facts = [("model", f"{spec.name} ({spec.description})"),
             ("hyperparameters", ", ".join(f"{k}={v}" for k, v in trial.shown.items())),
             ("selected by", record_meta["selected_by"] + " (" + design.description + ")"),
             ("test part", f"{design.test_description}: {len(test)} rows, used once"),
             ("device", device), ("seed", str(config.seed))]
    write_outputs(tmp, metrics=metrics, predictions=predictions,
                  title=f"featx sweep: best {spec.name} configuration on the test part", facts=facts,
                  histories=histories if spec.kind == "keras" else None,
                  config={**config.to_dict(), "optimizer": optimizer})
    best = out / BEST
    if best.exists():
        shutil.rmtree(best)
    os.replace(tmp, best)
    if spec.kind == "keras":
        from ._keras import import_keras
        keras = import_keras()

        keras.backend.clear_session()
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


def prepare_sweep_dir(directory: Path) -> Path:
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise OutputError(f"{directory}: exists and is not a folder; expected a folder for the sweep")
    if directory.is_dir() and any(directory.iterdir()) and not (
            (directory / JOURNAL).exists() or (directory / SETTINGS).exists()):
        raise OutputError(f"{directory}: folder is not empty and holds no featx sweep; "
                          "expected a new folder or one written by 'featx sweep'")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _settings_record(plan: SweepPlan) -> dict:
    o = plan.options
    return {
        "featx_sweep": 1,
        "written": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "data": {"path": str(o.csv), **plan.data, "rows": plan.table.n_rows,
                 "tracks": int(len(set(plan.table.tracks)))},
        "model": plan.spec.name, "search": o.search, "n_iter": o.n_iter if o.search == "random" else None,
        "metric": o.metric, "level": o.level, "split": o.split, "folds": o.folds,
        "test_fraction": o.test_fraction, "seed": o.seed, "jobs": o.jobs,
        "artist_map": str(o.artist_map) if o.artist_map else None,
        "split_dir": str(o.split_dir) if o.split_dir else None,
        "selection": plan.design.description, "test_part": plan.design.test_description,
        "space": [{k: (str(v) if isinstance(v, Distribution) else [to_plain(display_value(x)) for x in v])
                   for k, v in g.items()} for g in plan.space.grids],
        "trials": len(plan.trials),
    }


def _task(plan: SweepPlan, trial: Trial, threads: int | None) -> dict:
    return {"key": trial.key, "index": trial.index, "csv": str(plan.options.csv), "sha": plan.data["sha256"],
            "params": {k: to_plain(v) for k, v in trial.point.items()},
            "identity": trial_identity(trial.config, trial.optimizer, plan.data),
            "train_config": trial.config.to_dict(), "optimizer": trial.optimizer,
            "design": plan.design, "threads": threads,
            "running": str(plan.options.output / RUNNING) if threads else None}


def run_sweep(plan: SweepPlan, *, progress=None, report: bool = True) -> SweepOutcome:
    """Run the missing trials of ``plan`` (in parallel), then retrain the best and write reports.

    Ctrl-C stops the sweep; finished trials are kept and ``KeyboardInterrupt``
    propagates after ``results.csv`` is brought up to date.
    """
    from joblib import Parallel, delayed, parallel_config
    from tqdm.auto import tqdm

    start = time.perf_counter()
    options = plan.options
    # trials run in this process (-j 1) use the table already read, not a second copy
    _TABLES.clear()
    _TABLES[(str(options.csv), plan.data["sha256"])] = plan.table
    out = prepare_sweep_dir(options.output)
    journal = Journal(out / JOURNAL)
    records = journal.open()
    try:
        atomic_write(out / SETTINGS, json.dumps(_settings_record(plan), indent=2) + "\n")
        unique: dict[str, Trial] = {}
        for trial in plan.trials:
            unique.setdefault(trial.key, trial)
        done = {k for k, r in records.items()
                if k in unique and (r.get("status") == "ok" or not options.retry_failed)}
        todo = [t for k, t in unique.items() if k not in done]
        reused = len(done)
        jobs = options.jobs if options.jobs > 0 else (os.cpu_count() or 1)
        jobs = max(1, min(jobs, len(todo) or 1))
        threads = 1 if jobs > 1 else None
        logger.info("%d combinations (%d distinct): %d from earlier runs, %d to run on %d worker(s)",
                    len(plan.trials), len(unique), reused, len(todo), jobs)
        write_results(plan, records)

        best = best_trial(plan, records)
        bar = tqdm(total=len(unique), initial=reused, desc="trials", unit="trial",
                   disable=None if progress is None else not progress, dynamic_ncols=True)
        _bar_postfix(bar, plan, records, best)
        ran = 0
        state = {"journal": journal, "records": records, "bar": bar, "plan": plan, "finished": set()}
        if threads:
            shutil.rmtree(out / RUNNING, ignore_errors=True)
            (out / RUNNING).mkdir()
        try:
            suspects: dict[str, int] = {}
            while todo:
                tasks = (delayed(run_trial)(_task(plan, t, threads)) for t in todo)
                try:
                    with parallel_config(backend="loky", inner_max_num_threads=threads):
                        for record in Parallel(n_jobs=jobs, return_as="generator_unordered",
                                               batch_size=1)(tasks):
                            _finish(state, record)
                            ran += 1
                    break
                except Exception as exc:
                    if type(exc).__name__ != "TerminatedWorkerError":
                        raise
                    todo, recorded = _after_worker_death(state, todo, suspects)
                    ran += recorded
        finally:
            bar.close()
            write_results(plan, records)
    finally:
        journal.close()

    best = best_trial(plan, records)
    best_dir = None
    retrain_start = time.perf_counter()
    if best is not None and options.retrain_best:
        best_dir = out / BEST
        current = None
        try:
            current = json.loads((best_dir / "metadata.json").read_text()).get("sweep", {}).get("trial")
        except (OSError, ValueError):
            pass
        if current != best.key or not (best_dir / "metrics.json").exists():
            logger.info("retraining the best configuration on the non-test rows")
            best_dir = retrain_best(plan, best)
    retrain_seconds = time.perf_counter() - retrain_start
    results = write_results(plan, records)
    relevant = [records.get(t.key) for t in plan.trials]
    outcome = SweepOutcome(
        plan, records, total=len(plan.trials), reused=reused, ran=ran,
        failed=sum(1 for r in relevant if r and r.get("status") != "ok"),
        pending=sum(1 for r in relevant if r is None), best=best, best_dir=best_dir,
        seconds=time.perf_counter() - start, results=results, retrain_seconds=retrain_seconds)
    if report:
        write_report(outcome)
    return outcome


def _finish(state: dict, record: dict) -> None:
    """Journal one finished trial, refresh results.csv and the progress bar."""
    plan, records = state["plan"], state["records"]
    state["journal"].append(record)
    records[record["key"]] = record
    state["finished"].add(record["key"])
    if record["status"] != "ok":
        logger.warning("trial %s failed: %s", record["params"], record.get("error"))
    write_results(plan, records)
    state["bar"].update(1)
    _bar_postfix(state["bar"], plan, records, best_trial(plan, records))


def _after_worker_death(state: dict, todo: list[Trial], suspects: dict[str, int]):
    """A worker process was killed (by the system, e.g. out of memory) during some trials.

    The trials it may have been running are named by their marker files. A trial
    that was the only one running, or that was running during two such deaths, is
    recorded as failed; the others are run again (the suspects spread apart).
    Returns the remaining trials and how many failures were recorded.
    """
    plan = state["plan"]
    running = plan.options.output / RUNNING
    in_flight = [m.name for m in running.iterdir()] if running.is_dir() else []
    for m in running.glob("*"):
        m.unlink(missing_ok=True)
    recorded = 0
    for key in in_flight:
        suspects[key] = suspects.get(key, 0) + 1
        if len(in_flight) == 1 or suspects[key] >= 2:
            trial = next((t for t in todo if t.key == key), None)
            if trial is None or key in state["finished"]:
                continue
            _finish(state, {"key": key, "index": trial.index, "params": to_plain(trial.point),
                            "config": trial_identity(trial.config, trial.optimizer, plan.data)["config"],
                            "status": "failed", "seconds": 0.0,
                            "error": "worker process died while running this trial (killed by the "
                                     "system; out of memory?)",
                            "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")})
            recorded += 1
    logger.warning("a worker process died while running %d trial(s); continuing", len(in_flight))
    left = [t for t in todo if t.key not in state["finished"]]
    first = [t for t in left if t.key in in_flight][:1]
    rest = [t for t in left if t.key not in in_flight]
    return first + rest + [t for t in left if t.key in in_flight][1:], recorded


def _bar_postfix(bar, plan, records, best) -> None:
    if best is not None:
        score = score_of(records.get(best.key), plan.options.metric, plan.options.level)
        bar.set_postfix_str(f"best {plan.options.metric} {score:.4f}", refresh=False)


# ---------------------------------------------------------------------------
# Reports




def _fmt(value, digits: int = 4) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def _ordered_category(series: pd.Series, *, max_levels: int = 8) -> pd.Categorical:
    """Hyperparameter values as ordered categories; many numeric values become quantile bins."""
    if _is_numeric(series) and series.nunique() > max_levels:
        binned = pd.qcut(series.astype(float), q=5, duplicates="drop")
        labels = [f"{iv.left:.3g}–{iv.right:.3g}" for iv in binned.cat.categories]
        return binned.cat.rename_categories(labels)
    values = series.dropna().unique().tolist()
    values = sorted(values) if _is_numeric(series) else sorted(values, key=str)
    return pd.Categorical(series.astype(str), categories=[str(v) for v in values], ordered=True)


def metric_by_hyperparameter(frame: pd.DataFrame, name: str, metric: str, *, ax):
    """The validation metric of every finished trial against one hyperparameter.

    Few distinct values: a box per value with the trials as points; many numeric
    values (random search): a scatter plot, log-scaled when the values span two
    decades or more.
    """
    import seaborn as sns

    values = frame[name]
    if _is_numeric(values) and values.nunique() > 12:
        sns.scatterplot(x=values.astype(float), y=frame[metric], s=14, alpha=0.6, ax=ax)
        low, high = float(values.min()), float(values.max())
        if low > 0 and high / low >= 100:
            ax.set_xscale("log")
    else:
        cat = _ordered_category(values, max_levels=10**6)
        data = pd.DataFrame({name: cat, metric: frame[metric].to_numpy()})
        sns.boxplot(data, x=name, y=metric, color="#c6dbef", showfliers=False, ax=ax)
        sns.stripplot(data, x=name, y=metric, color="#08306b", size=3, alpha=0.6, jitter=0.15, ax=ax)
        if len(cat.categories) > 5:
            ax.tick_params(axis="x", labelrotation=45)
    ax.set_xlabel(name)
    ax.set_ylabel(f"validation {metric}")
    ax.set_title(f"{metric} by {name}")
    return ax


def pair_heatmap(frame: pd.DataFrame, a: str, b: str, metric: str, *, ax):
    """Mean validation metric for each pair of values of two hyperparameters."""
    import seaborn as sns

    data = pd.DataFrame({a: _ordered_category(frame[a]), b: _ordered_category(frame[b]),
                         metric: frame[metric].to_numpy()})
    table = data.pivot_table(index=a, columns=b, values=metric, aggfunc="mean", observed=False)
    sns.heatmap(table, annot=table.size <= 100, fmt=".3f", cmap="viridis", cbar=True, ax=ax,
                annot_kws={"fontsize": 8})
    ax.set_title(f"mean {metric}: {a} × {b}")
    return ax


def _grid_figure(n: int, *, width: float, height: float):
    from .plots import new_figure

    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    fig, axes = new_figure(width * ncols, height * nrows, ncols=ncols, nrows=nrows)
    axes = [axes] if n == 1 else list(axes)
    for ax in axes[n:]:
        ax.set_axis_off()
    return fig, axes[:n]


def sweep_figures(frame: pd.DataFrame, names: list[str], metric: str, directory: Path,
                  *, max_pairs: int = 6) -> list[Path]:
    """``figures/metric_by_hyperparameter.png`` and ``figures/pair_heatmaps.png``."""
    from .plots import save_figure

    ok = frame[frame["status"] == "ok"]
    varied = [n for n in names if ok[n].nunique() > 1]
    written = []
    if len(ok) < 2 or not varied:
        return written
    fig, axes = _grid_figure(len(varied), width=4.4, height=3.6)
    for name, ax in zip(varied, axes):
        metric_by_hyperparameter(ok, name, metric, ax=ax)
    written.append(save_figure(fig, directory / "metric_by_hyperparameter.png", dpi=90))
    pairs = [(a, b) for i, a in enumerate(varied) for b in varied[i + 1:]][:max_pairs]
    if pairs:
        fig, axes = _grid_figure(len(pairs), width=4.8, height=4.0)
        for (a, b), ax in zip(pairs, axes):
            pair_heatmap(ok, a, b, metric, ax=ax)
        written.append(save_figure(fig, directory / "pair_heatmaps.png", dpi=90))
    return written


def _results_table(frame: pd.DataFrame, names: list[str], metric: str) -> tuple[list, list]:
    ok = frame[frame["status"] == "ok"].sort_values([metric, f"{metric}_std"], ascending=[False, True],
                                                    kind="stable")
    has_epochs = "epochs_run" in ok.columns
    headers = ["rank", *names, *[f"{m} (mean ± std)" for m in METRIC_NAMES]]
    headers += (["epochs run"] if has_epochs else []) + ["time (s)"]
    rows = []
    for rank, (_, r) in enumerate(ok.iterrows(), start=1):
        cells = [str(rank), *[_fmt(r[n]) if not isinstance(r[n], float) else f"{r[n]:g}" for n in names]]
        cells += [f"{r[m]:.4f} ± {r[f'{m}_std']:.4f}" for m in METRIC_NAMES]
        if has_epochs:
            cells.append(f"{r['epochs_run']:.1f}")
        cells.append(f"{r['train_seconds']:.1f}")
        rows.append(cells)
    return headers, rows


def _best_blocks(outcome: SweepOutcome, frame: pd.DataFrame) -> list:
    plan, best = outcome.plan, outcome.best
    o = plan.options
    blocks: list = [("h2", "Best configuration")]
    if best is None:
        return blocks + [("p", "No trial finished successfully.")]
    record = outcome.records[best.key]
    m = record["metrics"][o.level]
    blocks.append(("facts", [*[(k, str(v)) for k, v in best.shown.items()],
                             (f"validation {o.metric}", f"{m[o.metric]:.4f} ± {m['std'][o.metric]:.4f} "
                                                        f"({plan.design.description})"),
                             ("trial", best.key)]))
    metrics_path = plan.options.output / BEST / "metrics.json"
    if not metrics_path.exists():
        return blocks + [("p", "The best configuration has not been retrained on the test part "
                               "(run without --no-retrain-best).")]
    test = json.loads(metrics_path.read_text())
    blocks.append(("p", f"Retrained on all non-test rows and scored once on the test part "
                        f"({plan.design.test_description}); the bundle is in {BEST}/."))
    rows = []
    levels = LEVELS if plan.table.segmented else ("track",)
    for level in levels:
        t = test[level]
        rows.append([f"test, {level}", str(t["n"]), *[f"{t[k]:.4f}" for k in METRIC_NAMES]])
    for level in levels:
        v = record["metrics"][level]
        rows.append([f"validation, {level}", str(v["n"]),
                     *[f"{v[k]:.4f} ± {v['std'][k]:.4f}" for k in METRIC_NAMES]])
    blocks.append(("table", ["part", "n", *METRIC_NAMES], rows))
    classes = test["classes"]
    cm = test["track"]["confusion_matrix"]
    blocks += [("h3", "Test confusion matrix (track level, counts)"),
               ("table", ["true \\ predicted", *classes], [[c, *map(str, row)] for c, row in zip(classes, cm)])]
    for name, alt in (("confusion_normalized.png", "test confusion matrix (row-normalised)"),
                      ("curves.png", "training curves of the retrained model")):
        if (plan.options.output / BEST / "figures" / name).exists():
            blocks.append(("img", f"{BEST}/figures/{name}", alt))
    return blocks


def report_blocks(outcome: SweepOutcome, figures: list[Path]) -> list:
    plan = outcome.plan
    o = plan.options
    frame = outcome.results
    names = plan.space.names
    ok = int((frame["status"] == "ok").sum())
    blocks: list = []
    if plan.design.leaky:
        blocks.append(("p", "WARNING: accuracy is inflated: random per-segment split, segments of one "
                            "track are in both training and validation data."))
    blocks.append(("h1", f"featx sweep: {plan.spec.name} on {Path(o.csv).name}"))
    search = o.search + (f" ({o.n_iter} samples, seed {o.seed})" if o.search == "random" else "")
    blocks.append(("facts", [
        ("model", f"{plan.spec.name} ({plan.spec.description})"),
        ("data", f"{o.csv} ({plan.table.n_rows} rows, {len(set(plan.table.tracks))} tracks, "
                 f"sha256 {plan.data['sha256'][:12]})"),
        ("search", f"{search}; {outcome.total} combinations: {ok} finished, {outcome.failed} failed, "
                   f"{outcome.pending} pending"),
        ("selection", f"{o.level}-level {o.metric} on validation data only: {plan.design.description}"),
        ("test part", f"{plan.design.test_description} ({len(plan.design.test)} rows), used once for "
                      "the best configuration"),
        ("seed", str(o.seed)),
        ("hyperparameters", "; ".join(
            f"{k}: {v}" if isinstance(v, Distribution) else f"{k}: {', '.join(str(display_value(x)) for x in v)}"
            for g in plan.space.grids for k, v in g.items())),
    ]))
    blocks += _best_blocks(outcome, frame)
    blocks.append(("h2", f"All trials, sorted by validation {o.metric}"))
    blocks.append(("p", f"Means over {len(plan.design.folds)} validation fold(s) ± standard deviation across "
                        f"folds, {o.level} level. Time is the whole trial (all folds)."))
    headers, rows = _results_table(frame, names, o.metric)
    blocks.append(("table", headers, rows))
    if figures:
        blocks.append(("h2", "Figures"))
        for path in figures:
            blocks.append(("img", f"figures/{path.name}", path.stem.replace("_", " ")))
    failed = frame[frame["status"] == "failed"]
    if len(failed):
        blocks.append(("h2", f"Failed trials ({len(failed)})"))
        blocks.append(("table", [*names, "reason"],
                       [[_fmt(r[n]) for n in names] + [str(r["error"])] for _, r in failed.iterrows()]))
    pending = frame[frame["status"] == "pending"]
    if len(pending):
        blocks.append(("p", f"{len(pending)} combination(s) have not run yet; run the same command "
                            "again to finish the sweep."))
    return blocks


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(blocks: list) -> str:
    lines: list[str] = []
    for kind, *args in blocks:
        if kind in ("h1", "h2", "h3"):
            lines += [f"{'#' * int(kind[1])} {args[0]}", ""]
        elif kind == "p":
            text = args[0]
            lines += [f"**{text}**" if text.startswith("WARNING") else text, ""]
        elif kind == "facts":
            lines += [f"- **{k}:** {v}" for k, v in args[0]] + [""]
        elif kind == "table":
            headers, rows = args
            lines.append("| " + " | ".join(_md_cell(h) for h in headers) + " |")
            lines.append("|" + "---|" * len(headers))
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
            lines.append("")
        elif kind == "img":
            lines += [f"![{args[1]}]({args[0]})", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


_CSS = ("body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;margin:1em 0;font-size:13px}"
        "th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f0f3f7}"
        "td:first-child,th:first-child{text-align:left}img{max-width:100%}"
        ".warning{color:#a00;font-weight:bold}")


def render_html(blocks: list, base: Path, title: str) -> str:
    """A self-contained HTML page: every figure is embedded as a base64 PNG."""
    import base64
    from html import escape

    parts = ["<!DOCTYPE html>", "<html lang='en'><head><meta charset='utf-8'>",
             f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>"]
    for kind, *args in blocks:
        if kind in ("h1", "h2", "h3"):
            parts.append(f"<{kind}>{escape(args[0])}</{kind}>")
        elif kind == "p":
            cls = " class='warning'" if args[0].startswith("WARNING") else ""
            parts.append(f"<p{cls}>{escape(args[0])}</p>")
        elif kind == "facts":
            parts.append("<ul>" + "".join(f"<li><b>{escape(k)}:</b> {escape(v)}</li>" for k, v in args[0])
                         + "</ul>")
        elif kind == "table":
            headers, rows = args
            head = "".join(f"<th>{escape(str(h))}</th>" for h in headers)
            body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif kind == "img":
            path = base / args[0]
            if path.exists():
                data = base64.b64encode(path.read_bytes()).decode("ascii")
                parts.append(f"<figure><img alt='{escape(args[1])}' src='data:image/png;base64,{data}'>"
                             f"<figcaption>{escape(args[1])}</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_report(outcome: SweepOutcome) -> tuple[Path, Path]:
    """``report.md`` and a self-contained ``report.html`` (figures embedded) in the sweep folder."""
    out = outcome.plan.options.output
    if outcome.results is None:
        outcome.results = results_frame(outcome.plan, outcome.records)
    figures = sweep_figures(outcome.results, outcome.plan.space.names, outcome.plan.options.metric,
                            out / "figures")
    blocks = report_blocks(outcome, figures)
    md = atomic_write(out / "report.md", render_markdown(blocks))
    title = f"featx sweep: {outcome.plan.spec.name} on {Path(outcome.plan.options.csv).name}"
    html = atomic_write(out / "report.html", render_html(blocks, out, title))
    return md, html
