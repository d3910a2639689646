"""Output sinks of an extraction: the feature CSV, its settings record and the errors CSV."""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import logging
import os
from pathlib import Path

from ..errors import DataError, OutputError
from ..io.atomic import atomic_write, commit, discard_on_failure, temp_beside

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- output files


@dataclasses.dataclass(frozen=True)
class OutputPaths:
    """The files of one extraction run, all beside ``csv``."""

    csv: Path

    @property
    def settings(self) -> Path:
        return self.csv.with_name(self.csv.name + ".settings.json")

    @property
    def errors(self) -> Path:
        # features.csv -> features.errors.csv; features.parquet -> features.parquet.errors.csv
        # (so that a CSV and a Parquet table side by side never share one)
        base = self.csv.stem if self.csv.suffix.lower() == ".csv" else self.csv.name
        return self.csv.with_name(base + ".errors.csv")

    @property
    def journal(self) -> Path:
        return self.csv.with_name(self.csv.name + ".partial")


def read_settings_sidecar(csv_path) -> dict | None:
    """The record featx wrote beside a feature CSV, or ``None`` if there is none."""
    side = OutputPaths(Path(csv_path)).settings
    if not side.exists():
        return None
    try:
        return json.loads(side.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{side}: unreadable settings record ({exc}); expected JSON written by featx extract") from None


def _check_writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"output folder {str(folder)!r} cannot be created ({exc.strerror})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"output folder {str(folder)!r} is not writable; choose another output")


def _format(value: float) -> str:
    return repr(float(value))


def _assemble(out: OutputPaths, records: dict, files, label_list, settings, record):
    """Write the CSV in input order from ``records`` (``{file id: record}``), then the
    error list and the settings record (with each file's fingerprint and outcome).
    A ``.parquet`` output is written by :func:`featx.extract.parquet.assemble_parquet`."""
    from .corpus import row_names
    from .parquet import assemble_parquet, is_parquet

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
            fh.write(_csv_line(columns))
            digest.update(_csv_line(columns).encode())
            for i, (file, entry) in enumerate(zip(files, entries)):
                rec = records[file.id]
                if "error" in rec:
                    errors.append((str(file.path), rec["error"]))
                    entry["error"] = rec["error"]
                    continue
                label = [label_list[i]] if label_list is not None else []
                names = row_names(file.id, len(rec["values"]), whole_file=whole_file, bare=bare)
                for name, values in zip(names, rec["values"]):
                    line = _csv_line([name, rec["length"], *map(_format, values), *label])
                    fh.write(line)
                    digest.update(line.encode())
                entry["rows"] = len(names)
                n_rows += len(names)
            fh.flush()
            os.fsync(fh.fileno())
        _finish_outputs(out, tmp, record, entries=entries, n_rows=n_rows, errors=errors,
                        digest=digest.hexdigest())
    return n_rows, errors


def _wrote_errors_before(out: OutputPaths) -> bool:
    """True if the settings record still beside the table says featx wrote its errors CSV."""
    try:
        previous = read_settings_sidecar(out.csv)
    except DataError:
        return False
    return bool(previous and previous.get("errors"))


def _finish_outputs(out: OutputPaths, tmp, record: dict, *, entries, n_rows: int, errors,
                    digest: str) -> None:
    """Write the errors CSV (or remove the one an earlier run left) and the settings
    record, then put the finished table ``tmp`` in place of ``out.csv``.

    The one ending of every sink (CSV and Parquet). Call it inside
    :func:`~featx.io.atomic.discard_on_failure` for ``tmp``.

    Parameters
    ----------
    out : OutputPaths
        The run's files.
    tmp : Path
        The finished table, written beside ``out.csv`` by :func:`~featx.io.atomic.temp_beside`.
    record : dict
        The settings record so far; it gains ``files`` (``entries``: each file's
        fingerprint and outcome), ``rows`` (``n_rows``), ``errors`` and ``csv_sha256``
        (``digest``, the SHA-256 of the table's bytes).
    errors : list of (file, reason)
        The files that failed, for the errors CSV.
    """
    if errors:
        atomic_write(out.errors, "".join(_csv_line(r) for r in [["file", "reason"], *errors]))
    elif out.errors.is_file() and not out.errors.is_symlink() and _wrote_errors_before(out):
        out.errors.unlink()  # the previous run's list, which no longer holds
    record = dict(record, files=entries, rows=n_rows, errors=[list(e) for e in errors],
                  csv_sha256=digest)
    atomic_write(out.settings, json.dumps(record, indent=2) + "\n")
    commit(tmp, out.csv)


def file_sha256(path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def previous_records(out: OutputPaths, previous: dict | None, fingerprints: dict, columns) -> dict:
    """Records of the files whose rows a finished run left in ``out.csv`` and whose content
    is unchanged (same size and mtime), read back from that CSV: ``{file id: record}``.

    Nothing is reused (``{}``) unless the CSV is byte for byte the one featx wrote
    (its SHA-256 in the settings record), with the same feature columns.
    """
    from ..features.settings import LABEL_COLUMN

    if not previous or not isinstance(previous.get("files"), list) or not out.csv.is_file():
        return {}
    unlabelled = [c for c in columns if c != LABEL_COLUMN]  # filename, length, features
    if [c for c in previous.get("columns") or [] if c != LABEL_COLUMN] != unlabelled:
        return {}
    if previous.get("csv_sha256") != file_sha256(out.csv):
        logger.info("%s changed since featx wrote it; every file is analysed again", out.csv)
        return {}
    from .parquet import is_parquet, previous_parquet_records

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


def reuse_records(previous: dict, fingerprints: dict, rows_of) -> dict:
    """Walk the settings record's files in table order: ``{file id: record}`` of the unchanged ones.

    ``rows_of(n)`` consumes the next ``n`` rows of the table and returns their
    ``(length, values)``; it raises (``ValueError``...) when the table does not hold
    them. Files that failed keep their error; changed files' rows are skipped.
    """
    reused: dict[str, dict] = {}
    for entry in previous["files"]:
        key = entry["id"]
        same = fingerprints.get(key) == [entry["size"], entry["mtime_ns"]]
        if "error" in entry:
            if same:
                reused[key] = {"key": key, "fingerprint": fingerprints[key], "error": entry["error"]}
            continue
        length, values = rows_of(int(entry["rows"]))
        if same:
            reused[key] = {"key": key, "fingerprint": fingerprints[key], "length": length, "values": values}
    return reused


def _csv_line(fields) -> str:
    import io

    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(fields)
    return buf.getvalue()
