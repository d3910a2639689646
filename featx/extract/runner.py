"""Corpus-level extraction: parallel workers, resume through the journal, final output."""
from __future__ import annotations

import dataclasses
import logging
import os
import time
from pathlib import Path


from .. import __version__
from .audio import find_audio
from ..errors import AudioError, ConfigError, OutputError
from ..features.settings import FeatureSettings

logger = logging.getLogger(__name__)
from .file import _extract_arrays
from .labels import resolve_labels
from .sinks import OutputPaths, _assemble, _check_writable, read_settings_sidecar
from ..io.journal import Journal, _JOURNAL_VERSION, _settings_diff


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
