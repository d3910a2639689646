"""Feature tables: reading and validating CSVs, row identities (track, segment), column checks."""
from __future__ import annotations

import csv
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError
from ..extract.audio import AUDIO_EXTENSIONS, MAX_SAMPLES
from ..extract.outputs import is_parquet, read_settings_sidecar
from ..features.settings import (
    ID_COLUMNS,
    LABEL_COLUMN,
    FeatureSettings,
    kaggle_feature_columns,
)
from .columns import column_names
from .labels import SEPARATOR
from .parquet import read_parquet_table

logger = logging.getLogger(__name__)

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

    ``rock.00001.7.wav`` -> ``rock.00001``; ``AlbumA/01.7.mp3`` (the form ``featx
    extract`` writes: the file's path under its input folder) -> ``AlbumA/01``, a
    different track from ``AlbumB/01``. With ``segmented=False`` the whole filename
    (without extension) is the track: ``rock.00001.wav`` -> ``rock.00001``.
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
    _X: np.ndarray | None = field(default=None, repr=False)
    _X_columns: list | None = field(default=None, repr=False)
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
        """Feature matrix, shape ``(n_rows, n_features)``, float64.

        A table read from Parquet keeps its one matrix (read-only here, shared with
        ``frame``) instead of copying the columns out of ``frame`` at every use.
        """
        if self._X is not None and self._X_columns == self.feature_columns:
            view = self._X.view()
            view.flags.writeable = False
            return view
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
        The CSV, or a Parquet table (``.parquet``/``.pq``, read by pyarrow, the same
        checks and messages). A ``<csv>.settings.json`` sidecar (written by ``featx
        extract``), or a Parquet file's ``featx`` metadata, supplies the extraction
        settings; a table with exactly the Kaggle GTZAN columns and no sidecar is taken
        as ``preset='gtzan'``.
    require_label : bool
        Whether a ``label`` column is required.

    Raises
    ------
    DataError
        Missing file or columns, a column named twice in the header, non-numeric,
        NaN, infinite or absurdly large (above :data:`MAX_FEATURE_MAGNITUDE`) feature
        values, mixed segment/whole-file names, a ``length`` that does not fit the
        table's settings (:func:`clip_length`).

    Examples
    --------
    >>> import featx
    >>> table = featx.read_feature_csv("features_csv/features_30_sec.csv")  # doctest: +SKIP
    >>> table.n_rows, len(table.feature_columns), table.settings.preset  # doctest: +SKIP
    (1000, 57, 'gtzan')
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such feature CSV; expected a file written by 'featx extract'")
    X = embedded = None

    if is_parquet(path):
        frame, X, _, embedded = read_parquet_table(path)
    else:
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
    if X is None:
        _check_header(path, frame)
    if require_label and frame[LABEL_COLUMN].isna().any():
        row = int(np.flatnonzero(frame[LABEL_COLUMN].isna().to_numpy())[0])
        raise DataError(f"{path}: empty label in row {row + 2} (filename {frame['filename'].iloc[row]})")

    non_feature = set(ID_COLUMNS) | {LABEL_COLUMN}
    feature_columns = [c for c in frame.columns if c not in non_feature]
    if not feature_columns:
        raise DataError(f"{path}: no feature columns besides filename/length/label")
    if X is None:
        _check_numeric(frame, feature_columns, path)
    else:
        for j, col in enumerate(feature_columns):
            _check_values(X[:, j], col, path, frame, line=1)

    settings = _read_sidecar(path)
    if settings is None:
        settings = embedded
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
    table = FeatureTable(frame, path, feature_columns, settings, segmented, source,
                         _X=X, _X_columns=None if X is None else list(feature_columns))
    clip_length(table)  # a length in seconds, or absurd, is refused before anything trains on it
    if table.labelled:
        _check_track_labels(table)
    logger.info("read %s: %d rows, %d features, %s rows, settings from %s",
                path, len(frame), len(feature_columns),
                "segment" if segmented else "whole-file", source)
    return table


#: Longest whole clip a table's ``length`` may give, in seconds (and never more than
#: :data:`featx.extract.audio.MAX_SAMPLES` samples, the most featx decodes).
MAX_CLIP_SECONDS = 24 * 3600


def clip_bounds(settings: FeatureSettings) -> tuple[int, int]:
    """Fewest and most samples a whole clip may hold under ``settings``: one STFT frame
    (``n_fft``), and :data:`~featx.extract.audio.MAX_SAMPLES` or :data:`MAX_CLIP_SECONDS`
    of samples, whichever is less. A bundle's recorded clip length is checked against them too.

    Examples
    --------
    >>> clip_bounds(FeatureSettings(segment_seconds=None))
    (2048, 134217728)
    """
    return int(settings.n_fft), int(min(MAX_SAMPLES, MAX_CLIP_SECONDS * settings.sr))


def clip_length(table: FeatureTable, *, name: str | None = None, index=None) -> int | None:
    """Check a table's ``length`` column against its own settings; the clip length to use.

    ``length`` is each row's number of samples at the table's rate (its settings
    record: ``.settings.json``, Parquet metadata, or the Kaggle columns' preset).
    Segment rows must hold exactly the settings' segment (``segment_samples``: 66149
    for 3 s at 22050 Hz); whole-clip rows at least one STFT frame (``n_fft``) and at
    most :data:`~featx.extract.audio.MAX_SAMPLES` (2**27) or 24 h of samples. Without
    settings, a length must still be a whole number of samples from 1 to 2**27.

    Parameters
    ----------
    table : FeatureTable
    name : str, optional
        What messages call the table (default: its path).
    index : sequence, optional
        Each row's label in messages (a DataFrame's index as given); default: its
        line in the CSV, or its row in the Parquet file.

    Returns
    -------
    int or None
        Whole-clip rows with settings: the median clip length in samples (what a
        whole-clip model cuts long audio into); otherwise None (also for a table
        without a ``length`` column).

    Raises
    ------
    DataError
        One line naming the table, the row (and its filename), the column and the
        value, and what was expected (a length that looks like seconds says so).

    Examples
    --------
    >>> import pandas as pd
    >>> from featx.data.frames import table_from_frame
    >>> rows = pd.DataFrame({"filename": ["a.wav"], "length": [661500], "f": [0.5]})
    >>> rows.attrs["featx_settings"] = {"segment_seconds": None}
    >>> clip_length(table_from_frame(rows))
    661500
    """
    frame = table.frame
    if "length" not in frame.columns or not len(frame):
        return None
    raw = frame["length"]
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
    settings = table.settings
    sr = settings.sr if settings is not None else None
    whole = settings is not None and settings.segment_seconds is None
    if settings is None:
        low, high, what = 1, MAX_SAMPLES, "a whole number of samples from 1 to 134217728 (2**27)"
    elif whole:
        low, high = clip_bounds(settings)
        what = (f"a whole clip's number of samples at {sr} Hz, from one STFT frame (n_fft={settings.n_fft}) "
                f"to {high:,} ({high / sr / 3600:.3g} h)")
    else:
        low = high = settings.segment_samples
        what = (f"{low} samples, the {settings.segment_seconds:g}-s segment of its settings at {sr} Hz")
    bad = ~(np.isfinite(values) & (values == np.round(values)) & (values >= low) & (values <= high))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        value = raw.iloc[row]
        value = value.item() if isinstance(value, np.generic) else value
        hint = ""
        if whole and np.isfinite(values[row]) and low <= values[row] * sr <= high:
            hint = f"; in seconds? {values[row]:g} s is {int(values[row] * sr):,} samples at {sr} Hz"
        raise DataError(f"{name or table.name}: value {_brief(value)} in column 'length' "
                        f"({_row_ref(table, row, index)}); expected {what}{hint}")
    return int(np.median(values)) if whole else None


def _brief(value, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters (a cell may hold thousands)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit - 4]}...{text[-1]} ({len(str(value)):,} characters)"


