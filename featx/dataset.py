"""Read and validate feature tables; track/artist groups; leakage-free splits.

A feature table is a CSV with one row per analysed segment (or whole file):
``filename``, ``length``, the numeric feature columns and, for training data,
``label``. Rows are grouped by *track* (the filename with its segment index
removed: ``rock.00001.7.wav`` belongs to ``rock.00001``) so that no split puts
segments of one track on both sides.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .audio import AUDIO_EXTENSIONS
from .errors import ConfigError, DataError
from .settings import ID_COLUMNS, LABEL_COLUMN, FeatureSettings, kaggle_feature_columns

logger = logging.getLogger(__name__)

SPLITS = ("track", "artist", "fault-filtered", "random")

_SEGMENT_RE = re.compile(r"^(?P<stem>.+)\.(?P<index>0|[1-9][0-9]*)$")


def _split_ext(name: str) -> tuple[str, str]:
    """``('rock.00001.7', '.wav')``; names without a known audio extension keep it all."""
    lower = name.lower()
    for ext in AUDIO_EXTENSIONS:
        if lower.endswith(ext):
            return name[: -len(ext)], name[-len(ext):]
    return name, ""


def segment_index(filename: str) -> int | None:
    """Segment index encoded in ``filename``, or ``None`` for a whole-file name.

    A segment index is a final dot-separated integer without leading zeros, so
    GTZAN's zero-padded track numbers (``blues.00000.wav``) are not mistaken
    for one, while ``blues.00000.3.wav`` is segment 3.
    """
    stem, _ = _split_ext(str(filename))
    match = _SEGMENT_RE.match(stem)
    return int(match.group("index")) if match else None


def track_id(filename: str, *, segmented: bool = True) -> str:
    """The track a row belongs to: its filename without segment index and extension.

    ``rock.00001.7.wav`` -> ``rock.00001``; with ``segmented=False`` the
    whole filename (without extension) is the track: ``rock.00001.wav`` ->
    ``rock.00001``.
    """
    stem, _ = _split_ext(str(filename))
    if segmented:
        match = _SEGMENT_RE.match(stem)
        if match:
            return match.group("stem")
    return stem


def track_name(filename: str, *, segmented: bool = True) -> str:
    """Like :func:`track_id` but keeping the extension (``rock.00001.wav``)."""
    stem, ext = _split_ext(str(filename))
    return track_id(filename, segmented=segmented) + ext if stem else str(filename)


@dataclass
class FeatureTable:
    """A validated feature table.

    Attributes
    ----------
    frame : pandas.DataFrame
        The table as read (rows in file order).
    path : Path or None
        Where it was read from (used in messages).
    feature_columns : list of str
        Numeric feature columns, in table order.
    settings : FeatureSettings or None
        Extraction settings the features were made with, when known.
    segmented : bool
        Whether rows are segments of longer files.
    """

    frame: pd.DataFrame
    path: Path | None
    feature_columns: list[str]
    settings: FeatureSettings | None
    segmented: bool
    settings_source: str = "unknown"
    _tracks: np.ndarray | None = field(default=None, repr=False)
    _segments: np.ndarray | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return str(self.path) if self.path is not None else "<table>"

    @property
    def n_rows(self) -> int:
        return len(self.frame)

    @property
    def X(self) -> np.ndarray:
        """Feature matrix, shape ``(n_rows, n_features)``, float64."""
        return self.frame[self.feature_columns].to_numpy(dtype=np.float64)

    @property
    def labelled(self) -> bool:
        return LABEL_COLUMN in self.frame.columns

    @property
    def labels(self) -> np.ndarray:
        if not self.labelled:
            raise DataError(f"{self.name}: no '{LABEL_COLUMN}' column; expected a labelled feature table")
        return self.frame[LABEL_COLUMN].astype(str).to_numpy()

    @property
    def filenames(self) -> np.ndarray:
        return self.frame["filename"].astype(str).to_numpy()

    @property
    def tracks(self) -> np.ndarray:
        """Track id of every row."""
        if self._tracks is None:
            self._tracks = np.array(
                [track_id(f, segmented=self.segmented) for f in self.filenames], dtype=object
            )
        return self._tracks

    @property
    def segment_indices(self) -> np.ndarray:
        """Segment index of every row (0 for whole-file rows)."""
        if self._segments is None:
            self._segments = (np.array([segment_index(f) or 0 for f in self.filenames], dtype=int)
                              if self.segmented else np.zeros(self.n_rows, dtype=int))
        return self._segments

    def subset(self, mask) -> "FeatureTable":
        frame = self.frame.loc[np.asarray(mask)].reset_index(drop=True)
        return FeatureTable(frame, self.path, list(self.feature_columns), self.settings,
                            self.segmented, self.settings_source)


def _read_sidecar(path: Path) -> FeatureSettings | None:
    """The extraction settings recorded beside a CSV by ``featx extract``, if any."""
    from .extract import read_settings_sidecar

    record = read_settings_sidecar(path)
    if record is None:
        return None
    try:
        return FeatureSettings.from_dict(record["settings"])
    except (KeyError, TypeError) as exc:
        raise DataError(
            f"{path}.settings.json: no usable 'settings' object ({exc}); expected the record featx extract writes"
        ) from None


def read_feature_csv(path, *, require_label: bool = True) -> FeatureTable:
    """Read and validate a feature CSV.

    Parameters
    ----------
    path : str or Path
        The CSV. A ``<csv>.settings.json`` sidecar (written by ``featx extract``)
        supplies the extraction settings; a table with exactly the Kaggle GTZAN
        columns and no sidecar is taken as ``preset='gtzan'``.
    require_label : bool
        Whether a ``label`` column is required.

    Raises
    ------
    DataError
        Missing file or columns, non-numeric, NaN or infinite feature values,
        mixed segment/whole-file names.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such feature CSV; expected a file written by 'featx extract'")
    try:
        frame = pd.read_csv(path, low_memory=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: not a readable CSV ({first})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    if "filename" not in frame.columns:
        raise DataError(
            f"{path}: no 'filename' column; expected columns filename, length, <features>, label. "
            f"Received: {', '.join(frame.columns[:5])}{', ...' if len(frame.columns) > 5 else ''}"
        )
    if require_label and LABEL_COLUMN not in frame.columns:
        raise DataError(f"{path}: no '{LABEL_COLUMN}' column; training and evaluation need labelled rows")
    if len(frame) == 0:
        raise DataError(f"{path}: the table has no rows")
    duplicated = [c for c in frame.columns if list(frame.columns).count(c) > 1]
    if duplicated:
        raise DataError(f"{path}: column '{duplicated[0]}' appears more than once")
    if require_label and frame[LABEL_COLUMN].isna().any():
        row = int(np.flatnonzero(frame[LABEL_COLUMN].isna().to_numpy())[0])
        raise DataError(f"{path}: empty label in row {row + 2} (filename {frame['filename'].iloc[row]})")

    non_feature = set(ID_COLUMNS) | {LABEL_COLUMN}
    feature_columns = [c for c in frame.columns if c not in non_feature]
    if not feature_columns:
        raise DataError(f"{path}: no feature columns besides filename/length/label")
    _check_numeric(frame, feature_columns, path)

    settings = _read_sidecar(path)
    source = "sidecar" if settings is not None else "unknown"
    if settings is not None:
        expected = settings.feature_columns()
        if feature_columns != expected:
            missing = [c for c in expected if c not in feature_columns]
            extra = [c for c in feature_columns if c not in expected]
            detail = (f"missing {missing[:3]}" if missing else "") + (
                f"{'; ' if missing else ''}unexpected {extra[:3]}" if extra else "")
            raise DataError(
                f"{path}: feature columns do not match its settings sidecar "
                f"({detail or 'different order'})"
            )

    names = frame["filename"].astype(str)
    has_index = names.map(lambda f: segment_index(f) is not None).to_numpy()
    if settings is not None:
        segmented = settings.segment_seconds is not None
    elif has_index.all():
        segmented = True
    elif not has_index.any():
        segmented = False
    else:
        row = int(np.flatnonzero(~has_index)[0])
        raise DataError(
            f"{path}: filename {names.iloc[row]!r} (row {row + 2}) has no segment index while "
            f"others do (e.g. {names.iloc[int(np.flatnonzero(has_index)[0])]!r}); "
            "expected all segment rows or all whole-file rows"
        )
    if settings is None and feature_columns == kaggle_feature_columns():
        settings = FeatureSettings(preset="gtzan", segment_seconds=3.0 if segmented else None)
        source = "kaggle-columns"
    table = FeatureTable(frame, path, feature_columns, settings, segmented, source)
    logger.info("read %s: %d rows, %d features, %s rows, settings from %s",
                path, len(frame), len(feature_columns),
                "segment" if segmented else "whole-file", source)
    return table


def _check_numeric(frame: pd.DataFrame, columns: list[str], path: Path) -> None:
    for col in columns:
        values = frame[col]
        numeric = pd.to_numeric(values, errors="coerce")
        bad = numeric.isna() & values.notna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                f"{path}: non-numeric value {values.iloc[row]!r} in column '{col}' "
                f"(row {row + 2}, filename {frame['filename'].iloc[row]}); expected a number"
            )
        arr = numeric.to_numpy(dtype=np.float64)
        nonfinite = ~np.isfinite(arr)
        if nonfinite.any():
            row = int(np.flatnonzero(nonfinite)[0])
            raise DataError(
                f"{path}: {'missing' if np.isnan(arr[row]) else arr[row]} value in column '{col}' "
                f"(row {row + 2}, filename {frame['filename'].iloc[row]}); expected a finite number"
            )
        frame[col] = arr


