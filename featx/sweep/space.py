"""Search spaces: parameter values, distributions, grid files."""
from __future__ import annotations

import logging
import math
import re
import reprlib
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..models.augment import SHIFT_MODES
from ..models.registry import DEPTH, ModelSpec, Param
from ..training.config import (  # noqa: F401 (re-exported)
    DEFAULTS,
    LEVELS,
    LR_SCHEDULES,
    OPTIMIZERS,
    OPTION_HELP,
    SEARCHES,
)

logger = logging.getLogger(__name__)

JOURNAL = "trials.jsonl"
RESULTS = "results.csv"
SETTINGS = "sweep.json"
RUNNING = ".running"
BEST = "best"
#: Most combinations a sweep plans unless told otherwise (``--max-trials``).
MAX_TRIALS = 10_000

#: Training options that can be swept next to a model's own hyperparameters (defaults
#: and help from :mod:`featx.training.config`, like the command line's options).
TRAIN_OPTIONS: dict[str, Param] = {
    "epochs": Param("int", DEFAULTS.epochs, OPTION_HELP["epochs"], low=1, high=100_000),
    "batch_size": Param("int", DEFAULTS.batch_size, OPTION_HELP["batch_size"], low=1, high=65_536),
    "learning_rate": Param("float", DEFAULTS.learning_rate, OPTION_HELP["learning_rate"], low=0, high=10,
                           open_low=True, open_high=True),
    "optimizer": Param("str", DEFAULTS.optimizer, OPTION_HELP["optimizer"], OPTIMIZERS),
    "patience": Param("int", DEFAULTS.patience, OPTION_HELP["patience"], low=0, high=100_000),
    "reduce_lr_patience": Param("int", DEFAULTS.reduce_lr_patience, OPTION_HELP["reduce_lr_patience"],
                                low=0, high=100_000),
    "reduce_lr_factor": Param("float", DEFAULTS.reduce_lr_factor, OPTION_HELP["reduce_lr_factor"], low=0, high=1,
                              open_low=True, open_high=True),
    "min_lr": Param("float", DEFAULTS.min_lr, OPTION_HELP["min_lr"], low=0, high=10, open_high=True),
    "valid_fraction": Param("float", DEFAULTS.valid_fraction, OPTION_HELP["valid_fraction"],
                            low=0, high=0.9, open_high=True),
    "log_variances": Param("bool", DEFAULTS.log_variances, OPTION_HELP["log_variances"]),
    "lr_schedule": Param("str", DEFAULTS.lr_schedule, OPTION_HELP["lr_schedule"], LR_SCHEDULES),
    "time_masks": Param("int", DEFAULTS.time_masks, OPTION_HELP["time_masks"], low=0, high=64),
    "freq_masks": Param("int", DEFAULTS.freq_masks, OPTION_HELP["freq_masks"], low=0, high=64),
    "mask_width": Param("int", DEFAULTS.mask_width, OPTION_HELP["mask_width"], low=1, high=100_000),
    "time_shift": Param("float", DEFAULTS.time_shift, OPTION_HELP["time_shift"], low=0, high=1, open_high=True),
    "time_shift_mode": Param("str", DEFAULTS.time_shift_mode, OPTION_HELP["time_shift_mode"], SHIFT_MODES),
    "mixup": Param("float", DEFAULTS.mixup, OPTION_HELP["mixup"], low=0, high=100),
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
        from scipy import stats  # SciPy is heavy: only on this path

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
        return DEPTH
    keras_training = spec.family.keras_training
    if name in TRAIN_OPTIONS and (keras_training or name not in KERAS_OPTIONS):
        return TRAIN_OPTIONS[name]
    valid = list(spec.params) + (["depth"] if "units" in spec.params else [])
    valid += [n for n in TRAIN_OPTIONS if keras_training or n not in KERAS_OPTIONS]
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
    if isinstance(value, (list, tuple)) and any(isinstance(v, (list, tuple, dict)) for v in value):
        value = None  # layer sizes are numbers: a nested list (YAML aliases can make it huge) is not walked
    try:
        if value is None or (isinstance(value, dict)):
            raise ConfigError("")
        out = param.parse(spec.name, name, value)
        if param.kind in ("int", "float") and isinstance(raw, bool):
            raise ConfigError("")
        return out
    except ConfigError:
        expected = param.expected()
        if param.kind == "ints":
            expected = expected.replace("comma-separated positive integers like 256,128,64",
                                        _EXPECTED["ints"])
        raise ConfigError(f"{source}: bad value for {name}; expected {expected}. Received: {_brief(raw)}") from None


def _brief(value) -> str:
    """``repr(value)`` cut to a line, without walking all of a large nested value."""
    shown = reprlib.Repr()
    shown.maxlevel, shown.maxlist, shown.maxtuple, shown.maxdict = 2, 6, 6, 6
    shown.maxstring = shown.maxother = 80
    return shown.repr(value)


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
    source = f"params={text!r}"
    if "=" not in text:
        raise ConfigError(f"params expects NAME=V1,V2,... Received: params={text!r}", param="params")
    name, values = (p.strip() for p in text.split("=", 1))
    name = name.replace("-", "_")
    if not name:
        raise ConfigError(f"params expects NAME=V1,V2,... with a name. Received: params={text!r}",
                          param="params")
    source = f"params={name}"
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
    import yaml  # PyYAML: only for grid files

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such grid file; expected a YAML or JSON search space")
    size = path.stat().st_size
    if size > MAX_GRID_BYTES:  # checked before reading
        raise ConfigError(f"{path}: a grid file of {size:,} bytes; expected a search space of at most "
                          f"{MAX_GRID_BYTES:,} bytes")
    try:
        data = yaml.load(path.read_text(), Loader=_grid_loader())  # JSON is YAML
    except (yaml.YAMLError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).strip() or type(exc).__name__
        line = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: grid file does not parse{line} ({problem.splitlines()[0]})") from None
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
        given: dict[str, str] = {}
        for key, values in grid.items():
            name = str(key).replace("-", "_")
            source = f"{where}: {name}"
            if name in given:  # 'n-neighbors' and 'n_neighbors' name one hyperparameter
                raise ConfigError(f"{source}: given twice (as {given[name]!r} and {str(key)!r}); "
                                  "expected each name once")
            given[name] = str(key)
            if isinstance(values, str):
                dist = parse_distribution(values, source=source)
                if dist is not None:
                    sub[name] = dist
                    continue
            if isinstance(values, dict):
                try:
                    sub[name] = Distribution(str(values.get("dist", values.get("distribution"))),
                                             float(values["low"]), float(values["high"]))
                except ConfigError as exc:  # before ValueError: a ConfigError is one
                    raise ConfigError(f"{source}: {exc}") from None
                except (KeyError, TypeError, ValueError):
                    raise ConfigError(
                        f"{source}: expected a list of values or a distribution "
                        "{dist: loguniform, low: ..., high: ...}"
                    ) from None
                continue
            values = values if isinstance(values, list) else [values]
            if not values or any(v is None for v in values):
                raise ConfigError(f"{source}: empty value list; expected one or more values")
            sub[name] = values
        out.append((where, sub))
    return out


#: Largest grid file read (a search space is a few lines).
MAX_GRID_BYTES = 1 << 20
#: Deepest nesting of lists and mappings in a grid file (a value list of layer sizes is 3 deep).
MAX_GRID_DEPTH = 16
#: Most digits of an integer in a grid file.
MAX_GRID_DIGITS = 30


def _grid_loader():
    """A safe YAML loader for grid files that refuses, at the offending line, what a grid never
    holds: nesting deeper than :data:`MAX_GRID_DEPTH`, integers of more than
    :data:`MAX_GRID_DIGITS` digits, and a key given twice in one mapping (YAML and JSON
    readers would silently keep the last)."""
    import yaml  # PyYAML: only for grid files
    from yaml.constructor import ConstructorError  # PyYAML: only for grid files

    class GridLoader(yaml.SafeLoader):
        def __init__(self, stream):
            super().__init__(stream)
            self.depth = 0

        def compose_node(self, parent, index):
            if self.depth >= MAX_GRID_DEPTH:
                raise ConstructorError(None, None, f"lists or mappings nested more than {MAX_GRID_DEPTH} deep",
                                       self.peek_event().start_mark)
            self.depth += 1
            try:
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

        def construct_yaml_int(self, node):
            digits = sum(c.isdigit() for c in str(node.value))
            if digits > MAX_GRID_DIGITS:
                raise ConstructorError(None, None, f"an integer of {digits} digits; expected at most "
                                       f"{MAX_GRID_DIGITS}", node.start_mark)
            return super().construct_yaml_int(node)

        def construct_mapping(self, node, deep=False):
            if isinstance(node, yaml.MappingNode):
                seen: dict = {}
                for key_node, _ in node.value:
                    if key_node.tag == "tag:yaml.org,2002:merge":
                        continue  # '<<: *defaults' may be overridden: YAML's own rule
                    key = self.construct_object(key_node, deep=True)
                    try:
                        hash(key)
                    except TypeError:  # unhashable: the base class says so
                        continue
                    if key in seen:
                        shown = repr(key) if len(repr(key)) <= 60 else repr(key)[:57] + "..."
                        raise ConstructorError(None, None, f"key {shown} given twice (first at line "
                                               f"{seen[key] + 1}); expected each name once", key_node.start_mark)
                    seen[key] = key_node.start_mark.line
            return super().construct_mapping(node, deep=deep)

    GridLoader.add_constructor("tag:yaml.org,2002:int", GridLoader.construct_yaml_int)
    return GridLoader


@dataclass
class SearchSpace:
    """Typed sub-grids: ``{name: [values] or Distribution}``, and the names in given order."""

    names: list[str]
    grids: list[dict]

    def size(self, search: str, *, n_iter: int = 20) -> int:
        """How many combinations :meth:`points` gives, counted without listing them.

        A random search over lists only gives at most every combination once, however
        large ``n_iter`` is.
        """
        total = 0
        for grid in self.grids:
            n = 1
            for values in grid.values():
                n *= len(values) if isinstance(values, list) else 1
            total += n
        if search == "grid":
            return total
        if not isinstance(n_iter, int):
            return 0
        if self._finite():
            return min(n_iter, total)
        return n_iter

    def _finite(self) -> bool:
        """Whether every grid lists its values (no distribution to sample from)."""
        return not any(isinstance(v, Distribution) for g in self.grids for v in g.values())

    def points(self, search: str, *, n_iter: int = 20, seed: int = 0,
               max_trials: int | None = MAX_TRIALS) -> list[dict]:
        """The combinations to evaluate, in a fixed order.

        Raises
        ------
        ConfigError
            The search has more than ``max_trials`` combinations (``None``: no limit).
        """
        if max_trials is not None:
            if not isinstance(max_trials, int) or isinstance(max_trials, bool) or max_trials < 1:
                raise ConfigError(f"max_trials must be a positive integer. Received: max_trials={max_trials!r}",
                                  param="max_trials")
            total = self.size(search, n_iter=n_iter)
            if total > max_trials:
                raise ConfigError(
                    f"the {search} search has {total:,} combinations, more than the limit of "
                    f"{max_trials:,}; narrow it, or allow them all with max_trials={total}. "
                    f"Received: max_trials={max_trials}",
                    param="max_trials",
                )
        if search == "grid":
            from sklearn.model_selection import (
                ParameterGrid,  # scikit-learn is heavy: imported on use
            )

            for grid in self.grids:
                for name, values in grid.items():
                    if isinstance(values, Distribution):
                        raise ConfigError(
                            f"{name}={values} is a distribution; search='grid' needs a list of values "
                            "(or use search='random' with n_iter=N)", param="search"
                        )
            points = list(ParameterGrid(self.grids))
        elif search == "random":
            from sklearn.model_selection import (
                ParameterSampler,  # scikit-learn is heavy: imported on use
            )

            if not isinstance(n_iter, int) or n_iter < 1:
                raise ConfigError(f"n_iter must be a positive integer. Received: n_iter={n_iter!r}", param="n_iter")
            space = [{k: (v.scipy() if isinstance(v, Distribution) else v) for k, v in g.items()}
                     for g in self.grids]
            if self._finite() and n_iter > self.size("grid"):
                logger.info("n_iter=%d exceeds the %d combinations of the grid; each is evaluated once",
                            n_iter, self.size("grid"))
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
        raise ConfigError("nothing to sweep; expected params=NAME=V1,V2,... or grid_file=FILE")
    names: list[str] = []
    grids = []
    for source, grid in entries:
        typed = {}
        for name, values in grid.items():
            where = f"params={name}" if source == "params" else f"{source}: {name}"
            param = _param_for(spec, name, where)
            if isinstance(values, Distribution):
                numeric = param.kind in ("int", "float") or (  # e.g. gamma: scale, auto or a number
                    param.kind == "str" and (param.low is not None or param.high is not None))
                if not numeric:
                    raise ConfigError(f"{where}: {values} needs a numeric hyperparameter; "
                                      f"{name} expects {_EXPECTED[param.kind]}")
                for bound in (values.low, values.high):  # every draw lies between them
                    if not param._in_bounds(bound):
                        raise ConfigError(f"{where}: {values} reaches outside what {name} accepts; "
                                          f"expected {param.expected()}")
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
        if name in option_grid:
            raise ConfigError(f"params={name}: given twice; expected each name once, with all its "
                              f"values (NAME=V1,V2,...). Received: {text!r}")
        option_grid[name] = values
    if grid_file is not None:
        entries = read_grid_file(grid_file)
        entries = [(src, {**sub, **option_grid}) for src, sub in entries]
    else:
        entries = [("params", option_grid)] if option_grid else []
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


#: The table a worker process last read, by (path, sha256): trials of one sweep share it.
_TABLES: dict = {}
