"""Feature tables from memory: a pandas DataFrame of rows, as :func:`featx.extract_features` returns.

:func:`as_table` is what the Python API accepts wherever a table is meant: a
:class:`~featx.data.table.FeatureTable`, the path of a feature CSV, or a DataFrame
with a ``filename`` column, numeric feature columns and, optionally, ``length`` and
``label``.
"""
from __future__ import annotations

import os

import numpy as np
import pandas as pd

from ..errors import DataError
from ..features.settings import ID_COLUMNS, LABEL_COLUMN, FeatureSettings
from .columns import column_names
from .store_table import StoreTable, read_table
from .table import FeatureTable, clip_length, segment_index

#: Key of ``DataFrame.attrs`` under which featx records the settings rows were made with.
SETTINGS_ATTR = "featx_settings"


def table_from_frame(frame: pd.DataFrame, *, require_label: bool = False,
                     name: str = "DataFrame") -> FeatureTable:
    """Validate a DataFrame of feature rows and wrap it as a feature table.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per segment (``rock.00001.7.wav``) or per file (``rock.00001.wav``):
        a ``filename`` column, numeric feature columns, and optionally ``length`` and
        ``label``. It is copied, never changed. Extraction settings are taken from
        ``frame.attrs["featx_settings"]`` where featx recorded them.
    require_label : bool
        Whether a ``label`` column is required.
    name : str
        What messages call the frame.

    Returns
    -------
    table : FeatureTable
        With ``path=None``.

    Raises
    ------
    DataError
        Not a DataFrame, no rows, no ``filename`` or ``label`` column, no feature
        columns, a non-numeric or non-finite feature value, a mix of segment and
        whole-file names, or a ``length`` that does not fit the recorded settings
        (:func:`featx.data.table.clip_length`).

    Examples
    --------
    >>> import pandas as pd
    >>> rows = pd.DataFrame({"filename": ["a.0.wav", "a.1.wav"], "f": [0.5, 1.5]})
    >>> table = table_from_frame(rows)
    >>> table.segmented, list(table.tracks)
    (True, ['a', 'a'])
    """
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"expected a pandas DataFrame of feature rows. Received: {type(frame).__name__}")
    frame = frame.copy()
    frame.columns = column_names(list(frame.columns), name)
    if "filename" not in frame.columns:
        raise DataError(f"{name}: no 'filename' column; expected columns filename, <features>[, label]. "
                        f"Received: {', '.join(map(str, frame.columns[:5]))}")
    if require_label and LABEL_COLUMN not in frame.columns:
        raise DataError(f"{name}: no '{LABEL_COLUMN}' column; training and evaluation need labelled rows")
    if len(frame) == 0:
        raise DataError(f"{name}: the table has no rows")
    features = [c for c in frame.columns if c not in ID_COLUMNS and c != LABEL_COLUMN]
    if not features:
        raise DataError(f"{name}: no feature columns besides filename/length/label")
    for col in features:
        values = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(values)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{name}: value {frame[col].iloc[i]!r} in column '{col}' (index {frame.index[i]!r}, "
                f"filename {frame['filename'].iloc[i]}); expected a finite number"
            )
        frame[col] = values
    given_index = frame.index
    frame = frame.reset_index(drop=True)
    has_index = np.array([segment_index(f) is not None for f in frame["filename"].astype(str)])
    if has_index.all() != has_index.any():
        i = int(np.flatnonzero(~has_index)[0])
        raise DataError(
            f"{name}: filename {frame['filename'].iloc[i]!r} has no segment index while others do; "
            "expected all segment rows (name.3.wav) or all whole-file rows (name.wav)"
        )
    recorded = frame.attrs.get(SETTINGS_ATTR)
    settings = FeatureSettings.from_dict(recorded) if isinstance(recorded, dict) else None
    source = "dataframe" if settings is not None else "unknown"
    table = FeatureTable(frame, None, features, settings, bool(has_index.all()), source)
    clip_length(table, name=name, index=given_index)
    return table