def check_columns(table: FeatureTable, expected: list[str], *, source: str) -> FeatureTable:
    """Return ``table`` with its features in the order ``expected``; error on any mismatch."""
    have = table.feature_columns
    missing = [c for c in expected if c not in have]
    extra = [c for c in have if c not in expected]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing column(s) {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}")
        if extra:
            parts.append(f"unexpected column(s) {', '.join(extra[:4])}{' ...' if len(extra) > 4 else ''}")
        raise DataError(
            f"{table.name}: feature columns do not match {source} ({'; '.join(parts)}); "
            f"expected the {len(expected)} columns the model was trained on"
        )
    table.feature_columns = list(expected)
    return table


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
                "--split artist needs an artist mapping file (--artist-map FILE, e.g. "
                "GTZANindex.txt with lines 'file ::: artist ::: title')"
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


def _check_labels(y: np.ndarray, groups: np.ndarray, folds: int, name: str) -> None:
    classes = np.unique(y)
    if len(classes) < 2:
        raise DataError(
            f"{name}: only one class ({classes[0]!r}) in column '{LABEL_COLUMN}'; "
            "expected at least two genres to classify"
        )
    n_groups = len(set(groups))
    needed = max(folds, 3)
    if n_groups < needed:
        raise DataError(
            f"{name}: {n_groups} track/artist group(s) but {folds} fold(s) requested; "
            f"expected at least {needed} groups (use fewer --folds or more data)"
        )
    per_class = {label: len(set(groups[y == label])) for label in classes}
    if max(per_class.values()) < folds:
        raise DataError(
            f"{name}: every class has fewer tracks than the {folds} folds requested "
            f"(largest: {max(per_class.values())}); use fewer --folds or more data"
        )
    for label, n in per_class.items():
        if n < max(folds, 2):
            logger.warning("class %r has only %d group(s), fewer than the %d folds; "
                           "some folds will not test it", label, n, folds)


def _inner_valid(train_idx, y, groups, fraction: float, seed: int, grouped: bool):
    """Split ``train_idx`` into (train, valid) without sharing groups."""
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
    import warnings

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
        raise ConfigError(f"--folds must be a positive integer. Received: folds={folds!r}")
    from sklearn.model_selection import KFold, StratifiedGroupKFold, StratifiedKFold

    y = table.labels
    name = table.name

    if split == "fault-filtered":
        if split_dir is None:
            raise ConfigError(
                "--split fault-filtered needs --split-dir DIR holding train/valid/test lists "
                "(e.g. gtzan/splits/fault_filtered)"
            )
        if folds != 1:
            raise ConfigError(
                f"--split fault-filtered is one fixed train/valid/test split; expected --folds 1. "
                f"Received: folds={folds}"
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
            train, valid = _inner_valid(train, y, table.tracks, valid_fraction, seed, True)
        _check_labels(y[train], table.tracks[train], 1, name)
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
    _check_labels(y, groups, folds, name)
    grouped = split != "random"
    indices = np.arange(table.n_rows)

    import warnings

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
        tr, va = _inner_valid(train, y, groups, valid_fraction, seed + k, grouped)
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
