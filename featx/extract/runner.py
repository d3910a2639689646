"""Corpus-level extraction: parallel workers, resume through the journal, final output."""
from __future__ import annotations

import dataclasses
import logging
import os
import time
from pathlib import Path

from .._version import __version__
from ..errors import AudioError, ConfigError, OutputError
from ..features.settings import FeatureSettings
from ..runtime.allocator import WORKER_VAR, keep_work_arrays
from .corpus import find_corpus

logger = logging.getLogger(__name__)
from ..io.atomic import refuse_symlink
from ..io.digest import file_sha256
from ..io.guard import check_output_file
from ..io.journal import Journal, _settings_diff
from ..runtime.progress import progress_bar
from ..runtime.threads import limited_threads
from .executors import check_address, check_wait_workers
from .executors import map_files as cluster_map
from .file import _extract_arrays
from .labels import labels_digest, resolve_labels
from .outputs import (
    OutputPaths,
    check_writable,
    read_settings_sidecar,
    wrote_errors_before,
)
from .pool import map_files
from .sinks import assemble_table, previous_records

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


def _work(path: str, settings: FeatureSettings):
    """Worker task: analyse one file, returning a JSON-ready record."""
    if os.environ.get(WORKER_VAR) == "1":  # in `featx extract` and its worker processes
        keep_work_arrays()
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
    scheduler: str | None = None,
    wait_workers: float | None = None,
) -> ExtractionResult:
    """Extract features from every audio file in ``inputs`` into the CSV ``output``.

    Parameters
    ----------
    inputs : iterable of path
        Audio files, or folders searched recursively.
    output : path
        The CSV (or ``.parquet`` table) to write. A settings record ``OUT.settings.json`` is written beside
        it, and ``<stem>.errors.csv`` (``<name>.errors.csv`` for Parquet) when files were skipped.
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
    scheduler : str, optional
        Address of a running ``dask.distributed`` scheduler (``tcp://host:8786``): the
        files are analysed on its workers, which must read them (a shared file system);
        this process keeps the journal and writes the output, the same bytes as a local
        run. ``None``: ``jobs`` local processes.
    wait_workers : float >= 0, optional
        With ``scheduler``: seconds to wait while the cluster has no worker (at the
        start, or when every worker has left) before the run stops with an error;
        default :data:`featx.extract.executors.WAIT_WORKERS`.

    Raises
    ------
    ConfigError, DataError, OutputError
        Before any file is analysed, for bad inputs, labels or output location.

    Examples
    --------
    >>> import featx
    >>> result = featx.run_extraction(["genres/"], "features.csv",
    ...                               settings=featx.FeatureSettings())  # doctest: +SKIP
    >>> result.n_files, result.n_rows, len(result.errors)  # doctest: +SKIP
    (1000, 9990, 0)
    """
    t0 = time.perf_counter()
    jobs = default_jobs() if jobs is None else jobs
    if not isinstance(jobs, int) or jobs < 1:
        raise ConfigError(f"jobs must be an integer >= 1. Received: jobs={jobs!r}", param="jobs")
    out = OutputPaths(Path(output))
    if out.csv.suffix.lower() not in (".csv", ".parquet"):
        raise ConfigError(f"output must be a .csv or .parquet file. Received: {str(out.csv)!r}")
    if out.csv.is_dir():
        raise OutputError(f"output {str(out.csv)!r} is a folder; expected a CSV file path")
    if scheduler is not None:  # a malformed address ends the run before anything is read

        scheduler = check_address(scheduler)
        if wait_workers is not None:
            wait_workers = check_wait_workers(wait_workers)
    files = find_corpus(inputs)
    label_list = resolve_labels(files, labels)

    named = [labels] if labels not in ("folder", "none") else []
    for path in (out.csv, out.settings, out.errors):  # never onto an input or the labels file
        check_output_file(path, [*named, *(f.path for f in files)], featx_folders=False)
    _check_names(files, settings)
    check_writable(out.csv.parent)
    for path in (out.csv, out.settings, out.errors):  # refused before any work, not at the end
        refuse_symlink(path, what="output")
        if path.is_dir():
            raise OutputError(f"{str(path)!r} is a folder where featx extract writes a file; "
                              "move it away or choose another output")

    if not overwrite and out.errors.is_file() and not wrote_errors_before(out):
        raise OutputError(f"{out.errors} already exists and was not written by featx extract for "
                          f"{out.csv.name}; pass overwrite=True to replace it, or choose another output")

    fingerprints = {}
    for f in files:
        try:
            fingerprints[f.id] = f.fingerprint()
        except OSError:  # vanished meanwhile: its worker reports it as a skipped file
            fingerprints[f.id] = [-1, -1]
    header = _journal_header(settings)
    record = {
        "featx_version": __version__,
        "settings": settings.to_dict(),
        "labels": "none" if label_list is None else ("folder" if labels == "folder" else "file"),
        "labels_file": None if labels in ("none", "folder") else os.path.abspath(labels),
        "labels_sha256": labels_digest(labels),
        "columns": settings.columns(labelled=label_list is not None),
        "files": [
            {"id": f.id, "path": os.path.abspath(f.path), "size": fingerprints[f.id][0],
             "mtime_ns": fingerprints[f.id][1],
             **({} if label_list is None else {"label": label_list[i]})}
            for i, f in enumerate(files)
        ],
    }

    previous = None
    if not overwrite and out.csv.exists():
        previous = read_settings_sidecar(out.csv)
        if previous is None:
            raise OutputError(
                f"{out.csv} already exists and was not made by featx extract with these "
                "settings; pass overwrite=True to replace it, or choose another output"
            )
        if not out.journal.exists() and not os.path.islink(out.journal):
            _check_previous(out, previous, record)
            if _identity(previous) == _identity(record) and out.csv.is_file() \
                    and previous.get("csv_sha256") == file_sha256(out.csv):
                errors = [tuple(e) for e in previous.get("errors", [])]
                return ExtractionResult(
                    out.csv, len(files), int(previous.get("rows", 0)), errors, 0,
                    time.perf_counter() - t0, up_to_date=True,
                )

    journal = Journal(out.journal, header)
    journal.open(fresh=overwrite)  # locked until closed: a second run on this output is refused
    try:
        results = {} if overwrite else previous_records(out, previous, fingerprints, record["columns"])
        results.update({k: r for k, r in journal.records.items()
                        if k in fingerprints and r.get("fingerprint") == fingerprints[k]})
        if results:
            logger.info("%d of %d file(s) unchanged since an earlier run", len(results), len(files))
        todo = [f for f in files if f.id not in results]
        by_path = {str(f.path): f.id for f in todo}

        def finished(rec: dict) -> None:
            key = by_path[rec["key"]]
            rec = _keyed(rec, key, fingerprints[key])
            journal.append(rec)
            results[key] = rec

        _analyse([str(f.path) for f in todo], finished, settings=settings, jobs=jobs,
                 progress=progress, total=len(files), scheduler=scheduler, wait_workers=wait_workers)
        n_rows, errors = assemble_table(out, results, files, label_list, settings, record)
        journal.close(remove=True)
    finally:
        journal.close(remove=journal.unused)  # a run that failed before any file leaves no journal
    return ExtractionResult(out.csv, len(files), n_rows, errors, len(todo), time.perf_counter() - t0)


