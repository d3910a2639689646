"""Writing a spectrogram store: each file's images appended as it is finished.

The format is described in :mod:`featx.extract.store_format`; the reader is
:mod:`featx.data.store`.

Writing
-------
* **Never half-written.** Every shard file is written beside its final name and
  renamed into place (the chunks it already held unchanged, at the same offsets),
  and a file's segments count only once its line is appended to ``rows.jsonl``,
  after all their chunks: a killed writer leaves whole files only.
* **Locked first.** The writer takes the lock on ``rows.jsonl``
  (:class:`featx.io.journal.Journal`) before it writes anything, then decides under
  the lock whether it creates, resumes or replaces the store: of two writers, the
  second changes nothing.
* **Never through a link.** Folders and files are opened relative to the store's
  folder without following links (:mod:`featx.io.chunks`); a link anywhere inside the
  store is refused, not written through.
* **Replaced only when featx made all of it.** ``overwrite=True`` first checks that
  every entry of every array folder is one featx writes (chunk files, metadata,
  its own temporary files; no link), naming the first one that is not, and only then
  deletes them; files a user put beside the arrays are left alone.

Stores of featx 0.1.0 (format version 1) are read, unverified; featx adds no file to
them: ``overwrite=True`` rewrites them.
"""
from __future__ import annotations

import logging
import os
import re
import stat
from pathlib import Path

from ..errors import ConfigError, DataError, OutputError
from ..features.spectrograms import KINDS, SpectrogramSettings
from ..io.chunks import (
    SHARD_ROWS,
    WRITE_CODECS,
    WRITE_SEPARATOR,
    ChunkFileError,
    array_metadata,
    metadata_bytes,
    open_file,
    open_folder,
    parse_array_metadata,
    read_file,
    shard_bytes,
    write_file,
)
from ..io.journal import Journal
from .file import row_names
from .store_format import (
    FORMAT_VERSION,
    GROUP_FILE,
    MAX_ROWS_BYTES,
    ROWS_FILE,
    EncodedImages,
    checksum,
    encode_images,
    journal_header,
    load_marker,
    marker,
    parse_rows,
    read_marker,
)

logger = logging.getLogger(__name__)

__all__ = ["StoreWriter"]

