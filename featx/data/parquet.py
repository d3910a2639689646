"""Reading a Parquet feature table into one feature matrix, column by column.

The feature columns go straight from Parquet into one preallocated float64 array,
one column at a time, so a large table is held once (plus one column in flight),
not once as Arrow data and again as a pandas copy. The table's ``frame`` shares
that array's memory.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError
from ..features.settings import ID_COLUMNS, LABEL_COLUMN, FeatureSettings
from .columns import column_names


def read_parquet_table(path: Path):
    """Read ``path`` (a Parquet feature table).

    Returns
    -------
    frame : pandas.DataFrame
        Every column; the feature columns are views of ``X``.
    X : np.ndarray [shape=(n_rows, n_features)], float64
    feature_columns : list of str
    settings : FeatureSettings or None
        From the file's ``featx`` metadata, when present.
    """
    try:
        import pyarrow as pa  # pyarrow: only for Parquet tables
        import pyarrow.parquet as pq  # pyarrow: only for Parquet tables
    except ImportError:  # pragma: no cover - pyarrow is a dependency
        raise DataError(f"{path}: reading Parquet needs pyarrow; pip install pyarrow") from None
    try:
        handle = pq.ParquetFile(path)
        schema = handle.schema_arrow
    except (OSError, pa.ArrowException) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: not a readable Parquet file ({first})") from None
    stored = list(schema.names)
    names = column_names(stored, path)  # the CSV reader's rule: ' tempo' is tempo, named once
    position = {name: i for i, name in enumerate(names)}
    non_feature = set(ID_COLUMNS) | {LABEL_COLUMN}
    features = [n for n in names if n not in non_feature]
    n_rows = handle.metadata.num_rows

    def column(name):
        try:
            return handle.read(columns=[stored[position[name]]]).column(0)
        except (OSError, pa.ArrowException) as exc:
            raise DataError(f"{path}: column {name!r} cannot be read ({exc})") from None

    others = {n: column(n).to_pandas() for n in names if n in non_feature}
    X = np.empty((n_rows, len(features)), dtype=np.float64)
    for j, name in enumerate(features):
        values = column(name)
        kind = values.type
        if not (pa.types.is_floating(kind) or pa.types.is_integer(kind) or pa.types.is_decimal(kind)):
            first = next((v for v in values.to_pylist() if v is not None), None)
            filename = others["filename"].iloc[0] if "filename" in others and n_rows else "?"
            raise DataError(
                f"{path}: non-numeric value {first!r} in column '{name}' ({kind} column, row 1, "
                f"filename {filename}); expected a number"
            )
        # nulls become NaN here and are refused by the caller's finite check
        X[:, j] = values.to_numpy(zero_copy_only=False) if values.null_count == 0 else \
            np.asarray(values.to_pandas(), dtype=np.float64)
        del values
    frame = pd.DataFrame(X, columns=features, copy=False)
    for name in [n for n in names if n in non_feature]:
        index = names.index(name) if name in ID_COLUMNS else len(frame.columns)
        frame.insert(min(index, len(frame.columns)), name, others[name].to_numpy())
    settings = _metadata_settings(path, schema.metadata or {})
    return frame, X, features, settings


def _metadata_settings(path: Path, metadata: dict) -> FeatureSettings | None:
    raw = metadata.get(b"featx")
    if raw is None:
        return None
    try:
        return FeatureSettings.from_dict(json.loads(raw)["settings"])
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: unusable 'featx' metadata ({exc}); expected the record "
                        "featx extract writes") from None
