"""Leakage-free splits: track, artist, fault-filtered and random folds with an inner validation part."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError
from ..features.settings import LABEL_COLUMN

logger = logging.getLogger(__name__)
import warnings

from .frames import table_from_arrays
from .labels import genres_of, stratification_key
from .table import FeatureTable, track_id
from .vocabulary import SPLITS  # noqa: F401  (re-exported: featx.data.splits.SPLITS)

# ---------------------------------------------------------------------------
# Mapping files


def read_artist_map(path) -> dict[str, str]:
    """Read a ``file ::: artist ::: title`` index (GTZANindex.txt) -> ``{track: artist}``.

    Lines starting with ``#`` are comments. Tracks with an empty artist are left
    out (each becomes its own group).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such artist mapping file; expected lines 'file ::: artist ::: title'")
    mapping: dict[str, str] = {}
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = [p.strip() for p in line.split(":::")]
        if len(parts) < 2:
            if "\t" in line:
                parts = [p.strip() for p in line.split("\t")]
            elif "," in line:
                parts = [p.strip() for p in line.split(",")]
        if len(parts) < 2 or not parts[0]:
            raise DataError(
                f"{path}: line {number} is not 'file ::: artist ::: title'. Received: {line[:60]!r}"
            )
        if parts[1]:
            mapping[track_id(Path(parts[0]).name, segmented=False)] = parts[1]
    if not mapping:
        raise DataError(f"{path}: no track/artist pairs found")
    return mapping


