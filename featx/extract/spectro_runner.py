"""Corpus-level spectrograms: every audio file's images into a spectrogram store.

The same corpus walking, labels, worker pool and progress display as
:func:`featx.extract.runner.run_extraction`; only the per-file work (images instead
of feature rows) and the sink (:class:`featx.extract.store_writer.StoreWriter`
instead of a CSV) differ. Each worker encodes its file's images as the store's chunks,
with their checksums (:func:`featx.extract.store_format.encode_images`), so that this
process only writes files; each file's images are appended to the store as soon as
the file is finished, so an interrupted run keeps every finished file and a rerun of
the same command adds only the rest. Each file's size and modification time are
committed with its rows: a rerun that finds a stored file replaced (or given another
label) refuses, naming it, before anything is analysed; ``overwrite=True`` rebuilds
the store.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import logging
import os
import time
from pathlib import Path

import numpy as np

from ..runtime.allocator import WORKER_VAR, keep_work_arrays
from ..errors import AudioError, ConfigError, DataError
from ..features.spectrograms import SpectrogramSettings, segment_spectrograms
from ..io.atomic import atomic_write, refuse_symlink, write_error
from .audio import load, segment
from .corpus import find_corpus
from .executors import check_address, check_wait_workers
from .labels import resolve_labels
from .runner import _analyse, default_jobs
from .store_format import encode_images
from .store_writer import StoreWriter

logger = logging.getLogger(__name__)

__all__ = ["SpectrogramResult", "file_spectrograms", "run_spectrograms"]

#: Segments analysed together: bounds the memory of one file's images in flight.
SEGMENT_BATCH = 16
#: First line of the errors CSV featx writes beside a store (how featx knows it wrote one).
ERRORS_HEADER = "file,reason"


@dataclasses.dataclass
class SpectrogramResult:
    """What :func:`run_spectrograms` did."""

    output: Path
    n_files: int  # audio files found in the inputs
    n_segments: int  # segments in the store after the run
    errors: list[tuple[str, str]]  # (file, reason) of skipped inputs
    n_extracted: int  # files analysed in this run (the rest were in the store already)
    n_added: int  # segments added in this run
    seconds: float

    @property
    def errors_path(self) -> Path:
        return errors_path(self.output)

    @property
    def up_to_date(self) -> bool:
        return self.n_extracted == 0 and not self.errors


def errors_path(store) -> Path:
    """The errors CSV beside ``store``: ``<store stem>.errors.csv``, as for a feature CSV."""
    store = Path(store)
    return store.with_name(store.stem + ".errors.csv")


def track_id(file_id: str) -> str:
    """A store's track id for a corpus file: its id without the extension (``jazz/jazz.00001``)."""
    suffix = Path(file_id).suffix
    return file_id[: -len(suffix)] if suffix else file_id


def file_spectrograms(y: np.ndarray, settings: SpectrogramSettings, *, path="audio"):
    """Every image kind of ``settings`` for each segment of one decoded signal.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Mono audio at ``settings.sr``.
    settings : SpectrogramSettings
    path : str
        Named in the error for audio shorter than one segment.

    Returns
    -------
    images : dict
        ``kind -> np.ndarray [shape=(n_segments, height, width), dtype=float32]``.
    length : int
        Samples per segment (the whole signal's for whole-file images).

    Raises
    ------
    AudioError
        The audio is shorter than one segment.
    """
    segments = segment(y, hop=settings.segment_hop, length=settings.segment_samples)
    if len(segments) == 0 or segments.shape[-1] == 0:
        seg = settings.segment_samples
        what = (f"shorter than one {settings.segment_seconds:g} s segment ({seg} samples at "
                f"{settings.sr} Hz)" if seg else "empty")
        raise AudioError(f"{path}: {len(y) / settings.sr:.2f} s long, {what}")
    parts = [segment_spectrograms(segments[i:i + SEGMENT_BATCH], settings=settings)
             for i in range(0, len(segments), SEGMENT_BATCH)]
    images = {kind: np.concatenate([p[kind] for p in parts]) for kind in settings.kinds}
    return images, int(segments.shape[-1])


def _spectro_work(path: str, settings: SpectrogramSettings) -> dict:
    """Worker task: one file's images, encoded as the store's chunks, or the reason it is skipped."""
    if os.environ.get(WORKER_VAR) == "1":  # in featx's worker processes (see featx.runtime.allocator)
        keep_work_arrays()
    try:
        y = load(path, sr=settings.sr)
        images, length = file_spectrograms(y, settings, path=path)
        encoded = encode_images(images, kinds=settings.kinds, key=path)
    except AudioError as exc:
        return {"key": path, "error": str(exc).removeprefix(f"{path}: ")}
    except MemoryError:
        return {"key": path, "error": "not enough memory to analyse this file"}
    return {"key": path, "images": encoded, "length": length}


