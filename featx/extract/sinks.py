"""Output sinks of an extraction: the feature CSV, its settings record and the errors CSV."""
from __future__ import annotations

import csv
import dataclasses
import json
import logging
import os
import tempfile
from pathlib import Path


from ..io.atomic import atomic_write
from ..errors import DataError, OutputError

logger = logging.getLogger(__name__)
from ..io.journal import Journal


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
        return self.csv.with_name(self.csv.stem + ".errors.csv")

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
        raise OutputError(f"output folder {str(folder)!r} is not writable; choose another -o")


def _format(value: float) -> str:
    return repr(float(value))


def _assemble(out: OutputPaths, journal: Journal, keys, label_list, settings, record):
    """Write the CSV in input order from the journal, then the error list and settings."""
    columns = settings.columns(labelled=label_list is not None)
    errors: list[tuple[str, str]] = []
    n_rows = 0
    names_seen: dict[str, str] = {}
    fd, tmp = tempfile.mkstemp(prefix=f".{out.csv.name}.", suffix=".tmp", dir=out.csv.parent)
    try:
        with os.fdopen(fd, "w", newline="") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(columns)
            for i, key in enumerate(keys):
                rec = journal.read(key)
                if "error" in rec:
                    errors.append((key, rec["error"]))
                    continue
                label = [label_list[i]] if label_list is not None else []
                for name, values in zip(rec["names"], rec["values"]):
                    if name in names_seen and names_seen[name] != key:
                        logger.warning(
                            "filename %r occurs for %s and %s; rows from both are kept",
                            name, names_seen[name], key,
                        )
                    names_seen.setdefault(name, key)
                    writer.writerow([name, rec["length"], *map(_format, values), *label])
                    n_rows += 1
            fh.flush()
            os.fsync(fh.fileno())
        if errors:
            lines = [["file", "reason"], *errors]
            text = "".join(_csv_line(r) for r in lines)
            atomic_write(out.errors, text)
        else:
            out.errors.unlink(missing_ok=True)
        record = dict(record, rows=n_rows, errors=[list(e) for e in errors])
        atomic_write(out.settings, json.dumps(record, indent=2) + "\n")
        os.replace(tmp, out.csv)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return n_rows, errors


def _csv_line(fields) -> str:
    import io

    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(fields)
    return buf.getvalue()