#: Rows reserved at a time when the arrays must grow (they grow by doubling beyond this).
_MIN_GROWTH = 64
#: Entries of an array folder that featx writes (format 2, then format 1's nested keys).
_ARRAY_FILE = re.compile(r"zarr\.json|c\.\d+(\.0)+|\.(zarr\.json|c\.\d+(\.0)+)\.\d+\.tmp")
#: A group document being written (left by a writer killed at that moment).
_TEMP = re.compile(r"\.zarr\.json\.\d+\.tmp")
#: Format 1's chunk keys, one folder level at a time: c/<segment>/0/0.
_V1_LEVELS = (re.compile(r"c"), re.compile(r"\d+"), re.compile(r"0"), re.compile(r"0"))


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
        Replace a store made by featx (with other settings, by an earlier featx, or
        to start again). A folder featx did not make is never replaced, nor a store
        with anything in its array folders that featx did not write.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np
    >>> from featx.features.spectrograms import SpectrogramSettings
    >>> settings = SpectrogramSettings(kinds="chroma")
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "store"
    >>> with StoreWriter(path, settings) as store:
    ...     store.append({"chroma": np.zeros((2, 12, 130), np.float32)},
    ...                  key="a.wav", filename="a.wav", label="rock", length=66149)
    ...     len(store)
    2

    Read it with :func:`featx.data.store.open_store`.
    """

    def __init__(self, path, settings: SpectrogramSettings, *, overwrite: bool = False):
        if not isinstance(settings, SpectrogramSettings):
            raise ConfigError(f"settings must be a SpectrogramSettings. Received: settings={settings!r}")
        if settings.segment_seconds is None and settings.image_size is None:
            raise ConfigError(
                "whole-file images differ in width from file to file; set image_size "
                "(e.g. 128x128) to store them"
            )
        self.path = Path(path)
        self.settings = settings
        self.overwrite = overwrite
        self._journal: Journal | None = None
        self._records: dict[str, dict] = {}
        self._root: int | None = None
        self._folders: dict[str, int] = {}
        self._tails: dict[str, list[bytes]] = {}  # kind -> committed chunks of the last shard
        self._capacity = 0
        self._n_rows = 0
        self._shapes = {kind: settings.image_shape(kind) for kind in settings.kinds}

    # ------------------------------------------------------------------ opening

    def open(self) -> StoreWriter:
        """Lock the store, then create, resume or replace it; returns ``self``.

        Raises
        ------
        OutputError
            The location is a link, a file or a folder featx did not make; another run
            holds the lock; the store was made with other settings or by an earlier
            featx (without ``overwrite``); or something in it is not featx's.
        DataError
            The store is damaged (its row table, metadata or arrays).
        """
        self._precheck()
        settings = self.settings.to_dict()
        journal = Journal(self.path / ROWS_FILE, journal_header(settings, FORMAT_VERSION))
        journal.lock()  # before anything is written: a second writer changes nothing
        try:
            self._root = self._open_folder(str(self.path))
            found = load_marker(self._root, self.path)
            records: list[dict] = []
            if found is None:
                self._check_new()
                fresh, doomed = True, []
            elif self.overwrite:
                fresh, doomed = True, self._featx_arrays()
            else:
                self._check_resumable(found)
                records = self._read_records(found)
                # no committed rows (new, or replaced by a writer killed before its first
                # file): start it again, leaving nothing of the earlier arrays behind
                fresh = not records
                doomed = self._featx_arrays() if fresh else []
            if fresh:
                journal.open(fresh=True)  # from here on the store has no rows
                self._remove(doomed)
                write_file(GROUP_FILE, metadata_bytes({"attributes": {"featx": marker(self.settings)},
                                                       "zarr_format": 3, "node_type": "group"}),
                           dir_fd=self._root)
            else:
                journal.open()
            self._open_arrays(create=fresh, records=records)
            self._records = {r["key"]: r for r in records}
        except OSError as exc:
            self._release(journal)
            raise OutputError(f"{self.path}: cannot write the store ({exc.strerror or exc})") from None
        except BaseException:
            self._release(journal)
            raise
        self._journal = journal
        if self._n_rows:
            logger.info("%s: resuming after %d rows", self.path, self._n_rows)
        return self

    def _precheck(self) -> None:
        """Refuse a link, a file or a folder featx did not make, before the lock file is made."""
        path = self.path
        if path.is_symlink():
            raise OutputError(f"{path} is a symbolic link; featx never writes through a link: choose another output")
        if path.exists() and not path.is_dir():
            raise OutputError(f"{path} exists and is not a folder; expected a spectrogram store there")
        if not path.exists():
            try:
                path.mkdir(parents=True)
            except FileExistsError:
                pass
            except OSError as exc:
                raise OutputError(f"store folder {str(path)!r} cannot be created ({exc.strerror})") from None
            return
        if os.path.lexists(path / GROUP_FILE):
            if read_marker(path) is None:
                raise OutputError(f"{path} holds Zarr data featx did not write (no featx marker in "
                                  "its zarr.json); featx does not write into it: choose another output")
        elif any(p.name != ROWS_FILE and not _TEMP.fullmatch(p.name) for p in path.iterdir()):
            raise OutputError(
                f"{path} is a folder featx did not make (not a spectrogram store); featx does not "
                "write into it: choose another output"
            )

    def _open_folder(self, name: str, *, dir_fd: int | None = None, create: bool = False,
                     where: Path | None = None) -> int:
        try:
            return open_folder(name, dir_fd=dir_fd, create=create)
        except ChunkFileError as exc:
            raise OutputError(f"{where or name}: {exc}; featx never writes through a link or into "
                              "what it did not make: move it away, or choose another output") from None

    def _check_new(self) -> None:
        """Under the lock: a folder without a marker holds nothing but featx's row table."""
        for name in os.listdir(self._root):
            if name != ROWS_FILE and not _TEMP.fullmatch(name):
                raise OutputError(f"{self.path} is a folder featx did not make (it holds {name!r}); "
                                  "featx does not write into it: choose another output")

    def _check_resumable(self, found: dict) -> None:
        old = found["settings"]
        new = self.settings.to_dict()
        if old != new:
            keys = [k for k in new if old.get(k) != new.get(k)] + [k for k in old if k not in new]
            diff = "; ".join(f"{k}: {old.get(k)!r} there, {new.get(k)!r} now" for k in keys)
            raise OutputError(
                f"{self.path} holds spectrograms made with other settings ({diff}); use those settings "
                "to add to it, or pass overwrite=True to replace it"
            )
        if found["version"] != FORMAT_VERSION:
            raise OutputError(
                f"{self.path} was written by an earlier featx (store format {found['version']}, without "
                "image checksums); featx reads it but adds no files to it: rewrite it with "
                "overwrite=True"
            )

    def _read_records(self, found: dict) -> list[dict]:
        try:
            data = read_file(ROWS_FILE, dir_fd=self._root, limit=MAX_ROWS_BYTES)
        except ChunkFileError as exc:
            raise DataError(f"{self.path / ROWS_FILE}: {exc}") from None
        return parse_rows(data or b"", self.path, settings=found["settings"], version=found["version"],
                          kinds=self.settings.kinds)

    def _featx_arrays(self) -> list[tuple[tuple[str, ...], bool]]:
        """Every path inside the array folders (parts, is a folder), deepest first, once each
        is checked to be featx's.

        Raises
        ------
        OutputError
            An array folder is a link or not a folder, or holds a link or a name featx
            does not write; nothing has been deleted.
        """
        found: list[tuple[tuple[str, ...], bool]] = [
            ((name,), False) for name in os.listdir(self._root) if _TEMP.fullmatch(name)]
        for kind in KINDS:
            if not os.path.lexists(self.path / kind):
                continue
            fd = self._open_folder(kind, dir_fd=self._root, where=self.path / kind)
            try:
                self._walk_array(fd, (kind,), found)
            finally:
                os.close(fd)
            found.append(((kind,), True))
        return found

    def _walk_array(self, fd: int, parts: tuple[str, ...], found: list) -> None:
        depth = len(parts) - 1  # 0 in the array folder, 1.. in format 1's nested chunk folders
        last = len(_V1_LEVELS) - 1
        for name in sorted(os.listdir(fd)):
            where = self.path.joinpath(*parts, name)
            mode = os.lstat(name, dir_fd=fd).st_mode
            if stat.S_ISREG(mode) and ((depth == 0 and _ARRAY_FILE.fullmatch(name))
                                       or (depth == last and _V1_LEVELS[depth].fullmatch(name))):
                found.append(((*parts, name), False))
            elif stat.S_ISDIR(mode) and depth < last and _V1_LEVELS[depth].fullmatch(name):
                sub = self._open_folder(name, dir_fd=fd, where=where)
                try:
                    self._walk_array(sub, (*parts, name), found)
                finally:
                    os.close(sub)
                found.append(((*parts, name), True))
            else:
                what = "a symbolic link" if stat.S_ISLNK(mode) else "not something featx writes there"
                raise OutputError(f"{where}: is {what}; featx replaces a store only when it wrote "
                                  "everything in its arrays: remove it, or choose another output")

    def _remove(self, doomed: list[tuple[tuple[str, ...], bool]]) -> None:
        """Delete what :meth:`_featx_arrays` listed, relative to open folders, following no link."""
        for parts, folder in doomed:
            opened = []
            try:
                parent = self._root
                for name in parts[:-1]:
                    parent = self._open_folder(name, dir_fd=parent, where=self.path.joinpath(*parts))
                    opened.append(parent)
                if folder:
                    os.rmdir(parts[-1], dir_fd=parent)
                else:
                    os.unlink(parts[-1], dir_fd=parent)
            except FileNotFoundError:
                pass
            finally:
                for fd in opened:
                    os.close(fd)

    def _open_arrays(self, *, create: bool, records: list[dict]) -> None:
        n_rows = sum(len(r["rows"]) for r in records)
        capacity = None
        for kind in self.settings.kinds:
            where = self.path / kind
            fd = self._open_folder(kind, dir_fd=self._root, create=create, where=where)
            self._folders[kind] = fd
            if create:
                write_file("zarr.json", metadata_bytes(array_metadata((0, *self._shapes[kind]),
                                                                      self._shapes[kind])), dir_fd=fd)
                size = 0
                self._tails[kind] = []
            else:
                layout = self._layout(kind, fd)
                size = layout.shape[0]
                self._tails[kind] = self._tail(kind, fd, layout, records, n_rows)
            capacity = size if capacity is None else min(capacity, size)
        self._capacity = capacity or 0
        self._n_rows = n_rows
        if self._capacity < n_rows:
            raise DataError(f"{self.path}: its arrays hold {self._capacity} images, its row table "
                            f"{n_rows}; the store is damaged: rewrite it with overwrite=True")

    def _layout(self, kind: str, fd: int):
        where = self.path / kind / "zarr.json"
        try:
            data = read_file("zarr.json", dir_fd=fd, limit=1 << 20)
            if data is None:
                raise ChunkFileError("is missing")
            layout = parse_array_metadata(data, image_shape=self._shapes[kind])
        except ChunkFileError as exc:
            raise DataError(f"{where}: {exc}; the store is damaged: rewrite it with "
                            "overwrite=True") from None
        if (layout.shard, layout.separator, layout.compressor) != (SHARD_ROWS, WRITE_SEPARATOR, WRITE_CODECS[1]):
            raise DataError(f"{where}: the {kind} array is not laid out as this featx writes it "
                            f"(shards of {SHARD_ROWS} images, blosc chunks); rewrite the store with "
                            "overwrite=True")
        return layout

    def _tail(self, kind: str, fd: int, layout, records: list[dict], n_rows: int) -> list[bytes]:
        """The committed chunks of the shard holding the last rows, checked against their checksums."""
        first = n_rows - n_rows % SHARD_ROWS
        if first == n_rows:
            return []
        sums = [v for r in records for v in r["crc32c"][kind]][first:n_rows]
        name = layout.key(first)[0]
        chunks = []
        try:
            opened = open_file(name, dir_fd=fd, limit=layout.file_limit)
            if opened is None:
                raise ChunkFileError("is missing")
            handle, size = opened
            try:
                for row, crc in zip(range(first, n_rows), sums):
                    chunk = layout.chunk_of(handle, size, row)
                    if chunk is None or checksum(layout.decode(chunk)) != crc:
                        raise ChunkFileError(f"does not hold row {row} as committed")
                    chunks.append(chunk)
            finally:
                os.close(handle)
        except ChunkFileError as exc:
            raise DataError(f"{self.path / kind / name}: {exc}; the store is damaged: rewrite it with "
                            "overwrite=True") from None
        return chunks

    def _release(self, journal: Journal) -> None:
        for fd in self._folders.values():
            os.close(fd)
        self._folders = {}
        if self._root is not None:
            os.close(self._root)
            self._root = None
        journal.close()

    # ------------------------------------------------------------------ writing

    @property
    def done(self) -> set[str]:
        """Keys of the files already in the store (resume skips them)."""
        return set(self._records)

    @property
    def records(self) -> dict[str, dict]:
        """The committed record of each file in the store, by key (``key``, ``start``,
        ``rows``, ``crc32c`` and, where given, the ``fingerprint`` of the source file)."""
        return dict(self._records)

    def __len__(self) -> int:
        return self._n_rows

    def append(self, images, *, key: str, filename: str, label: str | None = None,
               length: int, track: str | None = None,
               fingerprint: list[int] | None = None) -> None:
        """Add one file's segments, committing them together.

        Parameters
        ----------
        images : dict or EncodedImages
            ``kind -> np.ndarray [shape=(n_segments, height, width)]`` for every kind
            of the settings, as :func:`featx.features.spectrograms.segment_spectrograms`
            returns, or the same already encoded by :func:`encode_images` (as worker
            processes send them).
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

        Raises
        ------
        OutputError
            ``key`` is in the store already, or a chunk cannot be written.
        DataError
            The images lack a kind, differ in segments or shape, or are not finite.
        """
        if self._journal is None:
            raise RuntimeError("the store is not open for writing")
        if key in self._records:
            raise OutputError(f"{self.path}: {key!r} is already in the store; each file is added once")
        if not isinstance(images, EncodedImages):
            images = encode_images(images, kinds=self.settings.kinds, key=key)
        missing = [k for k in self.settings.kinds if k not in images.chunks]
        if missing:
            raise DataError(f"images for {key!r} lack the kind(s) {', '.join(missing)} of this store")
        for kind in self.settings.kinds:
            if tuple(images.shapes[kind]) != self._shapes[kind]:
                raise DataError(
                    f"{kind} images for {key!r} have shape {tuple(images.shapes[kind])}; this store "
                    f"holds {self._shapes[kind][0]}x{self._shapes[kind][1]} images"
                )

        n = images.n_segments
        start, stop = self._n_rows, self._n_rows + n
        tails = {}
        try:
            if self._capacity < stop:
                self._resize(max(stop, 2 * self._capacity, _MIN_GROWTH))
            for kind in self.settings.kinds:
                # each shard touched is written whole: the last one's committed chunks first,
                # unchanged and at the same offsets, then the new ones
                chunks = list(images.chunks[kind])
                shard = start // SHARD_ROWS
                held = self._tails[kind]
                while chunks:
                    room = SHARD_ROWS - len(held)
                    content = held + chunks[:room]
                    chunks = chunks[room:]
                    write_file(f"c.{shard}.0.0", shard_bytes(content), dir_fd=self._folders[kind])
                    held, shard = [], shard + 1
                tails[kind] = content if len(content) < SHARD_ROWS else []
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot write the images of {key!r} "
                              f"({exc.strerror or exc})") from None
        stem = Path(filename).stem
        names = row_names(filename, n, whole_file=self.settings.segment_seconds is None)
        rows = [[track or stem, i, name, label, int(length)] for i, name in enumerate(names)]
        # the commit: after this line is written the file's rows exist, before it they do not
        record = {"key": str(key), "start": start, "rows": rows,
                  "crc32c": {k: [int(v) for v in images.crc32c[k]] for k in self.settings.kinds}}
        if fingerprint is not None:
            record["fingerprint"] = [int(v) for v in fingerprint]
        self._journal.append(record)
        self._records[record["key"]] = record
        self._tails.update(tails)
        self._n_rows = stop

    def _resize(self, size: int) -> None:
        for kind, fd in self._folders.items():
            shape = self._shapes[kind]
            write_file("zarr.json", metadata_bytes(array_metadata((size, *shape), shape)), dir_fd=fd)
        self._capacity = size

    def close(self) -> None:
        """Trim the arrays to the committed rows, flush and release the lock."""
        if self._journal is None:
            return
        journal, self._journal = self._journal, None
        try:
            if self._capacity != self._n_rows:
                self._resize(self._n_rows)
        except OSError as exc:
            logger.warning("%s: the arrays' shapes could not be trimmed to %d rows (%s); readers "
                           "use the row table's count", self.path, self._n_rows, exc.strerror or exc)
        finally:
            self._release(journal)

    def __enter__(self) -> StoreWriter:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()