def run_spectrograms(
    inputs,
    output,
    *,
    settings: SpectrogramSettings | None = None,
    labels: str = "folder",
    jobs: int | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
    scheduler: str | None = None,
    wait_workers: float | None = None,
) -> SpectrogramResult:
    """Make the spectrogram images of every audio file in ``inputs`` into the store ``output``.

    Parameters
    ----------
    inputs : iterable of path
        Audio files, or folders searched recursively (ids as for ``featx extract``).
    output : path
        The store folder (see :mod:`featx.data.store`): new, empty, or a store made with
        the same settings, which is resumed (files already in it are not analysed again).
        Files that are skipped are listed in ``<stem>.errors.csv`` beside it.
    settings : SpectrogramSettings, optional
        How the images are made; default ``SpectrogramSettings()`` (mel, MFCC and
        chroma of every 3-s segment).
    labels : str
        ``'folder'`` (each file's parent folder), ``'none'``, or the path of a CSV
        mapping files to labels.
    jobs : int > 0, optional
        Worker processes; default: all available cores.
    overwrite : bool
        Rebuild a store featx made (with other settings, or from files that changed
        since). A folder featx did not make is never replaced.
    progress : bool or None
        Show a progress bar; ``None``: only on a terminal.
    scheduler : str, optional
        Address of a running ``dask.distributed`` scheduler (``tcp://host:8786``): the
        files are analysed on that cluster instead of local processes (``jobs`` is then
        ignored); the store is written here, exactly as by a local run.
    wait_workers : float >= 0, optional
        With ``scheduler``: seconds to wait while the cluster has no worker (at the
        start, or when every worker has left) before the run stops with an error;
        default :data:`featx.extract.executors.WAIT_WORKERS`.

    Returns
    -------
    SpectrogramResult

    Raises
    ------
    ConfigError, DataError, OutputError
        Before any file is analysed, for bad inputs, labels or output location, a store
        made with other settings (naming them), labels that differ from the store's, or
        a stored file replaced since it was added (naming it).

    Examples
    --------
    >>> import featx
    >>> from featx.features.spectrograms import SpectrogramSettings
    >>> result = featx.run_spectrograms(["genres/"], "mel128", settings=SpectrogramSettings(
    ...     kinds="mel", image_size="128x128", normalisation="per-image"))  # doctest: +SKIP
    >>> result.n_files, result.n_segments, len(result.errors)  # doctest: +SKIP
    (1000, 9990, 0)
    """
    t0 = time.perf_counter()
    jobs = default_jobs() if jobs is None else jobs
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ConfigError(f"jobs must be an integer >= 1. Received: jobs={jobs!r}", param="jobs")
    settings = SpectrogramSettings() if settings is None else settings
    if not isinstance(settings, SpectrogramSettings):
        raise ConfigError(f"settings must be a SpectrogramSettings. Received: settings={settings!r}")
    path = Path(output)
    if scheduler is not None:  # a malformed address ends the run before the store is touched
        scheduler = check_address(scheduler)
        if wait_workers is not None:
            wait_workers = check_wait_workers(wait_workers)
    files = find_corpus(inputs)
    label_list = resolve_labels(files, labels)
    errors_file = errors_path(path)
    refuse_symlink(errors_file, what="errors file")

    writer = StoreWriter(path, settings, overwrite=overwrite).open()  # locked from here on
    try:
        _check_labels(path, files, label_list, writer.records)
        fingerprints = _check_unchanged(path, files, writer.records)
        done = writer.done
        todo = [f for f in files if f.id not in done]
        if len(todo) < len(files):
            logger.info("%d of %d file(s) already in %s", len(files) - len(todo), len(files), path)
        index = {str(f.path): i for i, f in enumerate(files)}
        start = len(writer)
        failed: dict[int, tuple[str, str]] = {}

        def finished(rec: dict) -> None:
            i = index[rec["key"]]
            f = files[i]
            if "error" in rec:
                failed[i] = (str(f.path), rec["error"])
                return
            writer.append(rec["images"], key=f.id, filename=f.path.name,
                          label=None if label_list is None else label_list[i],
                          length=rec["length"], track=track_id(f.id),
                          fingerprint=fingerprints.get(f.id))

        _analyse([str(f.path) for f in todo], finished, settings=settings, jobs=jobs,
                 progress=progress, total=len(files), task=_spectro_work, desc="spectrograms",
                 scheduler=scheduler, wait_workers=wait_workers)
        n_segments = len(writer)
    finally:
        writer.close()
    errors = [failed[i] for i in sorted(failed)]
    _write_errors(errors_file, errors)
    return SpectrogramResult(path, len(files), n_segments, errors, len(todo),
                             n_segments - start, time.perf_counter() - t0)


def _check_labels(path: Path, files, label_list, records: dict) -> None:
    """Refuse to add to a store whose rows of these files carry other labels."""
    held = {row[0]: row[3] for record in records.values() for row in record["rows"]}
    for i, f in enumerate(files):
        track = track_id(f.id)
        if track not in held:
            continue
        old = held[track]
        new = None if label_list is None else label_list[i]
        if old != new:
            raise DataError(
                f"{path} holds {track!r} with label {old!r}, and these labels give it {new!r}; "
                "use the labels the store was made with, or rerun with overwrite=True to "
                "rebuild the store"
            )


def _check_unchanged(path: Path, files, records: dict) -> dict:
    """Each file's ``[size, mtime_ns]``; refuse when a file in the store changed since it was added.

    The store only grows (rows are never rewritten), so a replaced file's old images
    cannot be superseded in place: the run stops before any work, naming the file.
    """
    fingerprints = {}
    for f in files:
        try:
            fingerprints[f.id] = f.fingerprint()
        except OSError:  # vanished meanwhile: its worker reports it as a skipped file
            continue
        old = records.get(f.id, {}).get("fingerprint")
        if old is not None and list(old) != fingerprints[f.id]:
            raise DataError(
                f"{f.path} changed since it was added to {path} (size {old[0]} -> "
                f"{fingerprints[f.id][0]} bytes, or a new modification time); its images there "
                "are stale: rerun with overwrite=True to rebuild the store"
            )
    return fingerprints


def _write_errors(path: Path, errors: list[tuple[str, str]]) -> None:
    """Write the errors CSV, or remove one featx wrote before when nothing was skipped."""
    if errors:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(ERRORS_HEADER.split(","))
        writer.writerows(errors)
        atomic_write(path, buffer.getvalue())
        return
    if path.is_file() and not path.is_symlink():
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                ours = fh.readline().rstrip("\r\n") == ERRORS_HEADER
            if ours:
                path.unlink()
        except OSError as exc:
            raise write_error(path, exc) from None