def _row_ref(table: FeatureTable, row: int, index=None) -> str:
    """How a message names row ``row`` (0-based) of ``table``: by ``index``, as a CSV line,
    or as a Parquet row (1-based), with its filename."""
    if index is not None:
        label = index[row]
        where = f"index {label.item() if isinstance(label, np.generic) else label!r}"
    elif table.path is None:
        where = f"row {row + 1}"
    else:
        where = f"row {row + (1 if is_parquet(table.path) else 2)}"
    return f"{where}, filename {table.frame['filename'].iloc[row]}"


#: Largest magnitude a feature value may have: the squares of such values still sum without
#: overflow when scalers are fitted, and no audio feature comes near it.
MAX_FEATURE_MAGNITUDE = 1e100


def _check_header(path: Path, frame: pd.DataFrame) -> None:
    """Refuse a header that names a column twice, or leaves a column's name empty
    (:func:`column_names`).

    pandas renames the second ``tempo`` to ``tempo.1``, so the raw header line is read
    again here: a renamed column would otherwise be trained on under a name nobody gave it.
    """
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            header = next(csv.reader(fh), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        header = []
    column_names(header if len(header) == len(frame.columns) else list(frame.columns), path)


def _check_track_labels(table: FeatureTable) -> None:
    """Refuse a table in which rows of one track carry different labels.

    Such rows come from different files that share a track id (for example two
    ``01.mp3`` named without their folders): grouped splits and track-level
    metrics would treat them as one track. Cells naming the same genres in another
    order (``rock;blues``, ``blues;rock``) are one label.
    """
    labels = table.frame[LABEL_COLUMN].astype(str).to_numpy()
    first: dict[str, tuple[str, int, frozenset]] = {}
    for row, (track, label) in enumerate(zip(table.tracks, labels)):
        genres = frozenset(g.strip() for g in label.split(SEPARATOR))  # 'rock;blues' is 'blues;rock'
        seen = first.setdefault(track, (label, row, genres))
        if seen[2] != genres:
            raise DataError(
                f"{table.name}: track {track!r} has rows labelled {seen[0]!r} (row {seen[1] + 2}) and "
                f"{label!r} (row {row + 2}); expected one label per track (give each file a unique "
                "filename, e.g. its path under the corpus folder, as featx extract does)"
            )


def _check_numeric(frame: pd.DataFrame, columns: list[str], path: Path) -> None:
    for col in columns:
        values = frame[col]
        numeric = pd.to_numeric(values, errors="coerce")
        bad = numeric.isna() & values.notna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                f"{path}: non-numeric value {_brief(values.iloc[row])} in column '{col}' "
                f"(row {row + 2}, filename {frame['filename'].iloc[row]}); expected a number"
            )
        arr = numeric.to_numpy(dtype=np.float64)
        _check_values(arr, col, path, frame)
        frame[col] = arr


def _check_values(arr: np.ndarray, col: str, path: Path, frame: pd.DataFrame, *, line: int = 2) -> None:
    """Refuse NaN, infinite or absurdly large values; rows are named as ``row + line``
    (a CSV's line number; a Parquet table's 1-based row)."""
    nonfinite = ~np.isfinite(arr)
    if nonfinite.any():
        row = int(np.flatnonzero(nonfinite)[0])
        raise DataError(
            f"{path}: {'missing' if np.isnan(arr[row]) else arr[row]} value in column '{col}' "
            f"(row {row + line}, filename {frame['filename'].iloc[row]}); expected a finite number"
        )
    huge = np.abs(arr) > MAX_FEATURE_MAGNITUDE
    if huge.any():
        row = int(np.flatnonzero(huge)[0])
        raise DataError(
            f"{path}: value {float(arr[row])!r} in column '{col}' (row {row + line}, filename "
            f"{frame['filename'].iloc[row]}) is out of range; expected a number of magnitude at "
            f"most {MAX_FEATURE_MAGNITUDE:g}"
        )


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