def read_split_lists(directory) -> dict[str, str]:
    """Read ``train``/``valid``/``test`` track lists from a folder -> ``{track: part}``.

    The folder holds files whose names start with ``train``, ``valid`` (or
    ``val``) and ``test`` (e.g. ``train_filtered.txt``), one audio path per line.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory}: no such split folder; expected train/valid/test list files")
    parts: dict[str, str] = {}
    found = {}
    for file in sorted(directory.iterdir()):
        if not file.is_file():
            continue
        low = file.name.lower()
        part = next((p for key, p in (("train", "train"), ("valid", "valid"), ("val", "valid"),
                                      ("test", "test")) if low.startswith(key)), None)
        if part is None:
            continue
        found[part] = file
        for line in file.read_text(errors="replace").splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            tid = track_id(Path(line).name, segmented=False)
            if parts.get(tid, part) != part:
                raise DataError(f"{file}: track {tid} is also listed in the {parts[tid]} list")
            parts[tid] = part
    for need in ("train", "test"):
        if need not in found:
            raise DataError(f"{directory}: no {need} list; expected files named {need}*.txt")
    return parts


# ---------------------------------------------------------------------------
# Splits


@dataclass
class Fold:
    """Row indices of one split: train, validation (early stopping) and test."""

    name: str
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray


@dataclass
class SplitPlan:
    """Folds plus what grouped them (for reports)."""

    split: str
    folds: list[Fold]
    groups: np.ndarray
    description: str
    leaky: bool = False


def _groups_for(table: FeatureTable, split: str, artist_map_path) -> tuple[np.ndarray, str]:
    tracks = table.tracks
    if split == "artist":
        if artist_map_path is None:
            raise ConfigError(
                "split='artist' needs an artist mapping file (artist_map=FILE, e.g. "
                "GTZANindex.txt with lines 'file ::: artist ::: title')", param="artist_map"
            )
        mapping = read_artist_map(artist_map_path)
        base = [Path(t).name for t in tracks]
        unknown = sorted({t for t in base if t not in mapping})
        if len(unknown) == len(set(base)):
            raise DataError(
                f"{artist_map_path}: none of the tracks of {table.name} are listed "
                f"(e.g. {unknown[0]}); expected the mapping for this corpus"
            )
        if unknown:
            logger.warning("%d track(s) have no artist in %s (e.g. %s); each is its own group",
                           len(unknown), artist_map_path, unknown[0])
        groups = np.array([mapping.get(b, f"<unknown artist: {b}>") for b in base], dtype=object)
        return groups, f"artist-grouped ({len(set(groups))} artists from {Path(artist_map_path).name})"
    return tracks, f"track-grouped ({len(set(tracks))} tracks)"


def _check_labels(y: np.ndarray, groups: np.ndarray, folds: int, name: str, genres=None) -> None:
    """Refuse labels that cannot be split into ``folds``. ``y`` is each row's stratification
    key; ``genres`` every genre the labels name (default: the keys)."""
    classes = np.unique(y)
    genres = list(classes) if genres is None else list(genres)
    if len(genres) < 2:
        raise DataError(
            f"{name}: only one class ({genres[0]!r}) in column '{LABEL_COLUMN}'; "
            "expected at least two genres to classify"
        )
    n_groups = len(set(groups))
    needed = max(folds, 3)
    if n_groups < needed:
        raise DataError(
            f"{name}: {n_groups} track/artist group(s) but {folds} fold(s) requested; "
            f"expected at least {needed} groups ("
            + (f"use at most {n_groups} folds or more data" if n_groups >= 3 else
               "more data: training, validation and testing need 3 groups whatever the folds")
            + ")", param="folds"
        )
    per_class = {label: len(set(groups[y == label])) for label in classes}
    if max(per_class.values()) < folds:
        raise DataError(
            f"{name}: every class has fewer tracks than the {folds} folds requested "
            f"(largest: {max(per_class.values())}); use fewer folds or more data", param="folds"
        )
    for label, n in per_class.items():
        if folds > 1 and n < folds:
            logger.warning("class %r has only %d group(s), fewer than the %d folds; "
                           "some folds will not test it", str(label), n, folds)
        elif n < 2:
            logger.warning("class %r has only 1 group: it cannot be both trained on and tested", str(label))


def inner_split(train_idx, y, groups, fraction: float, seed: int, grouped: bool):
    """Split ``train_idx`` into (train, valid) without sharing groups."""
    # scikit-learn is heavy: imported on use
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    if fraction <= 0:
        return train_idx, np.array([], dtype=int)
    n_splits = max(2, int(round(1.0 / fraction)))
    sub_y = y[train_idx]
    sub_groups = groups[train_idx]
    n_groups = len(set(sub_groups))
    largest = max(len(set(sub_groups[sub_y == label])) for label in np.unique(sub_y))
    n_splits = min(n_splits, n_groups, largest)
    if n_splits < 2:
        return train_idx, np.array([], dtype=int)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        if grouped:
            splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
            tr, va = next(splitter.split(np.zeros(len(train_idx)), sub_y, sub_groups))
        else:
            splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
            tr, va = next(splitter.split(np.zeros(len(train_idx)), sub_y))
    return train_idx[tr], train_idx[va]


def make_splits(
    table: FeatureTable,
    *,
    split: str = "track",
    folds: int = 5,
    seed: int = 0,
    valid_fraction: float = 0.15,
    test_fraction: float = 0.2,
    artist_map=None,
    split_dir=None,
) -> SplitPlan:
    """Plan train/validation/test folds for ``table``.

    Parameters
    ----------
    split : {'track', 'artist', 'fault-filtered', 'random'}
        ``track``: segments of a track stay together, stratified by label.
        ``artist``: all tracks of an artist stay together (needs ``artist_map``).
        ``fault-filtered``: the fixed lists in ``split_dir`` (``folds`` must be 1).
        ``random``: rows split independently (leaky for segment tables).
    folds : int >= 1
        ``K > 1``: K-fold cross-validation; every row is tested once.
        ``1``: one split with ``test_fraction`` of the groups held out.
    valid_fraction : float
        Share of each training part held out (by group) for early stopping.
    """
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    if not isinstance(folds, int) or folds < 1:
        raise ConfigError(f"folds must be an integer >= 1. Received: folds={folds!r}", param="folds")
    # scikit-learn is heavy: imported on use
    from sklearn.model_selection import KFold, StratifiedGroupKFold, StratifiedKFold


    labels = table.labels
    y = stratification_key(labels)  # a multi-label row: its rarest genre, whatever the order
    genres = genres_of(labels)
    name = table.name

    if split == "fault-filtered":
        if split_dir is None:
            raise ConfigError(
                "split='fault-filtered' needs split_dir=DIR holding train/valid/test lists "
                "(e.g. gtzan/splits/fault_filtered)", param="split_dir"
            )
        if folds != 1:
            raise ConfigError(
                f"split='fault-filtered' is one fixed train/valid/test split; expected folds=1. "
                f"Received: folds={folds}", param="folds"
            )
        parts = read_split_lists(split_dir)
        base = np.array([Path(t).name for t in table.tracks], dtype=object)
        part = np.array([parts.get(b, "") for b in base], dtype=object)
        train = np.flatnonzero(part == "train")
        valid = np.flatnonzero(part == "valid")
        test = np.flatnonzero(part == "test")
        if len(train) == 0 or len(test) == 0:
            raise DataError(
                f"{split_dir}: the lists name none of the tracks of {name} for "
                f"{'training' if len(train) == 0 else 'testing'} (e.g. {base[0]}); "
                "expected lists for this corpus"
            )
        if len(valid) == 0:
            train, valid = inner_split(train, y, table.tracks, valid_fraction, seed, True)
        _check_labels(y[train], table.tracks[train], 1, name, genres_of(labels[train]))
        skipped = int((part == "").sum())
        desc = (f"fault-filtered lists from {Path(split_dir).name} "
                f"({len(set(base[train]))}/{len(set(base[valid]))}/{len(set(base[test]))} "
                f"train/valid/test tracks; {skipped} rows in no list left out)")
        return SplitPlan(split, [Fold("fixed", train, valid, test)], table.tracks, desc)

    if split == "random":
        groups = np.arange(table.n_rows).astype(str).astype(object)
        desc = "random per-row split (segments of one track can be on both sides)"
    else:
        groups, desc = _groups_for(table, split, artist_map)
    _check_labels(y, groups, folds, name, genres)
    grouped = split != "random"
    indices = np.arange(table.n_rows)


    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        if folds == 1:
            largest = max(len(set(groups[y == label])) for label in np.unique(y))
            n_splits = min(max(2, int(round(1.0 / test_fraction))), max(2, largest))
            if grouped:
                splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
                outer = [next(splitter.split(indices, y, groups))]
            else:
                outer = [next(StratifiedKFold(n_splits, shuffle=True, random_state=seed).split(indices, y))]
        elif grouped:
            splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
            outer = list(splitter.split(indices, y, groups))
        else:
            min_count = np.unique(y, return_counts=True)[1].min()
            if min_count >= folds:
                outer = list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(indices, y))
            else:
                outer = list(KFold(folds, shuffle=True, random_state=seed).split(indices))
    result = []
    for k, (train, test) in enumerate(outer):
        tr, va = inner_split(train, y, groups, valid_fraction, seed + k, grouped)
        result.append(Fold(f"fold{k + 1}" if folds > 1 else "holdout", tr, va, test))
    if folds > 1:
        desc = f"{folds}-fold {desc}"
    else:
        desc = f"one {desc} train/valid/test split"
    plan = SplitPlan(split, result, groups, desc, leaky=split == "random" and table.segmented)
    if grouped:
        assert_no_leakage(plan, table)
    return plan


def assert_no_leakage(plan: SplitPlan, table: FeatureTable) -> None:
    """Raise :class:`DataError` if any track appears in two parts of a fold."""
    tracks = table.tracks
    for fold in plan.folds:
        sets = {part: set(tracks[getattr(fold, part)]) for part in ("train", "valid", "test")}
        for a, b in (("train", "test"), ("train", "valid"), ("valid", "test")):
            shared = sets[a] & sets[b]
            if shared:
                raise DataError(
                    f"{table.name}: track {sorted(shared)[0]} is in both the {a} and {b} part "
                    f"of {fold.name}; the split leaks"
                )


class GroupedSplit:
    """featx's leakage-free splits for scikit-learn tools (``cv=`` of ``cross_val_score``,
    ``GridSearchCV``...), with scikit-learn's ``split(X, y, groups)`` protocol.

    Each split is the one :func:`make_splits` plans for ``featx train``: segments of one
    track stay on one side (``'track'``), all tracks of an artist too (``'artist'``),
    the fixed fault-filtered lists (``'fault-filtered'``: one split, its train and valid
    lists against its test list), or rows drawn independently (``'random'``, leaky for
    segment rows). Folds are stratified by label (a multi-label row by its first genre).

    Parameters
    ----------
    by : {'track', 'artist', 'fault-filtered', 'random'}
        What keeps rows together (the ``--split`` of ``featx train``).
    n_splits : int >= 2
        Folds (``'fault-filtered'``: always one split).
    seed : int
        Shuffles the tracks before they are dealt into folds.
    artist_map : path, optional
        ``file ::: artist ::: title`` index for ``'artist'`` (e.g. GTZANindex.txt).
    split_dir : path, optional
        The folder of train/valid/test lists for ``'fault-filtered'``.

    Notes
    -----
    The rows' tracks come from ``groups``, else from a ``filename`` column of ``X``
    (``rock.00001.3.wav`` is track ``rock.00001``); the artist map and the split
    lists name tracks the same way.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.arange(12.0).reshape(6, 2)
    >>> y = ["a", "a", "a", "b", "b", "b"]
    >>> groups = ["t1", "t1", "t2", "t3", "t3", "t4"]
    >>> cv = GroupedSplit(by="track", n_splits=2, seed=0)
    >>> [sorted({groups[i] for i in test}) for _, test in cv.split(X, y, groups)]
    [['t2', 't3'], ['t1', 't4']]
    """

    def __init__(self, by: str = "track", n_splits: int = 5, *, seed: int = 0, artist_map=None,
                 split_dir=None):
        self.by = by
        self.n_splits = n_splits
        self.seed = seed
        self.artist_map = artist_map
        self.split_dir = split_dir

    def _plan(self, X, y, groups) -> SplitPlan:
        n = len(X)
        labels = ["-"] * n if y is None else _label_strings(y)
        table = table_from_arrays(X, labels, groups, name="X")
        folds = 1 if self.by == "fault-filtered" else self.n_splits
        if self.by != "fault-filtered" and (isinstance(folds, bool) or not isinstance(folds, int)
                                               or folds < 2):
            raise ConfigError(f"n_splits must be an integer >= 2. Received: n_splits={folds!r}",
                              param="n_splits")
        return make_splits(table, split=self.by, folds=folds, seed=self.seed, valid_fraction=0.0,
                           artist_map=self.artist_map, split_dir=self.split_dir)

    def split(self, X, y=None, groups=None):
        """Yield ``(train, test)`` row indices of each split.

        Raises
        ------
        ConfigError, DataError
            A bad option, or rows that cannot be split so (one line naming them).
        """
        for fold in self._plan(X, y, groups).folds:
            yield np.sort(np.concatenate([fold.train, fold.valid])), np.sort(fold.test)

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        """How many splits :meth:`split` yields."""
        return 1 if self.by == "fault-filtered" else int(self.n_splits)

    def __repr__(self) -> str:
        return f"GroupedSplit(by={self.by!r}, n_splits={self.get_n_splits()}, seed={self.seed})"


def _label_strings(y) -> list[str]:
    """Label strings for splitting: a multi-hot row gives its first genre's column."""
    values = np.asarray(y, dtype=object)
    if values.ndim == 2:  # multi-hot rows: stratify by the first genre present
        return [str(int(np.argmax(np.asarray(row, dtype=float)))) for row in values]
    return [";".join(map(str, v)) if isinstance(v, (list, tuple, set)) else str(v) for v in values]
