"""The Parquet sink of an extraction: the same columns and numbers as the CSV, in one file.

A feature table written as ``-o features.parquet`` holds the CSV's columns in the CSV's
order: ``filename`` (string), ``length`` (int64), every feature (float64) and ``label``
(string) when labelled. Each float64 is the very value the CSV's text parses to (the CSV
writes ``repr(float)``, which reads back exactly), so both formats train the same models.
The extraction settings are stored in the file's key-value metadata under ``featx``; the
settings record beside it, the errors CSV and the journal are as for a CSV output.
"""
from __future__ import annotations

import json
import logging
import os

import numpy as np

from ..errors import OutputError
from ..io.atomic import discard_on_failure, temp_beside
from ..io.digest import file_sha256
from .corpus import row_names
from .outputs import finish_outputs, reuse_records

logger = logging.getLogger(__name__)

#: File name endings read and written as Parquet.
#: Key of the Parquet key-value metadata that holds featx's record.
METADATA_KEY = b"featx"


def _require_pyarrow():
    try:
        import pyarrow as pa  # pyarrow: only for Parquet tables
        import pyarrow.parquet as pq  # pyarrow: only for Parquet tables
    except ImportError:  # pragma: no cover - pyarrow is a dependency
        raise OutputError("Parquet tables need pyarrow; install it with 'pip install pyarrow'") from None
    return pa, pq


def assemble_parquet(out, records: dict, files, label_list, settings, record: dict):
    """Write the Parquet table in input order from ``records`` (``{file id: record}``), then
    the errors CSV and the settings record; like the CSV sink, every file atomically.

    Returns
    -------
    n_rows : int
    errors : list of (file, reason)
    """
    pa, pq = _require_pyarrow()
    labelled = label_list is not None
    columns = settings.columns(labelled=labelled)
    features = settings.feature_columns()
    whole_file = settings.segment_seconds is None
    bare = settings.preset == "gtzan"
    errors: list[tuple[str, str]] = []
    entries = [dict(e) for e in record["files"]]
    names: list[str] = []
    lengths: list[int] = []
    labels: list[str] = []
    blocks: list[np.ndarray] = []
    for i, (file, entry) in enumerate(zip(files, entries)):
        rec = records[file.id]
        if "error" in rec:
            errors.append((str(file.path), rec["error"]))
            entry["error"] = rec["error"]
            continue
        rows = row_names(file.id, len(rec["values"]), whole_file=whole_file, bare=bare)
        names.extend(rows)
        lengths.extend([int(rec["length"])] * len(rows))
        if labelled:
            labels.extend([label_list[i]] * len(rows))
        blocks.append(np.asarray(rec["values"], dtype=np.float64).reshape(len(rows), len(features)))
        entry["rows"] = len(rows)
    values = np.concatenate(blocks) if blocks else np.empty((0, len(features)))
    arrays = [pa.array(names, type=pa.string()), pa.array(lengths, type=pa.int64())]
    arrays += [pa.array(np.ascontiguousarray(values[:, j]), type=pa.float64()) for j in range(len(features))]
    if labelled:
        arrays.append(pa.array(labels, type=pa.string()))
    meta = {"featx_version": record.get("featx_version"), "settings": record["settings"],
            "columns": columns, "labels": record.get("labels")}
    table = pa.Table.from_arrays(arrays, names=columns).replace_schema_metadata(
        {METADATA_KEY: json.dumps(meta, sort_keys=True).encode()})
    n_rows = len(names)
    tmp, fd = temp_beside(out.csv)
    with discard_on_failure(tmp, out.csv):
        with os.fdopen(fd, "wb") as fh:
            pq.write_table(table, fh)
            fh.flush()
            os.fsync(fh.fileno())
        finish_outputs(out, tmp, record, entries=entries, n_rows=n_rows, errors=errors,
                        digest=file_sha256(tmp))
    return n_rows, errors


def previous_parquet_records(out, previous: dict, fingerprints: dict, n_features: int) -> dict:
    """Records of the unchanged files whose rows an earlier run left in the Parquet table
    ``out.csv``: ``{file id: record}`` (the caller has checked the file's SHA-256)."""
    _, pq = _require_pyarrow()
    table = pq.read_table(out.csv)
    if table.num_columns < 2 + n_features:
        return {}
    lengths = table.column(1).to_numpy()
    values = np.column_stack([table.column(2 + j).to_numpy() for j in range(n_features)]) \
        if table.num_rows else np.empty((0, n_features))
    row = 0

    def rows_of(n: int):
        nonlocal row
        if row + n > table.num_rows or n < 1:
            raise ValueError("fewer rows than the settings record lists")
        row += n
        return int(lengths[row - n]), values[row - n:row].tolist()

    reused = reuse_records(previous, fingerprints, rows_of)  # the caller catches a mismatch
    return reused if row == table.num_rows else {}
