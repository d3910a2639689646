"""Reading a spectrogram store: rows, settings and images, each image checked as it is read.

The store's layout is described in :mod:`featx.extract.store_format`, how it is
written in :mod:`featx.extract.store_writer` (its :class:`StoreWriter` is also
importable from here). In short: a Zarr v3 folder with one float32 array per image
kind, one chunk per segment, and ``rows.jsonl``, the row table, which names every
committed file's segments and the CRC-32C of each of their images.

Every image :meth:`SpectrogramStore.read` returns has been checked against the
CRC-32C its writer committed: a chunk that is missing, cut short, damaged, swapped
with another, a folder, a link or anything but a regular file is a
:class:`~featx.errors.DataError` naming the store, the file and segment, and what
was expected, never zeros or shifted pixels. So is a row table or an array metadata
document that is not what featx writes. Stores of featx 0.1.0 hold no checksums: they
are read unverified (with one warning per store and process; non-finite values are
still refused), and ``featx spectrograms --overwrite`` rewrites them.

Why Zarr rather than HDF5
-------------------------
* **Appending as files finish, never half-written.** Zarr keeps every chunk and every
  metadata document in its own small file, each replaced atomically (written beside,
  then renamed). A killed writer therefore leaves whole chunks and whole metadata,
  and a file's segments are committed by appending its line to ``rows.jsonl`` only
  after all their chunks are written: readers see exactly the rows listed there, so
  an interrupted file simply does not exist. HDF5 keeps one file whose internal
  structures are updated in place; a process killed while it holds the file open
  for writing can leave the whole file unreadable.
* **Readers while a writer works.** Any number of processes may read a store while it
  grows (each sees the rows committed when it opened it); HDF5 allows that only in
  its single-writer/multiple-reader mode, with restrictions on growing data.
* **Object stores and Dask.** The same layout works on S3/GCS-style object stores, and
  Dask reads each array directly: ``dask.array.from_zarr("STORE", component="mel")[:len(store)]``
  (a store that was not closed cleanly may hold spare rows after the committed ones;
  such direct reads do not check the images' checksums).
* The cost: one file per segment and kind (about 30,000 for GTZAN in 3-s segments),
  which local file systems handle without trouble.
"""
from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..extract.store_format import (
    FORMAT_VERSION,
    GROUP_FILE,
    MAX_ROWS_BYTES,
    ROW_COLUMNS,
    ROWS_FILE,
    EncodedImages,
    check_marker,
    checksum,
    encode_images,
    parse_rows,
)
from ..extract.store_format import read_marker as _read_marker  # noqa: F401  (is_store, sweeps read it)
from ..extract.store_writer import StoreWriter
from ..features.spectrograms import SpectrogramSettings
from ..io.chunks import (
    ChunkFileError,
    open_file,
    open_folder,
    parse_array_metadata,
    read_file,
)

logger = logging.getLogger(__name__)

__all__ = ["ROW_COLUMNS", "EncodedImages", "SpectrogramStore", "StoreWriter", "encode_images",
           "open_store"]

#: Stores already warned about in this process (format 1: no checksums).
_WARNED: set[str] = set()


class UnverifiedStoreWarning(UserWarning):
    """A store written by featx 0.1.0: its images have no checksums to check them against."""


