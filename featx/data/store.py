"""The spectrogram store: images of every segment on disk, with their rows and settings.

A store is a folder in the `Zarr <https://zarr.dev>`_ v3 format::

    STORE/
      zarr.json     the group; its attributes hold featx's marker and the settings record
      mel/          one float32 array per kind, shape (n_segments, height, width),
      mfcc/         chunked per segment: one segment's image is one chunk, read alone
      chroma/
      rows.jsonl    the row table: one line per finished file (track id, segment,
                    filename, label, length of each of its segments)

Why Zarr rather than HDF5
-------------------------
* **Appending as files finish, never half-written.** Zarr keeps every chunk and every
  metadata document in its own small file, each replaced atomically by the library
  (written beside, then renamed). A killed writer therefore leaves whole chunks and
  whole metadata, and featx commits a file's segments by appending its line to
  ``rows.jsonl`` only after all their chunks are written: readers see exactly the rows
  listed there, so an interrupted file simply does not exist. HDF5 keeps one file
  whose internal structures are updated in place; a process killed while it holds
  the file open for writing can leave the whole file unreadable.
* **Readers while a writer works.** Any number of processes may read a Zarr store
  while it grows (each sees the rows committed when it opened it); HDF5 allows that
  only in its single-writer/multiple-reader mode, with restrictions on growing data.
* **Object stores and Dask.** The same layout works unchanged on S3/GCS-style object
  stores, where there are no files to lock or update in place, and Dask reads each
  array directly: ``dask.array.from_zarr("STORE", component="mel")[:len(store)]``
  (a store that was not closed cleanly may hold spare rows after the committed ones).
* The cost: one file per segment and kind (about 30,000 for GTZAN in 3-s segments),
  which local file systems handle without trouble.

The writer holds an exclusive lock on ``rows.jsonl`` (through :class:`featx.io.journal.Journal`),
so two writers never interleave; reopening a store resumes it, and a store made with
other settings is refused, naming the settings that differ.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError, OutputError
from ..features.spectrograms import KINDS, SpectrogramSettings
from ..io.journal import Journal

logger = logging.getLogger(__name__)

__all__ = ["ROW_COLUMNS", "SpectrogramStore", "StoreWriter", "open_store"]

#: The marker in the group's attributes that proves featx made a folder.
FORMAT = "featx-spectrogram-store"
FORMAT_VERSION = 1
#: Columns of the row table, one row per segment.
ROW_COLUMNS = ("track", "segment", "filename", "label", "length")
ROWS_FILE = "rows.jsonl"
#: Rows reserved at a time when the arrays must grow (they grow by doubling beyond this).
_MIN_GROWTH = 64


def _marker(settings: SpectrogramSettings) -> dict:
    return {"format": FORMAT, "version": FORMAT_VERSION, "settings": settings.to_dict()}


def _read_marker(path: Path) -> dict | None:
    """The featx attributes of the group at ``path``, or ``None`` when it is not a featx store."""
    import json

    meta = path / "zarr.json"
    if not meta.is_file():
        return None
    try:
        attrs = json.loads(meta.read_text()).get("attributes", {})
    except (OSError, ValueError, AttributeError):
        return None
    featx = attrs.get("featx") if isinstance(attrs, dict) else None
    if not isinstance(featx, dict) or featx.get("format") != FORMAT:
        return None
    return featx


def _settings_differences(old: dict, new: dict) -> str:
    keys = [k for k in new if old.get(k) != new.get(k)] + [k for k in old if k not in new]
    return "; ".join(f"{k}: {old.get(k)!r} there, {new.get(k)!r} now" for k in keys)


class StoreWriter:
    """Creates a store, or resumes one made with the same settings, and appends files to it.

    Parameters
    ----------
    path : path
        The store folder. It may be absent, an empty folder, or a store made by featx.
    settings : SpectrogramSettings
        How its images are made. Whole-file images (``segment_seconds=None``) need an
        ``image_size``, so that all images of a kind have one shape.
    overwrite : bool
        Replace a store made by featx with other settings (or start one again). A
        folder featx did not make is never replaced.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np
    >>> from featx.features.spectrograms import SpectrogramSettings
    >>> settings = SpectrogramSettings(kinds="chroma")
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "store"
    >>> with StoreWriter(path, settings) as store:
    ...     store.append({"chroma": np.zeros((2, 12, 130), np.float32)},
    ...                  key="a.wav", filename="a.wav", label="rock", length=66149)
    >>> len(open_store(path))
    2
    """

    def __init__(self, path, settings: SpectrogramSettings, *, overwrite: bool = False):
        if settings.segment_seconds is None and settings.image_size is None:
            raise ConfigError(
                "whole-file images differ in width from file to file; set image_size "
                "(e.g. 128x128) to store them"
            )
        self.path = Path(path)
        self.settings = settings
        self.overwrite = overwrite
        self._journal: Journal | None = None
        self._arrays: dict = {}
        self._n_rows = 0
        self._shapes = {kind: settings.image_shape(kind) for kind in settings.kinds}

    # ------------------------------------------------------------------ opening

    def open(self) -> StoreWriter:
        """Lock the store, creating or checking it; returns ``self``."""
        import zarr

        marker = self._check_location()
        if marker is None:  # a new store: the marker first, so the folder is known as featx's
            zarr.open_group(store=str(self.path), mode="a", zarr_format=3).attrs["featx"] = _marker(self.settings)
        header = {"store": FORMAT, "settings": self.settings.to_dict()}
        journal = Journal(self.path / ROWS_FILE, header)
        journal.open(fresh=marker is None or self.overwrite)  # locked from here on
        try:
            group = zarr.open_group(store=str(self.path), mode="a", zarr_format=3)
            if marker is not None and self.overwrite:  # featx's own store, replaced
                for kind in KINDS:
                    if kind in group:
                        del group[kind]
                group.attrs["featx"] = _marker(self.settings)
            for kind in self.settings.kinds:
                height, width = self._shapes[kind]
                if kind in group:
                    array = group[kind]
                else:
                    array = group.create_array(
                        kind, shape=(0, height, width), chunks=(1, height, width),
                        dtype="float32", fill_value=0.0,
                    )
                self._arrays[kind] = array
            self._n_rows = _check_records(list(journal.records.values()), self.path)
        except BaseException:
            journal.close()
            raise
        self._journal = journal
        if self._n_rows:
            logger.info("%s: resuming after %d rows", self.path, self._n_rows)
        return self

    def _check_location(self) -> dict | None:
        path = self.path
        if path.is_symlink():
            raise OutputError(f"{path} is a symbolic link; featx never writes through a link: choose another output")
        if path.exists() and not path.is_dir():
            raise OutputError(f"{path} exists and is not a folder; expected a spectrogram store there")
        if not path.exists():
            try:
                path.mkdir(parents=True)
            except OSError as exc:
                raise OutputError(f"store folder {str(path)!r} cannot be created ({exc.strerror})") from None
            return None
        marker = _read_marker(path)
        if marker is None:
            if any(path.iterdir()):
                raise OutputError(
                    f"{path} is a folder featx did not make (not a spectrogram store); featx does not "
                    "write into it: choose another output"
                )
            return None
        old = marker.get("settings")
        if not self.overwrite and old != self.settings.to_dict():
            diff = _settings_differences(old if isinstance(old, dict) else {}, self.settings.to_dict())
            raise OutputError(
                f"{path} holds spectrograms made with other settings ({diff}); use those settings "
                "to add to it, or pass overwrite=True to replace it"
            )
        return marker

    # ------------------------------------------------------------------ writing

    @property
    def done(self) -> set[str]:
        """Keys of the files already in the store (resume skips them)."""
        return set(self._journal.records) if self._journal else set()

    @property
    def records(self) -> dict[str, dict]:
        """The committed record of each file in the store, by key (``key``, ``start``,
        ``rows`` and, where given, the ``fingerprint`` of the source file)."""
        return dict(self._journal.records) if self._journal else {}

    def __len__(self) -> int:
        return self._n_rows

    def append(self, images: dict, *, key: str, filename: str, label: str | None = None,
               length: int, track: str | None = None,
               fingerprint: list[int] | None = None) -> None:
        """Add one file's segments, committing them together.

        Parameters
        ----------
        images : dict
            ``kind -> np.ndarray [shape=(n_segments, height, width)]`` for every kind
            of the settings, as :func:`featx.features.spectrograms.segment_spectrograms`
            returns.
        key : str
            Identifies the source file (e.g. its path); a key already in the store is refused.
        filename : str
            The source file's name; segment rows are named ``<stem>.<i><ext>`` as in the
            Kaggle tables, whole-file rows by the name itself.
        label : str or None
        length : int
            Samples per segment.
        track : str or None
            Track id; the file name's stem by default.
        fingerprint : list of int, optional
            ``[size, mtime_ns]`` of the source file, committed with its rows, so that a
            later run can tell whether the file was replaced since.
        """
        if self._journal is None:
            raise RuntimeError("the store is not open for writing")
        if key in self._journal.records:
            raise OutputError(f"{self.path}: {key!r} is already in the store; each file is added once")
        missing = [k for k in self.settings.kinds if k not in images]
        if missing:
            raise DataError(f"images for {key!r} lack the kind(s) {', '.join(missing)} of this store")
        counts = {len(images[k]) for k in self.settings.kinds}
        if len(counts) != 1 or 0 in counts:
            raise DataError(f"images for {key!r} must give every kind the same, non-zero number of segments")
        (n,) = counts
        for kind in self.settings.kinds:
            if tuple(images[kind].shape[1:]) != self._shapes[kind]:
                raise DataError(
                    f"{kind} images for {key!r} have shape {tuple(images[kind].shape[1:])}; this store "
                    f"holds {self._shapes[kind][0]}x{self._shapes[kind][1]} images"
                )
        from ..extract.file import row_names

        start, stop = self._n_rows, self._n_rows + n
        for kind, array in self._arrays.items():
            if array.shape[0] < stop:
                array.resize((max(stop, 2 * array.shape[0], _MIN_GROWTH), *self._shapes[kind]))
            array[start:stop] = np.asarray(images[kind], dtype=np.float32)
        stem = Path(filename).stem
        names = row_names(filename, n, whole_file=self.settings.segment_seconds is None)
        rows = [[track or stem, i, name, label, int(length)] for i, name in enumerate(names)]
        # the commit: after this line is written the file's rows exist, before it they do not
        record = {"key": str(key), "start": start, "rows": rows}
        if fingerprint is not None:
            record["fingerprint"] = [int(v) for v in fingerprint]
        self._journal.append(record)
        self._n_rows = stop

    def close(self) -> None:
        """Trim the arrays to the committed rows, flush and release the lock."""
        if self._journal is None:
            return
        try:
            for kind, array in self._arrays.items():
                if array.shape[0] != self._n_rows:
                    array.resize((self._n_rows, *self._shapes[kind]))
        finally:
            self._journal.close()
            self._journal = None

    def __enter__(self) -> StoreWriter:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()


def _check_records(records: list[dict], path: Path) -> int:
    """Number of committed rows; the records must follow each other without gaps."""
    n = 0
    for record in records:
        rows = record.get("rows")
        if record.get("start") != n or not isinstance(rows, list):
            raise DataError(
                f"{path / ROWS_FILE}: record for {record.get('key')!r} starts at row "
                f"{record.get('start')!r}, expected {n}; the row table is damaged"
            )
        n += len(rows)
    return n


def _read_rows(path: Path) -> tuple[dict | None, list[dict]]:
    """The header and the committed records of ``rows.jsonl``, read without locking."""
    import json

    try:
        data = (path / ROWS_FILE).read_bytes()
    except FileNotFoundError:
        return None, []
    lines = data.split(b"\n")[:-1]  # what follows the last newline is an uncommitted, cut-off line
    if not lines:
        return None, []
    try:
        header = json.loads(lines[0])
        records = [json.loads(line) for line in lines[1:] if line.strip()]
    except ValueError:
        raise DataError(f"{path / ROWS_FILE}: unreadable row table; expected JSON lines written by featx") from None
    return header, records


class SpectrogramStore:
    """Read access to a store: rows, settings and images, by segment or in batches.

    Use :func:`open_store` to make one. It sees the rows committed when it was opened.

    Attributes
    ----------
    settings : SpectrogramSettings
    rows : pandas.DataFrame
        One row per segment, columns :data:`ROW_COLUMNS`, in store order.
    """

    def __init__(self, path):
        import pandas as pd
        import zarr

        self.path = Path(path)
        marker = _read_marker(self.path) if self.path.is_dir() else None
        if marker is None:
            raise DataError(f"{self.path} is not a spectrogram store; expected a folder made by featx spectrograms")
        self.settings = SpectrogramSettings.from_dict(marker.get("settings", {}))
        header, records = _read_rows(self.path)
        if header is not None and header.get("settings") != marker.get("settings"):
            records = []  # replaced with other settings and killed before its first file
        n = _check_records(records, self.path)
        table = [row for record in records for row in record["rows"]]
        self.rows = pd.DataFrame(table, columns=list(ROW_COLUMNS))
        self.keys = [record["key"] for record in records]
        group = zarr.open_group(store=str(self.path), mode="r", zarr_format=3)
        self._arrays = {kind: group[kind] for kind in self.settings.kinds}
        for kind, array in self._arrays.items():
            if array.shape[0] < n:
                raise DataError(f"{self.path}: the {kind} array holds {array.shape[0]} images, the row table {n}")
        self._n = n

    @property
    def kinds(self) -> tuple[str, ...]:
        return self.settings.kinds

    def image_shape(self, kind: str) -> tuple[int, int]:
        """``(height, width)`` of the ``kind`` images."""
        return tuple(self._arrays[self._kind(kind)].shape[1:])

    def __len__(self) -> int:
        return self._n

    def _kind(self, kind: str) -> str:
        if kind not in self._arrays:
            raise DataError(
                f"{self.path} holds no {kind!r} images; it holds {', '.join(self.settings.kinds)}"
            )
        return kind

    def _kinds(self, kinds) -> tuple[str, ...]:
        if kinds is None:
            return self.settings.kinds
        kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
        return tuple(self._kind(k) for k in kinds)

    def get(self, i: int, kinds=None) -> dict[str, np.ndarray]:
        """The images of segment ``i``: ``kind -> np.ndarray [shape=(height, width)]``."""
        i = int(i)
        if not -self._n <= i < self._n:
            raise IndexError(f"segment {i} is out of range for a store of {self._n} segments")
        i %= self._n
        return {kind: self._arrays[kind][i] for kind in self._kinds(kinds)}

    def read(self, indices, kinds=None) -> dict[str, np.ndarray]:
        """Images of many segments at once: ``kind -> np.ndarray [shape=(n, height, width)]``.

        ``indices`` may be a slice or any sequence of row numbers (any order, repeats
        allowed); each array is read with one request per chunk needed.
        """
        if isinstance(indices, slice):
            idx = np.arange(self._n)[indices]
        else:
            idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < -self._n or idx.max() >= self._n):
            raise IndexError(f"row numbers must lie in [0, {self._n}) for this store")
        idx = idx % max(self._n, 1)
        unique, inverse = np.unique(idx, return_inverse=True)
        out = {}
        for kind in self._kinds(kinds):
            if unique.size == 0:
                out[kind] = np.empty((0, *self.image_shape(kind)), dtype=np.float32)
                continue
            block = self._arrays[kind].oindex[unique]
            out[kind] = np.asarray(block)[inverse.reshape(-1)]
        return out


def open_store(path) -> SpectrogramStore:
    """Open a spectrogram store for reading.

    Raises
    ------
    DataError
        ``path`` is not a store made by featx, or its row table is damaged.
    """
    return SpectrogramStore(path)