def _journal_header(settings: FeatureSettings) -> dict:
    """The journal's header: what its records depend on (labels are applied when writing)."""
    return {"kind": "extract", "settings": settings.to_dict()}


def _keyed(rec: dict, file_id: str, fingerprint: list[int]) -> dict:
    """A worker's record (keyed by path) as journalled: keyed by the file's id, with its
    fingerprint; row names are dropped (they follow from the id)."""
    rec = {**rec, "key": file_id, "fingerprint": fingerprint}
    rec.pop("names", None)
    return rec


def _check_names(files, settings: FeatureSettings) -> None:
    """Preset 'gtzan' names rows by bare file name: two files of one name would merge."""
    if settings.preset != "gtzan":
        return
    seen: dict[str, str] = {}
    for f in files:
        name = f.id.rsplit("/", 1)[-1]
        if name in seen:
            raise ConfigError(
                f"preset 'gtzan' names rows by file name (Kaggle's form), and {seen[name]} and "
                f"{f.path} are both {name!r}; rename one, or use preset 'default', which names "
                "rows by their path under the input folder"
            )
        seen[name] = str(f.path)


def _identity(record: dict | None) -> dict:
    """What decides an output's content: settings, labels, and every input file's fingerprint."""
    record = record or {}
    files = [{k: e.get(k) for k in ("id", "path", "size", "mtime_ns", "label")}
             for e in record.get("files") or [] if isinstance(e, dict)]
    return {"settings": record.get("settings"), "labels": record.get("labels"),
            "labels_sha256": record.get("labels_sha256"), "columns": record.get("columns"),
            "files": files}


def _check_previous(out: OutputPaths, previous: dict, record: dict) -> None:
    """Refuse to replace a CSV featx wrote with other settings or another set of files."""
    ids = [e.get("id") for e in previous.get("files") or [] if isinstance(e, dict)]
    if previous.get("settings") != record["settings"]:
        what = _settings_diff({"settings": previous.get("settings")}, {"settings": record["settings"]})
    elif "files" in previous and ids != [e["id"] for e in record["files"]]:
        new = [e["id"] for e in record["files"] if e["id"] not in set(ids)]
        gone = [i for i in ids if i not in {e["id"] for e in record["files"]}]
        what = "a different set of input files" + (
            f": {len(new)} new (e.g. {new[0]!r})" if new else "") + (
            f"{';' if new else ':'} {len(gone)} gone (e.g. {gone[0]!r})" if gone else "")
    else:
        return
    raise OutputError(
        f"{out.csv} already exists, made with other settings or inputs ({what}); "
        "pass overwrite=True to replace it, or choose another output"
    )


def _analyse(todo, finished, *, settings, jobs, progress, total, task=None, desc="extract",
             scheduler=None, wait_workers=None):
    """Analyse the files ``todo`` (paths), passing each record to ``finished`` as it comes.

    ``task(path, settings)`` makes one file's record (a module-level function, so that
    workers can import it); by default the feature rows of :func:`_work`. With a
    ``scheduler`` address the tasks run on that Dask cluster
    (:func:`featx.extract.executors.map_files`), which may be without workers for at
    most ``wait_workers`` seconds (``None``: :data:`featx.extract.executors.WAIT_WORKERS`).
    """
    task = _work if task is None else task
    bar = progress_bar(total=total, initial=total - len(todo), unit="file", desc=desc,
                       progress=progress)
    with bar:
        if scheduler is not None:
            for rec in cluster_map(task, todo, args=(settings,), scheduler=scheduler,
                                   wait_workers=wait_workers):
                finished(rec)
                bar.update()
            return
        if jobs == 1 or len(todo) <= 1:
            # one BLAS thread here too, so that every -j gives the very same numbers
            with limited_threads():
                for key in todo:
                    finished(task(key, settings))
                    bar.update()
            return

        # one BLAS/FFT thread per worker (the workers already use every core); a file
        # whose worker dies is read again alone and, if it kills that one too, skipped
        for rec in map_files(task, todo, jobs=jobs, args=(settings,)):
            finished(rec)
            bar.update()
