"""What every extraction sink shares: the run's files, the settings record and the one ending.

:func:`finish_outputs` is the ending of both table sinks (the CSV of
:mod:`featx.extract.sinks` and the Parquet table of :mod:`featx.extract.parquet`): the
errors CSV, the settings record with every file's fingerprint and outcome, then the
finished table put in place atomically. :func:`reuse_records` walks an earlier run's
record so that unchanged files are not analysed again, whatever the table's format.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
from pathlib import Path

from ..errors import DataError, OutputError
from ..io.atomic import atomic_write, commit

__all__ = ["OutputPaths", "read_settings_sidecar", "check_writable", "wrote_errors_before", "finish_outputs",
           "reuse_records", "csv_line", "is_parquet"]

#: File name endings of Parquet tables.
PARQUET_SUFFIXES = (".parquet", ".pq")


def is_parquet(path) -> bool:
    """Whether ``path`` names a Parquet table (by its ending)."""
    return Path(path).suffix.lower() in PARQUET_SUFFIXES


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


def check_writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"output folder {str(folder)!r} cannot be created ({exc.strerror})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"output folder {str(folder)!r} is not writable; choose another output")


def wrote_errors_before(out: OutputPaths) -> bool:
    """True if the settings record still beside the table says featx wrote its errors CSV."""
    try:
        previous = read_settings_sidecar(out.csv)
    except DataError:
        return False
    return bool(previous and previous.get("errors"))


def finish_outputs(out: OutputPaths, tmp, record: dict, *, entries, n_rows: int, errors,
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
        atomic_write(out.errors, "".join(csv_line(r) for r in [["file", "reason"], *errors]))
    elif out.errors.is_file() and not out.errors.is_symlink() and wrote_errors_before(out):
        out.errors.unlink()  # the previous run's list, which no longer holds
    record = dict(record, files=entries, rows=n_rows, errors=[list(e) for e in errors],
                  csv_sha256=digest)
    atomic_write(out.settings, json.dumps(record, indent=2) + "\n")
    commit(tmp, out.csv)


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


def csv_line(fields) -> str:
    """One CSV line (``\\n``-terminated) of ``fields``, quoted as the csv module quotes."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(fields)
    return buf.getvalue()
