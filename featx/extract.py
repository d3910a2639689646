"""Corpus-level extraction: labels, parallel workers, resumable atomic CSV output.

Layers: :func:`extract_features` turns one audio file into rows;
:func:`run_extraction` turns a list of inputs into one CSV.

How a run survives interruption
-------------------------------
Finished files are appended, one JSON line each, to a journal ``OUT.partial`` that
starts with a header holding the settings. Only the main process writes it, each
record with a single write. When a run is interrupted (Ctrl-C, ``kill -9``) the
journal keeps every file finished so far; at worst its last line is cut short, and
that line is discarded on the next run. Re-running the same command reads the
journal, extracts only the files not in it, and then writes ``OUT`` in input order
to a temporary file that atomically replaces ``OUT``: the output is either absent,
the previous complete file, or the new complete file, never half-written.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from . import __version__
from .audio import find_audio, load, segment
from ._io import atomic_write
from .errors import AudioError, ConfigError, DataError, OutputError
from .settings import LABEL_COLUMN, FeatureSettings

logger = logging.getLogger(__name__)

#: Bounds the memory of one file's analysis: segments are analysed this many at a time.
SEGMENT_BATCH = 16
_JOURNAL_VERSION = 1


def row_names(path, n_segments: int, *, whole_file: bool) -> list[str]:
    """Kaggle-style ``filename`` values: ``<stem>.<segment><ext>``, or the file name."""
    path = Path(path)
    if whole_file:
        return [path.name]
    return [f"{path.stem}.{i}{path.suffix}" for i in range(n_segments)]


def extract_features(path, settings: FeatureSettings):
    """Feature rows of one audio file.

    Returns
    -------
    rows : pandas.DataFrame
        Columns ``filename``, ``length``, then ``settings.feature_columns()``; one row
        per full segment (or one for the whole file).

    Raises
    ------
    AudioError
        The file cannot be decoded, or is shorter than one segment.
    """
    import pandas as pd
    from threadpoolctl import threadpool_limits

    # one BLAS thread, as in `featx extract`: the same audio gives the very same numbers
    with threadpool_limits(limits=1):
        names, length, values = _extract_arrays(path, settings)
    frame = pd.DataFrame(values, columns=settings.feature_columns())
    frame.insert(0, "length", length)
    frame.insert(0, "filename", names)
    return frame


def _extract_arrays(path, settings: FeatureSettings):
    from .features import segment_features

    y = load(path, sr=settings.sr)
    seg_len = settings.segment_samples
    segments = segment(y, hop=settings.segment_hop, length=seg_len)
    if len(segments) == 0:
        raise AudioError(
            f"{path}: {len(y) / settings.sr:.2f} s long, shorter than one "
            f"{settings.segment_seconds:g} s segment ({seg_len} samples at {settings.sr} Hz)"
        )
    cols = settings.feature_columns()
    values = np.empty((len(segments), len(cols)), dtype=np.float64)
    for start in range(0, len(segments), SEGMENT_BATCH):
        batch = segments[start : start + SEGMENT_BATCH]
        feats = segment_features(batch, sr=settings.sr, settings=settings)
        for j, name in enumerate(cols):
            values[start : start + len(batch), j] = feats[name]
    names = row_names(path, len(segments), whole_file=seg_len is None)
    return names, segments.shape[1], values


# --------------------------------------------------------------------------- labels


def read_label_map(path) -> dict[str, str]:
    """Read a CSV mapping audio files to labels.

    The file needs a ``label`` column and one naming the file: ``file``, ``filename``
    or ``path``. Entries may be paths or bare file names (with or without extension).
    """
    import pandas as pd

    path = Path(path)
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise ConfigError(f"labels file not found: {str(path)!r}") from None
    except Exception as exc:
        raise DataError(f"{path}: cannot be read as CSV ({exc})") from None
    key = next((c for c in ("file", "filename", "path") if c in table.columns), None)
    if key is None or LABEL_COLUMN not in table.columns:
        raise DataError(
            f"{path}: expected columns 'file' (or 'filename'/'path') and 'label'. "
            f"Received: {', '.join(map(str, table.columns))}"
        )
    mapping: dict[str, str] = {}
    for name, label in zip(table[key], table[LABEL_COLUMN]):
        if not label:
            raise DataError(f"{path}: empty label for {name!r}")
        mapping[str(Path(name))] = label
    return mapping


def _lookup_label(mapping: dict[str, str], file: Path) -> str | None:
    for key in (str(file), str(file.resolve()), file.name, file.stem):
        if key in mapping:
            return mapping[key]
    return None


def resolve_labels(files: list[Path], labels: str) -> list[str] | None:
    """One label per file: ``'folder'`` (parent folder name), ``'none'``, or a CSV path."""
    if labels == "none":
        return None
    if labels == "folder":
        return [f.resolve().parent.name for f in files]
    mapping = read_label_map(labels)
    out, missing = [], []
    for f in files:
        label = _lookup_label(mapping, f)
        (missing.append(str(f)) if label is None else out.append(label))
    if missing:
        raise DataError(
            f"{labels}: no label for {len(missing)} of {len(files)} audio file(s), "
            f"e.g. {missing[0]!r}; expected a row naming each file"
        )
    return out


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


# --------------------------------------------------------------------------- journal


class Journal:
    """Append-only record of finished files; see the module docstring."""

    def __init__(self, path: Path, header: dict):
        self.path = path
        self.header = header
        self.done: dict[str, int] = {}  # file key -> byte offset of its record
        self._fh = None

    def open(self, *, overwrite: bool) -> None:
        if self.path.exists() and not overwrite:
            self._recover()
        else:
            with open(self.path, "wb") as fh:
                fh.write((json.dumps(self.header) + "\n").encode())
        self._fh = open(self.path, "ab", buffering=0)

    def _recover(self) -> None:
        good_end = 0
        with open(self.path, "rb") as fh:
            first = fh.readline()
            try:
                header = json.loads(first)
            except ValueError:
                header = None
            if header is None or not first.endswith(b"\n"):
                # killed before the header was complete: nothing was done yet
                fh.close()
                with open(self.path, "wb") as out:
                    out.write((json.dumps(self.header) + "\n").encode())
                return
            if header != self.header:
                raise OutputError(
                    f"{self.path} holds an unfinished run with other settings "
                    f"({_settings_diff(header, self.header)}); re-run with those settings "
                    "to finish it, or pass --overwrite to start again"
                )
            good_end = fh.tell()
            while True:
                offset = fh.tell()
                line = fh.readline()
                if not line:
                    break
                if not line.endswith(b"\n"):
                    break  # cut short by an interruption
                try:
                    record = json.loads(line)
                    key = record["key"]
                except (ValueError, KeyError, TypeError):
                    break
                self.done[key] = offset
                good_end = fh.tell()
        if good_end < self.path.stat().st_size:
            logger.info("discarding an incomplete last record in %s", self.path)
            with open(self.path, "r+b") as fh:
                fh.truncate(good_end)

    def append(self, record: dict) -> None:
        data = (json.dumps(record, allow_nan=False) + "\n").encode()
        offset = self._fh.seek(0, os.SEEK_END)
        self._fh.write(data)  # one write: a kill leaves the whole line or a cut one
        self.done[record["key"]] = offset

    def read(self, key: str) -> dict:
        with open(self.path, "rb") as fh:
            fh.seek(self.done[key])
            return json.loads(fh.readline())

    def close(self) -> None:
        if self._fh is not None:
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None


def _settings_diff(old: dict, new: dict) -> str:
    parts = []
    for key in sorted(set(old) | set(new)):
        if key == "version":
            continue
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            parts += [f"{k}: {a.get(k)!r} there, {b.get(k)!r} now" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        elif a != b:
            parts.append(f"{key}: {a!r} there, {b!r} now")
    return "; ".join(parts) or "format version differs"


# --------------------------------------------------------------------------- the run


@dataclasses.dataclass
class ExtractionResult:
    """What :func:`run_extraction` did."""

    output: Path
    n_files: int
    n_rows: int
    errors: list[tuple[str, str]]  # (file, reason) of skipped inputs
    n_extracted: int  # files analysed in this run (the rest came from a previous run)
    seconds: float
    up_to_date: bool = False

    @property
    def errors_path(self) -> Path:
        return OutputPaths(self.output).errors


def _file_key(path: Path) -> str:
    return str(path.resolve())


def _work(path: str, settings: FeatureSettings):
    """Worker task: analyse one file, returning a JSON-ready record."""
    try:
        names, length, values = _extract_arrays(path, settings)
    except AudioError as exc:
        return {"key": path, "error": str(exc).removeprefix(f"{path}: ")}
    except MemoryError:
        return {"key": path, "error": "not enough memory to analyse this file"}
    return {"key": path, "names": names, "length": int(length), "values": values.tolist()}


def default_jobs() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def run_extraction(
    inputs,
    output,
    *,
    settings: FeatureSettings,
    labels: str = "folder",
    jobs: int | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
) -> ExtractionResult:
    """Extract features from every audio file in ``inputs`` into the CSV ``output``.

    Parameters
    ----------
    inputs : iterable of path
        Audio files, or folders searched recursively.
    output : path
        The CSV to write. A settings record ``OUT.settings.json`` is written beside
        it, and ``<stem>.errors.csv`` when files were skipped.
    settings : FeatureSettings
    labels : str
        ``'folder'`` (each file's parent folder), ``'none'`` (no label column), or the
        path of a CSV mapping files to labels.
    jobs : int > 0, optional
        Worker processes; default: all available cores.
    overwrite : bool
        Replace an existing output (or unfinished run) made with other settings.
    progress : bool or None
        Show a progress bar; ``None``: only on a terminal.

    Raises
    ------
    ConfigError, DataError, OutputError
        Before any file is analysed, for bad inputs, labels or output location.
    """
    t0 = time.perf_counter()
    jobs = default_jobs() if jobs is None else jobs
    if not isinstance(jobs, int) or jobs < 1:
        raise ConfigError(f"jobs must be a positive integer. Received: jobs={jobs!r}")
    out = OutputPaths(Path(output))
    if out.csv.suffix.lower() != ".csv":
        raise ConfigError(f"output must be a .csv file. Received: {str(out.csv)!r}")
    if out.csv.is_dir():
        raise OutputError(f"output {str(out.csv)!r} is a folder; expected a CSV file path")
    files = find_audio(inputs)
    label_list = resolve_labels(files, labels)
    _check_writable(out.csv.parent)

    keys = [_file_key(f) for f in files]
    header = {
        "featx_journal": _JOURNAL_VERSION,
        "settings": settings.to_dict(),
        "labels": "none" if label_list is None else ("folder" if labels == "folder" else "file"),
    }
    record = {
        "featx_version": __version__,
        "settings": settings.to_dict(),
        "labels": header["labels"],
        "columns": settings.columns(labelled=label_list is not None),
        "inputs": keys,
    }

    if not overwrite and not out.journal.exists() and out.csv.exists():
        previous = read_settings_sidecar(out.csv)
        if previous is None:
            raise OutputError(
                f"{out.csv} already exists and was not made by featx extract with these "
                "settings; pass --overwrite to replace it, or choose another -o"
            )
        same = {k: previous.get(k) for k in ("settings", "labels", "columns", "inputs")} == {
            k: record[k] for k in ("settings", "labels", "columns", "inputs")
        }
        if not same:
            what = _settings_diff(
                {"settings": previous.get("settings"), "labels": previous.get("labels")},
                {"settings": record["settings"], "labels": record["labels"]},
            )
            if previous.get("inputs") != keys and what == "format version differs":
                what = "a different set of input files"
            raise OutputError(
                f"{out.csv} already exists, made with other settings or inputs ({what}); "
                "pass --overwrite to replace it, or choose another -o"
            )
        errors = [tuple(e) for e in previous.get("errors", [])]
        return ExtractionResult(
            out.csv, len(files), int(previous.get("rows", 0)), errors, 0,
            time.perf_counter() - t0, up_to_date=True,
        )

    journal = Journal(out.journal, header)
    journal.open(overwrite=overwrite)
    todo = [k for k in keys if k not in journal.done]
    try:
        _analyse(todo, journal, settings=settings, jobs=jobs, progress=progress, total=len(keys))
    finally:
        journal.close()

    n_rows, errors = _assemble(out, journal, keys, label_list, settings, record)
    out.journal.unlink()
    return ExtractionResult(out.csv, len(files), n_rows, errors, len(todo), time.perf_counter() - t0)


def _analyse(todo, journal, *, settings, jobs, progress, total):
    from tqdm.auto import tqdm

    bar = tqdm(
        total=total, initial=total - len(todo), unit="file", desc="extract",
        disable=(not progress) if progress is not None else None, dynamic_ncols=True,
    )
    with bar:
        if jobs == 1 or len(todo) <= 1:
            from threadpoolctl import threadpool_limits

            # one BLAS thread here too, so that every -j gives the very same numbers
            with threadpool_limits(limits=1):
                for key in todo:
                    journal.append(_work(key, settings))
                    bar.update()
            return
        from joblib import Parallel, delayed, parallel_config

        # one BLAS/FFT thread per worker: the workers already use every core
        with parallel_config(backend="loky", inner_max_num_threads=1):
            results = Parallel(n_jobs=min(jobs, len(todo)), return_as="generator_unordered")(
                delayed(_work)(key, settings) for key in todo
            )
            for rec in results:
                journal.append(rec)
                bar.update()


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