def as_table(data, *, require_label: bool = False) -> FeatureTable:
    """A feature table from a table, a CSV path or a DataFrame (see :func:`table_from_frame`);
    a spectrogram store (its folder, or a :class:`~featx.data.store_table.StoreTable`) gives
    its :class:`~featx.data.store_table.StoreTable`.

    Raises
    ------
    DataError
        ``data`` is none of these, or is not a valid feature table.
    """
    if isinstance(data, (FeatureTable, StoreTable)):
        return data
    if isinstance(data, pd.DataFrame):
        return table_from_frame(data, require_label=require_label)
    if isinstance(data, (str, os.PathLike)):
        return read_table(data, require_label=require_label)
    raise DataError(
        "expected a feature table: a pandas DataFrame, the path of a feature CSV or a "
        f"FeatureTable. Received: {type(data).__name__}"
    )


def table_from_arrays(X, y=None, groups=None, *, name: str = "X") -> FeatureTable:
    """A feature table from scikit-learn style inputs: a matrix or DataFrame, labels, groups.

    Parameters
    ----------
    X : pandas.DataFrame or array-like [shape=(n_rows, n_features)]
        A DataFrame of feature columns (``filename``, ``length`` and ``label`` columns
        are not features; a ``filename`` column names the rows and, without
        ``groups``, their tracks), or a matrix (columns named ``x0``, ``x1``, ...).
    y : array-like [shape=(n_rows,)], optional
        Label strings, one per row (several genres joined by ``;``).
    groups : array-like [shape=(n_rows,)], optional
        The track of every row. Rows of one track are its segments, in row order
        (or in the order of the segment indices of their file names). Default: the
        tracks the file names give, or one track per row.

    Returns
    -------
    table : FeatureTable
        With ``path=None``; segmented when a track has several rows.

    Raises
    ------
    DataError
        Not a 2-D table of finite numbers, or ``y``/``groups`` of another length.
    """
    if isinstance(X, pd.DataFrame):
        frame = X.copy()
        frame.columns = [str(c).strip() for c in frame.columns]
        frame = frame.drop(columns=["length"] + ([LABEL_COLUMN] if y is not None else []), errors="ignore")
    else:
        try:
            matrix = np.asarray(X, dtype=np.float64)
        except (TypeError, ValueError):
            raise DataError(f"{name}: expected a matrix of numbers (n_rows, n_features). "
                            f"Received: {type(X).__name__}") from None
        if matrix.ndim != 2:
            raise DataError(f"{name}: expected a 2-D matrix (n_rows, n_features). Received: shape={matrix.shape}")
        frame = pd.DataFrame(matrix, columns=[f"x{j}" for j in range(matrix.shape[1])])
    n = len(frame)
    for what, values in (("y", y), ("groups", groups)):
        if values is not None and len(values) != n:
            raise DataError(f"{what} has {len(values)} entries for the {n} rows of {name}; expected one per row")
    named = "filename" in frame.columns
    if groups is not None:
        tracks = np.array([str(g) for g in groups], dtype=object)
    elif named:
        tracks = None
    else:
        tracks = np.array([f"row{i}" for i in range(n)], dtype=object)
    if not named:
        order = np.zeros(n, dtype=int)
        if tracks is not None and n:
            _, inverse = np.unique(tracks, return_inverse=True)
            counts = np.zeros(inverse.max() + 1, dtype=int)
            for i, t in enumerate(inverse):  # each row's place within its track, in row order
                order[i] = counts[t]
                counts[t] += 1
        frame.insert(0, "filename", [f"{t}.{k}.row" for t, k in zip(tracks, order)])
    if y is not None:
        frame[LABEL_COLUMN] = [str(label) for label in y]
    table = table_from_frame(frame, require_label=y is not None, name=name)
    if tracks is not None:
        table._tracks = tracks
        table.segmented = bool(len(set(tracks)) < n)
        if not named:
            table._segments = order
    return table