class SpectrogramStore:
    """Read access to a store: rows, settings and images, by segment or in batches.

    Use :func:`open_store` to make one. It sees the rows committed when it was opened,
    and checks every image it reads (see the module's description).

    Attributes
    ----------
    settings : SpectrogramSettings
    rows : pandas.DataFrame
        One row per segment, columns :data:`ROW_COLUMNS`, in store order.
    keys : list of str
        The source files' ids, in store order.
    version : int
        The store's format version (1: written by featx 0.1.0, without checksums).
    """

    def __init__(self, path):
        import pandas as pd  # pandas: kept off featx extract's path

        self.path = Path(path)
        if not self.path.is_dir():
            raise DataError(f"{self.path} is not a spectrogram store; expected a folder made by featx spectrograms")
        root = self._open_root()
        try:
            found = self._marker(root)
            self.version = int(found["version"])
            self.settings = SpectrogramSettings.from_dict(found["settings"])
            try:
                data = read_file(ROWS_FILE, dir_fd=root, limit=MAX_ROWS_BYTES)
            except ChunkFileError as exc:
                raise DataError(f"{self.path / ROWS_FILE}: {exc}; expected the store's row table") from None
            records = parse_rows(data or b"", self.path, settings=found["settings"], version=self.version,
                                 kinds=self.settings.kinds)
            self._n = sum(len(r["rows"]) for r in records)
            self._layouts = {kind: self._layout(root, kind) for kind in self.settings.kinds}
        finally:
            os.close(root)
        self.rows = pd.DataFrame([row for r in records for row in r["rows"]], columns=list(ROW_COLUMNS))
        self.keys = [r["key"] for r in records]
        self._crc = ({kind: np.array([v for r in records for v in r["crc32c"][kind]], dtype=np.uint32)
                      for kind in self.settings.kinds} if self.version >= 2 else None)
        if self.version < FORMAT_VERSION and self._n and str(self.path) not in _WARNED:
            _WARNED.add(str(self.path))
            warnings.warn(f"{self.path} was written by an earlier featx without image checksums: its "
                          "images are read unverified; make it again with featx spectrograms "
                          "--overwrite (overwrite=True) to have them checked", UnverifiedStoreWarning, stacklevel=3)

    def _open_root(self) -> int:
        try:  # the store's own folder may be reached through a link; nothing inside it is
            return os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise DataError(f"{self.path}: cannot be opened ({exc.strerror}); expected a spectrogram "
                            "store folder") from None

    def _marker(self, root: int) -> dict:
        where = self.path / GROUP_FILE
        try:
            data = read_file(GROUP_FILE, dir_fd=root, limit=1 << 20)
        except ChunkFileError as exc:
            raise DataError(f"{where}: {exc}; expected the store's Zarr group metadata") from None
        try:
            document = json.loads(data) if data is not None else None
        except (ValueError, UnicodeDecodeError):
            document = None
        found = check_marker(document, where)
        if found is None:
            raise DataError(f"{self.path} is not a spectrogram store; expected a folder made by featx "
                            "spectrograms (its zarr.json with featx's marker)")
        return found

    def _layout(self, root: int, kind: str):
        where = self.path / kind / "zarr.json"
        shape = self.settings.image_shape(kind)
        try:
            fd = open_folder(kind, dir_fd=root)
        except ChunkFileError as exc:
            if not self._n and str(exc) == "is missing":
                return None  # no rows: nothing to read
            raise DataError(f"{self.path / kind}: {exc}; expected the {kind} array of this store "
                            "(its settings name the kind)") from None
        try:
            data = read_file("zarr.json", dir_fd=fd, limit=1 << 20)
            if data is None:
                raise ChunkFileError("is missing")
            layout = parse_array_metadata(data, image_shape=shape)
        except ChunkFileError as exc:
            raise DataError(f"{where}: {exc}; expected the metadata featx wrote for the {kind} "
                            f"array ({shape[0]}x{shape[1]} float32 images)") from None
        finally:
            os.close(fd)
        if layout.shape[0] < self._n:
            raise DataError(f"{where}: the {kind} array holds {layout.shape[0]} images, the row table "
                            f"{self._n}; expected at least one image per row")
        return layout

    @property
    def kinds(self) -> tuple[str, ...]:
        return self.settings.kinds

    def image_shape(self, kind: str) -> tuple[int, int]:
        """``(height, width)`` of the ``kind`` images."""
        return tuple(self.settings.image_shape(self._kind(kind)))

    def __len__(self) -> int:
        return self._n

    def _kind(self, kind: str) -> str:
        if kind not in self._layouts:
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
        return {kind: images[0] for kind, images in self.read([i % self._n], kinds).items()}

    def read(self, indices, kinds=None) -> dict[str, np.ndarray]:
        """Images of many segments at once: ``kind -> np.ndarray [shape=(n, height, width)]``.

        ``indices`` may be a slice or any sequence of row numbers (any order, repeats
        allowed); each image is read once and checked against its checksum.

        Raises
        ------
        DataError
            An image is missing, damaged or not finite (naming the file and segment).
        """
        return self._read(indices, kinds, verify=True)

    def _read(self, indices, kinds, *, verify: bool) -> dict[str, np.ndarray]:
        if isinstance(indices, slice):
            idx = np.arange(self._n)[indices]
        else:
            idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < -self._n or idx.max() >= self._n):
            raise IndexError(f"row numbers must lie in [0, {self._n}) for this store")
        idx = idx % max(self._n, 1)
        unique, inverse = np.unique(idx, return_inverse=True)
        kinds = self._kinds(kinds)
        out = {}
        root = self._open_root() if unique.size else None
        try:
            for kind in kinds:
                block = np.empty((unique.size, *self.image_shape(kind)), dtype=np.float32)
                if unique.size:
                    try:
                        fd = open_folder(kind, dir_fd=root)
                    except ChunkFileError as exc:
                        raise DataError(f"{self.path / kind}: {exc}; expected the {kind} array of this "
                                        "store") from None
                    try:
                        self._read_kind(fd, kind, unique, block, verify=verify)
                    finally:
                        os.close(fd)
                out[kind] = block[inverse.reshape(-1)]
        finally:
            if root is not None:
                os.close(root)
        return out

    def _read_kind(self, fd: int, kind: str, rows: np.ndarray, block: np.ndarray, *, verify: bool) -> None:
        """Fill ``block`` with the ``kind`` images of ``rows`` (sorted), one open per file."""
        layout = self._layouts[kind]
        per_file = layout.shard or 1
        j = 0
        while j < rows.size:
            first = int(rows[j])
            parts = layout.key(first)
            group = [first]
            while j + len(group) < rows.size and int(rows[j + len(group)]) // per_file == first // per_file:
                group.append(int(rows[j + len(group)]))
            opened = self._open_chunk_file(fd, parts, layout.file_limit, kind, first)
            try:
                for offset, i in enumerate(group):
                    block[j + offset] = self._image(opened, layout, kind, i, parts, verify=verify)
            finally:
                if opened is not None:
                    os.close(opened[0])
            j += len(group)

    def _open_chunk_file(self, fd: int, parts: list[str], limit: int, kind: str, i: int):
        opened = []
        try:
            for name in parts[:-1]:  # format 1's nested chunk folders
                try:
                    fd = open_folder(name, dir_fd=fd)
                except ChunkFileError as exc:
                    if str(exc) == "is missing":
                        return None
                    raise
                opened.append(fd)
            return open_file(parts[-1], dir_fd=fd, limit=limit)
        except ChunkFileError as exc:
            raise self._damaged(kind, i, f"{kind}/{'/'.join(parts)} {exc}") from None
        finally:
            for sub in opened:
                os.close(sub)

    def _image(self, opened, layout, kind: str, i: int, parts: list[str], *, verify: bool) -> np.ndarray:
        where = f"{kind}/{'/'.join(parts)}"
        try:
            chunk = None if opened is None else layout.chunk_of(*opened, i)
            if chunk is None:
                if self.version < 2:  # zarr left out chunks equal to the fill value (0)
                    return np.zeros(self.image_shape(kind), dtype=np.float32)
                raise ChunkFileError("is missing" if opened is None else f"holds no image for row {i}")
            raw = layout.decode(chunk)
        except ChunkFileError as exc:
            raise self._damaged(kind, i, f"{where} {exc}") from None
        if verify and self._crc is not None and checksum(raw) != int(self._crc[kind][i]):
            raise self._damaged(kind, i, f"{where} does not hold the image committed with its row "
                                         "(its checksum differs: changed since it was written)")
        image = np.frombuffer(raw, dtype="<f4").reshape(self.image_shape(kind))
        if verify and self._crc is None and not np.isfinite(image).all():
            raise self._damaged(kind, i, f"{where} holds NaN or infinity")
        return image

    def _damaged(self, kind: str, i: int, reason: str) -> DataError:
        track, segment, filename = (self.rows[c].iat[i] for c in ("track", "segment", "filename"))
        return DataError(
            f"{self.path}: the {kind} image of segment {segment} of {track} ({filename}, row {i}) is "
            f"unusable: {reason}; expected the finite image featx wrote: make the store again "
            "(spectrograms with overwrite=True)"
        )


def open_store(path) -> SpectrogramStore:
    """Open a spectrogram store for reading.

    Raises
    ------
    DataError
        ``path`` is not a store made by featx, or its settings, row table or array
        metadata are not what featx writes (the message names the file and what was
        expected).
    """
    return SpectrogramStore(path)
