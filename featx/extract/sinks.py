"""The CSV sink of an extraction (a Parquet output goes to :mod:`featx.extract.parquet`), and
reading back an earlier run's rows; the ending both share is :mod:`featx.extract.outputs`."""
from __future__ import annotations

import csv
import hashlib
import logging
import os

from ..features.settings import LABEL_COLUMN
from ..io.atomic import discard_on_failure, temp_beside
from ..io.digest import file_sha256
from .corpus import row_names
from .outputs import OutputPaths, csv_line, finish_outputs, is_parquet, reuse_records
from .parquet import assemble_parquet, previous_parquet_records

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- output files


def _format(value: float) -> str:
    return repr(float(value))


def assemble_table(out: OutputPaths, records: dict, files, label_list, settings, record):
    """Write the CSV in input order from ``records`` (``{file id: record}``), then the
    error list and the settings record (with each file's fingerprint and outcome).
    A ``.parquet`` output is written by :func:`featx.extract.parquet.assemble_parquet`."""
    if is_parquet(out.csv):
        return assemble_parquet(out, records, files, label_list, settings, record)

    columns = settings.columns(labelled=label_list is not None)
    whole_file = settings.segment_seconds is None
    bare = settings.preset == "gtzan"  # Kaggle's filename form: the file name only
    errors: list[tuple[str, str]] = []
    entries = [dict(e) for e in record["files"]]
    n_rows = 0
    tmp, fd = temp_beside(out.csv)  # checked target, the umask's permissions, committed below
    with discard_on_failure(tmp, out.csv):  # e.g. the disk filled up: one line naming the CSV
        digest = hashlib.sha256()
        with os.fdopen(fd, "w", newline="") as fh:
            fh.write(csv_line(columns))
            digest.update(csv_line(columns).encode())
            for i, (file, entry) in enumerate(zip(files, entries)):
                rec = records[file.id]
                if "error" in rec:
                    errors.append((str(file.path), rec["error"]))
                    entry["error"] = rec["error"]
                    continue
                label = [label_list[i]] if label_list is not None else []
                names = row_names(file.id, len(rec["values"]), whole_file=whole_file, bare=bare)
                for name, values in zip(names, rec["values"]):
                    line = csv_line([name, rec["length"], *map(_format, values), *label])
                    fh.write(line)
                    digest.update(line.encode())
                entry["rows"] = len(names)
                n_rows += len(names)
            fh.flush()
            os.fsync(fh.fileno())
        finish_outputs(out, tmp, record, entries=entries, n_rows=n_rows, errors=errors,
                        digest=digest.hexdigest())
    return n_rows, errors


def previous_records(out: OutputPaths, previous: dict | None, fingerprints: dict, columns) -> dict:
    """Records of the files whose rows a finished run left in ``out.csv`` and whose content
    is unchanged (same size and mtime), read back from that CSV: ``{file id: record}``.

    Nothing is reused (``{}``) unless the CSV is byte for byte the one featx wrote
    (its SHA-256 in the settings record), with the same feature columns.
    """
    if not previous or not isinstance(previous.get("files"), list) or not out.csv.is_file():
        return {}
    unlabelled = [c for c in columns if c != LABEL_COLUMN]  # filename, length, features
    if [c for c in previous.get("columns") or [] if c != LABEL_COLUMN] != unlabelled:
        return {}
    if previous.get("csv_sha256") != file_sha256(out.csv):
        logger.info("%s changed since featx wrote it; every file is analysed again", out.csv)
        return {}
    if is_parquet(out.csv):
        try:
            return previous_parquet_records(out, previous, fingerprints, len(unlabelled) - 2)
        except (OSError, KeyError, TypeError, ValueError, IndexError):
            logger.info("%s does not match its settings record; every file is analysed again", out.csv)
            return {}
    try:
        with open(out.csv, newline="") as fh:
            reader = csv.reader(fh)
            width = len(next(reader))

            def rows_of(n: int):
                rows = [next(reader) for _ in range(n)]
                if any(len(r) != width for r in rows):
                    raise ValueError("a row of another width")
                return int(rows[0][1]), [[float(v) for v in r[2:len(unlabelled)]] for r in rows]

            return reuse_records(previous, fingerprints, rows_of)
    except (StopIteration, KeyError, TypeError, ValueError, IndexError):
        logger.info("%s does not match its settings record; every file is analysed again", out.csv)
        return {}


